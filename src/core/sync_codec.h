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
// 6: the hello's relay addresses
constexpr unsigned sync_wire_version = 6;
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
};

// What an instance can still carry (core/capacity.h), announced with its activity
// every 2 seconds (wire version 5; none from an older peer).
struct Capacity {
  std::uint64_t headroom_legs = 0;  // more legs it can bind now (stats.h headroom())
  std::uint64_t relayed_legs = 0;   // legs it holds with sockets: its own and those it adopted
  std::uint64_t parked_legs = 0;    // peers' legs it mirrors without sockets (catch_all.h)
  bool healthy = true;              // its --health-file would be there
  bool operator==(const Capacity& o) const {
    return headroom_legs == o.headroom_legs && relayed_legs == o.relayed_legs && parked_legs == o.parked_legs &&
           healthy == o.healthy;
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

std::string encode(const SyncHello& h);
std::string encode(const Session& s, Clock::time_point now);
std::string encode(const Tombstone& t);
std::string encode(const SyncActivity& a);

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

private:
  std::string buffer_;
  std::string refusal_;
  std::size_t used_ = 0;
  std::string error_;
};

// Decodes one frame's payload (exposed for tests).
std::variant<SyncMessage, SyncError> decode(unsigned version, std::string_view kind, std::string_view payload,
                                            Clock::time_point now);

}  // namespace anyrtpproxy
