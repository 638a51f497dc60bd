// cluster: the rules of an anycast cluster beyond the table's own merge rules.
// What one message from a peer does to the table (and what to log and show
// for it), whether a peer's hello is acceptable, which instance sends a timeout
// notification, and how activity is cut into frames.
//
// Pure: the proxy reads the clock, does the I/O and writes the log; these
// functions decide.
#pragma once

#include "core/event.h"
#include "core/session_table.h"
#include "core/sync_codec.h"

#include <array>
#include <chrono>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace anyrtpproxy {

// A -p range as announced: start and end; the end port itself is never
// allocated (port_allocator.h), so two ranges that share it do not overlap.
struct PortRange {
  std::uint16_t min = 0, max = 0;
  bool holds(std::uint16_t port) const { return min <= port && port < max; }
  bool overlaps(std::uint16_t other_min, std::uint16_t other_max) const { return min < other_max && other_min < max; }
};

// What this instance knows of its cluster, to judge what peers send: its own
// name and range, the range every instance announced in its own hello, and
// where it may send timeout notifications.
struct ClusterView {
  std::string self;
  PortRange own;
  std::vector<std::string> notify_targets;  // --notify, as written
  std::map<std::string, PortRange> ranges;  // by instance, from their hellos
  struct Announced {
    Capacity capacity;
    Clock::time_point at;  // when it came
  };
  std::map<std::string, Announced> capacity;  // by instance, from their activity frames (wire version 5)
  std::array<std::optional<boost::asio::ip::address>, slot_count> addresses;  // this instance's relay address per slot
  static constexpr std::size_t max_instances = 256;
};

// The connection a message came in on.
struct SyncSource {
  std::string name;      // the -M peer as configured, for the log
  std::string instance;  // what its hello on this connection said; empty before it
};

struct SyncOutcome {
  std::vector<Event> events;         // for the log (failures carry a cause)
  std::vector<std::string> listing;  // lines for the people watching the sync port
  bool refused = false;              // the message failed validation and was not applied
};

// Checks one message a peer sent as strictly as a control command, then
// applies it. Refused: anything before the peer's hello; names, tags and other
// strings over their bounds or with control characters; a leg whose port is
// not inside the range its owner announced in its own hello (or inside ours,
// unless we own it); an address of the other family; activity that another
// instance than the sender reports; a hello whose range overlaps another
// instance's. A notify target that is not one of ours is dropped from the
// session, as for U. `listing`: also render lines for the sync port's readers.
SyncOutcome apply_sync(SyncTable table, ClusterView& view, SyncMessage& msg, const SyncSource& from,
                       Clock::time_point now, bool listing);

// Why a peer's hello ends the connection, and when to try again.
struct HelloRefusal {
  std::string why;
  std::chrono::seconds retry;
};
std::optional<HelloRefusal> refuse_hello(const SyncHello& theirs, const SyncHello& ours);

// The addresses a peer's hello places at another slot than this instance
// does (the same address, another position in -i): one line each.
std::vector<std::string> misplaced_addresses(
    const std::array<std::optional<boost::asio::ip::address>, slot_count>& ours,
    const std::vector<std::pair<Slot, boost::asio::ip::address>>& theirs);

// Every instance expires a session; one of them tells the SIP proxy: the
// instance that created it (origin), or, while that one is out of reach, the
// smallest name among this instance and the peers it reaches, so that a dead
// creator's calls are reported once. `reachable`: the instances this one is
// connected to now.
bool sends_timeout_notification(const std::string& origin, const std::string& self,
                                const std::vector<std::string>& reachable);

// Activity to publish, cut into frames of at most sync_max_activity entries.
// Every 2 s: at least one frame, the first carrying `capacity`.
std::vector<SyncActivity> activity_frames(const std::string& instance, std::vector<ActivityEntry> entries,
                                         const Capacity& capacity);

}  // namespace anyrtpproxy
