// cluster: the rules of an anycast cluster beyond the table's own merge rules.
// What one message from a peer does to the table (and what to log and show
// for it), whether a peer's hello is acceptable, which instance sends a timeout
// notification, and how activity is cut into frames.
//
// Pure: the proxy reads the clock, does the I/O and writes the log; these
// functions decide.
#pragma once

#include "event.h"
#include "session_table.h"
#include "sync_codec.h"

#include <chrono>
#include <optional>
#include <string>
#include <vector>

namespace anyrtpproxy {

struct SyncOutcome {
  std::vector<Event> events;         // for the log
  std::vector<std::string> listing;  // lines for the people watching the sync port
};

// Applies one message a peer sent. `listing`: also render the lines for the
// sync port's readers (only worth it while someone reads).
SyncOutcome apply_sync(SessionTable& table, SyncMessage& msg, const std::string& peer, Clock::time_point now,
                       bool listing);

// Why a peer's hello ends the connection, and when to try again.
struct HelloRefusal {
  std::string why;
  std::chrono::seconds retry;
};
std::optional<HelloRefusal> refuse_hello(const SyncHello& theirs, const SyncHello& ours);

// Every instance expires a session; one of them tells the SIP proxy: the
// instance that created it (origin), or, while that one is out of reach, the
// smallest name among this instance and the peers it reaches, so that a dead
// creator's calls are reported once. `reachable`: the instances this one is
// connected to now.
bool sends_timeout_notification(const std::string& origin, const std::string& self,
                                const std::vector<std::string>& reachable);

// Activity to publish, cut into frames of at most sync_max_activity entries.
std::vector<SyncActivity> activity_frames(const std::string& instance, std::vector<ActivityEntry> entries);

}  // namespace anyrtpproxy
