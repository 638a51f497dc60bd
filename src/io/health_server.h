// health_server: --health, a liveness signal that dies with the process. A
// unix stream socket; every client that connects gets one line at once and
// then one every 100 ms: "healthy headroom_legs=N", "unhealthy CAUSE" or
// "draining" (core/serving.h). When
// the daemon dies, whatever killed it, the kernel closes the connections
// (EOF); when it hangs, the lines stop. A routing daemon's helper withdraws
// the anycast route on either.
//
// Bounded like every other port: at most max_clients at once (others are
// closed at once, counted and logged by the Acceptor); a client that has not
// read its lines for a second (a write still pending ten ticks on) is cut
// off; nothing a client sends is read beyond noticing its close.
#pragma once

#include "io/acceptor.h"

#include <boost/asio/io_context.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/steady_timer.hpp>

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace anyrtpproxy {

class Logger;

class HealthServer {
public:
  static constexpr std::size_t max_clients = 64;
  static constexpr std::chrono::milliseconds period{100};
  static constexpr unsigned max_missed = 10;  // ticks a client may leave a line unread

  // Binds now, mode 0660, in `group` when one is named (--health-group: the
  // routing daemon's users are members); throws std::runtime_error naming
  // the path or the group on failure (also when the path exists and is not
  // a socket).
  HealthServer(boost::asio::io_context& io, const std::string& path, const std::string& group, Logger& log);
  ~HealthServer();
  HealthServer(const HealthServer&) = delete;
  HealthServer& operator=(const HealthServer&) = delete;
  void start();
  void close();
  // The line every client gets from now on, without its newline; a line of
  // another state (its first word) goes out at once.
  void set(std::string line);
  std::uint64_t refused() const { return acceptor_.refused(); }

private:
  class Client;
  void tick();
  void send_all();

  UnixAcceptor acceptor_;
  boost::asio::steady_timer timer_;
  std::string line_ = "unhealthy starting\n";
  std::vector<std::shared_ptr<Client>> clients_;
};

}  // namespace anyrtpproxy
