// capacity: how much more this instance can carry, what it tells its peers
// of it, and what follows when it is short. Pure: the numbers (descriptors
// open, the file limit, the table's size) come in as parameters.
//
// A leg takes two descriptors (RTP and RTCP) and, for a leg of this
// instance's own, a port pair of its range. Media sockets never take the last
// descriptor_reserve descriptors: those are kept for control, sync and metrics
// connections. Headroom counts the same reserve, so an instance turns
// unhealthy just before its media runs out of descriptors.
#pragma once

#include "core/cluster.h"
#include "core/event.h"
#include "core/session_table.h"
#include "core/sync_codec.h"

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

namespace anyrtpproxy {

// Descriptors media sockets never take (control, sync and metrics connections).
constexpr std::uint64_t descriptor_reserve = 32;
// Descriptors the daemon holds besides media and connections: listeners, epoll, logs.
constexpr std::uint64_t descriptors_of_its_own = 32;

// The open-file limit that holds every port pair of `pairs` bound.
constexpr std::uint64_t descriptors_needed(std::uint64_t pairs) {
  return pairs * 2 + descriptor_reserve + descriptors_of_its_own;
}
// About how many sessions (two legs of two descriptors) an open-file limit holds.
constexpr std::uint64_t sessions_within(std::uint64_t fd_limit) {
  const std::uint64_t kept = descriptor_reserve + descriptors_of_its_own;
  return fd_limit > kept ? (fd_limit - kept) / 4 : 0;
}

// How many more legs this instance can bind now, and why it cannot take over
// its share of the cluster when it cannot.
struct Headroom {
  std::uint64_t legs = 0;  // the fewest of descriptors, free port pairs and table room
  std::string problem;     // empty: healthy
  std::string reason;      // the problem in one word, for the metrics' label
  bool healthy() const { return problem.empty(); }
};
// `sessions_left`: sessions the table may still take (sessions_left()); each is two legs.
Headroom headroom(std::uint64_t fd_limit, std::optional<std::size_t> open_fds, std::uint64_t free_pairs,
                  std::size_t unbound_legs, std::uint64_t sessions_left = UINT64_MAX);

// What the table's bounds still allow: by count, and by memory at what its
// sessions take on average now (600 bytes, a real session's, while empty).
std::uint64_t sessions_left(const TableConfig& config, std::size_t sessions, std::size_t bytes);

// The table's bounds grow with the relay addresses: every session owns a port
// pair of some address (at most 32,768 per address and family across the
// cluster), so two served addresses hold the 65,536 of the default.
TableConfig scaled_for(TableConfig config, std::size_t served_addresses);

// Every instance's capacity: this one first, then each peer that announced its own.
struct Member {
  std::string instance;
  Capacity capacity;
  double age = 0;  // seconds since it was announced
  std::string state, why;  // this instance's own (serving.h's word and cause); empty: healthy or not, as announced
};
std::vector<Member> members(const std::string& self, const Capacity& own,
                            const std::map<std::string, ClusterView::Announced>& announced, Clock::time_point now,
                            std::string state = "", std::string why = "");

// The operators' listing's "# capacity: instance NAME headroom=N relays=R
// parks=P healthy|unhealthy|syncing|draining (...)" lines, one per member;
// this instance's ends with "; " and why it is not healthy.
std::string capacity_lines(const std::vector<Member>& members, const std::string& self);

// Could this instance take over every peer whose route may move here? It says
// so once when a peer relays more legs than its headroom (a warning) and once
// when it can again (a notice). Announcements older than 10 s are not judged.
class TakeoverWatch {
public:
  std::vector<Event> check(const Headroom& own, const std::map<std::string, ClusterView::Announced>& announced,
                           Clock::time_point now);

private:
  std::set<std::string> short_;  // peers this instance said it cannot take over
};

// The --health-file's transitions: the events to log when the instance turns
// unhealthy (the first check included) or healthy again.
class HealthWatch {
public:
  explicit HealthWatch(std::string file) : file_(std::move(file)) {}
  std::vector<Event> check(const Headroom& h);
  std::optional<bool> last() const { return healthy_; }

private:
  std::string file_;
  std::optional<bool> healthy_;  // none: not checked yet
};

}  // namespace anyrtpproxy
