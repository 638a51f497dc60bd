// stats: every counter of the daemon in one value, the line SIGUSR1 logs, and
// the Prometheus text exposition format that --metrics serves. Pure: the
// proxy gathers the numbers from the table, the controller, the data plane
// and the sync endpoints; this formats them. Every label value is bounded:
// command letters, E-codes, reasons, states and the -M peers as configured,
// never a call-id.
#pragma once

#include "core/capacity.h"
#include "core/serving.h"
#include "core/controller.h"
#include "core/session_table.h"
#include "core/sync_codec.h"

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace anyrtpproxy {

struct SyncStats {
  std::uint64_t connections_refused = 0, slow_peers_dropped = 0, bad_streams = 0, frames_received = 0;
  std::uint64_t frames_refused = 0;  // decoded, but refused by validation (cluster.h)
  std::uint64_t frames_in_older_versions = 0;  // writes to peers of an older wire version (one per batch)
};

struct RelayStats {
  std::size_t sockets = 0;          // open relay sockets (RTP and RTCP)
  std::uint64_t bind_failures = 0;  // port pairs that could not be bound
};

// One -M peer as this instance sees it: our client connection to it (what it
// sends us) and what our sync port sent to its address.
struct PeerStats {
  std::string name;  // "host:port" as -M gave it
  bool connected = false;
  std::uint64_t messages_in = 0, bytes_in = 0, messages_out = 0, bytes_out = 0;
  std::optional<double> last_frame_age;  // seconds; none: no frame yet
  unsigned wire_version = 0;             // what its frames come in; 0: none yet
};

// Active sessions by state (0: offered, not answered; 1: answered) and origin
// (0: created here; 1: by a peer).
using SessionCounts = std::array<std::array<std::size_t, 2>, 2>;
SessionCounts count_sessions(const SessionTable& table);

struct DaemonStats {
  std::size_t sessions = 0;
  TableStats table;
  CommandStats commands;
  RelayStats relay;
  std::size_t sync_connections = 0;  // readers of the sync port
  SyncStats sync;
  // For the metrics endpoint (not in the SIGUSR1 line):
  SessionCounts by_state{};
  std::size_t unbound_legs = 0;  // peers' legs this instance could not bind
  std::size_t parked_legs = 0;   // peers' legs held without sockets (catch_all.h)
  std::uint64_t adoptions = 0;   // parked legs bound since because their packets came here
  std::size_t reply_cache_entries = 0, reply_cache_bytes = 0;
  std::optional<std::size_t> open_fds;  // none: not known (no /proc)
  std::uint64_t fd_limit = 0;
  std::uint64_t control_refused = 0, metrics_refused = 0;
  std::vector<PeerStats> peers;
  struct Recording {
    std::uint64_t packets = 0, dropped = 0, failed = 0, opened = 0;
  } recorder;
  std::uint64_t prompt_packets = 0;  // sent by P's playbacks
  std::uint64_t free_pairs = 0;      // port pairs left in this instance's ranges (every relay address)
  std::uint64_t sessions_left = UINT64_MAX;  // sessions the table may still take (count and memory bounds)
  struct KernelOffload {  // --kernel-offload (offload.h)
    bool active = false;
    std::uint64_t streams = 0, packets = 0, bytes = 0, installs = 0, removals = 0, failures = 0;
  } offload;
  std::string version, instance;
  double start_time = 0;  // seconds since the Unix epoch
  Health health;                // what the --health socket says
  std::vector<Member> cluster;  // this instance first, then every peer that announced its capacity
};

std::string stats_line(const DaemonStats& s);

// The Prometheus text exposition format (version 0.0.4), every family with
// its HELP and TYPE lines.
std::string prometheus_text(const DaemonStats& s);

}  // namespace anyrtpproxy
