// relay: the UDP sockets of every session leg and the packet path.
//
// RelayManager is the SessionTable's PortBinder: it binds an RTP socket and
// its RTCP twin on the family's --interface address. The sockets are not Asio
// objects: they sit in one epoll set of our own, and Asio waits on that epoll
// descriptor. One readiness event then yields up to 256 ready sockets with one
// epoll_wait; each is drained with recvmmsg, every packet is routed by the
// session table, and the batch leaves the other leg's socket with one
// sendmmsg. A socket costs the daemon no heap memory beyond its table slot,
// and the packet path allocates nothing: all buffers belong to the manager,
// and one thread runs every handler.
#pragma once

#include "fd.h"
#include "session_table.h"

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/address.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>

#include <array>
#include <functional>
#include <memory>
#include <optional>
#include <vector>

namespace anyrtpproxy {

class Logger;

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
  std::size_t sockets() const { return open_sockets_; }
  std::uint64_t bind_failures() const { return bind_failures_; }

private:
  struct Batch;
  Fd bind_one(Family family, std::uint16_t port);
  void arm();
  void on_ready();
  void drain(Family family, std::uint16_t port, int fd);
  void flush(int fd, unsigned count);

  std::array<std::optional<boost::asio::ip::address>, 2> local_;
  Logger& log_;
  SessionTable* table_ = nullptr;
  Learned on_learned_;
  Fd epoll_;
  boost::asio::posix::stream_descriptor epoll_wait_;  // Asio's view of epoll_ (does not own it)
  std::array<std::vector<Fd>, 2> sockets_;  // by family, indexed by local port
  std::unique_ptr<Batch> batch_;
  std::size_t open_sockets_ = 0;
  std::uint64_t bind_failures_ = 0;
};

}  // namespace anyrtpproxy
