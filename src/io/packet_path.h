// packet_path: the relaying half of the data plane. It waits (through Asio) on
// the readiness descriptor of RelaySockets, drains each ready socket with
// recvmmsg, asks the session table where every datagram goes, and sends the
// batch out of the other leg's socket with one sendmmsg. All buffers are
// allocated once, here; the packet path allocates nothing per packet (a leg
// that latches builds one log line). Everything it needs is handed to its
// constructor: nothing points back at it, and it is made after the table.
//
// Fairness. One wake (one Asio handler run) relays at most
// max_packets_per_wake packets: from at most RelaySockets::max_ready sockets,
// at most max_rounds_per_socket recvmmsg calls of up to `batch` datagrams each
// per socket. Then the handler returns, and every other handler that is ready
// (the control sockets' at most 64 datagrams each, the sync connections, the
// timers) runs before the next wake. So a command waits for at most 1,024
// relayed packets, about a millisecond.
//
// Leftovers. What one wake leaves (more ready sockets, or datagrams still
// queued) is not lost: our epoll set is level-triggered, so those sockets stay
// ready in it, and its descriptor stays readable. Asio registers that
// descriptor edge-triggered, but each async_wait re-arms it with
// EPOLL_CTL_MOD, and the kernel re-checks readiness on EPOLL_CTL_MOD, so a
// descriptor that is still readable is reported at the next turn of the loop
// without a new packet. (Boost 1.74's epoll_reactor::start_op, for an op that
// cannot run speculatively, as async_wait.) tests/integration/test_relay.py
// (leftovers_are_relayed_and_control_answered_between_wakes) fails if that stops.
#pragma once

#include "io/recorder.h"
#include "io/relay_sockets.h"
#include "core/session_table.h"

#include <boost/asio/io_context.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>

#include <functional>
#include <memory>

namespace anyrtpproxy {

class PacketPath {
public:
  using Learned = std::function<void(const Latch&)>;
  // A packet for a parked leg came (catch_all.h): the session behind its
  // local port, and whether adopting it bound its sockets.
  using Adopted = std::function<void(Slot, std::uint16_t local_port, BindResult)>;
  // `recorder`: where the packets of recorded legs go (R); it outlives the packet path.
  PacketPath(boost::asio::io_context& io, RelaySockets& sockets, PacketTable table, Recorder& recorder,
             Learned on_learned, Adopted on_adopted);
  ~PacketPath();
  PacketPath(const PacketPath&) = delete;
  PacketPath& operator=(const PacketPath&) = delete;

  void start();

  static constexpr unsigned batch = 64;  // datagrams per recvmmsg/sendmmsg
  static constexpr unsigned max_rounds_per_socket = 4;
  static constexpr unsigned max_packets_per_wake = 1024;

private:
  struct Buffers;
  void arm();
  void on_ready();
  struct Round;
  void receive_into(unsigned want, bool control);
  unsigned drain(const RelaySockets::Ready& in, unsigned budget);
  unsigned drain_catch_all(const RelaySockets::Ready& in, unsigned budget);
  void relay(const RelaySockets::Ready& in, unsigned i, Clock::time_point now, Round& round);
  void finish(const RelaySockets::Ready& in, Round& round);
  int out_fd(Slot slot, std::uint16_t port);
  void adopt(Slot slot, std::uint16_t port);
  void flush(const RelaySockets::Ready& in, int out_fd, unsigned count);
  void record(const RelaySockets::Ready& in, const Route& r, const udp::endpoint& from, const unsigned char* data,
              std::size_t size);

  RelaySockets& sockets_;
  PacketTable table_;
  Recorder& recorder_;
  Learned on_learned_;
  Adopted on_adopted_;
  boost::asio::posix::stream_descriptor wait_;  // Asio's view of the sockets' epoll set (does not own it)
  std::unique_ptr<Buffers> buffers_;
};

}  // namespace anyrtpproxy
