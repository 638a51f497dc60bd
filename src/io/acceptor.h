// acceptor: the accept loop every stream listener shares (control over TCP
// and unix sockets, the metrics endpoint, the sync port).
//
// It binds and listens at construction (a std::runtime_error names the
// listener on failure), then accepts until closed and hands each connection
// to its owner only if it passes the listener's rules:
//   - `admit`: the owner's rule for a source address (an allow list), which
//     says why not, or nothing;
//   - at most `max_total` connections open at once, and at most
//     `max_per_source` from one address. A connection counts while its owner
//     holds the Ticket it came with.
// A refused connection is closed before a byte is written, counted
// (refused()) and logged as "NAME: refused a connection from ADDRESS: WHY",
// once a minute per address. Owners with rules of their own (the sync port's
// roles, a failed TLS handshake) refuse through refuse() so that every refusal
// is counted and logged alike. A failed accept (no descriptor left) is logged
// and tried again after 100 ms: the connection waits in the kernel's queue,
// and the loop does not spin. A unix socket's path replaces a stale socket
// of an earlier run, never a file of another kind; the socket is made mode
// 0660 (the daemon's user and group may connect, nobody else) and removed
// when the acceptor closes or goes.
#pragma once

#include "core/event.h"
#include "io/fd.h"

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ip/v6_only.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/steady_timer.hpp>

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>

namespace anyrtpproxy {

class Logger;

struct AcceptRules {
  std::string name;                   // log lines start with it: "control tcp:127.0.0.1:22222", "metrics", "sync"
  std::string listener;               // "cannot listen on LISTENER: ..." ("sync port [::]:2342")
  std::size_t max_total = 0;          // 0: the owner bounds its connections itself
  std::size_t max_per_source = 0;     // 0: no bound per address
  bool dual_stack = false;            // a wildcard IPv6 address takes IPv4 too; else IPv6 only
  int backlog = 64;
  // Why a source may not connect, or nothing; none: every source may.
  std::function<std::optional<std::string>(const boost::asio::ip::address&)> admit;
};

template <class Protocol>
class Acceptor {
public:
  using Socket = typename Protocol::socket;
  using Endpoint = typename Protocol::endpoint;
  using Ticket = std::shared_ptr<void>;  // the connection's place in the bounds, freed with it
  struct Accepted {
    Socket socket;
    std::optional<boost::asio::ip::address> source;  // TCP: the client's address (IPv4 unmapped)
    Ticket ticket;
  };
  using Serve = std::function<void(Accepted)>;

  Acceptor(boost::asio::io_context& io, const Endpoint& at, AcceptRules rules, Logger& log);
  ~Acceptor();
  Acceptor(const Acceptor&) = delete;
  Acceptor& operator=(const Acceptor&) = delete;

  void start(Serve serve);
  void close();
  bool is_open() const { return acceptor_.is_open(); }
  Endpoint local_endpoint() const;
  // Counts and logs a refusal of a connection from `source` (none: a unix socket's client).
  void refuse(const std::optional<boost::asio::ip::address>& source, const std::string& why);
  std::uint64_t refused() const { return refused_; }

private:
  struct Occupancy {
    std::size_t total = 0;
    std::map<boost::asio::ip::address, std::size_t> by_source;
  };
  void accept();
  std::optional<std::string> check(const std::optional<boost::asio::ip::address>& source) const;
  Ticket take(const std::optional<boost::asio::ip::address>& source);

  typename Protocol::acceptor acceptor_;
  boost::asio::steady_timer retry_;
  AcceptRules rules_;
  Logger& log_;
  Serve serve_;
  std::shared_ptr<Occupancy> open_;  // shared with the tickets, which may outlive the acceptor
  RemoveAtExit file_;                // unix: the socket file
  LogLimiter refusals_{std::chrono::seconds(60), 1024};
  std::uint64_t refused_ = 0;
};

using TcpAcceptor = Acceptor<boost::asio::ip::tcp>;
using UnixAcceptor = Acceptor<boost::asio::local::stream_protocol>;

}  // namespace anyrtpproxy
