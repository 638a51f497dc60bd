// relay: see relay.h.
#include "relay.h"

#include "log.h"

#include <boost/asio/ip/v6_only.hpp>

#include <netinet/in.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstring>

namespace anyrtpproxy {

namespace ip = boost::asio::ip;

class RelaySocket : public std::enable_shared_from_this<RelaySocket> {
public:
  RelaySocket(boost::asio::io_context& io, Family family, std::uint16_t port, RelayManager& manager)
      : socket_(io), family_(family), port_(port), manager_(manager) {}

  bool bind(const ip::address& addr) {
    boost::system::error_code ec;
    socket_.open(addr.is_v6() ? ip::udp::v6() : ip::udp::v4(), ec);
    if (ec) return false;
    if (addr.is_v6()) socket_.set_option(ip::v6_only(true), ec);
    socket_.bind(ip::udp::endpoint(addr, port_), ec);
    if (ec) return false;
    socket_.non_blocking(true, ec);
    if (!addr.is_v6()) {
      const int tos = 0xB8;  // DSCP EF, as rtpproxy's default -t
      ::setsockopt(socket_.native_handle(), IPPROTO_IP, IP_TOS, &tos, sizeof tos);
    }
    return !ec;
  }

  void arm() {
    socket_.async_wait(ip::udp::socket::wait_read, [self = shared_from_this()](boost::system::error_code ec) {
      if (ec || !self->socket_.is_open()) return;  // closed by RelayManager::close
      self->manager_.on_readable(*self);
      if (self->socket_.is_open()) self->arm();
    });
  }

  void close() {
    boost::system::error_code ec;
    socket_.close(ec);
  }

  int fd() { return socket_.native_handle(); }
  Family family() const { return family_; }
  std::uint16_t port() const { return port_; }

private:
  ip::udp::socket socket_;
  Family family_;
  std::uint16_t port_;
  RelayManager& manager_;
};

// Buffers for one recvmmsg/sendmmsg round, shared by every socket: one thread runs
// the handlers, so one set suffices and no session carries buffers of its own.
struct RelayManager::Batch {
  static constexpr unsigned size = 64;
  static constexpr std::size_t packet = 4096;  // larger datagrams arrive truncated and are dropped
  static constexpr unsigned rounds = 4;        // per readiness event, then other sockets get a turn
  std::array<mmsghdr, size> rx{}, tx{};
  std::array<iovec, size> rx_iov{}, tx_iov{};
  std::array<sockaddr_storage, size> rx_addr{}, tx_addr{};
  std::array<Route, size> routes{};
  std::array<std::array<unsigned char, packet>, size> data{};
};

RelayManager::RelayManager(boost::asio::io_context& io, std::array<std::optional<ip::address>, 2> local,
                           Logger& log)
    : io_(io), local_(local), log_(log), batch_(std::make_unique<Batch>()) {}

RelayManager::~RelayManager() {
  for (auto& family : sockets_)
    for (auto& entry : family) entry.second->close();
}

void RelayManager::attach(SessionTable& table, Learned on_learned) {
  table_ = &table;
  on_learned_ = std::move(on_learned);
}

std::shared_ptr<RelaySocket> RelayManager::make(Family family, std::uint16_t port) {
  auto s = std::make_shared<RelaySocket>(io_, family, port, *this);
  if (!s->bind(*local_[static_cast<std::size_t>(family)])) return nullptr;
  return s;
}

bool RelayManager::open(Family family, std::uint16_t rtp_port) {
  if (!local_[static_cast<std::size_t>(family)]) return false;
  auto rtp = make(family, rtp_port);
  auto rtcp = rtp ? make(family, static_cast<std::uint16_t>(rtp_port + 1)) : nullptr;
  if (!rtp || !rtcp) {
    ++bind_failures_;
    if (rtp) rtp->close();
    log_.warning("cannot bind ports " + std::to_string(rtp_port) + "/" + std::to_string(rtp_port + 1) + ": " +
                 std::strerror(errno) + "; trying another pair");
    return false;
  }
  auto& map = sockets_[static_cast<std::size_t>(family)];
  rtp->arm();
  rtcp->arm();
  map[rtp_port] = std::move(rtp);
  map[static_cast<std::uint16_t>(rtp_port + 1)] = std::move(rtcp);
  return true;
}

void RelayManager::close(Family family, std::uint16_t rtp_port) {
  auto& map = sockets_[static_cast<std::size_t>(family)];
  for (std::uint16_t p : {rtp_port, static_cast<std::uint16_t>(rtp_port + 1)}) {
    auto it = map.find(p);
    if (it == map.end()) continue;
    it->second->close();  // its pending wait completes with operation_aborted and drops the last reference
    map.erase(it);
  }
}

void RelayManager::flush(int fd, unsigned count) {
  Batch& b = *batch_;
  unsigned sent = 0;
  while (sent < count) {
    const int n = ::sendmmsg(fd, &b.tx[sent], count - sent, MSG_DONTWAIT);
    if (n > 0) {
      sent += static_cast<unsigned>(n);
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    table_->send_failed(b.routes[sent]);  // this datagram was refused (full buffer, unreachable): skip it
    ++sent;
  }
}

void RelayManager::on_readable(RelaySocket& socket) {
  if (!table_) return;
  Batch& b = *batch_;
  const auto family = socket.family();
  auto& map = sockets_[static_cast<std::size_t>(family)];
  for (unsigned round = 0; round < Batch::rounds; ++round) {
    for (unsigned i = 0; i < Batch::size; ++i) {
      b.rx_iov[i] = iovec{b.data[i].data(), Batch::packet};
      b.rx[i].msg_hdr = msghdr{};
      b.rx[i].msg_hdr.msg_name = &b.rx_addr[i];
      b.rx[i].msg_hdr.msg_namelen = sizeof(sockaddr_storage);
      b.rx[i].msg_hdr.msg_iov = &b.rx_iov[i];
      b.rx[i].msg_hdr.msg_iovlen = 1;
    }
    const int n = ::recvmmsg(socket.fd(), b.rx.data(), Batch::size, MSG_DONTWAIT, nullptr);
    if (n <= 0) return;
    const auto now = Clock::now();
    int out_fd = -1;
    std::uint16_t out_port = 0;
    unsigned queued = 0;
    for (int i = 0; i < n; ++i) {
      const auto& hdr = b.rx[i].msg_hdr;
      ip::udp::endpoint from;
      std::memcpy(from.data(), &b.rx_addr[i], std::min<std::size_t>(hdr.msg_namelen, from.capacity()));
      const bool truncated = (hdr.msg_flags & MSG_TRUNC) != 0;
      Route r = table_->route(family, socket.port(), from, b.data[i].data(), truncated ? 0 : b.rx[i].msg_len, now);
      if (r.learned && on_learned_) on_learned_(*r.session, r.in_side, socket.port() % 2 != 0);
      if (!r.forward) continue;
      if (truncated) {
        table_->send_failed(r);
        continue;
      }
      if (r.out_port != out_port) {  // one sendmmsg per outgoing socket
        if (queued) flush(out_fd, queued);
        queued = 0;
        out_port = r.out_port;
        auto it = map.find(out_port);
        out_fd = it == map.end() ? -1 : it->second->fd();
      }
      if (out_fd < 0) {
        table_->send_failed(r);
        continue;
      }
      b.routes[queued] = r;
      std::memcpy(&b.tx_addr[queued], r.dest.data(), r.dest.size());
      b.tx_iov[queued] = iovec{b.data[i].data(), b.rx[i].msg_len};
      b.tx[queued].msg_hdr = msghdr{};
      b.tx[queued].msg_hdr.msg_name = &b.tx_addr[queued];
      b.tx[queued].msg_hdr.msg_namelen = static_cast<socklen_t>(r.dest.size());
      b.tx[queued].msg_hdr.msg_iov = &b.tx_iov[queued];
      b.tx[queued].msg_hdr.msg_iovlen = 1;
      ++queued;
    }
    if (queued) flush(out_fd, queued);
    if (static_cast<unsigned>(n) < Batch::size) return;  // drained
  }
}

}  // namespace anyrtpproxy
