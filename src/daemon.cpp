// daemon: see daemon.h.
#include "daemon.h"

#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <stdexcept>

namespace anyrtpproxy {

namespace {
[[noreturn]] void sys_fail(const std::string& what) {
  throw std::runtime_error(what + ": " + std::strerror(errno));
}
}  // namespace

void Detacher::detach(boost::asio::io_context& io) {
  int pipefd[2];
  if (::pipe(pipefd) != 0) sys_fail("pipe");
  io.notify_fork(boost::asio::io_context::fork_prepare);
  const pid_t first = ::fork();
  if (first < 0) sys_fail("fork");
  if (first > 0) {  // the original process: wait for the daemon's word, exit with it
    ::close(pipefd[1]);
    ::waitpid(first, nullptr, 0);
    char status = 1;
    const bool heard = ::read(pipefd[0], &status, 1) == 1;
    std::_Exit(heard ? status : 1);
  }
  ::close(pipefd[0]);
  if (::setsid() < 0) sys_fail("setsid");
  const pid_t second = ::fork();
  if (second < 0) sys_fail("fork");
  if (second > 0) std::_Exit(0);
  io.notify_fork(boost::asio::io_context::fork_child);
  ::umask(027);
  if (::chdir("/") != 0) sys_fail("chdir /");
  const int null = ::open("/dev/null", O_RDWR);
  if (null < 0) sys_fail("/dev/null");
  ::dup2(null, 0);
  ::dup2(null, 1);
  // stderr stays until report(): a start-up error after the fork still reaches the terminal.
  if (null > 2) ::close(null);
  fd_ = pipefd[1];
}

void Detacher::report(int status) {
  if (fd_ < 0) return;
  const char c = static_cast<char>(status);
  if (::write(fd_, &c, 1) != 1) { /* the parent is gone: nobody to tell */ }
  ::close(fd_);
  fd_ = -1;
  if (status == 0) {
    const int null = ::open("/dev/null", O_RDWR);
    if (null >= 0) {
      ::dup2(null, 2);
      if (null > 2) ::close(null);
    }
  }
}

Detacher::~Detacher() { report(1); }

PidFile::PidFile(std::string path) : path_(std::move(path)) {
  std::ifstream in(path_);
  long old = 0;
  if (in >> old && old > 0 && ::kill(static_cast<pid_t>(old), 0) == 0) {
    const std::string p = path_;
    path_.clear();
    throw std::runtime_error("pid file " + p + " names the running process " + std::to_string(old) +
                             " (is anyrtpproxy already running?)");
  }
  const std::string tmp = path_ + ".tmp";
  {
    std::ofstream out(tmp, std::ios::trunc);
    out << ::getpid() << "\n";
    if (!out.flush()) {
      const std::string p = path_;
      path_.clear();
      throw std::runtime_error("cannot write pid file " + p);
    }
  }
  if (::rename(tmp.c_str(), path_.c_str()) != 0) {
    const std::string p = path_;
    path_.clear();
    sys_fail("cannot write pid file " + p);
  }
}

PidFile::~PidFile() {
  if (!path_.empty()) ::unlink(path_.c_str());
}

void chroot_and_drop(const std::string& dir, const std::string& user) {
  const passwd* pw = nullptr;
  if (!user.empty()) {
    errno = 0;
    pw = ::getpwnam(user.c_str());
    if (!pw) throw std::runtime_error("unknown user '" + user + "'");
  }
  const uid_t uid = pw ? pw->pw_uid : 0;
  const gid_t gid = pw ? pw->pw_gid : 0;
  if (!dir.empty()) {
    if (::chroot(dir.c_str()) != 0) sys_fail("cannot chroot to " + dir);
    if (::chdir("/") != 0) sys_fail("chdir / in " + dir);
  }
  if (!pw) return;
  if (::setgroups(0, nullptr) != 0) sys_fail("cannot drop supplementary groups");
  if (::setgid(gid) != 0) sys_fail("cannot setgid to " + std::to_string(gid));
  if (::setuid(uid) != 0) sys_fail("cannot setuid to " + user);
  if (uid != 0 && ::setuid(0) == 0) throw std::runtime_error("privileges could be regained after dropping to " + user);
}

}  // namespace anyrtpproxy
