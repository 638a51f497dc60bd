// session_table: the daemon's state, all sessions by (call-id, from-tag) plus
// an index from local port to session leg, and the rtpproxy session rules:
// tag resolution and D's prefix rule (doc/protocol.md, Tags), U/L, time to live
// (Timeouts) and the per-packet routing decision (Sessions and legs, Latching).
//
// Pure: time comes in as a parameter of every call that needs it, sockets are
// opened and closed through the PortBinder the owner hands in (the data plane,
// which never points back at the table), and nothing is logged. It knows
// nothing of the control protocol: the controller fills an Offer. What it
// hands out is values and keys, never pointers that outlive the call.
#pragma once

#include "core/event.h"
#include "core/port_allocator.h"
#include "core/session.h"

#include <array>
#include <deque>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <unordered_map>
#include <utility>
#include <variant>
#include <vector>

namespace anyrtpproxy {

// What opening a port pair came to. `taken`: that pair is not to be had (another
// program holds it), the next may be; `no_descriptors`: the process or system
// file limit is reached, no pair will bind until sockets are closed.
enum class BindResult { bound, taken, no_descriptors };

// The data plane as the table sees it: opens and closes the RTP+RTCP socket
// pair of a port. open() answers at once, because a U that cannot bind a pair
// tries the next one before it replies, as rtpproxy does.
//
// A peer's leg may instead be parked: no sockets, its packets brought by the
// catch-all receive path (catch_all.h) until the first one adopts the leg.
// park() is false when there is no such path: the leg is then opened.
class PortBinder {
public:
  virtual ~PortBinder() = default;
  virtual BindResult open(Slot slot, std::uint16_t rtp_port) = 0;
  virtual void close(Slot slot, std::uint16_t rtp_port) = 0;
  virtual bool park(Slot, std::uint16_t) { return false; }
  virtual void unpark(Slot, std::uint16_t) {}
};

struct TableConfig {
  std::chrono::seconds ttl{60};
  std::chrono::seconds setup_ttl{60};
  LatchPolicy policy = LatchPolicy::once;
  std::string instance = "local";  // this instance's name in the cluster
  // No cluster can hold more: every session owns an even port of some instance's
  // range, per family (the daemon scales it with its -i addresses: two more
  // addresses, 65,536 more). Sessions a peer sends beyond this are refused (counted).
  std::size_t max_sessions = 65536;
  // What the sessions and the tombstones may take in memory (strings and
  // bookkeeping, estimated): a peer's sessions beyond it are refused (counted),
  // the oldest tombstones beyond it forgotten. Real sessions take about 600
  // bytes: 64 MiB holds the 65,536 a cluster can have, with room.
  std::size_t max_bytes = 64 << 20;
  std::size_t max_tombstone_bytes = 16 << 20;
  // The kernel fast path is on: the table remembers which sessions changed
  // (take_touched), so that their kernel entries follow before a reply.
  bool offload = false;
};

// Local changes not yet told to the peers, as values.
struct Changes {
  std::vector<Session> upserts;
  std::vector<Tombstone> removals;
};

constexpr std::size_t max_tombstones = 65536;

constexpr std::chrono::minutes tombstone_lifetime{10};
// A peer's expiry removes a session here only if it is this close to expiring here too.
constexpr std::chrono::seconds expiry_slack{3};

// Why a session left the table: D (or "&& D"), its timeout once answered, its
// timeout before (the setup timeout), X (and stopping), a peer's deletion or expiry.
enum class CloseReason : std::uint8_t { deleted, timeout, setup_timeout, cleared, peer };
constexpr std::size_t close_reasons = 5;
// Why a packet was not relayed: no session holds its port (a socket closing),
// the leg does not accept its source, the other leg has no address (or port)
// yet, the socket refused it, it was larger than the packet path's buffer.
// A prompt plays towards the destination (P): what the other party sends waits.
enum class DropReason : std::uint8_t { unknown_port, source_refused, no_destination, send_failed, truncated, playback };
constexpr std::size_t drop_reasons = 6;

struct TableStats {
  std::uint64_t created = 0, destroyed = 0, timeouts = 0, completed = 0;
  std::uint64_t created_local = 0;  // of created: by a U here (the rest came from peers)
  std::array<std::uint64_t, close_reasons> closed{};  // by CloseReason; sums to destroyed
  std::uint64_t packets_received = 0, packets_relayed = 0, packets_dropped = 0;
  std::uint64_t bytes_received = 0, bytes_relayed = 0;
  std::uint64_t packets_offloaded = 0, bytes_offloaded = 0;  // of received and relayed: by the kernel fast path
  std::array<std::uint64_t, drop_reasons> dropped{};  // by DropReason; sums to packets_dropped
  std::uint64_t sync_applied = 0, sync_stale = 0, sync_port_conflicts = 0, sync_bind_failures = 0;
  std::uint64_t sync_refused_full = 0, sync_refused_budget = 0;
};

// A U (create) or L as the table needs it; the controller checks and fills it.
struct Offer {
  bool create = true;  // U creates a session; L only answers one
  std::string call_id, from_tag, to_tag;  // to_tag empty: not given
  // The relay addresses (slots) this command chooses (bridge mode's E/I,
  // L<addr>, the 6 modifier): for the leg it allocates (whose port the reply
  // carries) and for the leg facing the party that sent this SDP. The U that
  // creates a session fixes both; later a leg moves only with a new port pair
  // (n) and a command that names a slot (`explicit_slot`).
  Slot own_slot = 0, facing_slot = 0;
  bool explicit_slot = false;
  // L<addr> named own_slot's address: its leg goes there, not to the
  // address of its family and side with the most free pairs (-i A1,A2).
  bool named_address = false;
  bool record = false;  // a U that creates the session records both legs (--record-all)
  std::optional<udp::endpoint> remote;    // the sender's RTP address; none: not given or implausible
  bool hold = false;                      // the address was 0.0.0.0 or ::
  bool asymmetric = false, weak = false, new_port = false;
  std::optional<std::string> codecs;
  // U only: the timeout notification (already checked against --notify); empty: none.
  std::string notify_target, notify_tag;
};

struct OfferResult {
  std::uint16_t port = 0;  // 0: L found no session
  bool found = false;      // a session matched or was created
  bool created = false;
  SessionKey key;          // the session, when found
  Slot slot = 0;           // the relay address of the answered port
};
enum class OfferError { no_ports_session, no_ports_leg };
// Why no port pair could be had.
enum class PortShortage { range_used_up, all_taken, file_limit };
struct OfferFailure {
  OfferError error;
  PortShortage why;
};

// What the packet path does with one datagram. A value: the packet path
// keeps it no longer than its batch, and it points at nothing.
struct Route {
  bool forward = false;
  bool learned = false;        // this packet moved or latched the leg's remote address
  Slot out_slot = 0;           // the relay address and
  std::uint16_t out_port = 0;  // local port to send from
  // A copy goes to copy_to (C), from the arriving socket.
  bool copy = false;
  udp::endpoint copy_to;
  // The arriving leg is recorded (R): into `recording` (0: none open here yet).
  bool record = false;
  std::uint32_t recording = 0;
  std::uint8_t in_side = 0;
  Kind kind = Kind::rtp;
  udp::endpoint dest;
};

// A leg that a packet latched, for the log and the peers.
struct Latch {
  SessionKey key;
  int side = 0;
  Kind kind = Kind::rtp;
  udp::endpoint remote;
};

struct Expired { std::string call_id, from_tag, notify_target, notify_tag, origin; };

// One pool per slot, each made by make(slot), in slot order.
template <class Make, std::size_t... I>
std::array<PortAllocator, slot_count> make_slot_pools(Make& make, std::index_sequence<I...>) {
  return {make(static_cast<Slot>(I))...};
}
template <class Make>
std::array<PortAllocator, slot_count> make_slot_pools(Make make) {
  return make_slot_pools(make, std::make_index_sequence<slot_count>{});
}

class SessionTable {
public:
  // The replicated session and what this instance keeps beside it.
  struct Entry {
    Session session;
    LocalState local;
  };
  struct Buried { Tombstone tomb; Clock::time_point at; };

  // One pool per slot (relay address); a slot without an address never allocates.
  SessionTable(TableConfig config, std::array<PortAllocator, slot_count> pools, PortBinder& binder);
  ~SessionTable();  // closes every socket it opened
  SessionTable(const SessionTable&) = delete;
  SessionTable& operator=(const SessionTable&) = delete;

  // Side m of doc/protocol.md, Tags. The entry is for reading at once: valid until the table next changes.
  struct Match { const Entry* entry; int side; };
  std::optional<Match> find(const std::string& call_id, const std::string& from_tag,
                            const std::string& to_tag) const;
  const Entry* at(const SessionKey& key) const;

  // U (creates when nothing matches) and L (answers port 0 when nothing matches).
  std::variant<OfferResult, OfferFailure> update(const Offer& offer, Clock::time_point now);
  // D: the number of sessions matched (destroyed or kept by a weak flag).
  std::size_t remove(const std::string& call_id, const std::string& from_tag, const std::string& to_tag, bool weak,
                     Clock::time_point now);
  // R and N (D's prefix rule): start or stop recording what
  // arrives on the leg facing the party of from_tag (both legs with `both`).
  // The number of sessions matched.
  std::size_t record(const std::string& call_id, const std::string& from_tag, const std::string& to_tag, bool on,
                     bool both);
  // C: copies of what the party of from_tag sends go to `to` (RTCP to its port + 1);
  // none: stop. The leg's local port and slot, or nothing when no session matched.
  std::optional<std::pair<Slot, std::uint16_t>> copy(const std::string& call_id, const std::string& from_tag,
                                                     const std::string& to_tag, std::optional<udp::endpoint> to);
  // C to a file: what the party of from_tag sends is recorded into the
  // recording named `name` (valid_record_name; the session's one recording,
  // reopened under that name when it was open under another). False: no session.
  bool record_into(const std::string& call_id, const std::string& from_tag, const std::string& to_tag,
                   const std::string& name);
  // P and S: start (or replace) or stop the prompt played towards the party
  // of from_tag. False: no such session.
  bool play(const std::string& call_id, const std::string& from_tag, const std::string& to_tag, Playback p);
  bool stop_play(const std::string& call_id, const std::string& from_tag, const std::string& to_tag);
  // The player's side: the legs a prompt plays on (key, side); one that ended; one taken over.
  const std::set<std::pair<SessionKey, int>>& playing() const { return playing_; }
  void finish_play(const SessionKey& key, int side);
  void take_over_play(const SessionKey& key, int side, const std::string& owner);
  // The recording this instance opened for the session behind a local port (packet path).
  void set_recording(Slot slot, std::uint16_t local_port, std::uint32_t id);
  // Recordings to close: their sessions ended, or nothing is recorded any more.
  std::vector<std::uint32_t> take_closed_recordings() { return std::exchange(closed_recordings_, {}); }
  // Deleted by a command (&& D): the peers are told. False: no such session.
  bool destroy(const SessionKey& key, Clock::time_point now);
  std::size_t clear(Clock::time_point now);  // X, and stopping: the peers are told
  std::vector<Expired> expire(Clock::time_point now);

  // The packet path: a datagram arrived on a local port.
  Route route(Slot slot, std::uint16_t local_port, const udp::endpoint& from,
              const unsigned char* data, std::size_t size, Clock::time_point now);
  // A packet for a parked leg came through the catch-all path: open the
  // sockets of the session's parked legs, so that the next packets take
  // the normal path. Anything but `bound`: the legs stay parked (the packet
  // is still routed; what it cannot be sent from is dropped).
  BindResult adopt(Slot slot, std::uint16_t local_port);
  std::size_t parked_legs() const;
  // Adopted legs of sessions that have had no packet here for `idle` are
  // parked again (their sockets closed): a route that moved back leaves no
  // descriptors behind. The number of legs parked.
  std::size_t repark_idle(Clock::time_point now, std::chrono::seconds idle);
  std::uint64_t adoptions() const { return adoptions_; }
  // Counts a packet of `size` bytes that route() passed for this local port
  // but that was not sent after all (the socket refused it, it was truncated).
  void send_failed(Slot slot, std::uint16_t local_port, std::size_t size, DropReason why = DropReason::send_failed);
  // The leg behind a local port and its remote address now (after route() said learned).
  std::optional<Latch> latch_at(Slot slot, std::uint16_t local_port) const;
  // The session behind a local port; valid until the table next changes.
  const Session* session_at(Slot slot, std::uint16_t local_port) const;

  // The kernel fast path (offload_plan.h). The sessions changed since the
  // last call (with --kernel-offload; gone ones included).
  std::set<SessionKey> take_touched() { return std::exchange(touched_, {}); }
  void track_touched(bool on) {
    config_.offload = on;
    if (!on) touched_.clear();
  }
  // What the kernel forwarded for a stream since the last call: counted as
  // received and relayed here, the session active at `last`, the latched
  // source heard then, the leg's SSRC and sequence (RTP) as the packet path
  // would have set them. False: no such session (it ended meanwhile).
  bool offloaded(const SessionKey& key, int side, Kind kind, std::uint64_t packets, std::uint64_t bytes,
                 Clock::time_point last, std::uint32_t ssrc, std::uint16_t seq);

  // Cluster sync. Local changes are collected (versions bumped) by take_changes();
  // the apply_* functions merge what a peer published and never mark anything
  // for publishing again, except a session kept alive against a peer's expiry.
  Changes take_changes();
  struct Applied {
    bool changed = false;          // the table took the session (it was not stale)
    std::vector<Event> problems;   // legs that could not be bound here, a full table (with causes)
  };
  Applied apply_upsert(Session incoming);
  bool apply_removal(const Tombstone& t, Clock::time_point now);  // true: the session is gone here
  void apply_activity(const ActivityEntry& entry, const std::string& instance, Clock::time_point now);
  // What to tell the peers every 2 s: the sessions with local packets since the
  // last call (idle 0), those with legs this instance could not bind, and those
  // whose legs got bound since (each with its idle time), with this instance's
  // counters and its unbound legs. Clears the flags.
  std::vector<ActivityEntry> take_activity(Clock::time_point now);
  // Binds again the peers' legs that could not be bound (a file limit, a port
  // taken by another program). Logs nothing for what still fails (it was
  // logged when it first failed); returns a notice per leg bound now.
  std::vector<Event> retry_unbound();
  // True once since sockets were closed: a retry may now succeed.
  bool take_freed() { return std::exchange(freed_, false); }
  std::size_t unbound_legs() const;

  const std::map<SessionKey, Buried>& tombstones() const { return tombstones_; }
  const TableConfig& config() const { return config_; }
  // SIGHUP: new timeouts apply to every session from the next sweep.
  void set_timeouts(std::chrono::seconds ttl, std::chrono::seconds setup_ttl) {
    config_.ttl = ttl;
    config_.setup_ttl = setup_ttl;
  }
  std::chrono::seconds ttl_left(const Session& s, Clock::time_point now) const;
  const std::map<SessionKey, Entry>& sessions() const { return sessions_; }
  const TableStats& stats() const { return stats_; }
  std::size_t bytes() const { return bytes_; }  // the sessions, against max_bytes
  std::size_t tombstone_bytes() const { return tombstone_bytes_; }
  const PortAllocator& pool(Slot slot) const { return pools_[slot]; }
  // The address of slot's family and side with the most free pairs (slot itself on a tie).
  Slot widest(Slot slot) const;

private:
  struct PortRef { Entry* entry; int side; };
  // A pair for leg `side` on `slot`'s family and side, on the address with
  // the most free pairs (on `slot` itself when `exact`). Nothing: allocated.
  std::optional<PortShortage> allocate(Entry& e, int side, Slot slot, bool exact);
  void release(Entry& e, int side);
  void let_go(Slot slot, std::uint16_t port, bool parked);  // closes or unparks a held leg's port
  const PortRef* lookup(Slot slot, std::uint16_t port, Kind& kind) const;
  void mark_dirty(Entry& e);
  void touch(const Entry& e) {
    if (config_.offload) touched_.insert(e.session.key());
  }
  void account(Entry& e);  // brings bytes_ up to date with what e costs now
  void erase(Entry& e, CloseReason why, Clock::time_point now);
  void drop(Counters* leg, DropReason why);
  void stop_recording_if_idle(Entry& e);  // nothing flagged: the open recording is closed
  void index_play(const Entry& e);        // keeps playing_ in step with the legs' Playback
  void remember(Tombstone t, Clock::time_point now);
  std::optional<Event> bind_remote(Entry& e, int side, bool count = true);  // nothing: bound

  TableConfig config_;
  std::array<PortAllocator, slot_count> pools_;
  PortBinder& binder_;
  std::map<SessionKey, Entry> sessions_;
  std::array<std::unordered_map<std::uint16_t, PortRef>, slot_count> ports_;  // by RTP port, per slot
  TableStats stats_;
  std::vector<SessionKey> dirty_;
  std::vector<Tombstone> removals_;
  std::map<SessionKey, Buried> tombstones_;
  std::deque<std::pair<Clock::time_point, SessionKey>> tombstone_order_;
  std::size_t bytes_ = 0, tombstone_bytes_ = 0;
  std::vector<std::uint32_t> closed_recordings_;
  std::set<std::pair<SessionKey, int>> playing_;  // legs with an active Playback
  bool freed_ = false;
  std::uint64_t adoptions_ = 0;
  std::set<SessionKey> touched_;  // with config_.offload only
};

// The table as each of its callers sees it: a view holds the table and shows
// only that caller's part. The controller sees the commands' part, the
// cluster rules what peers send, the packet path, the player, the sync server
// and the kernel fast path theirs; only the owner (the composition root: the
// sweep, the statistics) holds the whole table. The forwarders are inline: a
// view costs nothing on the packet path. A SessionTable converts to any view.

// The control commands: find, update, delete, record, copy, play; the counters I and G report.
class CommandTable {
public:
  CommandTable(SessionTable& t) : t_(t) {}  // implicit: a table converts to its views
  std::optional<SessionTable::Match> find(const std::string& call_id, const std::string& from_tag,
                                          const std::string& to_tag) const {
    return t_.find(call_id, from_tag, to_tag);
  }
  std::variant<OfferResult, OfferFailure> update(const Offer& offer, Clock::time_point now) {
    return t_.update(offer, now);
  }
  std::size_t remove(const std::string& call_id, const std::string& from_tag, const std::string& to_tag, bool weak,
                     Clock::time_point now) {
    return t_.remove(call_id, from_tag, to_tag, weak, now);
  }
  std::size_t record(const std::string& call_id, const std::string& from_tag, const std::string& to_tag, bool on,
                     bool both) {
    return t_.record(call_id, from_tag, to_tag, on, both);
  }
  std::optional<std::pair<Slot, std::uint16_t>> copy(const std::string& call_id, const std::string& from_tag,
                                                     const std::string& to_tag, std::optional<udp::endpoint> to) {
    return t_.copy(call_id, from_tag, to_tag, std::move(to));
  }
  bool record_into(const std::string& call_id, const std::string& from_tag, const std::string& to_tag,
                   const std::string& name) {
    return t_.record_into(call_id, from_tag, to_tag, name);
  }
  bool play(const std::string& call_id, const std::string& from_tag, const std::string& to_tag, Playback p) {
    return t_.play(call_id, from_tag, to_tag, std::move(p));
  }
  bool stop_play(const std::string& call_id, const std::string& from_tag, const std::string& to_tag) {
    return t_.stop_play(call_id, from_tag, to_tag);
  }
  bool destroy(const SessionKey& key, Clock::time_point now) { return t_.destroy(key, now); }
  std::size_t clear(Clock::time_point now) { return t_.clear(now); }
  std::chrono::seconds ttl_left(const Session& s, Clock::time_point now) const { return t_.ttl_left(s, now); }
  const std::map<SessionKey, SessionTable::Entry>& sessions() const { return t_.sessions(); }
  const TableStats& stats() const { return t_.stats(); }
  const TableConfig& config() const { return t_.config(); }
  std::uint64_t adoptions() const { return t_.adoptions(); }
  std::size_t parked_legs() const { return t_.parked_legs(); }
  std::size_t unbound_legs() const { return t_.unbound_legs(); }

private:
  SessionTable& t_;
};

// What a peer sends: its sessions, removals and activity merged into the table.
class SyncTable {
public:
  SyncTable(SessionTable& t) : t_(t) {}  // implicit: a table converts to its views
  SessionTable::Applied apply_upsert(Session incoming) { return t_.apply_upsert(std::move(incoming)); }
  bool apply_removal(const Tombstone& t, Clock::time_point now) { return t_.apply_removal(t, now); }
  void apply_activity(const ActivityEntry& entry, const std::string& instance, Clock::time_point now) {
    t_.apply_activity(entry, instance, now);
  }
  const SessionTable::Entry* at(const SessionKey& key) const { return t_.at(key); }
  std::chrono::seconds ttl_left(const Session& s, Clock::time_point now) const { return t_.ttl_left(s, now); }

private:
  SessionTable& t_;
};

// The packet path: route a datagram, adopt a parked leg, count what was not sent.
class PacketTable {
public:
  PacketTable(SessionTable& t) : t_(t) {}  // implicit: a table converts to its views
  Route route(Slot slot, std::uint16_t local_port, const udp::endpoint& from, const unsigned char* data,
              std::size_t size, Clock::time_point now) {
    return t_.route(slot, local_port, from, data, size, now);
  }
  BindResult adopt(Slot slot, std::uint16_t local_port) { return t_.adopt(slot, local_port); }
  std::uint64_t adoptions() const { return t_.adoptions(); }
  void send_failed(Slot slot, std::uint16_t local_port, std::size_t size, DropReason why = DropReason::send_failed) {
    t_.send_failed(slot, local_port, size, why);
  }
  std::optional<Latch> latch_at(Slot slot, std::uint16_t local_port) const { return t_.latch_at(slot, local_port); }
  const Session* session_at(Slot slot, std::uint16_t local_port) const { return t_.session_at(slot, local_port); }
  void set_recording(Slot slot, std::uint16_t local_port, std::uint32_t id) { t_.set_recording(slot, local_port, id); }

private:
  SessionTable& t_;
};

// The player: the legs a prompt plays on, their sessions, and a prompt's end or takeover.
class PlaybackTable {
public:
  PlaybackTable(SessionTable& t) : t_(t) {}  // implicit: a table converts to its views
  const std::set<std::pair<SessionKey, int>>& playing() const { return t_.playing(); }
  const SessionTable::Entry* at(const SessionKey& key) const { return t_.at(key); }
  BindResult adopt(Slot slot, std::uint16_t local_port) { return t_.adopt(slot, local_port); }
  void finish_play(const SessionKey& key, int side) { t_.finish_play(key, side); }
  void take_over_play(const SessionKey& key, int side, const std::string& owner) {
    t_.take_over_play(key, side, owner);
  }

private:
  SessionTable& t_;
};

// The sync server: what a snapshot or an operator's listing shows; read only.
class ListingTable {
public:
  ListingTable(const SessionTable& t) : t_(t) {}  // implicit: a table converts to its views
  const std::map<SessionKey, SessionTable::Entry>& sessions() const { return t_.sessions(); }
  const std::map<SessionKey, SessionTable::Buried>& tombstones() const { return t_.tombstones(); }
  const SessionTable::Entry* at(const SessionKey& key) const { return t_.at(key); }
  std::chrono::seconds ttl_left(const Session& s, Clock::time_point now) const { return t_.ttl_left(s, now); }

private:
  const SessionTable& t_;
};

// The kernel fast path: the sessions, which changed, and what the kernel forwarded.
class OffloadTable {
public:
  OffloadTable(SessionTable& t) : t_(t) {}  // implicit: a table converts to its views
  const std::map<SessionKey, SessionTable::Entry>& sessions() const { return t_.sessions(); }
  std::set<SessionKey> take_touched() { return t_.take_touched(); }
  bool offloaded(const SessionKey& key, int side, Kind kind, std::uint64_t packets, std::uint64_t bytes,
                 Clock::time_point last, std::uint32_t ssrc, std::uint16_t seq) {
    return t_.offloaded(key, side, kind, packets, bytes, last, ssrc, seq);
  }

private:
  SessionTable& t_;
};

}  // namespace anyrtpproxy
