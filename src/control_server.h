// control_server: the control sockets Kamailio/OpenSIPS talk to.
//
// UdpControl: one datagram is one command, the reply goes back from the very
// address the request reached (IP_PKTINFO when bound to a wildcard), so the
// clients' connected UDP sockets accept it. UnixControl: rtpproxy's one-shot
// stream mode (one read, one reply, close). Both hand the text to the
// Controller and catch at the request boundary: a bad command never stops
// the loop.
#pragma once

#include "controller.h"
#include "fd.h"

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/udp.hpp>
#include <boost/asio/local/stream_protocol.hpp>

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
  boost::asio::ip::udp::endpoint local() const { return socket_.local_endpoint(); }

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

class UnixControl {
public:
  UnixControl(boost::asio::io_context& io, const std::string& path, Controller& controller, ApplyEffects apply,
              Logger& log);
  ~UnixControl();
  void start();
  void close();

  static constexpr std::size_t max_connections = 100;

private:
  class Connection;
  void accept();

  boost::asio::io_context& io_;
  boost::asio::local::stream_protocol::acceptor acceptor_;
  std::string path_;
  RemoveAtExit file_;
  Controller& controller_;
  ApplyEffects apply_;
  Logger& log_;
  std::shared_ptr<std::size_t> open_;  // connections in flight, shared with them
};

}  // namespace anyrtpproxy
