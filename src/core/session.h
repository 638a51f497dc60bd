// session: the value types of one relayed media line and the pure rules that
// judge a packet's source (latching).
//
// A Session is copyable data: no sockets, no clock reads, no logging. Leg 0
// (S0) faces the callee and is allocated by the creating U; leg 1 (S1) faces
// the caller and is allocated by the first L (doc/protocol.md, Sessions and legs).
//
// Session and Leg hold the replicated state: exactly what a sync frame
// carries. What one instance knows only for itself (its sockets, its packet
// counters, what it has not yet published) is LocalState, kept beside the
// Session by the table. A new field is one decision: which of the two.
#pragma once

#include <boost/asio/ip/udp.hpp>

#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace anyrtpproxy {

using Clock = std::chrono::steady_clock;
using boost::asio::ip::udp;

enum class Family : std::uint8_t { v4 = 0, v6 = 1 };
enum class Kind : std::uint8_t { rtp = 0, rtcp = 1 };

// Bridge mode: a relay address faces the internal or the external network
// (-i INTERNAL/EXTERNAL; with one IPv4 and one IPv6 -i, IPv4 is internal).
enum class Side : std::uint8_t { internal = 0, external = 1 };
// A relay address: up to max_addresses per family and side (-i A1,A2,...). A leg's ports are on one of them; port numbers are unique per
// slot, and every address has its own copy of the -p range. Slot number =
// index * 4 + side * 2 + family: slots 0 and 1 are the first internal (or
// only) IPv4 and IPv6 addresses, so a slot's family is its number's parity.
// The wire carries the number: instances of a cluster list their addresses
// in the same order (the same count per family and side).
using Slot = std::uint8_t;
constexpr std::size_t max_addresses = 8;
constexpr std::size_t slot_count = 4 * max_addresses;
constexpr Slot slot_of(Family f, Side s, std::size_t index = 0) {
  return static_cast<Slot>(index * 4 + static_cast<std::size_t>(s) * 2 + static_cast<std::size_t>(f));
}
constexpr Family family_of(Slot slot) { return static_cast<Family>(slot % 2); }
constexpr Side side_of(Slot slot) { return static_cast<Side>(slot / 2 % 2); }
constexpr std::size_t address_index(Slot slot) { return slot / 4; }

// How a leg may learn its remote address from packets:
//   once   - default: the first valid RTP packet latches the leg (a party behind NAT
//            is reached at its public address), but the signalled address takes the
//            leg over with its first valid packet, so a third party that sent first
//            loses it; once latched, other sources are dropped, except in a
//            re-offer's window and a NAT rebinding of the same RTP stream (same SSRC,
//            nearby sequence) after the latched source has been silent for
//            relatch_silence. RTCP never latches on its own: it is accepted from the
//            host the RTP stream latched to (the signalled host before that);
//   always - --nat: every valid packet from a new source moves the remote address;
//   never  - --no-nat-once: only the signalled address is accepted (a leg that was
//            signalled no address latches its first valid packet once).
enum class LatchPolicy : std::uint8_t { once, always, never };
enum class Verdict : std::uint8_t { forward, learn, drop };

// A re-offer (U/L changing a known address) lets a latched leg re-learn for this long.
constexpr std::chrono::seconds relatch_window{10};
// A packet of the same SSRC whose sequence number is this close is a NAT rebinding...
constexpr std::uint16_t relatch_max_seq_distance = 536;
// ...once the latched source has been silent this long; never while it sends.
constexpr std::chrono::seconds relatch_silence{2};

struct Stream {
  udp::endpoint remote;
  bool known = false;    // remote is set (signalled or learned)
  bool learned = false;  // remote came from a packet
};

// The key of a session: call-id and from-tag as the creating U sent them.
struct SessionKey {
  std::string call_id, from_tag;
  bool operator<(const SessionKey& o) const {
    return call_id != o.call_id ? call_id < o.call_id : from_tag < o.from_tag;
  }
  bool operator==(const SessionKey& o) const { return call_id == o.call_id && from_tag == o.from_tag; }
};

struct Counters {
  std::uint64_t received = 0;  // packets arriving on this leg's RTP and RTCP ports
  std::uint64_t relayed = 0;   // of those, sent on through the other leg
  std::uint64_t dropped = 0;   // of those, not sent (source refused, other side unknown, send failed)
};

// P: a prompt played towards a leg's remote address instead of what the
// other leg relays (man page: PLAYBACK). Replicated whole, so that
// another instance can continue it: the packet due at any moment follows
// from `start` (one every 20 ms), and its sequence number, timestamp and SSRC
// from the first packet's.
struct Playback {
  std::string name;            // the prompt, "<name>.<pt>" in --prompts; empty: nothing plays
  std::uint8_t pt = 0;         // the payload type played
  std::int32_t count = 1;      // plays of the file; -1: until S
  Clock::time_point start{};   // when the first packet was due
  std::uint32_t ssrc = 0, ts = 0;
  std::uint16_t seq = 0;
  std::string owner;           // the instance that plays it; another takes over when it is gone
  bool active() const { return !name.empty(); }
};

struct Leg {
  std::uint16_t port = 0;  // local RTP port, RTCP = port + 1; 0 = not allocated yet
  Slot slot = 0;           // the relay address the port is on (wire version 3; before: the session's family)
  bool record = false;     // R: what arrives on this leg is recorded, by whichever instance relays it (version 3)
  // C: what arrives on this leg is also sent to copy_to (RTCP to its port + 1) (version 3).
  bool copy = false;
  udp::endpoint copy_to;
  Playback play;  // P (version 3)
  Stream rtp, rtcp;
  bool asymmetric = false;
  bool hold = false;
  bool weak = false;
  std::string codecs;  // from the c modifier
  bool have_ssrc = false;
  std::uint32_t ssrc = 0;
  std::uint16_t seq = 0;
  Clock::time_point relatch_until{};
  std::string owner;  // instance that allocated the port (its range holds it)
  // The RTP address the latest U/L signalled for this leg (RTCP: port + 1); it
  // may take the leg over from a source that latched before it (wire version 2).
  udp::endpoint signalled;
  bool has_signalled = false;

  Stream& stream(Kind k) { return k == Kind::rtp ? rtp : rtcp; }
  const Stream& stream(Kind k) const { return k == Kind::rtp ? rtp : rtcp; }
  // Applies a signalled remote RTP address (RTCP = port + 1), as U/L do.
  void prefill(const udp::endpoint& remote_rtp, Clock::time_point now);
};

struct Session {
  std::string call_id;
  std::string from_tag;  // as sent by the creating U, with its ";N" media index
  std::string to_tag;    // the last to-tag a command named (shown in the listing only)
  Family family = Family::v4;  // of leg 0 as the creating U allocated it; each leg has its own slot
  std::array<Leg, 2> legs;
  Clock::time_point created{};
  Clock::time_point last_active{};
  bool strong = false;
  std::string notify_target;  // empty: no timeout notification
  std::string notify_tag;
  // C's file target: the base name of the session's recording in --record-dir
  // (empty: rtpproxy's "<call-id>=<from-tag>"; wire version 4).
  std::string record_name;
  // Cluster state: the instance that created the session, and the
  // version of its last change with the instance that made it; the pair orders
  // concurrent changes the same way on every instance.
  std::string origin;
  std::uint64_t version = 0;
  std::string changed_by;

  bool complete() const { return legs[0].port != 0 && legs[1].port != 0; }
  SessionKey key() const { return SessionKey{call_id, from_tag}; }
};

// Bounds of what a session may hold, for commands and peers alike: far above
// real SIP (call-ids and tags are tens of bytes), far below what would let a
// peer pin memory.
constexpr std::size_t max_call_id = 1024;
constexpr std::size_t max_tag = 256;          // a from- or to-tag, with its ";N"
constexpr std::size_t max_codecs = 256;       // a c modifier's list
constexpr std::size_t max_notify = 1024;      // a notify target, a notify tag
constexpr std::size_t max_instance_name = 64;
constexpr std::size_t max_record_name = 200;  // C's file target

// A name C may give a recording: 1 to max_record_name bytes of letters,
// digits and "-_.=+@%,~", not starting with '.'. No path: it names a file in
// --record-dir, which a SIP proxy (or whoever reaches the control socket) must
// not leave.
bool valid_record_name(std::string_view name);

// Packet counters another instance reported for a session (activity frames),
// and which legs it could not bind (bit 0: leg 0, bit 1: leg 1).
struct PeerCounters {
  std::string instance;
  std::array<Counters, 2> legs;
  std::uint8_t unbound = 0;
};
constexpr std::size_t max_peer_counters = 64;

// This instance's own knowledge of a session; never on the wire as such.
struct LegLocal {
  Counters counters;   // packets that arrived here on this leg's ports
  // This instance holds the leg: its port is indexed here (and taken from
  // the pool when in our range), and its RTP and RTCP sockets are open,
  // unless the leg is parked: a peer's leg mirrored without sockets, whose
  // packets the catch-all path brings until the first one adopts it
  // (SessionTable::adopt).
  bool bound = false;
  bool parked = false;
  bool adopted = false;  // bound here by a packet that came while it was parked (SessionTable::repark_idle)
  // When the latched RTP source was last heard, here or on a peer (its activity
  // reports): a same-SSRC re-latch waits for relatch_silence after it.
  Clock::time_point heard{};
};
struct LocalState {
  std::array<LegLocal, 2> legs;
  bool dirty = false;   // changed here, not yet published
  bool active = false;  // packets relayed here since the last activity report
  bool report = false;  // a leg became bound here: the peers must hear it once more
  Clock::time_point relayed_at{};  // the last packet this instance accepted for it (or its kernel fast path did)
  std::vector<PeerCounters> peer_counters;  // what the peers' activity frames reported
  std::size_t bytes = 0;  // what the table counted for this session against its budget
  std::uint32_t recording = 0;  // this instance's recording of it (recorder.h); 0: none open here

  // This instance's counters plus what the peers reported, per leg.
  Counters cluster_counters(int side) const;
};

// What a deleted or expired session leaves behind, so that a peer that missed
// the deletion (a partition, a restart) cannot bring the session back.
struct Tombstone {
  std::string call_id, from_tag;
  std::uint64_t version = 0;
  std::string changed_by;
  bool expired = false;  // by timeout: a peer that still sees media keeps the session
};

// One session that had media on an instance (or that it cannot carry fully),
// with that instance's counters and the legs it could not bind.
struct ActivityEntry {
  SessionKey key;
  std::uint32_t idle = 0;  // seconds
  std::array<Counters, 2> counters{};
  std::uint8_t unbound = 0;  // bit 0: leg 0, bit 1: leg 1 (wire version 2)
};

// What the packet path needs to know of a datagram's header.
struct PacketInfo {
  bool valid = false;  // version 2 and long enough for its kind
  std::uint32_t ssrc = 0;
  std::uint16_t seq = 0;
};
PacketInfo inspect(Kind kind, const unsigned char* data, std::size_t size);

// `heard`: when the leg's latched RTP source was last heard (LegLocal::heard).
Verdict judge_source(const Leg& leg, Kind kind, const udp::endpoint& from, const PacketInfo& info,
                     LatchPolicy policy, Clock::time_point now, Clock::time_point heard);

// "tag" or "tag;N" matches "tag" (doc/protocol.md, Tags: the prefix rule).
bool tag_matches(const std::string& stored, const std::string& tag);

}  // namespace anyrtpproxy
