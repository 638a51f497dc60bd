// cluster: see cluster.h.
#include "cluster.h"

#include "text.h"

#include <algorithm>
#include <iterator>

namespace anyrtpproxy {

SyncOutcome apply_sync(SessionTable& table, SyncMessage& msg, const std::string& peer, Clock::time_point now,
                       bool listing) {
  SyncOutcome out;
  if (auto* s = std::get_if<Session>(&msg)) {
    const SessionKey key = s->key();
    auto applied = table.apply_upsert(std::move(*s));
    for (auto& problem : applied.problems) out.events.push_back(std::move(problem));
    if (applied.changed) {
      out.events.push_back({Level::debug, "sync: call-id=" + key.call_id + " tag=" + key.from_tag + " from " + peer});
      if (const auto* e = table.at(key); e && listing)
        out.listing.push_back(listing_line(e->session, e->local, now, table.ttl_left(e->session, now)));
    }
  } else if (auto* t = std::get_if<Tombstone>(&msg)) {
    if (table.apply_removal(*t, now)) {
      std::string line = std::string(t->expired ? "expired" : "deleted") + " call-id=" + t->call_id + " tag=" +
                         t->from_tag + " by " + t->changed_by;
      if (listing) out.listing.push_back("# " + one_line(line, 1000) + "\n");
      out.events.push_back({Level::info, std::move(line)});
    }
  } else if (auto* a = std::get_if<SyncActivity>(&msg)) {
    for (const auto& entry : a->entries) table.apply_activity(entry, a->instance, now);
  } else if (auto* h = std::get_if<SyncHello>(&msg)) {
    out.events.push_back({Level::notice, "sync: " + peer + " is instance " + h->instance + " (ports " +
                                             std::to_string(h->port_min) + "-" + std::to_string(h->port_max) + ", " +
                                             std::to_string(h->sessions) + " sessions)"});
  }
  return out;
}

std::optional<HelloRefusal> refuse_hello(const SyncHello& theirs, const SyncHello& ours) {
  using std::chrono::seconds;
  if (theirs.instance == ours.instance) return HelloRefusal{"is this instance itself", seconds(60)};
  if (theirs.port_min <= ours.port_max && ours.port_min <= theirs.port_max)
    return HelloRefusal{"instance " + theirs.instance + " uses ports " + std::to_string(theirs.port_min) + "-" +
                            std::to_string(theirs.port_max) + ", which overlap ours (" +
                            std::to_string(ours.port_min) + "-" + std::to_string(ours.port_max) +
                            "): its sessions are refused; fix -p",
                        seconds(10)};
  return std::nullopt;
}

bool sends_timeout_notification(const std::string& origin, const std::string& self,
                                const std::vector<std::string>& reachable) {
  if (origin == self || origin.empty()) return true;
  std::string smallest = self;
  for (const auto& peer : reachable) {
    if (peer.empty()) continue;
    if (peer == origin) return false;  // the creator is alive: its duty
    smallest = std::min(smallest, peer);
  }
  return smallest == self;
}

std::vector<SyncActivity> activity_frames(const std::string& instance, std::vector<ActivityEntry> entries) {
  std::vector<SyncActivity> frames;
  for (std::size_t i = 0; i < entries.size(); i += sync_max_activity) {
    const auto first = entries.begin() + static_cast<std::ptrdiff_t>(i);
    const auto last = entries.begin() + static_cast<std::ptrdiff_t>(std::min(entries.size(), i + sync_max_activity));
    frames.push_back(SyncActivity{instance, {std::make_move_iterator(first), std::make_move_iterator(last)}});
  }
  return frames;
}

}  // namespace anyrtpproxy
