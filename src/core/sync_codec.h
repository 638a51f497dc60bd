// sync_codec: the wire format of session synchronisation between instances,
// and the listing an operator sees on the sync port. Pure: no sockets, no
// clock reads, no logging; times travel as ages relative to the sender's now.
//
// The stream a sync server writes is text lines. Lines that start with '#'
// or 'S ' are the human-readable listing and are skipped by peers. A frame is
//
//   F <wire-version> <kind> <length> <readable summary>\n<length bytes>\n
//
// where the payload is a Boost.Serialization text archive written without the
// archive header (no_header), holding primitives only in a fixed order: its
// bytes depend on our wire version alone, not on the peers' Boost versions.
// Strings and collections are length-checked before anything is allocated.
#pragma once

#include "core/session.h"

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

namespace anyrtpproxy {

// 2: a leg carries its signalled address (for the latching rules).
// 3: a leg carries its relay address slot (bridge mode). Older frames are still
// read (their legs have no signalled address; both legs on the session
// family's address); an older instance refuses newer frames, so upgrade every
// instance of a cluster.
// 3: each leg's relay address slot (bridge mode); 4: C's file name; 5: an activity frame's capacity;
// 6: the hello's relay addresses; 7: the oldest version the sender speaks (hello), the capacity's
// serving state (healthy, unhealthy, syncing, draining).
//
// The promise: every release reads and writes the previous release's wire
// version. A peer says the newest version it speaks in its hello line, and
// the server writes to it in the older of that and its own: a mixed cluster
// speaks, link by link, the newest version both ends know.
constexpr unsigned sync_wire_version = 7;
constexpr unsigned sync_oldest_wire_version = 6;  // the previous release's: the oldest a peer may speak
constexpr std::size_t sync_max_line = 4096;         // a frame header or a listing line
constexpr std::size_t sync_max_payload = 256 * 1024;
constexpr std::size_t sync_max_string = 8192;       // call-ids, tags: the control protocol's own bound
constexpr std::size_t sync_max_activity = 512;      // entries per activity frame
// What a sync server writes to a peer it refuses before it closes, then why.
constexpr std::string_view sync_refusal = "# refused: ";

struct SyncHello {
  std::string instance;
  std::uint16_t port_min = 0, port_max = 0;
  std::uint64_t sessions = 0;
  // Its relay address at each slot it serves (wire version 6), so that a peer
  // listing the same addresses in another order hears of it: a leg travels
  // as its address's position, and would move to another address there.
  std::vector<std::pair<Slot, boost::asio::ip::address>> addresses;
  unsigned oldest = 0;  // the oldest wire version it speaks (version 7; 0: not said)
};

// What an instance can still carry (core/capacity.h), announced with its activity
// every 2 seconds (wire version 5; none from an older peer).
struct Capacity {
  std::uint64_t headroom_legs = 0;  // more legs it can bind now (stats.h headroom())
  std::uint64_t relayed_legs = 0;   // legs it holds with sockets: its own and those it adopted
  std::uint64_t parked_legs = 0;    // peers' legs it mirrors without sockets (catch_all.h)
  bool healthy = true;              // it asks for traffic (its --health socket says healthy)
  std::string state;                // healthy, unhealthy, syncing or draining (version 7; empty: not said)
  bool operator==(const Capacity& o) const {
    return headroom_legs == o.headroom_legs && relayed_legs == o.relayed_legs && parked_legs == o.parked_legs &&
           healthy == o.healthy && state == o.state;
  }
};

// Sessions that had media on the sending instance, with its packet counters,
// and what it can still carry.
struct SyncActivity {
  std::string instance;
  std::vector<ActivityEntry> entries;
  std::optional<Capacity> capacity;
};

using SyncMessage = std::variant<SyncHello, Session, Tombstone, SyncActivity>;

// Each in `version` (sync_oldest_wire_version .. sync_wire_version, or an
// older one for the golden tests): what that version cannot carry is left
// out (a version-6 peer hears no capacity state, only healthy or not).
std::string encode(const SyncHello& h, unsigned version = sync_wire_version);
std::string encode(const Session& s, Clock::time_point now, unsigned version = sync_wire_version);
std::string encode(const Tombstone& t, unsigned version = sync_wire_version);
std::string encode(const SyncActivity& a, unsigned version = sync_wire_version);

// The version a peer's hello line ("P <version> <instance>") says it speaks;
// none, with `why`, when the line says none or one older than
// sync_oldest_wire_version (such a peer is refused).
std::optional<unsigned> hello_line_version(std::string_view line, std::string& why);

// One session as one listing line ("S call-id=... ...\n"), with what this
// instance knows of it locally (its sockets and packet counters).
std::string listing_line(const Session& s, const LocalState& local, Clock::time_point now,
                         std::chrono::seconds ttl_left);

struct SyncError { std::string what; };

// Splits a byte stream into frames; skips listing lines; bounded memory.
class FrameReader {
public:
  // Appends bytes; false (and error()) once the stream is unusable.
  bool feed(std::string_view bytes);
  // The next complete message, decoded; nullopt when more bytes are needed.
  // After an error it returns a SyncError forever.
  std::optional<std::variant<SyncMessage, SyncError>> next(Clock::time_point now);
  const std::string& error() const { return error_; }
  // Why the server refused us, when it said so ("# refused: WHY" before it
  // closed); empty otherwise.
  const std::string& refusal() const { return refusal_; }
  unsigned last_version() const { return last_version_; }  // of the last frame decoded; 0: none yet

private:
  std::string buffer_;
  std::string refusal_;
  unsigned last_version_ = 0;
  std::size_t used_ = 0;
  std::string error_;
};

// Decodes one frame's payload (exposed for tests).
std::variant<SyncMessage, SyncError> decode(unsigned version, std::string_view kind, std::string_view payload,
                                            Clock::time_point now);

}  // namespace anyrtpproxy
