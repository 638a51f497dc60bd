// session_table: see session_table.h.
#include "core/session_table.h"

#include <algorithm>
#include <tuple>

namespace anyrtpproxy {

namespace {
// Changes are ordered by version, ties by the name of the instance that made them,
// so every instance picks the same winner.
bool newer(std::uint64_t version, const std::string& by, std::uint64_t than_version, const std::string& than_by) {
  return std::tie(version, by) > std::tie(than_version, than_by);
}

// doc/protocol.md, Tags: exact from-tag -> side 0; else the to-tag, bare or with the from-tag's ";N" -> side 1.
// One search for the const and the mutable table.
template <class Map, class Entry = std::conditional_t<std::is_const_v<Map>, const typename Map::mapped_type,
                                                      typename Map::mapped_type>>
std::optional<std::pair<Entry*, int>> locate(Map& sessions, const std::string& call_id, const std::string& from_tag,
                                             const std::string& to_tag) {
  const auto semi = from_tag.rfind(';');
  const std::string suffix = semi == std::string::npos ? std::string() : from_tag.substr(semi);
  std::optional<std::pair<Entry*, int>> by_to;
  for (auto it = sessions.lower_bound({call_id, {}}); it != sessions.end() && it->first.call_id == call_id; ++it) {
    const std::string& stored = it->first.from_tag;
    if (stored == from_tag) return std::pair<Entry*, int>{&it->second, 0};
    if (!by_to && !to_tag.empty() && (stored == to_tag || (!suffix.empty() && stored == to_tag + suffix)))
      by_to = std::pair<Entry*, int>{&it->second, 1};
  }
  return by_to;
}
// Estimates of what the table's state costs in memory: the strings (the key's
// twice, once in the map's key and once in the session) and the bookkeeping
// around them. Small strings cost their headers only, which the fixed part
// covers; the estimate errs high.
constexpr std::size_t node_overhead = 96;

std::size_t cost_of(const Session& s, const LocalState& local) {
  std::size_t n = sizeof(SessionTable::Entry) + node_overhead + 2 * (s.call_id.size() + s.from_tag.size()) +
                  s.to_tag.size() + s.notify_target.size() + s.notify_tag.size() + s.origin.size() +
                  s.changed_by.size();
  for (const auto& leg : s.legs) n += leg.codecs.size() + leg.owner.size();
  for (const auto& p : local.peer_counters) n += sizeof(p) + p.instance.size();
  return n;
}

std::size_t cost_of(const Tombstone& t) {
  return sizeof(SessionTable::Buried) + node_overhead + 2 * (t.call_id.size() + t.from_tag.size()) +
         t.changed_by.size();
}

// An entry of tombstone_order_: the time and another copy of the key.
std::size_t cost_of_order(const SessionKey& k) {
  return sizeof(std::pair<Clock::time_point, SessionKey>) + k.call_id.size() + k.from_tag.size();
}
}  // namespace

SessionTable::SessionTable(TableConfig config, std::array<PortAllocator, slot_count> pools, PortBinder& binder)
    : config_(config), pools_(std::move(pools)), binder_(binder) {}

SessionTable::~SessionTable() {
  for (auto& [key, e] : sessions_) {
    release(e, 0);
    release(e, 1);
  }
}

std::optional<SessionTable::Match> SessionTable::find(const std::string& call_id, const std::string& from_tag,
                                                      const std::string& to_tag) const {
  const auto found = locate(sessions_, call_id, from_tag, to_tag);
  if (!found) return std::nullopt;
  return Match{found->first, found->second};
}

const SessionTable::Entry* SessionTable::at(const SessionKey& key) const {
  const auto it = sessions_.find(key);
  return it == sessions_.end() ? nullptr : &it->second;
}

Slot SessionTable::widest(Slot slot) const {
  Slot best = slot;
  for (std::size_t s = slot % 4; s < slot_count; s += 4)
    if (pools_[s].available() > pools_[best].available()) best = static_cast<Slot>(s);
  return best;
}

std::optional<PortShortage> SessionTable::allocate(Entry& e, int side, Slot slot, bool exact) {
  Session& s = e.session;
  if (!exact) slot = widest(slot);
  auto& pool = pools_[slot];
  if (pool.available() == 0) return PortShortage::range_used_up;
  // A pair we cannot bind (taken by another program) goes to the tail; try each
  // once. Without descriptors no pair binds: the search ends at once.
  for (std::size_t tries = pool.available(); tries > 0; --tries) {
    const auto port = pool.take();
    if (!port) break;
    const BindResult bound = binder_.open(slot, *port);
    if (bound != BindResult::bound) {
      pool.give_back(*port);
      if (bound == BindResult::no_descriptors) return PortShortage::file_limit;
      continue;
    }
    s.legs[side].port = *port;
    s.legs[side].slot = slot;
    s.legs[side].owner = config_.instance;
    e.local.legs[side].bound = true;
    ports_[slot][*port] = PortRef{&e, side};
    return std::nullopt;
  }
  return PortShortage::all_taken;
}

void SessionTable::release(Entry& e, int side) {
  auto& leg = e.session.legs[side];
  auto& bound = e.local.legs[side].bound;
  const Slot f = leg.slot;
  if (leg.port == 0) return;
  touch(e);
  if (bound) {  // a leg we could not bind (a sync conflict) holds nothing here
    let_go(f, leg.port, std::exchange(e.local.legs[side].parked, false));
    ports_[f].erase(leg.port);
    pools_[f].give_back(leg.port);
    freed_ = true;
  }
  leg.port = 0;
  bound = false;
}

void SessionTable::let_go(Slot slot, std::uint16_t port, bool parked) {
  if (parked)
    binder_.unpark(slot, port);
  else
    binder_.close(slot, port);
}

BindResult SessionTable::adopt(Slot slot, std::uint16_t local_port) {
  Kind kind;
  const PortRef* ref = lookup(slot, local_port, kind);
  if (!ref) return BindResult::taken;
  Entry& e = *ref->entry;
  for (int side = 0; side < 2; ++side) {
    LegLocal& here = e.local.legs[side];
    if (!here.parked) continue;
    const Leg& leg = e.session.legs[side];
    if (const BindResult r = binder_.open(leg.slot, leg.port); r != BindResult::bound) return r;
    binder_.unpark(leg.slot, leg.port);
    here.parked = false;
    here.adopted = true;
    ++adoptions_;
    touch(e);
  }
  return BindResult::bound;
}

std::size_t SessionTable::repark_idle(Clock::time_point now, std::chrono::seconds idle) {
  std::size_t legs = 0;
  for (auto& [key, e] : sessions_) {
    if (now - e.local.relayed_at < idle) continue;
    if (e.session.legs[0].play.active() || e.session.legs[1].play.active()) continue;  // the player sends from them
    for (int side = 0; side < 2; ++side) {
      LegLocal& here = e.local.legs[side];
      const Leg& leg = e.session.legs[side];
      if (!here.adopted || !here.bound || here.parked || leg.owner == config_.instance) continue;  // ours stay bound
      binder_.close(leg.slot, leg.port);
      here.adopted = false;
      if (!binder_.park(leg.slot, leg.port)) {  // no catch-all any more, or the port was taken meanwhile: bind it again
        if (binder_.open(leg.slot, leg.port) == BindResult::bound) continue;
        here.bound = false;  // unbound: reported, and retried like a peer's leg that could not be bound
        ports_[leg.slot].erase(leg.port);
        freed_ = true;
        continue;
      }
      here.parked = true;
      ++legs;
      freed_ = true;
      touch(e);
    }
  }
  return legs;
}

void SessionTable::account(Entry& e) {
  const std::size_t now = cost_of(e.session, e.local);
  bytes_ = bytes_ - e.local.bytes + now;
  e.local.bytes = now;
}

void SessionTable::mark_dirty(Entry& e) {
  touch(e);
  if (e.local.dirty) return;
  e.local.dirty = true;
  dirty_.push_back(e.session.key());
}

std::variant<OfferResult, OfferFailure> SessionTable::update(const Offer& offer, Clock::time_point now) {
  auto match = locate(sessions_, offer.call_id, offer.from_tag, offer.to_tag);
  OfferResult result;
  if (!match) {
    if (!offer.create) return result;  // L on an unknown session answers port 0
    Entry fresh;
    fresh.session.call_id = offer.call_id;
    fresh.session.from_tag = offer.from_tag;
    fresh.session.created = now;
    fresh.session.last_active = now;
    fresh.session.origin = config_.instance;
    fresh.session.family = family_of(offer.own_slot);
    fresh.session.legs[0].slot = offer.own_slot;
    fresh.session.legs[1].slot = offer.facing_slot;
    fresh.session.legs[0].record = fresh.session.legs[1].record = offer.record;
    auto [it, inserted] = sessions_.emplace(SessionKey{offer.call_id, offer.from_tag}, std::move(fresh));
    if (const auto shortage = allocate(it->second, 0, offer.own_slot, offer.named_address)) {
      sessions_.erase(it);
      return OfferFailure{OfferError::no_ports_session, *shortage};
    }
    (void)inserted;
    ++stats_.created;
    ++stats_.created_local;
    match = std::pair<Entry*, int>{&it->second, 0};
    result.created = true;
  }
  Entry& e = *match->first;
  Session& s = e.session;
  const int side = offer.create ? match->second : 1 - match->second;
  Leg& leg = s.legs[side];
  bool& bound = e.local.legs[side].bound;
  if (leg.port == 0 || offer.new_port) {
    const bool was_complete = s.complete();
    const auto old_port = leg.port;
    const Slot old_slot = leg.slot;
    const bool old_bound = bound;  // a synced leg we could not bind holds no index entry here
    const bool old_parked = std::exchange(e.local.legs[side].parked, false);
    if (old_port != 0) {  // n modifier: keep the old pair until the new one is bound
      if (old_bound) ports_[old_slot].erase(old_port);
      leg.port = 0;
      bound = false;
    }
    // A leg gets the slot its session was created with; with n, the one this command names.
    const Slot slot = old_port != 0 && offer.explicit_slot ? offer.own_slot : old_slot;
    if (const auto shortage = allocate(e, side, slot, offer.named_address && slot == offer.own_slot)) {
      leg.port = old_port;
      leg.slot = old_slot;
      bound = old_bound;
      e.local.legs[side].parked = old_parked;
      if (old_bound) ports_[old_slot][old_port] = PortRef{&e, side};
      return OfferFailure{OfferError::no_ports_leg, *shortage};
    }
    if (old_port != 0 && old_bound) {
      let_go(old_slot, old_port, old_parked);
      pools_[old_slot].give_back(old_port);
    }
    if (!was_complete && s.complete()) ++stats_.completed;
  }
  s.last_active = now;  // every U/L resets the TTL
  Leg& facing = s.legs[1 - side];  // the leg towards the party that sent this SDP
  // The remote of a leg on an IPv4 relay address is IPv4, and so on.
  const bool same_family = !offer.remote || offer.remote->address().is_v6() == (family_of(facing.slot) == Family::v6);
  if (offer.remote && same_family) facing.prefill(*offer.remote, now);
  facing.hold = offer.hold;
  facing.asymmetric = offer.asymmetric;
  if (offer.codecs) facing.codecs = *offer.codecs;
  if (offer.weak)
    leg.weak = true;
  else
    s.strong = true;
  if (!offer.to_tag.empty()) s.to_tag = match->second == 0 ? offer.to_tag : offer.from_tag;
  if (offer.create) {  // every U says anew whether the call wants a timeout notification
    s.notify_target = offer.notify_target;
    s.notify_tag = offer.notify_tag;
  }
  mark_dirty(e);
  account(e);
  result.port = leg.port;
  result.found = true;
  result.key = s.key();
  result.slot = leg.slot;
  return result;
}

bool SessionTable::destroy(const SessionKey& key, Clock::time_point now) {
  auto it = sessions_.find(key);
  if (it == sessions_.end()) return false;
  erase(it->second, CloseReason::deleted, now);
  return true;
}

// A peer's removal is not published again (the peer told everyone); every other is.
void SessionTable::erase(Entry& e, CloseReason why, Clock::time_point now) {
  touch(e);
  const Session& s = e.session;
  const bool expired = why == CloseReason::timeout || why == CloseReason::setup_timeout;
  const bool publish = why != CloseReason::peer;
  Tombstone t{s.call_id, s.from_tag, s.version + 1, config_.instance, expired};
  release(e, 0);
  release(e, 1);
  if (e.local.recording) closed_recordings_.push_back(e.local.recording);
  playing_.erase({s.key(), 0});
  playing_.erase({s.key(), 1});
  ++stats_.destroyed;
  ++stats_.closed[static_cast<std::size_t>(why)];
  bytes_ -= e.local.bytes;
  sessions_.erase(s.key());
  if (publish) {
    removals_.push_back(t);
    remember(std::move(t), now);
  }
}

void SessionTable::remember(Tombstone t, Clock::time_point now) {
  SessionKey key{t.call_id, t.from_tag};
  auto [it, fresh] = tombstones_.try_emplace(key, Buried{t, now});
  if (!fresh) {
    const auto& old = it->second.tomb;
    if (!newer(t.version, t.changed_by, old.version, old.changed_by)) return;
    tombstone_bytes_ -= cost_of(old);
    it->second = Buried{std::move(t), now};
  }
  tombstone_bytes_ += cost_of(it->second.tomb) + cost_of_order(key);
  tombstone_order_.emplace_back(now, std::move(key));
  // The oldest go first: beyond the count, the lifetime or the byte budget.
  while (!tombstone_order_.empty() &&
         (tombstone_order_.size() > max_tombstones || now - tombstone_order_.front().first > tombstone_lifetime ||
          tombstone_bytes_ > config_.max_tombstone_bytes)) {
    const auto& [at, oldest] = tombstone_order_.front();
    auto found = tombstones_.find(oldest);
    if (found != tombstones_.end() && found->second.at == at) {
      tombstone_bytes_ -= cost_of(found->second.tomb);
      tombstones_.erase(found);
    }
    tombstone_bytes_ -= cost_of_order(oldest);
    tombstone_order_.pop_front();
  }
}

std::size_t SessionTable::remove(const std::string& call_id, const std::string& from_tag, const std::string& to_tag,
                                 bool weak, Clock::time_point now) {
  std::size_t matched = 0;
  for (auto it = sessions_.lower_bound({call_id, {}}); it != sessions_.end() && it->first.call_id == call_id;) {
    Session& s = it->second.session;
    const std::string& stored = it->first.from_tag;
    int idx;
    bool exact;
    if (tag_matches(stored, from_tag)) {
      idx = 1;
      exact = stored == from_tag;
    } else if (!to_tag.empty() && tag_matches(stored, to_tag)) {
      idx = 0;
      exact = stored == to_tag;
    } else {
      ++it;
      continue;
    }
    ++matched;
    if (weak)
      s.legs[idx].weak = false;
    else
      s.strong = false;
    auto next = std::next(it);
    if (!s.strong && !s.legs[0].weak && !s.legs[1].weak) erase(it->second, CloseReason::deleted, now);
    if (exact) break;
    it = next;
  }
  return matched;
}

std::size_t SessionTable::clear(Clock::time_point now) {
  const std::size_t n = sessions_.size();
  while (!sessions_.empty()) erase(sessions_.begin()->second, CloseReason::cleared, now);
  return n;
}

std::chrono::seconds SessionTable::ttl_left(const Session& s, Clock::time_point now) const {
  const auto limit = s.complete() ? config_.ttl : config_.setup_ttl;
  const auto idle = std::chrono::duration_cast<std::chrono::seconds>(now - s.last_active);
  return idle >= limit ? std::chrono::seconds(0) : limit - idle;
}

std::vector<Expired> SessionTable::expire(Clock::time_point now) {
  std::vector<Expired> gone;
  for (auto it = sessions_.begin(); it != sessions_.end();) {
    Entry& e = it->second;
    const Session& s = e.session;
    ++it;
    const auto limit = s.complete() ? config_.ttl : config_.setup_ttl;
    if (now - s.last_active < limit) continue;
    gone.push_back(Expired{s.call_id, s.from_tag, s.notify_target, s.notify_tag, s.origin});
    ++stats_.timeouts;
    erase(e, s.complete() ? CloseReason::timeout : CloseReason::setup_timeout, now);
  }
  return gone;
}

const SessionTable::PortRef* SessionTable::lookup(Slot slot, std::uint16_t port, Kind& kind) const {
  const auto& by_port = ports_[slot];
  kind = port % 2 == 0 ? Kind::rtp : Kind::rtcp;
  auto it = by_port.find(kind == Kind::rtp ? port : static_cast<std::uint16_t>(port - 1));
  return it == by_port.end() ? nullptr : &it->second;
}

Route SessionTable::route(Slot slot, std::uint16_t local_port, const udp::endpoint& from,
                          const unsigned char* data, std::size_t size, Clock::time_point now) {
  Route r;
  ++stats_.packets_received;
  stats_.bytes_received += size;
  Kind kind;
  const PortRef* ref = lookup(slot, local_port, kind);
  if (!ref) {  // a socket closing with packets still queued
    drop(nullptr, DropReason::unknown_port);
    return r;
  }
  Entry& e = *ref->entry;
  Session& s = e.session;
  Leg& in = s.legs[ref->side];
  LegLocal& here = e.local.legs[ref->side];
  Counters& counters = here.counters;
  ++counters.received;
  const PacketInfo info = inspect(kind, data, size);
  const Verdict v = judge_source(in, kind, from, info, config_.policy, now, here.heard);
  if (v == Verdict::drop) {
    drop(&counters, DropReason::source_refused);
    return r;
  }
  if (kind == Kind::rtp) here.heard = now;  // the source the leg accepts (now) is sending
  e.local.relayed_at = now;
  Stream& stream = in.stream(kind);
  if (v == Verdict::forward && info.valid && !stream.learned && !in.asymmetric) {
    // The signalled address sent a real RTP/RTCP packet: the leg is latched now, and
    // every instance must know, or another could still learn a third party (doc/protocol.md, Latching).
    stream.learned = true;
    r.learned = true;
    mark_dirty(e);
  }
  if (v == Verdict::learn && !(stream.known && stream.remote == from)) {
    stream.remote = from;
    stream.known = true;
    stream.learned = true;
    r.learned = true;
    mark_dirty(e);  // every instance must relay to the learned address
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
  e.local.active = true;
  if (in.copy) {  // what the leg accepts is copied (C), forwarded or not
    r.copy = true;
    r.copy_to = kind == Kind::rtp ? in.copy_to
                                  : udp::endpoint(in.copy_to.address(), static_cast<unsigned short>(in.copy_to.port() + 1));
  }
  if (in.record) {  // what the leg accepts is recorded, forwarded or not
    r.record = true;
    r.recording = e.local.recording;
    r.in_side = static_cast<std::uint8_t>(ref->side);
    r.kind = kind;
  }
  const Leg& out = s.legs[1 - ref->side];
  const Stream& dest = out.stream(kind);
  if (out.port == 0 || !dest.known) {
    drop(&counters, DropReason::no_destination);
    return r;
  }
  if (out.play.active()) {  // the party hears the prompt instead
    drop(&counters, DropReason::playback);
    return r;
  }
  r.forward = true;
  r.out_slot = out.slot;
  r.out_port = static_cast<std::uint16_t>(out.port + (kind == Kind::rtcp ? 1 : 0));
  r.dest = dest.remote;
  ++counters.relayed;
  ++stats_.packets_relayed;
  stats_.bytes_relayed += size;
  return r;
}

void SessionTable::drop(Counters* leg, DropReason why) {
  if (leg) ++leg->dropped;
  ++stats_.packets_dropped;
  ++stats_.dropped[static_cast<std::size_t>(why)];
}

void SessionTable::send_failed(Slot slot, std::uint16_t local_port, std::size_t size, DropReason why) {
  Kind kind;
  const PortRef* ref = lookup(slot, local_port, kind);
  if (!ref) return;
  auto& c = ref->entry->local.legs[ref->side].counters;
  --c.relayed;
  --stats_.packets_relayed;
  stats_.bytes_relayed -= std::min<std::uint64_t>(size, stats_.bytes_relayed);
  drop(&c, why);
}

std::size_t SessionTable::record(const std::string& call_id, const std::string& from_tag, const std::string& to_tag,
                                 bool on, bool both) {
  std::size_t matched = 0;
  for (auto it = sessions_.lower_bound(SessionKey{call_id, ""}); it != sessions_.end() && it->first.call_id == call_id;
       ++it) {
    Session& s = it->second.session;
    int idx;
    if (tag_matches(s.from_tag, from_tag))
      idx = 1;  // the caller's party: what it sends arrives on the caller-facing leg
    else if (!to_tag.empty() && tag_matches(s.from_tag, to_tag))
      idx = 0;
    else
      continue;
    ++matched;
    for (int side = 0; side < 2; ++side) {
      if (!both && side != idx) continue;
      s.legs[side].record = on;
      if (!on) s.legs[side].copy = false;  // N stops C's copies too
    }
    if (!on) stop_recording_if_idle(it->second);
    if (!s.legs[0].record && !s.legs[1].record) s.record_name.clear();  // the next R records under rtpproxy's name
    mark_dirty(it->second);
  }
  return matched;
}

std::optional<std::pair<Slot, std::uint16_t>> SessionTable::copy(const std::string& call_id,
                                                                 const std::string& from_tag,
                                                                 const std::string& to_tag,
                                                                 std::optional<udp::endpoint> to) {
  const auto match = locate(sessions_, call_id, from_tag, to_tag);
  if (!match) return std::nullopt;
  Entry& e = *match->first;
  Leg& leg = e.session.legs[1 - match->second];  // it faces the party of from_tag: what that party sends arrives here
  leg.copy = to.has_value();
  leg.copy_to = to ? *to : udp::endpoint();
  mark_dirty(e);
  return std::make_pair(leg.slot, leg.port);
}

bool SessionTable::record_into(const std::string& call_id, const std::string& from_tag, const std::string& to_tag,
                               const std::string& name) {
  const auto match = locate(sessions_, call_id, from_tag, to_tag);
  if (!match) return false;
  Entry& e = *match->first;
  e.session.legs[1 - match->second].record = true;  // the leg facing the party of from_tag
  if (e.session.record_name != name && e.local.recording) {
    closed_recordings_.push_back(e.local.recording);  // the next packet opens the file of the new name
    e.local.recording = 0;
  }
  e.session.record_name = name;
  mark_dirty(e);
  return true;
}

bool SessionTable::play(const std::string& call_id, const std::string& from_tag, const std::string& to_tag,
                        Playback p) {
  const auto match = locate(sessions_, call_id, from_tag, to_tag);
  if (!match) return false;
  Entry& e = *match->first;
  e.session.legs[1 - match->second].play = std::move(p);  // the leg facing the party of from_tag
  index_play(e);
  mark_dirty(e);
  return true;
}

bool SessionTable::stop_play(const std::string& call_id, const std::string& from_tag, const std::string& to_tag) {
  const auto match = locate(sessions_, call_id, from_tag, to_tag);
  if (!match) return false;
  finish_play(match->first->session.key(), 1 - match->second);
  return true;
}

void SessionTable::finish_play(const SessionKey& key, int side) {
  auto it = sessions_.find(key);
  if (it == sessions_.end() || !it->second.session.legs[side].play.active()) return;
  it->second.session.legs[side].play = Playback{};
  index_play(it->second);
  mark_dirty(it->second);
}

void SessionTable::take_over_play(const SessionKey& key, int side, const std::string& owner) {
  auto it = sessions_.find(key);
  if (it == sessions_.end() || !it->second.session.legs[side].play.active()) return;
  it->second.session.legs[side].play.owner = owner;
  mark_dirty(it->second);
}

void SessionTable::index_play(const Entry& e) {
  for (int side = 0; side < 2; ++side) {
    if (e.session.legs[side].play.active())
      playing_.insert({e.session.key(), side});
    else
      playing_.erase({e.session.key(), side});
  }
}

void SessionTable::stop_recording_if_idle(Entry& e) {
  if (!e.local.recording || e.session.legs[0].record || e.session.legs[1].record) return;
  closed_recordings_.push_back(e.local.recording);
  e.local.recording = 0;
}

void SessionTable::set_recording(Slot slot, std::uint16_t local_port, std::uint32_t id) {
  Kind kind;
  if (const PortRef* ref = lookup(slot, local_port, kind)) ref->entry->local.recording = id;
}

const Session* SessionTable::session_at(Slot slot, std::uint16_t local_port) const {
  Kind kind;
  const PortRef* ref = lookup(slot, local_port, kind);
  return ref ? &ref->entry->session : nullptr;
}

bool SessionTable::offloaded(const SessionKey& key, int side, Kind kind, std::uint64_t packets, std::uint64_t bytes,
                             Clock::time_point last, std::uint32_t ssrc, std::uint16_t seq) {
  auto it = sessions_.find(key);
  if (it == sessions_.end()) return false;
  if (packets == 0) return true;
  Entry& e = it->second;
  Leg& in = e.session.legs[side];
  LegLocal& here = e.local.legs[side];
  here.counters.received += packets;
  here.counters.relayed += packets;
  stats_.packets_received += packets;
  stats_.packets_relayed += packets;
  stats_.bytes_received += bytes;
  stats_.bytes_relayed += bytes;
  stats_.packets_offloaded += packets;
  stats_.bytes_offloaded += bytes;
  e.session.last_active = std::max(e.session.last_active, last);
  e.local.active = true;
  e.local.relayed_at = std::max(e.local.relayed_at, last);
  if (kind == Kind::rtp) {
    here.heard = std::max(here.heard, last);
    in.have_ssrc = true;
    in.ssrc = ssrc;
    in.seq = seq;
  }
  return true;
}

std::optional<Latch> SessionTable::latch_at(Slot slot, std::uint16_t local_port) const {
  Kind kind;
  const PortRef* ref = lookup(slot, local_port, kind);
  if (!ref) return std::nullopt;
  const Session& s = ref->entry->session;
  return Latch{s.key(), ref->side, kind, s.legs[ref->side].stream(kind).remote};
}

Changes SessionTable::take_changes() {
  Changes c;
  for (const auto& key : dirty_) {
    auto it = sessions_.find(key);
    if (it == sessions_.end() || !it->second.local.dirty) continue;
    Session& s = it->second.session;
    it->second.local.dirty = false;
    ++s.version;
    s.changed_by = config_.instance;
    c.upserts.push_back(s);
  }
  dirty_.clear();
  c.removals = std::move(removals_);
  removals_.clear();
  return c;
}

std::optional<Event> SessionTable::bind_remote(Entry& e, int side, bool count) {
  const Session& s = e.session;
  const Leg& leg = s.legs[side];
  const Slot f = leg.slot;
  const std::string what = "sync: call-id=" + s.call_id + " tag=" + s.from_tag + " port " + std::to_string(leg.port);
  auto problem = [](std::string cause, std::string text) { return Event{Level::error, std::move(text), std::move(cause)}; };
  if (ports_[f].count(leg.port)) {
    stats_.sync_port_conflicts += count;
    const Session& other = ports_[f].at(leg.port).entry->session;
    return problem("sync-port-in-use", what + " is already used here by call-id=" + other.call_id + " tag=" +
                                           other.from_tag + "; leg not bound");
  }
  if (pools_[f].capacity() == 0) {  // no -i address at that position here
    stats_.sync_bind_failures += count;
    return problem("sync-no-address", what + " lies on relay address " + std::to_string(address_index(f) + 1) +
                                          " of its family" + (side_of(f) == Side::external ? " (external)" : "") +
                                          ", which this instance does not have: give every instance as many -i "
                                          "addresses; leg not bound");
  }
  bool claimed = false;
  if (pools_[f].owns(leg.port) || pools_[f].owns(static_cast<std::uint16_t>(leg.port + 1))) {
    // Only a session this instance allocated before a restart may use our range.
    if (leg.owner != config_.instance || !(claimed = pools_[f].claim(leg.port))) {
      stats_.sync_port_conflicts += count;
      return problem("sync-port-in-our-range", what + " (allocated by " + leg.owner +
                                                 ") lies in this instance's port range and is not free here: "
                                                 "do the -p ranges overlap? leg not bound");
    }
  }
  if (binder_.park(f, leg.port)) {  // no sockets until a packet comes for it
    e.local.legs[side].bound = e.local.legs[side].parked = true;
    ports_[f][leg.port] = PortRef{&e, side};
    touch(e);
    return std::nullopt;
  }
  if (const BindResult bound = binder_.open(f, leg.port); bound != BindResult::bound) {
    if (claimed) pools_[f].give_back(leg.port);
    stats_.sync_bind_failures += count;
    if (bound == BindResult::no_descriptors)
      return problem("sync-file-limit", what + ": cannot bind it here: the open-file limit is reached; leg not bound");
    return problem("sync-port-taken", what + ": cannot bind it here: taken by another program; leg not bound");
  }
  e.local.legs[side].bound = true;
  ports_[f][leg.port] = PortRef{&e, side};
  touch(e);
  return std::nullopt;
}

SessionTable::Applied SessionTable::apply_upsert(Session incoming) {
  Applied result;
  auto& problems = result.problems;
  SessionKey key{incoming.call_id, incoming.from_tag};
  // Everything that refuses the session comes first: nothing has changed yet.
  const auto t = tombstones_.find(key);
  if (t != tombstones_.end() &&
      !newer(incoming.version, incoming.changed_by, t->second.tomb.version, t->second.tomb.changed_by)) {
    ++stats_.sync_stale;  // deleted here after that change: it must not come back
    return result;
  }
  const auto it = sessions_.find(key);
  if (it != sessions_.end() &&
      !newer(incoming.version, incoming.changed_by, it->second.session.version, it->second.session.changed_by)) {
    ++stats_.sync_stale;
    return result;
  }
  const std::size_t before = it != sessions_.end() ? it->second.local.bytes : 0;
  const std::size_t after = cost_of(incoming, it != sessions_.end() ? it->second.local : LocalState{});
  if (after > before && bytes_ - before + after > config_.max_bytes) {
    ++stats_.sync_refused_budget;
    problems.push_back(Event{Level::error,
                             "sync: the sessions' memory budget (" + std::to_string(config_.max_bytes >> 20) +
                                 " MiB) is used up; refused call-id=" + incoming.call_id,
                             "sync-budget"});
    return result;
  }
  if (it == sessions_.end() && sessions_.size() >= config_.max_sessions) {
    ++stats_.sync_refused_full;
    problems.push_back(Event{Level::error,
                             "sync: the table is full (" + std::to_string(config_.max_sessions) +
                                 " sessions); refused call-id=" + incoming.call_id,
                             "sync-table-full"});
    return result;
  }
  if (t != tombstones_.end()) {  // a change newer than the deletion: the session is back
    tombstone_bytes_ -= cost_of(t->second.tomb);  // its entry in tombstone_order_ goes when it comes due
    tombstones_.erase(t);
  }
  Entry* e = nullptr;
  if (it != sessions_.end()) {
    Entry& mine = it->second;
    for (int side = 0; side < 2; ++side)  // a leg on the same port keeps its sockets; a moved one lets them go
      if (mine.session.legs[side].port != incoming.legs[side].port || mine.session.legs[side].slot != incoming.legs[side].slot)
        release(mine, side);
    incoming.last_active = std::max(incoming.last_active, mine.session.last_active);
    incoming.created = std::min(incoming.created, mine.session.created);
    if (incoming.record_name != mine.session.record_name && mine.local.recording) {
      closed_recordings_.push_back(mine.local.recording);  // a peer's C named another file
      mine.local.recording = 0;
    }
    mine.session = std::move(incoming);
    mine.local.dirty = false;  // a pending local change is superseded
    e = &mine;
  } else {
    e = &sessions_.emplace(key, Entry{std::move(incoming), LocalState{}}).first->second;
    ++stats_.created;
  }
  account(*e);
  touch(*e);
  stop_recording_if_idle(*e);  // a peer's N
  index_play(*e);
  for (int side = 0; side < 2; ++side)
    if (e->session.legs[side].port != 0 && !e->local.legs[side].bound)
      if (auto problem = bind_remote(*e, side)) problems.push_back(std::move(*problem));
  ++stats_.sync_applied;
  result.changed = true;
  return result;
}

bool SessionTable::apply_removal(const Tombstone& t, Clock::time_point now) {
  auto it = sessions_.find(SessionKey{t.call_id, t.from_tag});
  if (it == sessions_.end()) {
    remember(t, now);
    return false;
  }
  Session& s = it->second.session;
  if (newer(s.version, s.changed_by, t.version, t.changed_by)) {
    ++stats_.sync_stale;  // the session changed after that deletion
    return false;
  }
  if (t.expired && ttl_left(s, now) > expiry_slack) {
    // It timed out there, but media still flows here: keep it, and tell the peers.
    s.version = std::max(s.version, t.version);
    mark_dirty(it->second);
    return false;
  }
  remember(t, now);
  if (t.expired) ++stats_.timeouts;
  erase(it->second, CloseReason::peer, now);
  return true;
}

void SessionTable::apply_activity(const ActivityEntry& entry, const std::string& instance, Clock::time_point now) {
  auto it = sessions_.find(entry.key);
  if (it == sessions_.end()) return;
  Session& s = it->second.session;
  const auto seen = now - std::chrono::seconds(entry.idle);
  if (seen > s.last_active) s.last_active = seen;
  if (instance.empty() || instance == config_.instance) return;
  auto& local = it->second.local;
  auto& peers = local.peer_counters;
  auto p = std::find_if(peers.begin(), peers.end(), [&](const PeerCounters& c) { return c.instance == instance; });
  for (int side = 0; side < 2; ++side) {
    // The peer relayed packets of this leg since its last report: its latched source
    // is sending there, so it is not silent here either (no re-latch behind its back).
    const std::uint64_t before = p != peers.end() ? p->legs[side].relayed : 0;
    if (entry.counters[side].relayed > before) local.legs[side].heard = std::max(local.legs[side].heard, seen);
  }
  if (p != peers.end()) {
    p->legs = entry.counters;
    p->unbound = entry.unbound;
  } else if (peers.size() < max_peer_counters) {
    peers.push_back(PeerCounters{instance, entry.counters, entry.unbound});
    account(it->second);
  }
}

namespace {
std::uint8_t unbound_mask(const SessionTable::Entry& e) {
  std::uint8_t mask = 0;
  for (int side = 0; side < 2; ++side)
    if (e.session.legs[side].port != 0 && !e.local.legs[side].bound) mask |= static_cast<std::uint8_t>(1 << side);
  return mask;
}
}  // namespace

std::vector<ActivityEntry> SessionTable::take_activity(Clock::time_point now) {
  std::vector<ActivityEntry> report;
  for (auto& [key, e] : sessions_) {
    const std::uint8_t unbound = unbound_mask(e);
    if (!e.local.active && !e.local.report && !unbound) continue;
    // Without local packets the entry says how long the session has been idle,
    // so that a peer's expiry is not put off by a report of unbound legs.
    const auto idle = e.local.active ? std::chrono::seconds(0)
        : std::chrono::duration_cast<std::chrono::seconds>(std::max(now - e.session.last_active, Clock::duration(0)));
    report.push_back(ActivityEntry{key, static_cast<std::uint32_t>(std::min<std::int64_t>(idle.count(), 86400 * 365)),
                                   {e.local.legs[0].counters, e.local.legs[1].counters}, unbound});
    e.local.active = false;
    e.local.report = false;
  }
  return report;
}

std::vector<Event> SessionTable::retry_unbound() {
  std::vector<Event> bound;
  for (auto& [key, e] : sessions_) {
    for (int side = 0; side < 2; ++side) {
      if (e.session.legs[side].port == 0 || e.local.legs[side].bound) continue;
      auto problem = bind_remote(e, side, false);
      if (problem && problem->cause == "sync-file-limit") return bound;  // nothing more binds now
      if (problem) continue;
      e.local.report = true;
      bound.push_back(Event{Level::notice, "sync: call-id=" + key.call_id + " tag=" + key.from_tag + " port " +
                                               std::to_string(e.session.legs[side].port) +
                                               " is bound now (it could not be before)"});
    }
  }
  return bound;
}

std::size_t SessionTable::unbound_legs() const {
  std::size_t n = 0;
  for (const auto& [key, e] : sessions_) n += (unbound_mask(e) & 1) + (unbound_mask(e) >> 1);
  return n;
}

std::size_t SessionTable::parked_legs() const {
  std::size_t n = 0;
  for (const auto& [key, e] : sessions_) n += e.local.legs[0].parked + e.local.legs[1].parked;
  return n;
}

}  // namespace anyrtpproxy
