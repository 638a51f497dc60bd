// daemon: POSIX process plumbing only (detach, pid file, chroot and privilege
// drop). Knows nothing about RTP. Every failure throws std::runtime_error with
// a message naming what failed, so start-up errors reach the terminal.
#pragma once

#include "io/fd.h"

#include <boost/asio/io_context.hpp>

#include <cstdint>
#include <string>
#include <vector>

namespace anyrtpproxy {

// Double fork + setsid, stdio on /dev/null, umask 027. The original process
// waits until the daemon reports that it started, and exits with its status.
class Detacher {
public:
  // In the parent: waits for the child's report and exits; returns in the daemon.
  void detach(boost::asio::io_context& io);
  // In the daemon: tell the waiting parent that start-up succeeded (0) or failed.
  void report(int status);
  ~Detacher();

private:
  int fd_ = -1;
};

// Writes getpid() to `path` and removes the file at exit (also after a chroot).
// A file naming a running anyrtpproxy stops the start; a stale one is replaced.
class PidFile {
public:
  explicit PidFile(const std::string& path);

private:
  RemoveAtExit file_;
};

// chroot(dir) if dir is not empty, then drop to user (its primary group, no
// supplementary groups). Verifies that root cannot be regained. The files in
// `hand_over` (unix control sockets) are given to that user and group first.
// `keep`: capabilities (bit n = capability n) the user keeps, e.g. CAP_BPF
// for the kernel fast path's map on kernels that still ask for it.
void chroot_and_drop(const std::string& dir, const std::string& user, const std::vector<std::string>& hand_over,
                     std::uint64_t keep = 0);

// A daemon that runs as a user with capabilities (systemd's ambient ones, or
// what chroot_and_drop kept) lowers them to `keep` once it is set up: binding
// and attaching are done. Root without -u keeps what root has.
void keep_only_capabilities(std::uint64_t keep);

// The process `pid` is alive and is an anyrtpproxy (not a recycled pid).
bool running_anyrtpproxy(long pid);
constexpr std::uint64_t capability_bit(int cap) { return std::uint64_t{1} << cap; }

}  // namespace anyrtpproxy
