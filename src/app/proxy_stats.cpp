// proxy_stats: what the running daemon reports of itself: its headroom (the
// health file, the capacity its peers hear) and every part's counters
// gathered into one DaemonStats, for SIGUSR1's log line and the metrics
// endpoint (core/stats.h formats it, core/capacity.h judges it).
#include "app/proxy.h"

#include "core/version.h"
#include "io/log.h"

#include <cerrno>
#include <cstring>

namespace anyrtpproxy {

std::uint64_t Proxy::free_pairs() const {
  std::uint64_t pairs = 0;
  for (Slot slot = 0; slot < slot_count; ++slot)
    if (options_.media[slot]) pairs += table_.pool(slot).available();
  return pairs;
}

std::uint64_t Proxy::room_in_table() const {
  return sessions_left(table_.config(), table_.sessions().size(), table_.bytes());
}

Headroom Proxy::room() const {
  const std::uint64_t limit = open_file_limit();
  return headroom(limit, open_files_.count(limit), free_pairs(), table_.unbound_legs(), room_in_table());
}

Capacity Proxy::capacity(const Headroom& h) const {
  return Capacity{h.legs, sockets_.stats().sockets / 2, table_.parked_legs(), h.healthy(), health(room_).word()};
}

void Proxy::check_health(const Headroom& h) {
  log(health_watch_.check(h));
  const bool ok = h.healthy();
  if (!health_.set(ok, "ok headroom_legs=" + std::to_string(h.legs) + "\n"))
    log({Event{Level::error, "health: cannot update " + options_.health_file + ": " + std::strerror(errno), "health"}});
}

std::string Proxy::peer_lines() const {
  std::string out;
  for (const auto& p : peers_)
    out += "# peer: " + p->name() +
           (p->peer_version() ? " connected, instance " + p->peer_instance() + ", wire version " +
                                    std::to_string(p->peer_version())
                              : " not connected" + (p->last_error().empty() ? std::string() : ": " + p->last_error())) +
           "\n";
  return out;
}

void Proxy::check_wire_versions() {
  unsigned oldest = sync_wire_version;
  std::string who;
  for (const auto& p : peers_)
    if (p->peer_version() && p->peer_version() < oldest) {
      oldest = p->peer_version();
      who = p->name();
    }
  if (oldest == cluster_version_) return;
  if (cluster_version_ != 0 || oldest != sync_wire_version)
    log_.notice(oldest == sync_wire_version
                    ? "sync: every connected peer speaks wire version " + std::to_string(oldest) + ", as this instance"
                    : "sync: wire version " + std::to_string(oldest) + " with " + who + " (this instance speaks " +
                          std::to_string(sync_wire_version) + "): what needs a newer one stays off until every "
                          "peer has it");
  cluster_version_ = oldest;
}

DaemonStats Proxy::gather() const {
  DaemonStats s;
  s.instance = table_.config().instance;
  s.sessions = table_.sessions().size();
  s.table = table_.stats();
  s.commands = controller_.stats();
  s.relay = sockets_.stats();
  s.sync_connections = sync_server_ ? sync_server_->connections() : 0;
  s.sync = sync_stats_;
  if (sync_server_) s.sync.connections_refused = sync_server_->refused();
  s.by_state = count_sessions(table_);
  s.unbound_legs = table_.unbound_legs();
  s.parked_legs = table_.parked_legs();
  s.adoptions = table_.adoptions();
  s.reply_cache_entries = controller_.cache_entries();
  s.reply_cache_bytes = controller_.cache_bytes();
  s.fd_limit = open_file_limit();
  s.open_fds = open_files_.count(s.fd_limit);
  for (const auto& t : tcp_) s.control_refused += t->refused();
  for (const auto& u : unix_) s.control_refused += u->refused();
  if (metrics_) s.metrics_refused = metrics_->refused();
  const auto now = Clock::now();
  for (const auto& p : peers_) {
    PeerStats ps;
    ps.name = p->name();
    ps.connected = p->connected();
    ps.wire_version = p->peer_version();
    ps.messages_in = p->received().messages;
    ps.bytes_in = p->received().bytes;
    if (p->last_frame() != Clock::time_point{})
      ps.last_frame_age = std::chrono::duration<double>(now - p->last_frame()).count();
    if (sync_server_) {
      for (const auto& e : p->endpoints()) {
        const auto it = sync_server_->sent().find(unmapped(e.address()));
        if (it == sync_server_->sent().end()) continue;
        ps.messages_out += it->second.messages;
        ps.bytes_out += it->second.bytes;
      }
    }
    s.peers.push_back(std::move(ps));
  }
  const auto rec = recorder_.stats();
  s.recorder = DaemonStats::Recording{rec.packets, rec.dropped, rec.failed, rec.opened};
  s.prompt_packets = player_.packets_sent();
  s.free_pairs = free_pairs();
  s.sessions_left = room_in_table();
  const Headroom h = headroom(s.fd_limit, s.open_fds, s.free_pairs, s.unbound_legs, s.sessions_left);
  const Health served = health(h);
  s.cluster = members(s.instance, capacity(as_served(h, served)), view_.capacity, now, served.word(), served.cause);
  s.health = served;
  if (offload_) {
    const auto& o = offload_->stats();
    s.offload = {true, o.streams, o.packets, o.bytes, o.installs, o.removals, o.failures};
  }
  s.version = ANYRTPPROXY_VERSION;
  s.start_time = start_time_;
  return s;
}

}  // namespace anyrtpproxy
