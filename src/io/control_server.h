// control_server: the control sockets Kamailio/OpenSIPS talk to.
//
// UdpControl: one datagram is one command, the reply goes back from the very
// address the request reached (IP_PKTINFO when bound to a wildcard), so the
// clients' connected UDP sockets accept it. StreamControl: the stream modes,
// rtpproxy's one-shot unix mode (one read, one reply, close; unix:) and the
// persistent modes OpenSIPS uses (one command per line; tcp:, tcp6:, cunix:). Both hand the text to the
// Controller and catch at the request boundary: a bad command never stops
// the loop.
#pragma once

#include "core/controller.h"
#include "core/event.h"
#include "io/acceptor.h"
#include "io/fd.h"

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ip/udp.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/steady_timer.hpp>

#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace anyrtpproxy {

class Logger;
using ApplyEffects = std::function<void(Effects&)>;

class UdpControl {
public:
  // Binds now; throws std::runtime_error naming the address on failure.
  UdpControl(boost::asio::io_context& io, const boost::asio::ip::udp::endpoint& at, Controller& controller,
             ApplyEffects apply, Logger& log);
  void start();
  void close();

private:
  void arm();
  void on_readable();

  boost::asio::ip::udp::socket socket_;
  bool wildcard_;
  Controller& controller_;
  ApplyEffects apply_;
  Logger& log_;
  std::vector<char> buffer_;
};

// Stream control, no cookies. Persistent: newline-terminated commands, many per
// connection, answered in order; lines over 8191 bytes get E5 and a close; a
// client that does not read its replies is cut off at 1 MiB queued. One-shot:
// the first read is the command (Kamailio sends no newline, no half-close), the
// reply is written and the connection closed; an idle one is cut after 5 s.
// At most max_connections at once, and over TCP at most max_per_source from
// one address, so that one client cannot lock the others out.
template <class Protocol>
class StreamControl {
public:
  enum class Mode { one_shot, persistent };
  StreamControl(boost::asio::io_context& io, const typename Protocol::endpoint& at, std::string name, Mode mode,
                Controller& controller, ApplyEffects apply, Logger& log);
  ~StreamControl();
  void start();
  void close();
  std::uint64_t refused() const { return acceptor_.refused(); }  // connections closed at once: too many open

  static constexpr std::size_t max_connections = 100;  // rtpproxy's RTPC_MAX_CONNECTIONS
  static constexpr std::size_t max_per_source = 32;    // an OpenSIPS holds one per worker process
  static constexpr std::size_t max_queued = 1024 * 1024;

private:
  class Connection;

  std::string name_;
  Mode mode_;
  Controller& controller_;
  ApplyEffects apply_;
  Logger& log_;
  Acceptor<Protocol> acceptor_;
};

using TcpControl = StreamControl<boost::asio::ip::tcp>;
using UnixControl = StreamControl<boost::asio::local::stream_protocol>;

}  // namespace anyrtpproxy
