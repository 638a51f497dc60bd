// cluster: see cluster.h.
#include "core/cluster.h"

#include "core/text.h"

#include <algorithm>
#include <iterator>

namespace anyrtpproxy {

namespace {

bool clean(const std::string& s, std::size_t max) {
  return s.size() <= max && std::none_of(s.begin(), s.end(), is_control);
}

bool good_name(const std::string& name) { return !name.empty() && clean(name, max_instance_name); }

bool of_family(const udp::endpoint& ep, Family family) { return ep.address().is_v6() == (family == Family::v6); }

// The range an instance announced in its own hello (ours included).
const PortRange* range_of(const ClusterView& view, const std::string& instance) {
  if (instance == view.self) return &view.own;
  const auto it = view.ranges.find(instance);
  return it == view.ranges.end() ? nullptr : &it->second;
}

// Why a message a peer sent cannot be taken: a kind (what the log's rate limit
// counts by) and the words.
struct Refusal {
  const char* kind;
  std::string text;
};

// Why a session a peer sent cannot be taken, or nothing.
std::optional<Refusal> check(const Session& s, const ClusterView& view) {
  if (s.call_id.empty() || !clean(s.call_id, max_call_id)) return Refusal{"string", "a call-id that is empty, over 1024 bytes or not text"};
  if (s.from_tag.empty() || !clean(s.from_tag, max_tag) || !clean(s.to_tag, max_tag))
    return Refusal{"string", "a tag that is empty, over 256 bytes or not text"};
  if (!good_name(s.origin) || !good_name(s.changed_by)) return Refusal{"name", "an instance name that is empty, long or not text"};
  if (!clean(s.notify_target, max_notify) || !clean(s.notify_tag, max_notify))
    return Refusal{"notify", "a notify target or tag over 1024 bytes or with control characters"};
  for (const Leg& leg : s.legs) {
    if (!clean(leg.codecs, max_codecs)) return Refusal{"string", "a codec list over 256 bytes or not text"};
    if (!leg.owner.empty() && !good_name(leg.owner)) return Refusal{"name", "a leg whose owner's name is long or not text"};
    for (const Stream* st : {&leg.rtp, &leg.rtcp})  // a leg's remotes are of its relay address's family
      if (st->known && !of_family(st->remote, family_of(leg.slot)))
        return Refusal{"family", "an address of the other family"};
    if (leg.has_signalled && !of_family(leg.signalled, family_of(leg.slot)))
      return Refusal{"family", "an address of the other family"};
    if (leg.play.active() && (!clean(leg.play.name, max_tag) || !good_name(leg.play.owner) || leg.play.count < -1))
      return Refusal{"play", "a prompt whose name or owner is long or not text"};
    if (leg.copy && (leg.copy_to.port() == 0 || leg.copy_to.port() == 65535 || leg.copy_to.address().is_unspecified() ||
                     leg.copy_to.address().is_multicast()))
      return Refusal{"copy", "a copy target that is not a unicast address and port"};
    if (leg.port == 0) continue;
    if (!good_name(leg.owner)) return Refusal{"name", "a port without a valid owner"};
    const PortRange* range = range_of(view, leg.owner);
    const auto port = leg.port;
    if (!range) {
      // An owner this instance has not heard yet (it is down, or its own link
      // is not up yet: a restart learns the whole cluster from any one
      // peer). Its port may not be one another instance announced.
      if (port % 2 != 0 || port == 65535)
        return Refusal{"port", "port " + std::to_string(port) + " of " + leg.owner + ", not an even port below 65535"};
      const auto p1 = static_cast<std::uint16_t>(port + 1);
      if (view.own.holds(port) || view.own.holds(p1))
        return Refusal{"owner", "port " + std::to_string(port) + " of " + leg.owner +
                                    ", an instance that has not said its range, lies in this instance's range"};
      for (const auto& [name, known] : view.ranges)
        if (known.holds(port) || known.holds(p1))
          return Refusal{"owner", "port " + std::to_string(port) + " of " + leg.owner +
                                      ", an instance that has not said its range, lies in the range of " + name};
      continue;
    }
    if (port % 2 != 0 || port == 65535 || !range->holds(port) || !range->holds(static_cast<std::uint16_t>(port + 1)))
      return Refusal{"port", "port " + std::to_string(port) + " outside the range " + std::to_string(range->min) +
                                 "-" + std::to_string(range->max) + " its owner " + leg.owner + " announced"};
  }
  return std::nullopt;
}

std::optional<Refusal> check(const Tombstone& t) {
  if (t.call_id.empty() || !clean(t.call_id, max_call_id) || t.from_tag.empty() || !clean(t.from_tag, max_tag))
    return Refusal{"string", "a removal whose call-id or tag is empty, long or not text"};
  if (!good_name(t.changed_by)) return Refusal{"name", "a removal by an instance name that is empty, long or not text"};
  return std::nullopt;
}

std::optional<Refusal> check(const SyncActivity& a, const SyncSource& from) {
  if (a.instance != from.instance)
    return Refusal{"activity", "activity reported for another instance (" + printable(a.instance, 64) + ")"};
  for (const auto& e : a.entries)
    if (!clean(e.key.call_id, max_call_id) || !clean(e.key.from_tag, max_tag))
      return Refusal{"string", "activity for a call-id or tag that is long or not text"};
  return std::nullopt;
}

std::optional<Refusal> check(const SyncHello& h, const ClusterView& view) {
  if (!good_name(h.instance)) return Refusal{"hello", "a hello whose instance name is empty, long or not text"};
  if (h.port_min > h.port_max) return Refusal{"hello", "a hello with an empty port range"};
  for (const auto& [name, range] : view.ranges)
    if (name != h.instance && range.overlaps(h.port_min, h.port_max))
      return Refusal{"hello", "a hello whose range " + std::to_string(h.port_min) + "-" + std::to_string(h.port_max) +
                                  " overlaps that of " + name};
  if (view.ranges.size() >= ClusterView::max_instances && !view.ranges.count(h.instance))
    return Refusal{"hello", "a hello of one instance too many (" + std::to_string(ClusterView::max_instances) + ")"};
  return std::nullopt;
}

}  // namespace

SyncOutcome apply_sync(SyncTable table, ClusterView& view, SyncMessage& msg, const SyncSource& from,
                       Clock::time_point now, bool listing) {
  SyncOutcome out;
  const std::string& peer = from.name;
  // Logged once per peer and kind of failure (every 10 s at most, with a count).
  auto refuse = [&](const Refusal& why, const std::string& where = {}) {
    out.refused = true;
    out.events.push_back({Level::error, "sync: " + peer + " sent " + printable(why.text + where, 300) + "; refused it",
                          std::string("sync-invalid ") + why.kind + " " + peer});
    return out;
  };
  if (!std::holds_alternative<SyncHello>(msg) && from.instance.empty())
    return refuse(Refusal{"early", "a frame before its hello"});
  if (auto* s = std::get_if<Session>(&msg)) {
    if (auto why = check(*s, view)) return refuse(*why, " in call-id=" + printable(s->call_id, 64));
    const auto& targets = view.notify_targets;
    if (!s->notify_target.empty() && std::find(targets.begin(), targets.end(), s->notify_target) == targets.end()) {
      out.events.push_back({Level::warning,
                            "sync: " + peer + " sent call-id=" + s->call_id + " with notify target " + s->notify_target +
                                ", which is not a --notify target here; it will expire silently here",
                            "sync-notify " + peer});
      s->notify_target.clear();
      s->notify_tag.clear();
    }

    const SessionKey key = s->key();
    auto applied = table.apply_upsert(std::move(*s));
    for (auto& problem : applied.problems) out.events.push_back(std::move(problem));
    if (applied.changed) {
      out.events.push_back({Level::debug, "sync: call-id=" + key.call_id + " tag=" + key.from_tag + " from " + peer});
      if (const auto* e = table.at(key); e && listing)
        out.listing.push_back(listing_line(e->session, e->local, now, table.ttl_left(e->session, now)));
    }
  } else if (auto* t = std::get_if<Tombstone>(&msg)) {
    if (auto why = check(*t)) return refuse(*why);
    if (table.apply_removal(*t, now)) {
      std::string line = std::string(t->expired ? "expired" : "deleted") + " call-id=" + t->call_id + " tag=" +
                         t->from_tag + " by " + t->changed_by;
      if (listing) out.listing.push_back("# " + one_line(line, 1000) + "\n");
      out.events.push_back({Level::info, std::move(line)});
    }
  } else if (auto* a = std::get_if<SyncActivity>(&msg)) {
    if (auto why = check(*a, from)) return refuse(*why);
    for (const auto& entry : a->entries) table.apply_activity(entry, a->instance, now);
    if (a->capacity) view.capacity[a->instance] = ClusterView::Announced{*a->capacity, now};
  } else if (auto* h = std::get_if<SyncHello>(&msg)) {
    if (auto why = check(*h, view)) return refuse(*why);
    view.ranges[h->instance] = PortRange{h->port_min, h->port_max};
    out.events.push_back({Level::notice, "sync: " + peer + " is instance " + h->instance + " (ports " +
                                             std::to_string(h->port_min) + "-" + std::to_string(h->port_max) + ", " +
                                             std::to_string(h->sessions) + " sessions)"});
    for (auto& line : misplaced_addresses(view.addresses, h->addresses))
      out.events.push_back({Level::error, "sync: instance " + h->instance + " " + line, "sync-address-order " + line});
  }
  return out;
}

std::vector<std::string> misplaced_addresses(
    const std::array<std::optional<boost::asio::ip::address>, slot_count>& ours,
    const std::vector<std::pair<Slot, boost::asio::ip::address>>& theirs) {
  std::vector<std::string> out;
  auto where = [](Slot s) {
    return "as relay address " + std::to_string(address_index(s) + 1) + " of its " +
           (family_of(s) == Family::v6 ? "IPv6" : "IPv4") + (side_of(s) == Side::external ? " external" : "") +
           " list";
  };
  for (const auto& [slot, a] : theirs) {
    if (a.is_unspecified()) continue;  // a wildcard names no address
    for (Slot mine = 0; mine < slot_count; ++mine)
      if (ours[mine] && *ours[mine] == a && mine != slot)
        out.push_back("lists " + a.to_string() + " " + where(slot) + ", this instance " + where(mine) +
                      ": its legs there would be bound on another address here after a failover; give -i "
                      "(and -A) in the same order on every instance");
  }
  return out;
}

std::optional<HelloRefusal> refuse_hello(const SyncHello& theirs, const SyncHello& ours) {
  using std::chrono::seconds;
  if (!good_name(theirs.instance) || theirs.port_min > theirs.port_max)
    return HelloRefusal{"sent a hello without a valid instance name and port range", seconds(10)};
  if (theirs.instance == ours.instance) return HelloRefusal{"is this instance itself", seconds(60)};
  if (PortRange{ours.port_min, ours.port_max}.overlaps(theirs.port_min, theirs.port_max))
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

std::vector<SyncActivity> activity_frames(const std::string& instance, std::vector<ActivityEntry> entries,
                                         const Capacity& capacity) {
  std::vector<SyncActivity> frames;
  if (entries.empty()) frames.push_back(SyncActivity{instance, {}, {}});
  for (std::size_t i = 0; i < entries.size(); i += sync_max_activity) {
    const auto first = entries.begin() + static_cast<std::ptrdiff_t>(i);
    const auto last = entries.begin() + static_cast<std::ptrdiff_t>(std::min(entries.size(), i + sync_max_activity));
    frames.push_back(SyncActivity{instance, {std::make_move_iterator(first), std::make_move_iterator(last)}, {}});
  }
  frames.front().capacity = capacity;
  return frames;
}

}  // namespace anyrtpproxy
