// catch_all: the catch-all receive path of mirrored legs (man page: MIRRORED LEGS).
//
// An instance mirrors every session of the cluster, but binds sockets only
// for the legs it relays. A peer's leg is parked instead: its relay address
// and RTP port go into the map of an sk_lookup program (the binary carries
// it: src/io/bpf/catch_all.bpf.c), attached to this network namespace, which
// steers the packets of every parked leg (RTP and RTCP) to one socket per
// address family. The packet path reads them there with their original
// destination (IP_RECVORIGDSTADDR), adopts the leg (binds its sockets and
// unparks it: SessionTable::adopt) and relays the packet; the next one
// already takes the leg's own socket. A mirrored session thus costs no
// descriptor and no kernel socket memory until its packets come here.
//
// The program is attached by a BPF link held by a descriptor of the daemon,
// never pinned: it goes with the process, however the process ends, so a
// killed instance leaves nothing for the next start to clean up. Several
// instances in one namespace (a loopback cluster) each attach their own;
// each steers only its own addresses' parked legs.
//
// Built without libbpf, or when the kernel refuses (no permission, no
// sk_lookup), open() says why, and mirrored legs are bound as before.
#pragma once

#include "io/fd.h"
#include "core/session.h"

#include <boost/asio/ip/address.hpp>

#include <array>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>

namespace anyrtpproxy {

class CatchAll {
public:
  // Attached, with a socket for every family a slot of `local` serves. The
  // program hands it packets for any address, so it is bound where no relay
  // port can be: a port the kernel picks on a loopback address that is no
  // relay address (127.255.255.254, or ::1), and only where that cannot be
  // had (no loopback) on the relay address. Any port of a relay address may
  // be a leg's: the -p ranges of the man page's cluster example share their
  // end ports. Nothing (and `why`) when it cannot be had here.
  static std::unique_ptr<CatchAll> open(const std::array<std::optional<boost::asio::ip::address>, slot_count>& local,
                                        std::string& why);
  ~CatchAll();  // detaches (closing the link), frees the maps, closes the sockets
  CatchAll(const CatchAll&) = delete;
  CatchAll& operator=(const CatchAll&) = delete;

  // Steers the packets for a leg's RTP and RTCP ports to the catch-all
  // socket. False: the kernel refused (the map is full): bind it instead.
  bool park(const boost::asio::ip::address& local, std::uint16_t rtp_port);
  void unpark(const boost::asio::ip::address& local, std::uint16_t rtp_port);
  // The catch-all socket of a family (-1: none); it reports the original
  // destination of each datagram (IP_ORIGDSTADDR, IPV6_ORIGDSTADDR).
  int socket(Family family) const { return sockets_[family == Family::v6 ? 1 : 0].get(); }
  std::uint64_t refused() const { return refused_; }

private:
  struct Impl;
  explicit CatchAll(std::unique_ptr<Impl> impl, std::array<Fd, 2> sockets);
  std::unique_ptr<Impl> impl_;
  std::array<Fd, 2> sockets_;
  std::uint64_t refused_ = 0;
};

}  // namespace anyrtpproxy
