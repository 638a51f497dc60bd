// session_table: see session_table.h.
#include "session_table.h"

#include <algorithm>
#include <tuple>

namespace anyrtpproxy {

namespace {
// Changes are ordered by version, ties by the name of the instance that made them,
// so every instance picks the same winner.
bool newer(std::uint64_t version, const std::string& by, std::uint64_t than_version, const std::string& than_by) {
  return std::tie(version, by) > std::tie(than_version, than_by);
}
}  // namespace

SessionTable::SessionTable(TableConfig config, std::array<PortAllocator, 2> pools, PortBinder& binder)
    : config_(config), pools_(std::move(pools)), binder_(binder) {}

SessionTable::~SessionTable() { clear(); }

std::optional<SessionTable::Match> SessionTable::find(const std::string& call_id,
                                                      const std::string& from_tag,
                                                      const std::string& to_tag) {
  // §2.2: exact from-tag -> side 0; else the to-tag, bare or with the from-tag's ";N" -> side 1.
  const auto semi = from_tag.rfind(';');
  const std::string suffix = semi == std::string::npos ? std::string() : from_tag.substr(semi);
  std::optional<Match> by_to;
  for (auto it = sessions_.lower_bound({call_id, {}}); it != sessions_.end() && it->first.call_id == call_id; ++it) {
    const std::string& stored = it->first.from_tag;
    if (stored == from_tag) return Match{&it->second, 0};
    if (!by_to && !to_tag.empty() && (stored == to_tag || (!suffix.empty() && stored == to_tag + suffix)))
      by_to = Match{&it->second, 1};
  }
  return by_to;
}

bool SessionTable::allocate(Session& s, int side) {
  auto& pool = pools_[index(s.family)];
  // A pair we cannot bind (taken by another program) goes to the tail; try each once.
  for (std::size_t tries = pool.available(); tries > 0; --tries) {
    const auto port = pool.take();
    if (!port) return false;
    if (!binder_.open(s.family, *port)) {
      pool.give_back(*port);
      continue;
    }
    s.legs[side].port = *port;
    s.legs[side].owner = config_.instance;
    s.legs[side].bound = true;
    ports_[index(s.family)][*port] = PortRef{&s, side};
    return true;
  }
  return false;
}

void SessionTable::release(Session& s, int side) {
  auto& leg = s.legs[side];
  if (leg.port == 0) return;
  if (leg.bound) {  // a leg we could not bind (a sync conflict) holds nothing here
    binder_.close(s.family, leg.port);
    ports_[index(s.family)].erase(leg.port);
    pools_[index(s.family)].give_back(leg.port);
  }
  leg.port = 0;
  leg.bound = false;
}

void SessionTable::mark_dirty(Session& s) {
  if (s.dirty) return;
  s.dirty = true;
  dirty_.push_back(SessionKey{s.call_id, s.from_tag});
}

std::variant<UlResult, Error> SessionTable::update(const UpdateLookup& ul, Clock::time_point now) {
  now_ = now;
  auto match = find(ul.call_id, ul.from_tag, ul.to_tag);
  UlResult result;
  if (!match) {
    if (!ul.create) return result;  // L on an unknown session answers port 0
    Session fresh;
    fresh.call_id = ul.call_id;
    fresh.from_tag = ul.from_tag;
    fresh.family = ul.mods.ipv6 ? Family::v6 : Family::v4;
    fresh.created = now;
    fresh.last_active = now;
    fresh.origin = config_.instance;
    auto [it, inserted] = sessions_.emplace(SessionKey{ul.call_id, ul.from_tag}, std::move(fresh));
    if (!allocate(it->second, 0)) {
      sessions_.erase(it);
      return Error::no_ports_session;
    }
    (void)inserted;
    ++stats_.created;
    match = Match{&it->second, 0};
    result.created = true;
  }
  Session& s = *match->session;
  const int side = ul.create ? match->side : 1 - match->side;
  Leg& leg = s.legs[side];
  if (leg.port == 0 || ul.mods.new_port) {
    const bool was_complete = s.complete();
    const auto old_port = leg.port;
    const bool old_bound = leg.bound;  // a synced leg we could not bind holds no index entry here
    if (old_port != 0) {  // n modifier: keep the old pair until the new one is bound
      if (old_bound) ports_[index(s.family)].erase(old_port);
      leg.port = 0;
      leg.bound = false;
    }
    if (!allocate(s, side)) {
      leg.port = old_port;
      leg.bound = old_bound;
      if (old_bound) ports_[index(s.family)][old_port] = PortRef{&s, side};
      return Error::no_ports_leg;
    }
    if (old_port != 0 && old_bound) {
      binder_.close(s.family, old_port);
      pools_[index(s.family)].give_back(old_port);
    }
    if (!was_complete && s.complete()) ++stats_.completed;
  }
  s.last_active = now;  // every U/L resets the TTL
  Leg& facing = s.legs[1 - side];  // the leg towards the party that sent this SDP
  const bool same_family = !ul.address || ul.address->is_v6() == (s.family == Family::v6);
  if (ul.address && same_family) facing.prefill(udp::endpoint(*ul.address, ul.port), now);
  facing.hold = ul.hold;
  facing.asymmetric = ul.mods.asymmetric;
  if (ul.mods.codecs) facing.codecs = *ul.mods.codecs;
  if (ul.mods.weak)
    leg.weak = true;
  else
    s.strong = true;
  if (!ul.to_tag.empty()) s.to_tag = match->side == 0 ? ul.to_tag : ul.from_tag;
  mark_dirty(s);
  result.port = leg.port;
  result.session = &s;
  return result;
}

void SessionTable::destroy(Session& s) { erase(s, false, true); }

void SessionTable::erase(Session& s, bool expired, bool publish) {
  Tombstone t{s.call_id, s.from_tag, s.version + 1, config_.instance, expired};
  release(s, 0);
  release(s, 1);
  ++stats_.destroyed;
  sessions_.erase(SessionKey{s.call_id, s.from_tag});
  if (publish) {
    removals_.push_back(t);
    remember(std::move(t), now_);
  }
}

void SessionTable::remember(Tombstone t, Clock::time_point now) {
  SessionKey key{t.call_id, t.from_tag};
  auto [it, fresh] = tombstones_.try_emplace(key, Buried{t, now});
  if (!fresh) {
    const auto& old = it->second.tomb;
    if (!newer(t.version, t.changed_by, old.version, old.changed_by)) return;
    it->second = Buried{std::move(t), now};
  }
  tombstone_order_.emplace_back(now, std::move(key));
  while (!tombstone_order_.empty() &&
         (tombstone_order_.size() > max_tombstones || now - tombstone_order_.front().first > tombstone_lifetime)) {
    auto found = tombstones_.find(tombstone_order_.front().second);
    if (found != tombstones_.end() && found->second.at == tombstone_order_.front().first) tombstones_.erase(found);
    tombstone_order_.pop_front();
  }
}

std::size_t SessionTable::remove(const Delete& d) {
  std::size_t matched = 0;
  for (auto it = sessions_.lower_bound({d.call_id, {}}); it != sessions_.end() && it->first.call_id == d.call_id;) {
    Session& s = it->second;
    const std::string& stored = it->first.from_tag;
    int idx;
    bool exact;
    if (tag_matches(stored, d.from_tag)) {
      idx = 1;
      exact = stored == d.from_tag;
    } else if (!d.to_tag.empty() && tag_matches(stored, d.to_tag)) {
      idx = 0;
      exact = stored == d.to_tag;
    } else {
      ++it;
      continue;
    }
    ++matched;
    if (d.weak)
      s.legs[idx].weak = false;
    else
      s.strong = false;
    auto next = std::next(it);
    if (!s.strong && !s.legs[0].weak && !s.legs[1].weak) destroy(s);
    if (exact) break;
    it = next;
  }
  return matched;
}

std::size_t SessionTable::clear() {
  const std::size_t n = sessions_.size();
  while (!sessions_.empty()) destroy(sessions_.begin()->second);
  return n;
}

std::chrono::seconds SessionTable::ttl_left(const Session& s, Clock::time_point now) const {
  const auto limit = s.complete() ? config_.ttl : config_.setup_ttl;
  const auto idle = std::chrono::duration_cast<std::chrono::seconds>(now - s.last_active);
  return idle >= limit ? std::chrono::seconds(0) : limit - idle;
}

std::vector<Expired> SessionTable::expire(Clock::time_point now) {
  now_ = now;
  std::vector<Expired> gone;
  for (auto it = sessions_.begin(); it != sessions_.end();) {
    Session& s = it->second;
    ++it;
    const auto limit = s.complete() ? config_.ttl : config_.setup_ttl;
    if (now - s.last_active < limit) continue;
    gone.push_back(Expired{s.call_id, s.from_tag, s.notify_target, s.notify_tag, s.origin});
    ++stats_.timeouts;
    erase(s, true, true);
  }
  return gone;
}

SessionTable::PortRef* SessionTable::lookup(Family family, std::uint16_t port, Kind& kind) {
  auto& index_ = ports_[index(family)];
  kind = port % 2 == 0 ? Kind::rtp : Kind::rtcp;
  auto it = index_.find(kind == Kind::rtp ? port : static_cast<std::uint16_t>(port - 1));
  return it == index_.end() ? nullptr : &it->second;
}

Route SessionTable::route(Family family, std::uint16_t local_port, const udp::endpoint& from,
                          const unsigned char* data, std::size_t size, Clock::time_point now) {
  now_ = now;
  Route r;
  ++stats_.packets_received;
  Kind kind;
  PortRef* ref = lookup(family, local_port, kind);
  if (!ref) {  // a socket closing with packets still queued
    ++stats_.packets_dropped;
    return r;
  }
  Session& s = *ref->session;
  Leg& in = s.legs[ref->side];
  ++in.counters.received;
  const PacketInfo info = inspect(kind, data, size);
  const Verdict v = judge_source(in, kind, from, info, config_.policy, now);
  if (v == Verdict::drop) {
    ++in.counters.dropped;
    ++stats_.packets_dropped;
    return r;
  }
  Stream& stream = in.stream(kind);
  if (v == Verdict::forward && info.valid && !stream.learned && !in.asymmetric) {
    // The signalled address sent a real RTP/RTCP packet: the leg is latched now, and
    // every instance must know, or another could still learn a third party (§6.3).
    stream.learned = true;
    r.learned = true;
    mark_dirty(s);
  }
  if (v == Verdict::learn && !(stream.known && stream.remote == from)) {
    stream.remote = from;
    stream.known = true;
    stream.learned = true;
    r.learned = true;
    mark_dirty(s);  // every instance must relay to the learned address
    if (kind == Kind::rtp && !in.rtcp.learned) {
      in.rtcp.remote = udp::endpoint(from.address(), static_cast<unsigned short>(from.port() + 1));
      in.rtcp.known = true;
    }
  }
  if (kind == Kind::rtp && info.valid) {
    in.have_ssrc = true;
    in.ssrc = info.ssrc;
    in.seq = info.seq;
  }
  s.last_active = now;
  s.active = true;
  r.session = &s;
  r.in_side = ref->side;
  const Leg& out = s.legs[1 - ref->side];
  const Stream& dest = out.stream(kind);
  if (out.port == 0 || !dest.known) {
    ++in.counters.dropped;
    ++stats_.packets_dropped;
    return r;
  }
  r.forward = true;
  r.out_port = static_cast<std::uint16_t>(out.port + (kind == Kind::rtcp ? 1 : 0));
  r.dest = dest.remote;
  ++in.counters.relayed;
  ++stats_.packets_relayed;
  return r;
}

void SessionTable::send_failed(const Route& r) {
  if (!r.session) return;
  auto& c = r.session->legs[r.in_side].counters;
  --c.relayed;
  ++c.dropped;
  --stats_.packets_relayed;
  ++stats_.packets_dropped;
}

Changes SessionTable::take_changes() {
  Changes c;
  for (const auto& key : dirty_) {
    auto it = sessions_.find(key);
    if (it == sessions_.end() || !it->second.dirty) continue;
    Session& s = it->second;
    s.dirty = false;
    ++s.version;
    s.changed_by = config_.instance;
    c.upserts.push_back(&s);
  }
  dirty_.clear();
  c.removals = std::move(removals_);
  removals_.clear();
  return c;
}

std::string SessionTable::bind_remote(Session& s, int side) {
  Leg& leg = s.legs[side];
  const auto f = index(s.family);
  const std::string what = "sync: call-id=" + s.call_id + " tag=" + s.from_tag + " port " + std::to_string(leg.port);
  if (ports_[f].count(leg.port)) {
    ++stats_.sync_port_conflicts;
    const Session& other = *ports_[f].at(leg.port).session;
    return what + " is already used here by call-id=" + other.call_id + " tag=" + other.from_tag + "; leg not bound";
  }
  bool claimed = false;
  if (pools_[f].owns(leg.port) || pools_[f].owns(static_cast<std::uint16_t>(leg.port + 1))) {
    // Only a session this instance allocated before a restart may use our range.
    if (leg.owner != config_.instance || !(claimed = pools_[f].claim(leg.port))) {
      ++stats_.sync_port_conflicts;
      return what + " (allocated by " + leg.owner + ") lies in this instance's port range " +
             "and is not free here: do the -p ranges overlap? leg not bound";
    }
  }
  if (!binder_.open(s.family, leg.port)) {
    if (claimed) pools_[f].give_back(leg.port);
    ++stats_.sync_bind_failures;
    return what + ": cannot bind it here (taken by another program, or the file limit); leg not bound";
  }
  leg.bound = true;
  ports_[f][leg.port] = PortRef{&s, side};
  return {};
}

SessionTable::Applied SessionTable::apply_upsert(Session incoming, Clock::time_point now) {
  now_ = now;
  Applied result;
  auto& problems = result.problems;
  SessionKey key{incoming.call_id, incoming.from_tag};
  if (auto t = tombstones_.find(key); t != tombstones_.end()) {
    const auto& tomb = t->second.tomb;
    if (!newer(incoming.version, incoming.changed_by, tomb.version, tomb.changed_by)) {
      ++stats_.sync_stale;  // deleted here after that change: it must not come back
      return result;
    }
    tombstones_.erase(t);
  }
  incoming.dirty = false;
  incoming.active = false;
  incoming.peer_counters.clear();
  for (auto& leg : incoming.legs) {
    leg.bound = false;
    leg.counters = Counters{};
  }
  auto it = sessions_.find(key);
  Session* s = nullptr;
  if (it != sessions_.end()) {
    Session& mine = it->second;
    if (!newer(incoming.version, incoming.changed_by, mine.version, mine.changed_by)) {
      ++stats_.sync_stale;
      return result;
    }
    for (int side = 0; side < 2; ++side) {
      Leg& old = mine.legs[side];
      Leg& next = incoming.legs[side];
      if (old.port == next.port && mine.family == incoming.family) {
        next.bound = old.bound;  // same port: keep its sockets
      } else {
        release(mine, side);
      }
      next.counters = old.counters;
    }
    incoming.last_active = std::max(incoming.last_active, mine.last_active);
    incoming.created = std::min(incoming.created, mine.created);
    incoming.active = mine.active;
    incoming.peer_counters = std::move(mine.peer_counters);
    mine = std::move(incoming);  // not dirty: a pending local change is superseded
    s = &mine;
  } else {
    if (sessions_.size() >= config_.max_sessions) {
      if (++stats_.sync_refused_full % 1000 == 1)  // once per thousand: a flood must not flood the log
        problems.push_back("sync: the table is full (" + std::to_string(config_.max_sessions) +
                           " sessions); refused call-id=" + incoming.call_id + " and " +
                           std::to_string(stats_.sync_refused_full - 1) + " before it");
      return result;
    }
    auto [pos, inserted] = sessions_.emplace(key, std::move(incoming));
    (void)inserted;
    s = &pos->second;
    ++stats_.created;
  }
  for (int side = 0; side < 2; ++side)
    if (s->legs[side].port != 0 && !s->legs[side].bound)
      if (auto problem = bind_remote(*s, side); !problem.empty()) problems.push_back(std::move(problem));
  ++stats_.sync_applied;
  result.changed = true;
  return result;
}

bool SessionTable::apply_removal(const Tombstone& t, Clock::time_point now) {
  now_ = now;
  auto it = sessions_.find(SessionKey{t.call_id, t.from_tag});
  if (it == sessions_.end()) {
    remember(t, now);
    return false;
  }
  Session& s = it->second;
  if (newer(s.version, s.changed_by, t.version, t.changed_by)) {
    ++stats_.sync_stale;  // the session changed after that deletion
    return false;
  }
  if (t.expired && ttl_left(s, now) > expiry_slack) {
    // It timed out there, but media still flows here: keep it, and tell the peers.
    s.version = std::max(s.version, t.version);
    mark_dirty(s);
    return false;
  }
  remember(t, now);
  if (t.expired) ++stats_.timeouts;
  erase(s, t.expired, false);
  return true;
}

void SessionTable::apply_activity(const SessionKey& key, std::chrono::seconds idle, const std::string& instance,
                                  const std::array<Counters, 2>& counters, Clock::time_point now) {
  auto it = sessions_.find(key);
  if (it == sessions_.end()) return;
  Session& s = it->second;
  const auto seen = now - idle;
  if (seen > s.last_active) s.last_active = seen;
  if (instance.empty() || instance == config_.instance) return;
  auto p = std::find_if(s.peer_counters.begin(), s.peer_counters.end(),
                        [&](const PeerCounters& c) { return c.instance == instance; });
  if (p != s.peer_counters.end())
    p->legs = counters;
  else if (s.peer_counters.size() < max_peer_counters)
    s.peer_counters.push_back(PeerCounters{instance, counters});
}

std::vector<const Session*> SessionTable::take_active() {
  std::vector<const Session*> active;
  for (auto& [key, s] : sessions_) {
    if (!s.active) continue;
    s.active = false;
    active.push_back(&s);
  }
  return active;
}

}  // namespace anyrtpproxy
