// fd: see fd.h.
#include "fd.h"

#include <fcntl.h>
#include <unistd.h>

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

RemoveAtExit::RemoveAtExit(const std::string& path) {
  const auto slash = path.rfind('/');
  const std::string dir = slash == std::string::npos ? "." : slash == 0 ? "/" : path.substr(0, slash);
  name_ = slash == std::string::npos ? path : path.substr(slash + 1);
  dir_ = Fd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
}

void RemoveAtExit::remove() {
  if (dir_ && !name_.empty()) ::unlinkat(dir_.get(), name_.c_str(), 0);
  name_.clear();
  dir_.reset();
}

}  // namespace anyrtpproxy
