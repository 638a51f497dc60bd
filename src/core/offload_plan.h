// offload_plan: which streams the kernel fast path may forward,
// as a pure function of a session and what this instance knows of it.
//
// A stream (one leg's RTP or RTCP) is offloaded when the latching rules
// (doc/protocol.md, Latching) have nothing left to decide for it: its remote latched, no re-offer
// window open, the leg not asymmetric, nothing recorded or copied from it,
// no prompt playing to the other party, both legs' sockets held here, both
// legs on one address family, and the other leg's remote known. Then every
// packet from exactly that remote to that port goes to exactly one place,
// and the kernel may send it there. Whatever does not match the entry (a
// third party, a NAT rebinding, the signalled address taking its leg over)
// still reaches the daemon, which judges it as before and, when the leg
// moves, replaces the entry.
#pragma once

#include "core/session.h"

#include <optional>

namespace anyrtpproxy {

struct StreamForward {
  udp::endpoint from;             // the latched remote
  Slot in_slot = 0;               // the relay address and
  std::uint16_t in_port = 0;      // port it arrives on
  Slot out_slot = 0;              // the relay address and
  std::uint16_t out_port = 0;     // port it leaves from
  udp::endpoint dest;             // the other leg's remote
  bool operator==(const StreamForward& o) const {
    return from == o.from && in_slot == o.in_slot && in_port == o.in_port && out_slot == o.out_slot &&
           out_port == o.out_port && dest == o.dest;
  }
  bool operator!=(const StreamForward& o) const { return !(*this == o); }
};

// The stream arriving on leg `side` (`kind`), if the kernel may forward it at `now`.
std::optional<StreamForward> forward_of(const Session& s, const LocalState& local, int side, Kind kind,
                                        Clock::time_point now);

// The streams of a session: index side * 2 + kind.
constexpr int streams_per_session = 4;

}  // namespace anyrtpproxy
