// session_table: the daemon's state, all sessions by (call-id, from-tag) plus
// an index from local port to session leg, and the rtpproxy session rules:
// tag resolution (§2.2), U/L (§3.3, §3.4), D's prefix rule (§2.3), TTLs (§6.4)
// and the per-packet routing decision (§6.2, §6.3).
//
// Pure: time comes in as a parameter, sockets are opened and closed through the
// PortBinder the owner hands in, and nothing is logged.
#pragma once

#include "port_allocator.h"
#include "protocol.h"
#include "session.h"

#include <array>
#include <deque>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <unordered_map>
#include <variant>
#include <vector>

namespace anyrtpproxy {

// Opens and closes the RTP+RTCP socket pair of a port; open() false = could not bind.
class PortBinder {
public:
  virtual ~PortBinder() = default;
  virtual bool open(Family family, std::uint16_t rtp_port) = 0;
  virtual void close(Family family, std::uint16_t rtp_port) = 0;
};

struct TableConfig {
  std::chrono::seconds ttl{60};
  std::chrono::seconds setup_ttl{60};
  LatchPolicy policy = LatchPolicy::once;
  std::string instance = "local";  // this instance's name in the cluster
  // No cluster can hold more: every session owns an even port of some instance's
  // range, per family. Sessions a peer sends beyond this are refused (counted).
  std::size_t max_sessions = 65536;
};

// What a deleted or expired session leaves behind, so that a peer that missed
// the deletion (a partition, a restart) cannot bring the session back.
struct Tombstone {
  std::string call_id, from_tag;
  std::uint64_t version = 0;
  std::string changed_by;
  bool expired = false;  // by timeout: a peer that still sees media keeps the session
};

// Local changes not yet told to the peers.
struct Changes {
  std::vector<const Session*> upserts;  // valid until the table next changes
  std::vector<Tombstone> removals;
};

constexpr std::size_t max_tombstones = 65536;

constexpr std::chrono::minutes tombstone_lifetime{10};
// A peer's expiry removes a session here only if it is this close to expiring here too.
constexpr std::chrono::seconds expiry_slack{3};

struct SessionKey {
  std::string call_id, from_tag;
  bool operator<(const SessionKey& o) const {
    return call_id != o.call_id ? call_id < o.call_id : from_tag < o.from_tag;
  }
};

struct TableStats {
  std::uint64_t created = 0, destroyed = 0, timeouts = 0, completed = 0;
  std::uint64_t packets_received = 0, packets_relayed = 0, packets_dropped = 0;
  std::uint64_t sync_applied = 0, sync_stale = 0, sync_port_conflicts = 0, sync_bind_failures = 0;
  std::uint64_t sync_refused_full = 0;
};

struct UlResult {
  std::uint16_t port = 0;  // 0: L found no session
  Session* session = nullptr;
  bool created = false;
};

struct Route {
  bool forward = false;
  bool learned = false;  // this packet moved the leg's remote address
  std::uint16_t out_port = 0;  // local port to send from
  udp::endpoint dest;
  Session* session = nullptr;  // valid until the table next changes
  int in_side = 0;
};

struct Expired { std::string call_id, from_tag, notify_target, notify_tag, origin; };

class SessionTable {
public:
  SessionTable(TableConfig config, std::array<PortAllocator, 2> pools, PortBinder& binder);
  ~SessionTable();
  SessionTable(const SessionTable&) = delete;
  SessionTable& operator=(const SessionTable&) = delete;

  struct Match { Session* session; int side; };  // side m of §2.2
  std::optional<Match> find(const std::string& call_id, const std::string& from_tag,
                            const std::string& to_tag);

  // U (creates when nothing matches) and L (answers port 0 when nothing matches).
  std::variant<UlResult, Error> update(const UpdateLookup& ul, Clock::time_point now);
  // D: the number of sessions matched (destroyed or kept by a weak flag).
  std::size_t remove(const Delete& d);
  void destroy(Session& s);  // deleted by a command: the peers are told
  std::size_t clear();
  std::vector<Expired> expire(Clock::time_point now);

  // The packet path: a datagram arrived on a local port.
  Route route(Family family, std::uint16_t local_port, const udp::endpoint& from,
              const unsigned char* data, std::size_t size, Clock::time_point now);
  // Counts a packet that route() passed but the socket refused.
  void send_failed(const Route& r);

  // Cluster sync. Local changes are collected (versions bumped) by take_changes();
  // the apply_* functions merge what a peer published and never mark anything
  // for publishing again, except a session kept alive against a peer's expiry.
  Changes take_changes();
  struct Applied {
    bool changed = false;               // the table took the session (it was not stale)
    std::vector<std::string> problems;  // legs that could not be bound here, a full table
  };
  Applied apply_upsert(Session incoming, Clock::time_point now);
  bool apply_removal(const Tombstone& t, Clock::time_point now);  // true: the session is gone here
  void apply_activity(const SessionKey& key, std::chrono::seconds idle, const std::string& instance,
                      const std::array<Counters, 2>& counters, Clock::time_point now);
  // Sessions with local packets since the last call (valid until the table next
  // changes); clears their flag.
  std::vector<const Session*> take_active();
  struct Buried { Tombstone tomb; Clock::time_point at; };
  const std::map<SessionKey, Buried>& tombstones() const { return tombstones_; }
  const TableConfig& config() const { return config_; }
  std::chrono::seconds ttl_left(const Session& s, Clock::time_point now) const;
  const std::map<SessionKey, Session>& sessions() const { return sessions_; }
  const TableStats& stats() const { return stats_; }
  const PortAllocator& pool(Family f) const { return pools_[index(f)]; }

private:
  struct PortRef { Session* session; int side; };
  static std::size_t index(Family f) { return static_cast<std::size_t>(f); }
  bool allocate(Session& s, int side);
  void release(Session& s, int side);
  PortRef* lookup(Family family, std::uint16_t port, Kind& kind);
  void mark_dirty(Session& s);
  void erase(Session& s, bool expired, bool publish);
  void remember(Tombstone t, Clock::time_point now);
  std::string bind_remote(Session& s, int side);

  TableConfig config_;
  std::array<PortAllocator, 2> pools_;
  PortBinder& binder_;
  std::map<SessionKey, Session> sessions_;
  std::array<std::unordered_map<std::uint16_t, PortRef>, 2> ports_;  // by RTP port, per family
  TableStats stats_;
  std::vector<SessionKey> dirty_;
  std::vector<Tombstone> removals_;
  std::map<SessionKey, Buried> tombstones_;
  std::deque<std::pair<Clock::time_point, SessionKey>> tombstone_order_;
  Clock::time_point now_{};  // the time of the latest call that passed one
};

}  // namespace anyrtpproxy
