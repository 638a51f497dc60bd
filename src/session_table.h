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
};

struct SessionKey {
  std::string call_id, from_tag;
  bool operator<(const SessionKey& o) const {
    return call_id != o.call_id ? call_id < o.call_id : from_tag < o.from_tag;
  }
};

struct TableStats {
  std::uint64_t created = 0, destroyed = 0, timeouts = 0, completed = 0;
  std::uint64_t packets_received = 0, packets_relayed = 0, packets_dropped = 0;
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

struct Expired { std::string call_id, from_tag, notify_target, notify_tag; };

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
  void destroy(Session& s);
  std::size_t clear();
  std::vector<Expired> expire(Clock::time_point now);

  // The packet path: a datagram arrived on a local port.
  Route route(Family family, std::uint16_t local_port, const udp::endpoint& from,
              const unsigned char* data, std::size_t size, Clock::time_point now);
  // Counts a packet that route() passed but the socket refused.
  void send_failed(const Route& r);

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

  TableConfig config_;
  std::array<PortAllocator, 2> pools_;
  PortBinder& binder_;
  std::map<SessionKey, Session> sessions_;
  std::array<std::unordered_map<std::uint16_t, PortRef>, 2> ports_;  // by RTP port, per family
  TableStats stats_;
};

}  // namespace anyrtpproxy
