// daemon: see daemon.h.
#include "io/daemon.h"

#include <fcntl.h>
#include <grp.h>
#include <linux/capability.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
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

bool running_anyrtpproxy(long pid) {
  if (pid <= 0 || ::kill(static_cast<pid_t>(pid), 0) != 0) return false;
  std::ifstream comm("/proc/" + std::to_string(pid) + "/comm");
  std::string name;
  return !(comm >> name) || name == "anyrtpproxy";
}

PidFile::PidFile(const std::string& path) {
  long old = 0;
  if (std::ifstream in(path); in >> old && old != ::getpid() && running_anyrtpproxy(old))
    throw std::runtime_error("pid file " + path + " names the running anyrtpproxy " + std::to_string(old) +
                             "; stop it first");
  Fd fd(::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0644));
  if (!fd) sys_fail("cannot write pid file " + path);
  const std::string text = std::to_string(::getpid()) + "\n";
  if (::write(fd.get(), text.data(), text.size()) != static_cast<ssize_t>(text.size()))
    sys_fail("cannot write pid file " + path);
  file_ = RemoveAtExit(path);
}

namespace {
// The capability sets, by the raw system calls (no libcap for two calls).
bool get_caps(__user_cap_data_struct (&data)[2]) {
  __user_cap_header_struct header{_LINUX_CAPABILITY_VERSION_3, 0};
  return ::syscall(SYS_capget, &header, data) == 0;
}
void set_caps(std::uint64_t permitted) {
  __user_cap_header_struct header{_LINUX_CAPABILITY_VERSION_3, 0};
  __user_cap_data_struct data[2]{};
  data[0].permitted = data[0].effective = static_cast<std::uint32_t>(permitted);
  data[1].permitted = data[1].effective = static_cast<std::uint32_t>(permitted >> 32);
  if (::syscall(SYS_capset, &header, data) != 0) sys_fail("cannot set capabilities");
}
}  // namespace

void keep_only_capabilities(std::uint64_t keep) {
  if (::getuid() == 0 || ::geteuid() == 0) return;
  __user_cap_data_struct data[2]{};
  if (!get_caps(data)) return;
  const std::uint64_t have = data[0].permitted | (std::uint64_t{data[1].permitted} << 32);
  ::prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0);
  if ((have & ~keep) != 0) set_caps(have & keep);
}

void chroot_and_drop(const std::string& dir, const std::string& user, const std::vector<std::string>& hand_over,
                     std::uint64_t keep) {
  const passwd* pw = nullptr;
  if (!user.empty()) {
    errno = 0;
    pw = ::getpwnam(user.c_str());
    if (!pw) throw std::runtime_error("unknown user '" + user + "'");
  }
  const uid_t uid = pw ? pw->pw_uid : 0;
  const gid_t gid = pw ? pw->pw_gid : 0;
  if (pw)
    for (const auto& path : hand_over)
      if (::chown(path.c_str(), uid, gid) != 0) sys_fail("cannot give " + path + " to " + user);
  if (!dir.empty()) {
    if (::chroot(dir.c_str()) != 0) sys_fail("cannot chroot to " + dir);
    if (::chdir("/") != 0) sys_fail("chdir / in " + dir);
  }
  if (!pw) return;
  // Started as that user already (systemd's User=): nothing to drop.
  if (::geteuid() == uid && ::getuid() == uid && ::getegid() == gid && uid != 0) return;
  if (::setgroups(0, nullptr) != 0) sys_fail("cannot drop supplementary groups");
  if (::setgid(gid) != 0) sys_fail("cannot setgid to " + std::to_string(gid));
  if (keep && ::prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0) != 0) sys_fail("cannot keep capabilities");
  if (::setuid(uid) != 0) sys_fail("cannot setuid to " + user);
  if (keep) {
    ::prctl(PR_SET_KEEPCAPS, 0, 0, 0, 0);
    set_caps(keep);  // what was kept, and nothing else
  }
  if (uid != 0 && ::setuid(0) == 0) throw std::runtime_error("privileges could be regained after dropping to " + user);
}

}  // namespace anyrtpproxy
