// relay: see relay.h.
#include "relay.h"

#include "log.h"

#include <netinet/in.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>

namespace anyrtpproxy {

namespace ip = boost::asio::ip;

// Buffers for one recvmmsg/sendmmsg round and one epoll_wait, shared by every
// socket: one thread runs the handlers, so one set suffices.
struct RelayManager::Batch {
  static constexpr unsigned size = 64;
  static constexpr std::size_t packet = 4096;  // larger datagrams arrive truncated and are dropped
  static constexpr unsigned rounds = 4;        // recvmmsg rounds per socket and event, then others get a turn
  static constexpr int events = 256;
  std::array<mmsghdr, size> rx{}, tx{};
  std::array<iovec, size> rx_iov{}, tx_iov{};
  std::array<sockaddr_storage, size> rx_addr{}, tx_addr{};
  std::array<Route, size> routes{};
  std::array<std::array<unsigned char, packet>, size> data{};
  std::array<epoll_event, events> ready{};
};

namespace {
std::uint64_t tag_of(Family f, std::uint16_t port) { return static_cast<std::uint64_t>(f) << 16 | port; }
}  // namespace

RelayManager::RelayManager(boost::asio::io_context& io, std::array<std::optional<ip::address>, 2> local,
                           Logger& log)
    : local_(local), log_(log), epoll_(::epoll_create1(EPOLL_CLOEXEC)), epoll_wait_(io),
      batch_(std::make_unique<Batch>()) {
  if (!epoll_) throw std::runtime_error(std::string("epoll_create1: ") + std::strerror(errno));
  for (auto& v : sockets_) v.resize(65536);
  epoll_wait_.assign(epoll_.get());
  arm();
}

RelayManager::~RelayManager() {
  boost::system::error_code ec;
  epoll_wait_.cancel(ec);
  epoll_wait_.release();  // epoll_ closes it
}

void RelayManager::attach(SessionTable& table, Learned on_learned) {
  table_ = &table;
  on_learned_ = std::move(on_learned);
}

Fd RelayManager::bind_one(Family family, std::uint16_t port) {
  const ip::address& addr = *local_[static_cast<std::size_t>(family)];
  const bool v6 = addr.is_v6();
  Fd fd(::socket(v6 ? AF_INET6 : AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (!fd) return fd;
  const ip::udp::endpoint at(addr, port);
  if (v6) {
    const int on = 1;
    ::setsockopt(fd.get(), IPPROTO_IPV6, IPV6_V6ONLY, &on, sizeof on);
  } else {
    const int tos = 0xB8;  // DSCP EF, as rtpproxy's default -t
    ::setsockopt(fd.get(), IPPROTO_IP, IP_TOS, &tos, sizeof tos);
  }
  if (::bind(fd.get(), at.data(), static_cast<socklen_t>(at.size())) != 0) return Fd();
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.u64 = tag_of(family, port);
  if (::epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, fd.get(), &ev) != 0) return Fd();
  return fd;
}

bool RelayManager::open(Family family, std::uint16_t rtp_port) {
  if (!local_[static_cast<std::size_t>(family)] || rtp_port == 65535) return false;
  const auto rtcp_port = static_cast<std::uint16_t>(rtp_port + 1);
  Fd rtp = bind_one(family, rtp_port);
  Fd rtcp = rtp ? bind_one(family, rtcp_port) : Fd();
  if (!rtp || !rtcp) {
    ++bind_failures_;
    log_.warning("cannot bind ports " + std::to_string(rtp_port) + "/" + std::to_string(rtcp_port) + ": " +
                 std::strerror(errno) + "; trying another pair");
    return false;
  }
  auto& v = sockets_[static_cast<std::size_t>(family)];
  v[rtp_port] = std::move(rtp);
  v[rtcp_port] = std::move(rtcp);
  open_sockets_ += 2;
  return true;
}

void RelayManager::close(Family family, std::uint16_t rtp_port) {
  auto& v = sockets_[static_cast<std::size_t>(family)];
  for (std::uint32_t p = rtp_port; p <= rtp_port + 1u && p < v.size(); ++p) {
    if (!v[p]) continue;
    v[p].reset();  // closing removes it from the epoll set
    --open_sockets_;
  }
}

void RelayManager::arm() {
  epoll_wait_.async_wait(boost::asio::posix::stream_descriptor::wait_read, [this](boost::system::error_code ec) {
    if (ec) return;  // cancelled: the manager is going away
    on_ready();
    arm();
  });
}

void RelayManager::on_ready() {
  Batch& b = *batch_;
  const int n = ::epoll_wait(epoll_.get(), b.ready.data(), Batch::events, 0);
  for (int i = 0; i < n; ++i) {
    const auto family = static_cast<Family>(b.ready[i].data.u64 >> 16);
    const auto port = static_cast<std::uint16_t>(b.ready[i].data.u64 & 0xffff);
    const Fd& fd = sockets_[static_cast<std::size_t>(family)][port];
    if (fd) drain(family, port, fd.get());
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

void RelayManager::drain(Family family, std::uint16_t port, int in_fd) {
  if (!table_) return;
  Batch& b = *batch_;
  const auto& fds = sockets_[static_cast<std::size_t>(family)];
  for (unsigned round = 0; round < Batch::rounds; ++round) {
    for (unsigned i = 0; i < Batch::size; ++i) {
      b.rx_iov[i] = iovec{b.data[i].data(), Batch::packet};
      b.rx[i].msg_hdr = msghdr{};
      b.rx[i].msg_hdr.msg_name = &b.rx_addr[i];
      b.rx[i].msg_hdr.msg_namelen = sizeof(sockaddr_storage);
      b.rx[i].msg_hdr.msg_iov = &b.rx_iov[i];
      b.rx[i].msg_hdr.msg_iovlen = 1;
    }
    const int n = ::recvmmsg(in_fd, b.rx.data(), Batch::size, MSG_DONTWAIT, nullptr);
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
      const Route r = table_->route(family, port, from, b.data[i].data(), truncated ? 0 : b.rx[i].msg_len, now);
      if (r.learned && on_learned_) on_learned_(*r.session, r.in_side, port % 2 != 0);
      if (!r.forward) continue;
      if (r.out_port != out_port) {  // one sendmmsg per outgoing socket
        if (queued) flush(out_fd, queued);
        queued = 0;
        out_port = r.out_port;
        out_fd = fds[out_port] ? fds[out_port].get() : -1;
      }
      if (truncated || out_fd < 0) {
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
