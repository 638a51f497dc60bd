// relay_sockets: see relay_sockets.h.
#include "io/relay_sockets.h"

#include <boost/asio/ip/udp.hpp>

#include <netinet/in.h>
#include <sys/epoll.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>
#include <string>

namespace anyrtpproxy {

namespace ip = boost::asio::ip;

namespace {
std::uint64_t tag_of(Slot slot, std::uint16_t port) { return static_cast<std::uint64_t>(slot) << 16 | port; }
}  // namespace

RelaySockets::RelaySockets(std::array<std::optional<ip::address>, slot_count> local, int tos)
    : local_(local), tos_(tos), epoll_(::epoll_create1(EPOLL_CLOEXEC)) {
  if (!epoll_) throw std::runtime_error(std::string("epoll_create1: ") + std::strerror(errno));
  for (std::size_t slot = 0; slot < slot_count; ++slot)
    if (local_[slot]) sockets_[slot].resize(65536);
}

namespace {
// A UDP socket bound to addr:port (IPv6 only for an IPv6 address); none, and
// errno, when it cannot be had.
Fd bound_socket(const ip::address& addr, std::uint16_t port, int flags) {
  const bool v6 = addr.is_v6();
  Fd fd(::socket(v6 ? AF_INET6 : AF_INET, SOCK_DGRAM | SOCK_CLOEXEC | flags, 0));
  if (!fd) return fd;
  const int on = 1;
  if (v6) ::setsockopt(fd.get(), IPPROTO_IPV6, IPV6_V6ONLY, &on, sizeof on);
  const ip::udp::endpoint at(addr, port);
  if (::bind(fd.get(), at.data(), static_cast<socklen_t>(at.size())) != 0) return Fd();
  return fd;
}
}  // namespace

Fd RelaySockets::bind_one(Slot slot, std::uint16_t port, int& error) {
  const ip::address& addr = *local_[slot];
  Fd fd = bound_socket(addr, port, SOCK_NONBLOCK);
  error = errno;
  if (!fd) return fd;
  // A new descriptor is the lowest free one: at or above limit - reserve,
  // media would take what control, sync and operators need at the limit.
  if (const std::uint64_t limit = open_file_limit();
      limit != 0 && static_cast<std::uint64_t>(fd.get()) + descriptor_reserve >= limit) {
    error = EMFILE;
    return Fd();
  }
  if (addr.is_v6())
    ::setsockopt(fd.get(), IPPROTO_IPV6, IPV6_TCLASS, &tos_, sizeof tos_);
  else
    ::setsockopt(fd.get(), IPPROTO_IP, IP_TOS, &tos_, sizeof tos_);
  epoll_event ev{};
  ev.events = EPOLLIN;  // level-triggered: a socket left with datagrams is reported again
  ev.data.u64 = tag_of(slot, port);
  if (::epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, fd.get(), &ev) != 0) {
    error = errno;
    return Fd();
  }
  return fd;
}

// Nothing is logged here: the table reports a failed command once, with its cause.
BindResult RelaySockets::open(Slot slot, std::uint16_t rtp_port) {
  if (slot >= slot_count || !local_[slot] || rtp_port == 65535) return BindResult::taken;
  const auto rtcp_port = static_cast<std::uint16_t>(rtp_port + 1);
  int error = 0;
  Fd rtp = bind_one(slot, rtp_port, error);
  Fd rtcp = rtp ? bind_one(slot, rtcp_port, error) : Fd();
  if (!rtp || !rtcp) {
    ++bind_failures_;
    const bool exhausted = error == EMFILE || error == ENFILE || error == ENOBUFS || error == ENOMEM;
    return exhausted ? BindResult::no_descriptors : BindResult::taken;
  }
  auto& v = sockets_[slot];
  v[rtp_port] = std::move(rtp);
  v[rtcp_port] = std::move(rtcp);
  open_sockets_ += 2;
  return BindResult::bound;
}

void RelaySockets::close(Slot slot, std::uint16_t rtp_port) {
  if (slot >= slot_count) return;
  auto& v = sockets_[slot];
  for (std::uint32_t p = rtp_port; p <= rtp_port + 1u && p < v.size(); ++p) {
    if (!v[p]) continue;
    v[p].reset();  // closing removes it from the epoll set
    --open_sockets_;
  }
}

// The catch-all program runs before the kernel's own socket lookup: a port
// parked while another socket (another program's, our control socket) holds
// it would take that socket's packets. So a pair is parked only if it could
// be bound now: a probe socket per port, closed at once (media never takes
// the last descriptor_reserve descriptors, so there is one for it). What
// cannot be is opened instead, which fails and is reported as a taken port.
bool RelaySockets::park(Slot slot, std::uint16_t rtp_port) {
  if (!catch_all_ || slot >= slot_count || !local_[slot] || rtp_port == 65535) return false;
  for (std::uint32_t p = rtp_port; p <= rtp_port + 1u; ++p)
    if (!bound_socket(*local_[slot], static_cast<std::uint16_t>(p), 0)) return false;
  return catch_all_->park(*local_[slot], rtp_port);
}

void RelaySockets::unpark(Slot slot, std::uint16_t rtp_port) {
  if (catch_all_ && slot < slot_count && local_[slot]) catch_all_->unpark(*local_[slot], rtp_port);
}

void RelaySockets::use_catch_all(std::unique_ptr<CatchAll> catch_all) {
  catch_all_ = std::move(catch_all);
  for (const Family f : {Family::v4, Family::v6}) {
    const int fd = catch_all_->socket(f);
    if (fd < 0) continue;
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.u64 = tag_of(catch_all_slot, static_cast<std::uint16_t>(f));
    if (::epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, fd, &ev) != 0)
      throw std::runtime_error(std::string("epoll_ctl: ") + std::strerror(errno));
  }
}

std::optional<Slot> RelaySockets::slot_of(const ip::address& dest) const {
  std::optional<Slot> wildcard;
  for (Slot slot = 0; slot < slot_count; ++slot) {
    if (!local_[slot] || local_[slot]->is_v6() != dest.is_v6()) continue;
    if (*local_[slot] == dest) return slot;
    if (local_[slot]->is_unspecified() && !wildcard) wildcard = slot;
  }
  return wildcard;
}

std::size_t RelaySockets::ready(std::array<Ready, max_ready>& out) const {
  std::array<epoll_event, max_ready> events;
  const int n = ::epoll_wait(epoll_.get(), events.data(), static_cast<int>(max_ready), 0);
  std::size_t count = 0;
  for (int i = 0; i < n; ++i) {
    const auto slot = static_cast<Slot>(events[i].data.u64 >> 16);
    const auto port = static_cast<std::uint16_t>(events[i].data.u64 & 0xffff);
    const int fd = slot == catch_all_slot ? catch_all_->socket(static_cast<Family>(port)) : this->fd(slot, port);
    if (fd >= 0) out[count++] = Ready{slot, port, fd};
  }
  return count;
}

}  // namespace anyrtpproxy
