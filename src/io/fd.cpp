// fd: see fd.h.
#include "io/fd.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>

namespace anyrtpproxy {

Fd& Fd::operator=(Fd&& o) noexcept {
  if (this != &o) {
    reset();
    fd_ = o.release();
  }
  return *this;
}

void Fd::reset() {
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
}

std::uint64_t open_file_limit() {
  rlimit lim{};
  return ::getrlimit(RLIMIT_NOFILE, &lim) == 0 ? lim.rlim_cur : 0;
}

std::uint64_t raise_open_file_limit(std::uint64_t needed) {
  rlimit lim{};
  if (::getrlimit(RLIMIT_NOFILE, &lim) != 0) return 0;
  if (lim.rlim_cur < needed && lim.rlim_cur < lim.rlim_max) {
    lim.rlim_cur = std::min<rlim_t>(needed, lim.rlim_max);
    ::setrlimit(RLIMIT_NOFILE, &lim);
  }
  return open_file_limit();
}

OpenFiles::OpenFiles() : dir_(::open("/proc/self/fd", O_RDONLY | O_DIRECTORY | O_CLOEXEC)) {}

// Entries of the directory, one of them the descriptor that reads it.
std::optional<std::size_t> OpenFiles::count(std::uint64_t limit) const {
  if (!dir_) return std::nullopt;
  const int fd = ::openat(dir_.get(), ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0 && (errno == EMFILE || errno == ENFILE)) return static_cast<std::size_t>(limit);
  if (fd < 0) return std::nullopt;
  DIR* dir = ::fdopendir(fd);
  if (!dir) {
    ::close(fd);
    return std::nullopt;
  }
  std::size_t n = 0;
  while (const dirent* e = ::readdir(dir))
    if (e->d_name[0] != '.') ++n;
  ::closedir(dir);
  return n - 1;  // not the one that read it
}

RemoveAtExit::RemoveAtExit(const std::string& path) {
  const auto slash = path.rfind('/');
  const std::string dir = slash == std::string::npos ? "." : slash == 0 ? "/" : path.substr(0, slash);
  name_ = slash == std::string::npos ? path : path.substr(slash + 1);
  dir_ = Fd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
}

bool StatusFile::set(bool present, const std::string& text) {
  const int dir = file_.dir();
  const std::string& name = file_.name();
  if (dir < 0 || name.empty()) return false;
  if (!present) return ::unlinkat(dir, name.c_str(), 0) == 0 || errno == ENOENT;
  const std::string tmp = "." + name + ".new";
  Fd f(::openat(dir, tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0644));
  if (!f) return false;
  const bool written = ::write(f.get(), text.data(), text.size()) == static_cast<ssize_t>(text.size());
  f.reset();
  if (!written || ::renameat(dir, tmp.c_str(), dir, name.c_str()) != 0) {
    ::unlinkat(dir, tmp.c_str(), 0);
    return false;
  }
  return true;
}

void RemoveAtExit::remove() {
  if (dir_ && !name_.empty()) ::unlinkat(dir_.get(), name_.c_str(), 0);
  name_.clear();
  dir_.reset();
}

}  // namespace anyrtpproxy
