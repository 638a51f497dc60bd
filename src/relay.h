// relay: the UDP sockets of every session leg and the packet path.
//
// RelayManager is the SessionTable's PortBinder: it binds an RTP socket and
// its RTCP twin on the family's --interface address. When a socket becomes
// readable it drains it with recvmmsg, asks the table where each packet goes
// and sends the batch with one sendmmsg from the other leg's socket. The packet
// path allocates nothing: all buffers belong to the manager, and one thread
// runs every handler.
#pragma once

#include "session_table.h"

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/udp.hpp>

#include <array>
#include <functional>
#include <memory>
#include <optional>
#include <unordered_map>

namespace anyrtpproxy {

class Logger;
class RelaySocket;

class RelayManager : public PortBinder {
public:
  using Learned = std::function<void(const Session&, int side, bool rtcp)>;
  RelayManager(boost::asio::io_context& io, std::array<std::optional<boost::asio::ip::address>, 2> local,
               Logger& log);
  ~RelayManager() override;
  RelayManager(const RelayManager&) = delete;
  RelayManager& operator=(const RelayManager&) = delete;

  void attach(SessionTable& table, Learned on_learned);
  bool open(Family family, std::uint16_t rtp_port) override;
  void close(Family family, std::uint16_t rtp_port) override;
  std::size_t sockets() const { return sockets_[0].size() + sockets_[1].size(); }
  std::uint64_t bind_failures() const { return bind_failures_; }

  void on_readable(RelaySocket& socket);  // called by RelaySocket

private:
  struct Batch;
  std::shared_ptr<RelaySocket> make(Family family, std::uint16_t port);
  void flush(int fd, unsigned count);

  boost::asio::io_context& io_;
  std::array<std::optional<boost::asio::ip::address>, 2> local_;
  Logger& log_;
  SessionTable* table_ = nullptr;
  Learned on_learned_;
  std::array<std::unordered_map<std::uint16_t, std::shared_ptr<RelaySocket>>, 2> sockets_;
  std::unique_ptr<Batch> batch_;
  std::uint64_t bind_failures_ = 0;
};

}  // namespace anyrtpproxy
