// serving: whether this instance asks for traffic now (its anycast route, as
// the --health socket says it) and why; and the drain that ends a planned
// stop. Pure: time, packet counts and the peers' links come in as parameters.
//
// The states, in the order they win:
//   draining   SIGTERM (a planned stop) or SIGUSR2 (maintenance): the route
//              should go, while the instance keeps relaying and answering
//   syncing    just started: not every connected peer has sent its table yet
//   unhealthy  it could not take over its share (capacity.h's Headroom)
//   healthy    it can
#pragma once

#include "core/capacity.h"

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

namespace anyrtpproxy {

enum class Serving { healthy, unhealthy, syncing, draining };

struct Health {
  Serving state = Serving::syncing;
  std::string cause;        // why, for all but healthy
  std::string reason;       // the cause in one word (the metrics' label): syncing, stop, maintenance, or Headroom's
  std::uint64_t legs = 0;   // headroom
  // The --health socket's line: "healthy headroom_legs=N", "unhealthy CAUSE"
  // (syncing included) or "draining".
  std::string line() const;
  // One word for the listing, I and the metrics' label: healthy, unhealthy, syncing, draining.
  const char* word() const;
};

// A peer link as the startup rule sees it.
struct PeerLink {
  bool connected = false;
  bool heard = false;  // a frame came since it connected: its table follows at once
};

// After a start, an instance with peers asks for traffic once every connected peer has
// sent its table and `settle` has passed for the links to come up; after
// `give_up` it does in any case (peers that never answer do not keep it out).
struct SyncRule {
  std::chrono::milliseconds settle{1000};
  std::chrono::milliseconds give_up{5000};
};
bool synced(const SyncRule& rule, std::chrono::steady_clock::duration since_start, const std::vector<PeerLink>& peers);

// `drain_reason`: "stop" or "maintenance".
Health judge(const Headroom& room, bool synced, bool draining, const std::string& drain_cause,
             const std::string& drain_reason);

// A drain: the instance said "draining" and waits for its calls' packets to
// stop arriving (the route moved to a peer): `quiet` without a new packet,
// or `limit` in all, ends it.
class Drain {
public:
  using Clock = std::chrono::steady_clock;
  struct Config {
    std::chrono::milliseconds quiet{1000};
    std::chrono::milliseconds limit{5000};
  };
  enum class Verdict { going_on, quiet, timed_out };

  void begin(Config config, std::uint64_t packets, Clock::time_point now);
  void end() { active_ = false; }
  bool active() const { return active_; }
  // `packets`: every packet received so far (userspace and kernel fast path).
  Verdict check(std::uint64_t packets, Clock::time_point now);
  Clock::duration elapsed(Clock::time_point now) const { return now - began_; }

private:
  Config config_;
  bool active_ = false;
  std::uint64_t packets_ = 0;
  Clock::time_point began_{}, last_packet_{};
};

}  // namespace anyrtpproxy
