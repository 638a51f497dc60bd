// packet_path: see packet_path.h.
#include "io/packet_path.h"

#include <netinet/in.h>
#include <sys/socket.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>

namespace anyrtpproxy {

namespace ip = boost::asio::ip;

// Buffers for one recvmmsg/sendmmsg round and one readiness poll, shared by
// every socket: one thread runs the handlers, so one set suffices.
struct PacketPath::Buffers {
  static constexpr std::size_t packet = 4096;  // larger datagrams arrive truncated and are dropped
  std::array<mmsghdr, batch> rx{}, tx{}, cp{};
  std::array<iovec, batch> rx_iov{}, tx_iov{}, cp_iov{};
  std::array<sockaddr_storage, batch> rx_addr{}, tx_addr{}, cp_addr{};
  std::array<std::array<char, CMSG_SPACE(sizeof(sockaddr_in6))>, batch> control{};  // the catch-all's destinations
  std::array<std::array<unsigned char, packet>, batch> data{};
  std::array<RelaySockets::Ready, RelaySockets::max_ready> ready{};
};

namespace {

// One outgoing datagram of a sendmmsg batch: `size` bytes at `data` to `to`.
void address(mmsghdr& m, iovec& iov, sockaddr_storage& name, const ip::udp::endpoint& to, unsigned char* data,
             std::size_t size) {
  std::memcpy(&name, to.data(), to.size());
  iov = iovec{data, size};
  m.msg_hdr = msghdr{};
  m.msg_hdr.msg_name = &name;
  m.msg_hdr.msg_namelen = static_cast<socklen_t>(to.size());
  m.msg_hdr.msg_iov = &iov;
  m.msg_hdr.msg_iovlen = 1;
}

}  // namespace

PacketPath::PacketPath(boost::asio::io_context& io, RelaySockets& sockets, PacketTable table, Recorder& recorder,
                       Learned on_learned, Adopted on_adopted)
    : sockets_(sockets), table_(table), recorder_(recorder), on_learned_(std::move(on_learned)),
      on_adopted_(std::move(on_adopted)), wait_(io),
      buffers_(std::make_unique<Buffers>()) {
  wait_.assign(sockets_.readiness_fd());
}

PacketPath::~PacketPath() {
  boost::system::error_code ec;
  wait_.cancel(ec);
  wait_.release();  // RelaySockets closes it
}

void PacketPath::start() { arm(); }

void PacketPath::arm() {
  wait_.async_wait(boost::asio::posix::stream_descriptor::wait_read, [this](boost::system::error_code ec) {
    if (ec) return;  // cancelled: the packet path is going away
    on_ready();
    arm();  // re-arms with EPOLL_CTL_MOD: what this wake left is reported again (see the header)
  });
}

void PacketPath::on_ready() {
  Buffers& b = *buffers_;
  const std::size_t n = sockets_.ready(b.ready);
  unsigned budget = max_packets_per_wake;
  for (std::size_t i = 0; i < n && budget > 0; ++i) budget -= drain(b.ready[i], budget);
}

void PacketPath::flush(const RelaySockets::Ready& in, int out_fd, unsigned count) {
  Buffers& b = *buffers_;
  unsigned sent = 0;
  while (sent < count) {
    const int n = ::sendmmsg(out_fd, &b.tx[sent], count - sent, MSG_DONTWAIT);
    if (n > 0) {
      sent += static_cast<unsigned>(n);
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    // this datagram was refused (full buffer, unreachable): skip it
    table_.send_failed(in.slot, in.port, b.tx_iov[sent].iov_len);
    ++sent;
  }
}

// A packet of a recorded leg goes to the recorder: a copy into its ring, no
// system call. The leg's first one opens the recording (once per session).
void PacketPath::record(const RelaySockets::Ready& in, const Route& r, const ip::udp::endpoint& from,
                        const unsigned char* data, std::size_t size) {
  if (!recorder_.enabled()) return;  // a peer records; this instance has no --record-dir
  Recorder::Id id = r.recording;
  if (id == 0) {
    const Session* s = table_.session_at(in.slot, in.port);
    if (!s || !(id = recorder_.open(s->record_name.empty() ? recording_base(s->call_id, s->from_tag) : s->record_name)))
      return;
    table_.set_recording(in.slot, in.port, id);
  }
  recorder_.packet(id, r.in_side, r.kind, from, ip::udp::endpoint(sockets_.address(in.slot), in.port), data, size);
}

// What one round (one recvmmsg) has queued to send.
struct PacketPath::Round {
  unsigned copies = 0;  // C: sent from the arriving socket with one sendmmsg after the round
  int out_fd = -1;
  Slot out_slot = 0;
  std::uint16_t out_port = 0;
  unsigned queued = 0;  // to out_fd
};

// Datagram i of the round, which arrived on `in`: routed, recorded, copied, queued.
void PacketPath::relay(const RelaySockets::Ready& in, unsigned i, Clock::time_point now, Round& round) {
  Buffers& b = *buffers_;
  const auto& hdr = b.rx[i].msg_hdr;
  ip::udp::endpoint from;
  std::memcpy(from.data(), &b.rx_addr[i], std::min<std::size_t>(hdr.msg_namelen, from.capacity()));
  const bool truncated = (hdr.msg_flags & MSG_TRUNC) != 0;
  const Route r = table_.route(in.slot, in.port, from, b.data[i].data(), truncated ? 0 : b.rx[i].msg_len, now);
  if (r.learned && on_learned_)
    if (const auto latch = table_.latch_at(in.slot, in.port)) on_learned_(*latch);
  if (r.record) record(in, r, from, b.data[i].data(), b.rx[i].msg_len);
  if (r.copy && !truncated) {
    address(b.cp[round.copies], b.cp_iov[round.copies], b.cp_addr[round.copies], r.copy_to, b.data[i].data(),
            b.rx[i].msg_len);
    ++round.copies;
  }
  if (!r.forward) return;
  if (r.out_port != round.out_port || r.out_slot != round.out_slot) {  // one sendmmsg per outgoing socket
    if (round.queued) flush(in, round.out_fd, round.queued);
    round.queued = 0;
    round.out_slot = r.out_slot;
    round.out_port = r.out_port;
    round.out_fd = out_fd(round.out_slot, round.out_port);
  }
  if (truncated || round.out_fd < 0) {
    table_.send_failed(in.slot, in.port, truncated ? 0 : b.rx[i].msg_len,
                       truncated ? DropReason::truncated : DropReason::send_failed);
    return;
  }
  address(b.tx[round.queued], b.tx_iov[round.queued], b.tx_addr[round.queued], r.dest, b.data[i].data(),
          b.rx[i].msg_len);
  ++round.queued;
}

// The socket to send from; a parked leg (catch_all.h) is adopted for it.
int PacketPath::out_fd(Slot slot, std::uint16_t port) {
  const int fd = sockets_.fd(slot, port);
  if (fd >= 0) return fd;
  adopt(slot, port);
  return sockets_.fd(slot, port);
}

void PacketPath::adopt(Slot slot, std::uint16_t port) {
  const auto before = table_.adoptions();
  const BindResult adopted = table_.adopt(slot, port);
  if (on_adopted_ && (adopted != BindResult::bound || table_.adoptions() != before))  // not for its later packets
    on_adopted_(slot, port, adopted);
}

void PacketPath::finish(const RelaySockets::Ready& in, Round& round) {
  Buffers& b = *buffers_;
  if (round.queued) flush(in, round.out_fd, round.queued);
  // Copies are best effort: what the socket refuses is not retried (the relayed packets were sent).
  for (unsigned sent = 0; sent < round.copies && in.fd >= 0;) {
    const int m = ::sendmmsg(in.fd, &b.cp[sent], round.copies - sent, MSG_DONTWAIT);
    if (m > 0)
      sent += static_cast<unsigned>(m);
    else if (!(m < 0 && errno == EINTR))
      sent += 1;
  }
  round = Round{};
}

// The receive headers of a recvmmsg of `want` datagrams (with `control`:
// room for each one's original destination).
void PacketPath::receive_into(unsigned want, bool control) {
  Buffers& b = *buffers_;
  for (unsigned i = 0; i < want; ++i) {
    b.rx_iov[i] = iovec{b.data[i].data(), Buffers::packet};
    b.rx[i].msg_hdr = msghdr{};
    b.rx[i].msg_hdr.msg_name = &b.rx_addr[i];
    b.rx[i].msg_hdr.msg_namelen = sizeof(sockaddr_storage);
    b.rx[i].msg_hdr.msg_iov = &b.rx_iov[i];
    b.rx[i].msg_hdr.msg_iovlen = 1;
    if (control) {
      b.rx[i].msg_hdr.msg_control = b.control[i].data();
      b.rx[i].msg_hdr.msg_controllen = b.control[i].size();
    }
  }
}

// Returns how many datagrams it took from the socket (at most budget).
unsigned PacketPath::drain(const RelaySockets::Ready& in, unsigned budget) {
  if (in.slot == RelaySockets::catch_all_slot) return drain_catch_all(in, budget);
  Buffers& b = *buffers_;
  unsigned taken = 0;
  for (unsigned round = 0; round < max_rounds_per_socket && taken < budget; ++round) {
    const unsigned want = std::min(batch, budget - taken);
    receive_into(want, false);
    const int n = ::recvmmsg(in.fd, b.rx.data(), want, MSG_DONTWAIT, nullptr);
    if (n <= 0) break;
    taken += static_cast<unsigned>(n);
    const auto now = Clock::now();
    Round r;
    for (int i = 0; i < n; ++i) relay(in, static_cast<unsigned>(i), now, r);
    finish(in, r);
    if (static_cast<unsigned>(n) < want) break;  // drained
  }
  return taken;
}

// The catch-all sockets (catch_all.h): each datagram is for a parked leg,
// told by its original destination. The first one the table forwards
// adopts the session (binds its legs' sockets), so the rest of its packets
// take the normal path; until then they are relayed from here, one by one.
unsigned PacketPath::drain_catch_all(const RelaySockets::Ready& in, unsigned budget) {
  Buffers& b = *buffers_;
  const unsigned want = std::min(batch, budget);
  receive_into(want, true);
  const int n = ::recvmmsg(in.fd, b.rx.data(), want, MSG_DONTWAIT, nullptr);
  if (n <= 0) return 0;
  const auto now = Clock::now();
  for (int i = 0; i < n; ++i) {
    msghdr& hdr = b.rx[i].msg_hdr;
    std::optional<ip::udp::endpoint> dest;
    for (cmsghdr* c = CMSG_FIRSTHDR(&hdr); c; c = CMSG_NXTHDR(&hdr, c)) {
      const bool v4 = c->cmsg_level == IPPROTO_IP && c->cmsg_type == IP_ORIGDSTADDR;
      const bool v6 = c->cmsg_level == IPPROTO_IPV6 && c->cmsg_type == IPV6_ORIGDSTADDR;
      if (!v4 && !v6) continue;
      ip::udp::endpoint e;
      const std::size_t size = c->cmsg_len - CMSG_LEN(0);
      if (size > e.capacity() || size < (v4 ? sizeof(sockaddr_in) : sizeof(sockaddr_in6))) continue;
      std::memcpy(e.data(), CMSG_DATA(c), size);
      dest = e;
    }
    const auto slot = dest ? sockets_.slot_of(dest->address()) : std::nullopt;
    if (!slot) continue;  // not one of our addresses (another program's sk_lookup map?): nothing to do with it
    // Routed as if it had come to the leg's own socket; only a packet the
    // table forwards adopts the session (out_fd()), so a stranger spraying
    // parked ports makes this instance bind nothing.
    Round r;
    relay(RelaySockets::Ready{*slot, dest->port(), -1}, static_cast<unsigned>(i), now, r);
    finish(RelaySockets::Ready{*slot, dest->port(), sockets_.fd(*slot, dest->port())}, r);
  }
  return static_cast<unsigned>(n);
}

}  // namespace anyrtpproxy
