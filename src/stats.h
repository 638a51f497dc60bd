// stats: every counter of the daemon in one value, and the line SIGUSR1 logs.
// Pure: the proxy gathers the numbers from the table, the controller, the
// data plane and the sync endpoints; this formats them.
#pragma once

#include "controller.h"
#include "session_table.h"

#include <cstdint>
#include <string>

namespace anyrtpproxy {

struct SyncStats {
  std::uint64_t connections_refused = 0, slow_peers_dropped = 0, bad_streams = 0, frames_received = 0;
  std::uint64_t frames_refused = 0;  // decoded, but refused by validation (cluster.h)
};

struct RelayStats {
  std::size_t sockets = 0;          // open relay sockets (RTP and RTCP)
  std::uint64_t bind_failures = 0;  // port pairs that could not be bound
};

struct DaemonStats {
  std::size_t sessions = 0;
  TableStats table;
  CommandStats commands;
  RelayStats relay;
  std::size_t sync_connections = 0;  // readers of the sync port
  SyncStats sync;
};

std::string stats_line(const DaemonStats& s);

}  // namespace anyrtpproxy
