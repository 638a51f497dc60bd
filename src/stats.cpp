// stats: see stats.h.
#include "stats.h"

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
