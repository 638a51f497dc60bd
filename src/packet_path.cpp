// packet_path: see packet_path.h.
#include "packet_path.h"

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

PacketPath::PacketPath(boost::asio::io_context& io, RelaySockets& sockets, SessionTable& table, Recorder& recorder,
                       Learned on_learned)
    : sockets_(sockets), table_(table), recorder_(recorder), on_learned_(std::move(on_learned)), wait_(io),
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

// Returns how many datagrams it took from the socket (at most budget).
unsigned PacketPath::drain(const RelaySockets::Ready& in, unsigned budget) {
  Buffers& b = *buffers_;
  unsigned taken = 0;
  for (unsigned round = 0; round < max_rounds_per_socket && taken < budget; ++round) {
    const unsigned want = std::min(batch, budget - taken);
    for (unsigned i = 0; i < want; ++i) {
      b.rx_iov[i] = iovec{b.data[i].data(), Buffers::packet};
      b.rx[i].msg_hdr = msghdr{};
      b.rx[i].msg_hdr.msg_name = &b.rx_addr[i];
      b.rx[i].msg_hdr.msg_namelen = sizeof(sockaddr_storage);
      b.rx[i].msg_hdr.msg_iov = &b.rx_iov[i];
      b.rx[i].msg_hdr.msg_iovlen = 1;
    }
    const int n = ::recvmmsg(in.fd, b.rx.data(), want, MSG_DONTWAIT, nullptr);
    if (n <= 0) break;
    taken += static_cast<unsigned>(n);
    const auto now = Clock::now();
    unsigned copies = 0;  // C: sent from the arriving socket with one sendmmsg after the round
    int out_fd = -1;
    Slot out_slot = 0;
    std::uint16_t out_port = 0;
    unsigned queued = 0;
    for (int i = 0; i < n; ++i) {
      const auto& hdr = b.rx[i].msg_hdr;
      ip::udp::endpoint from;
      std::memcpy(from.data(), &b.rx_addr[i], std::min<std::size_t>(hdr.msg_namelen, from.capacity()));
      const bool truncated = (hdr.msg_flags & MSG_TRUNC) != 0;
      const Route r = table_.route(in.slot, in.port, from, b.data[i].data(), truncated ? 0 : b.rx[i].msg_len, now);
      if (r.learned && on_learned_)
        if (const auto latch = table_.latch_at(in.slot, in.port)) on_learned_(*latch);
      if (r.record) record(in, r, from, b.data[i].data(), b.rx[i].msg_len);
      if (r.copy && !truncated) {
        address(b.cp[copies], b.cp_iov[copies], b.cp_addr[copies], r.copy_to, b.data[i].data(), b.rx[i].msg_len);
        ++copies;
      }
      if (!r.forward) continue;
      if (r.out_port != out_port || r.out_slot != out_slot) {  // one sendmmsg per outgoing socket
        if (queued) flush(in, out_fd, queued);
        queued = 0;
        out_slot = r.out_slot;
        out_port = r.out_port;
        out_fd = sockets_.fd(out_slot, out_port);
      }
      if (truncated || out_fd < 0) {
        table_.send_failed(in.slot, in.port, truncated ? 0 : b.rx[i].msg_len, truncated ? DropReason::truncated : DropReason::send_failed);
        continue;
      }
      address(b.tx[queued], b.tx_iov[queued], b.tx_addr[queued], r.dest, b.data[i].data(), b.rx[i].msg_len);
      ++queued;
    }
    if (queued) flush(in, out_fd, queued);
    // Copies are best effort: what the socket refuses is not retried (the relayed packets were sent).
    for (unsigned sent = 0; sent < copies;) {
      const int m = ::sendmmsg(in.fd, &b.cp[sent], copies - sent, MSG_DONTWAIT);
      if (m > 0)
        sent += static_cast<unsigned>(m);
      else if (!(m < 0 && errno == EINTR))
        sent += 1;
    }
    if (static_cast<unsigned>(n) < want) break;  // drained
  }
  return taken;
}

}  // namespace anyrtpproxy
