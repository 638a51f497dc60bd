// main: options -> logger -> io_context -> Proxy (binds) -> detach -> pid file
// -> chroot/drop -> run. Start-up errors go to stderr with a non-zero status.
#include "app/options.h"
#include "app/proxy.h"
#include "core/version.h"
#include "io/daemon.h"
#include "io/host.h"
#include "io/log.h"

#include <malloc.h>

#include <cstdio>
#include <optional>


int main(int argc, char* argv[]) {
  using namespace anyrtpproxy;
  // Blocks of 256 KiB and more are mapped on their own, and stay so (glibc
  // would raise this threshold as such blocks are freed): a slow sync
  // reader's backlog (write_queue.h) goes back to the system when it is dropped.
  ::mallopt(M_MMAP_THRESHOLD, 256 * 1024);
  Options options;
  try {
    SystemHost host;
    options = parse_options(argc, argv, host);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "anyrtpproxy: %s (see --help)\n", e.what());
    return 2;
  }
  if (options.help) {
    std::fputs(options.help_text.c_str(), stdout);
    return 0;
  }
  if (options.version) {
    std::puts("anyrtpproxy " ANYRTPPROXY_VERSION);
    return 0;
  }
  Logger log(options.log_level);
  boost::asio::io_context io;
  Detacher detacher;
  try {
    Proxy proxy(io, options, log);  // binds every control socket; throws to the terminal
    if (options.daemonize) {
      detacher.detach(io);  // stderr stays open until report()
      log.to_syslog();      // connects to /dev/log now, before any chroot
    }
    std::optional<PidFile> pid;
    if (!options.pid_file.empty()) pid.emplace(options.pid_file);  // still root
    if (options.chroot || !options.user.empty()) {
      std::vector<std::string> sockets;  // the SIP proxy talks to them as the daemon's user or group
      for (const auto& c : options.control)
        if (c.kind == ControlSpec::Kind::unix_stream || c.kind == ControlSpec::Kind::unix_persistent)
          sockets.push_back(c.path);
      // the routing daemon's helper reads it: as the daemon's group, unless --health-group gave it one
      if (!options.health_socket.empty() && options.health_group.empty()) sockets.push_back(options.health_socket);
      chroot_and_drop(options.chroot ? options.chroot_dir : "", options.user, sockets, proxy.capabilities_kept());
      if (options.chroot) log.chrooted();
    }
    keep_only_capabilities(proxy.capabilities_kept());  // sockets bound, the fast path attached
    proxy.start();
    detacher.report(0);
    io.run();
    log.notice("stopped");
  } catch (const std::exception& e) {
    std::fprintf(stderr, "anyrtpproxy: %s\n", e.what());
    return 1;
  }
  return 0;
}
