// relay_sockets: the UDP sockets of every session leg, the binding half of the
// data plane. It is the SessionTable's PortBinder: open() binds an RTP socket
// and its RTCP twin on a slot's --interface address and answers at once,
// because a U that cannot bind a pair tries the next before it replies (as in
// rtpproxy), so binding stays synchronous and never waits on the loop.
//
// The sockets are not Asio objects: they sit in one epoll set of our own, and
// whoever relays (PacketPath) waits on that set's descriptor and asks which
// sockets are ready. A socket costs no heap beyond its slot in a port-indexed
// table. It knows nothing of sessions and holds no reference to the table.
#pragma once

#include "core/capacity.h"
#include "io/catch_all.h"
#include "io/fd.h"
#include "core/session_table.h"
#include "core/stats.h"

#include <boost/asio/ip/address.hpp>

#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <vector>

namespace anyrtpproxy {

class RelaySockets : public PortBinder {
public:
  // The last descriptor_reserve descriptors below the open-file limit
  // (capacity.h) are never media's: at the limit, control commands, sync and
  // operators' connections, metrics and park()'s probe sockets still have
  // them (a pair that would take them answers no_descriptors).
  // `tos`: the TOS byte (IPv4) and traffic class (IPv6) of what the sockets send.
  // `local`: the address of each slot (session.h); none: that slot is not served.
  RelaySockets(std::array<std::optional<boost::asio::ip::address>, slot_count> local, int tos);
  RelaySockets(const RelaySockets&) = delete;
  RelaySockets& operator=(const RelaySockets&) = delete;

  BindResult open(Slot slot, std::uint16_t rtp_port) override;
  void close(Slot slot, std::uint16_t rtp_port) override;
  // With a catch-all path, a peer's leg is parked (catch_all.h); without, opened.
  bool park(Slot slot, std::uint16_t rtp_port) override;
  void unpark(Slot slot, std::uint16_t rtp_port) override;
  // From now on peers' legs are parked, and the catch-all sockets are ready
  // with the others: as Ready{catch_all_slot, family, fd}.
  void use_catch_all(std::unique_ptr<CatchAll> catch_all);
  const CatchAll* catch_all() const { return catch_all_.get(); }
  static constexpr Slot catch_all_slot = 0xff;
  // The slot a datagram's original destination belongs to (its address, or
  // a slot on the wildcard address of its family); none: no slot of ours.
  std::optional<Slot> slot_of(const boost::asio::ip::address& dest) const;

  // Readable while any socket has a datagram queued (level-triggered).
  int readiness_fd() const { return epoll_.get(); }
  struct Ready {
    Slot slot;
    std::uint16_t port;
    int fd;
  };
  static constexpr std::size_t max_ready = 256;
  // The sockets that are readable now, at most max_ready; never waits.
  std::size_t ready(std::array<Ready, max_ready>& out) const;
  // The socket bound to a local port, or -1.
  int fd(Slot slot, std::uint16_t port) const {
    return slot < slot_count && port < sockets_[slot].size() ? sockets_[slot][port].get() : -1;
  }
  RelayStats stats() const { return RelayStats{open_sockets_, bind_failures_}; }
  // The address a slot's sockets are bound to (unspecified: the wildcard, or not served).
  boost::asio::ip::address address(Slot slot) const {
    return slot < slot_count && local_[slot] ? *local_[slot] : boost::asio::ip::address();
  }

private:
  Fd bind_one(Slot slot, std::uint16_t port, int& error);

  std::array<std::optional<boost::asio::ip::address>, slot_count> local_;
  int tos_;
  Fd epoll_;
  std::array<std::vector<Fd>, slot_count> sockets_;  // by slot, indexed by local port (served slots only)
  std::unique_ptr<CatchAll> catch_all_;  // none: peers' legs are opened
  std::size_t open_sockets_ = 0;
  std::uint64_t bind_failures_ = 0;
};

}  // namespace anyrtpproxy
