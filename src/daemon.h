// daemon: POSIX process plumbing only (detach, pid file, chroot and privilege
// drop). Knows nothing about RTP. Every failure throws std::runtime_error with
// a message naming what failed, so start-up errors reach the terminal.
#pragma once

#include <boost/asio/io_context.hpp>

#include <string>

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

class PidFile {
public:
  PidFile() = default;
  explicit PidFile(std::string path);  // refuses a file naming a live process; replaces a stale one
  ~PidFile();
  PidFile(const PidFile&) = delete;
  PidFile& operator=(const PidFile&) = delete;

private:
  std::string path_;
};

// chroot(dir) if dir is not empty, then drop to user (its primary group, no
// supplementary groups). Verifies that root cannot be regained.
void chroot_and_drop(const std::string& dir, const std::string& user);

}  // namespace anyrtpproxy
