// stats: see stats.h.
#include "core/stats.h"

#include <algorithm>
#include <cstdio>

namespace anyrtpproxy {

std::string stats_line(const DaemonStats& s) {
  const auto n = [](auto v) { return std::to_string(v); };
  const TableStats& t = s.table;
  return "stats: sessions active=" + n(s.sessions) + " created=" + n(t.created) + " timeouts=" + n(t.timeouts) +
         " packets received=" + n(t.packets_received) + " relayed=" + n(t.packets_relayed) + " dropped=" +
         n(t.packets_dropped) + " commands=" + n(s.commands.received) + " errors=" + n(s.commands.errors) +
         " retransmissions=" + n(s.commands.duplicates) + " sockets=" + n(s.relay.sockets) +
         " bind-failures=" + n(s.relay.bind_failures) + " sync: connections=" + n(s.sync_connections) +
         " applied=" + n(t.sync_applied) + " stale=" + n(t.sync_stale) + " port-conflicts=" +
         n(t.sync_port_conflicts) + " bind-failures=" + n(t.sync_bind_failures) + " refused-full=" +
         n(t.sync_refused_full) + " refused-budget=" + n(t.sync_refused_budget) + " bad-streams=" + n(s.sync.bad_streams) + " invalid=" + n(s.sync.frames_refused) + " refused=" +
         n(s.sync.connections_refused);
}

}  // namespace anyrtpproxy

namespace anyrtpproxy {

SessionCounts count_sessions(const SessionTable& table) {
  SessionCounts c{};
  const std::string& self = table.config().instance;
  for (const auto& [key, e] : table.sessions()) ++c[e.session.complete() ? 1 : 0][e.session.origin == self ? 0 : 1];
  return c;
}

namespace {

// A label value as the exposition format quotes it: \, " and newline escaped.
std::string quoted(const std::string& v) {
  std::string out = "\"";
  for (const char c : v) {
    if (c == '\\' || c == '"') out += '\\';
    if (c == '\n') {
      out += "\\n";
      continue;
    }
    out += c;
  }
  return out + "\"";
}

class Exposition {
public:
  // Starts a family: its HELP and TYPE lines.
  Exposition& family(const char* name, const char* type, const char* help) {
    name_ = std::string("anyrtpproxy_") + name;
    text_ += "# HELP " + name_ + " " + help + "\n# TYPE " + name_ + " " + type + "\n";
    return *this;
  }
  // A sample of the current family; labels as name/value pairs.
  Exposition& sample(double value, std::initializer_list<std::pair<const char*, std::string>> labels = {}) {
    text_ += name_;
    if (labels.size()) {
      text_ += '{';
      bool first = true;
      for (const auto& [k, v] : labels) {
        if (!first) text_ += ',';
        first = false;
        text_ += std::string(k) + "=" + quoted(v);
      }
      text_ += '}';
    }
    char number[64];
    std::snprintf(number, sizeof number, " %.17g\n", value);
    text_ += number;
    return *this;
  }
  std::string take() { return std::move(text_); }

private:
  std::string name_, text_;
};

constexpr std::array<const char*, close_reasons> close_reason_names = {"deleted", "timeout", "setup_timeout", "cleared",
                                                                       "peer"};
constexpr std::array<const char*, drop_reasons> drop_reason_names = {
    "unknown_port", "source_not_latched", "no_destination", "send_failed", "truncated", "playback"};

}  // namespace

std::string prometheus_text(const DaemonStats& s) {
  const TableStats& t = s.table;
  Exposition x;
  x.family("build_info", "gauge", "The running version and this instance's name in the cluster.")
      .sample(1, {{"version", s.version}, {"instance", s.instance}});
  x.family("start_time_seconds", "gauge", "When the daemon started, in seconds since the Unix epoch.")
      .sample(s.start_time);
  x.family("sessions", "gauge", "Active sessions by state (offered or answered) and origin (local or peer).");
  for (int state = 0; state < 2; ++state)
    for (int origin = 0; origin < 2; ++origin)
      x.sample(static_cast<double>(s.by_state[state][origin]),
               {{"state", state ? "answered" : "offered"}, {"origin", origin ? "peer" : "local"}});
  x.family("sessions_created_total", "counter", "Sessions created: by a U here (local) or learnt from a peer.")
      .sample(static_cast<double>(t.created_local), {{"origin", "local"}})
      .sample(static_cast<double>(t.created - t.created_local), {{"origin", "peer"}});
  x.family("sessions_closed_total", "counter", "Sessions closed, by reason.");
  for (std::size_t r = 0; r < close_reasons; ++r)
    x.sample(static_cast<double>(t.closed[r]), {{"reason", close_reason_names[r]}});
  x.family("packets_dropped_total", "counter", "Packets not relayed, by reason.");
  for (std::size_t r = 0; r < drop_reasons; ++r)
    x.sample(static_cast<double>(t.dropped[r]), {{"reason", drop_reason_names[r]}});
  x.family("commands_total", "counter", "Control commands executed, by command letter and result (ok or the E-code).");
  for (const auto& [key, n] : s.commands.results)
    x.sample(static_cast<double>(n), {{"command", std::string(1, key.first)},
                                      {"result", key.second == CommandStats::ok_result ? std::string("ok")
                                                                                       : "E" + std::to_string(key.second)}});
  x.family("connections_refused_total", "counter", "Connections closed at once, by port: too many open, or not allowed.")
      .sample(static_cast<double>(s.control_refused), {{"port", "control"}})
      .sample(static_cast<double>(s.sync.connections_refused), {{"port", "sync"}})
      .sample(static_cast<double>(s.metrics_refused), {{"port", "metrics"}});
  x.family("sync_sessions_refused_total", "counter", "Peers' sessions refused, by reason.")
      .sample(static_cast<double>(t.sync_refused_full), {{"reason", "table_full"}})
      .sample(static_cast<double>(t.sync_refused_budget), {{"reason", "memory_budget"}})
      .sample(static_cast<double>(t.sync_stale), {{"reason", "stale"}})
      .sample(static_cast<double>(t.sync_port_conflicts), {{"reason", "port_conflict"}});
  // The families without labels, one sample each.
  struct Scalar {
    const char *name, *type, *help;
    double value;
  };
  const auto n = [](auto v) { return static_cast<double>(v); };
  const Headroom room = headroom(s.fd_limit, s.open_fds, s.free_pairs, s.unbound_legs, s.sessions_left);
  const Scalar scalars[] = {
      {"packets_received_total", "counter",
       "RTP and RTCP packets that arrived on relay ports.", n(t.packets_received)},
      {"bytes_received_total", "counter",
       "UDP payload bytes that arrived on relay ports.", n(t.bytes_received)},
      {"packets_relayed_total", "counter",
       "Packets sent on through the other leg.", n(t.packets_relayed)},
      {"bytes_relayed_total", "counter",
       "UDP payload bytes sent on through the other leg.", n(t.bytes_relayed)},
      {"command_retransmissions_total", "counter",
       "UDP commands answered from the reply cache.", n(s.commands.duplicates)},
      {"reply_cache_entries", "gauge",
       "Replies kept for retransmitted UDP commands.", n(s.reply_cache_entries)},
      {"reply_cache_bytes", "gauge",
       "Memory the reply cache takes (estimated).", n(s.reply_cache_bytes)},
      {"relay_sockets", "gauge",
       "Open relay sockets (RTP and RTCP).", n(s.relay.sockets)},
      {"bind_failures_total", "counter",
       "Port pairs that could not be bound.", n(s.relay.bind_failures)},
      {"unbound_legs", "gauge",
       "Legs of peers' sessions this instance could not bind (it cannot take them over).", n(s.unbound_legs)},
      {"parked_legs", "gauge",
       "Legs of peers' sessions held without sockets, caught by eBPF sk_lookup until their first packet.",
       n(s.parked_legs)},
      {"adoptions_total", "counter", "Parked legs bound because their packets came here.", n(s.adoptions)},
      {"max_fds", "gauge",
       "The open-file limit (RLIMIT_NOFILE).", n(s.fd_limit)},
      {"recordings_total", "counter",
       "Recordings begun (R, --record-all).", n(s.recorder.opened)},
      {"recordings_failed_total", "counter",
       "Recordings stopped by an error (unwritable directory, full disk).", n(s.recorder.failed)},
      {"recorded_packets_total", "counter",
       "Packets written to recordings.", n(s.recorder.packets)},
      {"recording_dropped_packets_total", "counter",
       "Packets left out of recordings because the disk was too slow (never the relayed ones).", n(s.recorder.dropped)},
      {"prompt_packets_sent_total", "counter",
       "RTP packets of prompts (P) sent.", n(s.prompt_packets)},
      {"headroom_legs", "gauge",
       "More legs this instance can bind now: the fewest of spare descriptors / 2, free port pairs and table room.",
       n(room.legs)},
      {"healthy", "gauge",
       "1 when this instance asks for traffic: it can take over its share, is not syncing or draining "
       "(--health says healthy, --health-file is there), else 0.",
       n(s.health.state == Serving::healthy ? 1 : 0)},
      {"offload_active", "gauge",
       "1 when the kernel fast path (--kernel-offload) is attached.", n(s.offload.active ? 1 : 0)},
      {"offload_streams", "gauge",
       "Streams the kernel fast path forwards now.", n(s.offload.streams)},
      {"offload_packets_total", "counter",
       "Packets the kernel fast path forwarded (also in packets_received/relayed).", n(s.offload.packets)},
      {"offload_bytes_total", "counter",
       "Payload bytes the kernel fast path forwarded.", n(s.offload.bytes)},
      {"offload_updates_total", "counter",
       "Kernel entries written (a stream offloaded or changed).", n(s.offload.installs)},
      {"offload_removals_total", "counter",
       "Kernel entries removed (a stream changed, ended or taken back).", n(s.offload.removals)},
      {"offload_failures_total", "counter",
       "Streams left to userspace: no route out, or the kernel's map was full.", n(s.offload.failures)},
      {"sync_readers", "gauge",
       "Connections to the sync port (peers and operators).", n(s.sync_connections)},
      {"sync_frames_received_total", "counter",
       "Sync frames received from all peers.", n(s.sync.frames_received)},
      {"sync_frames_refused_total", "counter",
       "Sync frames decoded but refused by validation.", n(s.sync.frames_refused)},
      {"sync_bad_streams_total", "counter",
       "Sync connections dropped for an undecodable stream.", n(s.sync.bad_streams)},
      {"sync_slow_readers_dropped_total", "counter",
       "Sync readers dropped for reading too slowly.", n(s.sync.slow_peers_dropped)},
      {"sync_wire_version", "gauge", "The newest sync wire version this instance speaks.", n(sync_wire_version)},
      {"sync_frames_older_version_total", "counter",
       "Writes (a frame or a batch) to peers in an older wire version than ours.",
       n(s.sync.frames_in_older_versions)},
  };
  for (const Scalar& m : scalars) x.family(m.name, m.type, m.help).sample(m.value);
  if (s.open_fds) x.family("open_fds", "gauge", "Open file descriptors.").sample(n(*s.open_fds));
  if (!s.peers.empty()) {
    x.family("sync_peer_up", "gauge", "1 while the connection to the peer (-M) is up.");
    for (const auto& p : s.peers) x.sample(p.connected ? 1 : 0, {{"peer", p.name}});
    x.family("sync_peer_messages_received_total", "counter", "Sync frames received from the peer.");
    for (const auto& p : s.peers) x.sample(static_cast<double>(p.messages_in), {{"peer", p.name}});
    x.family("sync_peer_bytes_received_total", "counter", "Sync bytes received from the peer.");
    for (const auto& p : s.peers) x.sample(static_cast<double>(p.bytes_in), {{"peer", p.name}});
    x.family("sync_peer_messages_sent_total", "counter", "Sync messages (a frame or a batch) sent to the peer.");
    for (const auto& p : s.peers) x.sample(static_cast<double>(p.messages_out), {{"peer", p.name}});
    x.family("sync_peer_bytes_sent_total", "counter", "Sync bytes sent to the peer.");
    for (const auto& p : s.peers) x.sample(static_cast<double>(p.bytes_out), {{"peer", p.name}});
    x.family("sync_peer_last_frame_age_seconds", "gauge", "Seconds since the peer's last frame (absent: none yet).");
    for (const auto& p : s.peers)
      if (p.last_frame_age) x.sample(*p.last_frame_age, {{"peer", p.name}});
    x.family("sync_peer_wire_version", "gauge", "The wire version the peer writes to us (absent: not connected).");
    for (const auto& p : s.peers)
      if (p.wire_version) x.sample(p.wire_version, {{"peer", p.name}});
  }
  // Every instance's capacity: this one's now, the peers' as they announced it.
  x.family("health", "gauge",
           "1 for the state the --health socket says now (healthy, unhealthy, syncing, draining), with its reason.");
  for (const char* state : {"healthy", "unhealthy", "syncing", "draining"}) {
    const bool now = std::string(state) == s.health.word();
    x.sample(now ? 1 : 0, {{"state", state}, {"reason", now ? s.health.reason : ""}});
  }
  x.family("cluster_headroom_legs", "gauge", "Legs an instance can still bind, as it announced (this one: now).");
  for (const auto& m : s.cluster) x.sample(n(m.capacity.headroom_legs), {{"instance", m.instance}});
  x.family("cluster_relayed_legs", "gauge", "Legs an instance holds with sockets (its own and adopted ones).");
  for (const auto& m : s.cluster) x.sample(n(m.capacity.relayed_legs), {{"instance", m.instance}});
  x.family("cluster_parked_legs", "gauge", "Peers' legs an instance mirrors without sockets.");
  for (const auto& m : s.cluster) x.sample(n(m.capacity.parked_legs), {{"instance", m.instance}});
  x.family("cluster_healthy", "gauge", "1 while an instance has headroom to take over its share (its --health-file).");
  for (const auto& m : s.cluster) x.sample(m.capacity.healthy ? 1 : 0, {{"instance", m.instance}});
  x.family("cluster_capacity_age_seconds", "gauge", "Seconds since an instance announced its capacity (this one: 0).");
  for (const auto& m : s.cluster) x.sample(m.age, {{"instance", m.instance}});
  return x.take();
}

}  // namespace anyrtpproxy
