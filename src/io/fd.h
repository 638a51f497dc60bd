// fd: RAII owners of file descriptors and of files to remove at exit.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>

namespace anyrtpproxy {

// A file descriptor owned by exactly one object; closed when that object goes.
class Fd {
public:
  Fd() = default;
  explicit Fd(int fd) : fd_(fd) {}
  Fd(Fd&& o) noexcept : fd_(o.release()) {}
  Fd& operator=(Fd&& o) noexcept;
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  ~Fd() { reset(); }
  int get() const { return fd_; }
  int release() {
    const int f = fd_;
    fd_ = -1;
    return f;
  }
  void reset();
  explicit operator bool() const { return fd_ >= 0; }

private:
  int fd_ = -1;
};

// The open-file limit (RLIMIT_NOFILE's soft limit) now; 0 when it cannot be read.
std::uint64_t open_file_limit();
// Raises the soft open-file limit towards `needed`, as far as the hard limit
// allows; returns the limit now (0 when it cannot be read).
std::uint64_t raise_open_file_limit(std::uint64_t needed);

// The process's open descriptors, counted in /proc/self/fd, which is opened
// at construction (before any chroot).
class OpenFiles {
public:
  OpenFiles();
  // None without /proc at construction; `limit` when no descriptor is left to count with.
  std::optional<std::size_t> count(std::uint64_t limit) const;

private:
  Fd dir_;
};

// A file (pid file, unix socket) that is removed when this object goes. It
// holds its directory open, so removal still works after a chroot.
class RemoveAtExit {
public:
  RemoveAtExit() = default;
  explicit RemoveAtExit(const std::string& path);
  RemoveAtExit(RemoveAtExit&&) = default;
  RemoveAtExit& operator=(RemoveAtExit&&) = default;
  ~RemoveAtExit() { remove(); }
  void remove();
  int dir() const { return dir_.get(); }  // -1: none (removed, or no directory)
  const std::string& name() const { return name_; }

private:
  Fd dir_;
  std::string name_;
};

// A file that is there while a condition holds (the health file an anycast
// routing daemon watches): written whole (a temporary file renamed over it)
// or removed, relative to its directory opened at construction, so it
// still works after a chroot and a drop of privileges. Removed at exit.
class StatusFile {
public:
  StatusFile() = default;
  explicit StatusFile(const std::string& path) : file_(path) {}
  // Present with `text`, or gone; false (and errno) when that failed.
  bool set(bool present, const std::string& text);

private:
  RemoveAtExit file_;
};

}  // namespace anyrtpproxy
