// metrics_server: --metrics, the Prometheus scrape endpoint. HTTP/1.1 over
// TCP on the daemon's io_context (Boost.Beast): GET or HEAD /metrics answers
// the text exposition format that a callback renders at that moment (stats.h);
// any other path is 404, any other method 405. One request per connection
// (the reply says Connection: close). Hostile clients are bounded: only
// --metrics-allow addresses are served (others are closed at once, counted,
// logged once a minute per address), at most max_connections at a time, a
// request's header at most max_header bytes and no body, and a client that
// does not finish its request within request_timeout is closed.
#pragma once

#include "core/addresses.h"
#include "core/event.h"
#include "io/acceptor.h"

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace anyrtpproxy {

class Logger;

class MetricsServer {
public:
  using Render = std::function<std::string()>;
  // Binds now; throws std::runtime_error naming the address on failure.
  MetricsServer(boost::asio::io_context& io, const boost::asio::ip::tcp::endpoint& at, std::vector<Network> allow,
                Render render, Logger& log);
  ~MetricsServer();
  MetricsServer(const MetricsServer&) = delete;
  MetricsServer& operator=(const MetricsServer&) = delete;
  void start();
  void close();
  void allow(std::vector<Network> networks) { allow_ = std::move(networks); }  // SIGHUP
  std::uint64_t refused() const { return acceptor_.refused(); }
  std::uint64_t requests() const { return requests_; }

  static constexpr std::size_t max_connections = 16;
  static constexpr std::size_t max_header = 8192;
  static constexpr std::chrono::seconds request_timeout{5};

private:
  class Connection;
  bool allowed(const boost::asio::ip::address& a) const;

  std::vector<Network> allow_;
  Render render_;
  Logger& log_;
  TcpAcceptor acceptor_;
  std::uint64_t requests_ = 0;
};

}  // namespace anyrtpproxy
