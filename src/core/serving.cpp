// serving: see serving.h.
#include "core/serving.h"

#include <algorithm>

namespace anyrtpproxy {

std::string Health::line() const {
  switch (state) {
    case Serving::healthy: return "healthy headroom_legs=" + std::to_string(legs);
    case Serving::draining: return "draining";
    case Serving::syncing: return "unhealthy syncing: " + cause;
    default: return "unhealthy " + cause;
  }
}

const char* Health::word() const {
  switch (state) {
    case Serving::healthy: return "healthy";
    case Serving::unhealthy: return "unhealthy";
    case Serving::syncing: return "syncing";
    default: return "draining";
  }
}

bool synced(const SyncRule& rule, std::chrono::steady_clock::duration since_start, const std::vector<PeerLink>& peers) {
  if (peers.empty() || since_start >= rule.give_up) return true;
  if (since_start < rule.settle) return false;
  return std::all_of(peers.begin(), peers.end(), [](const PeerLink& p) { return !p.connected || p.heard; });
}

Health judge(const Headroom& room, bool is_synced, bool draining, const std::string& drain_cause,
             const std::string& drain_reason) {
  Health h;
  h.legs = room.legs;
  if (draining) {
    h.state = Serving::draining;
    h.cause = drain_cause;
    h.reason = drain_reason;
  } else if (!is_synced) {
    h.state = Serving::syncing;
    h.cause = "waiting for the peers' tables";
    h.reason = "syncing";
  } else if (!room.healthy()) {
    h.state = Serving::unhealthy;
    h.cause = room.problem;
    h.reason = room.reason;
  } else {
    h.state = Serving::healthy;
  }
  return h;
}

void Drain::begin(Config config, std::uint64_t packets, Clock::time_point now) {
  if (active_) return;  // a second begin keeps the first one's clock
  config_ = config;
  active_ = true;
  packets_ = packets;
  began_ = last_packet_ = now;
}

Drain::Verdict Drain::check(std::uint64_t packets, Clock::time_point now) {
  if (!active_) return Verdict::going_on;
  if (packets != packets_) {
    packets_ = packets;
    last_packet_ = now;
  }
  if (now - began_ >= config_.limit) return Verdict::timed_out;
  if (now - last_packet_ >= config_.quiet) return Verdict::quiet;
  return Verdict::going_on;
}

}  // namespace anyrtpproxy
