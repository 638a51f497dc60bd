// configs: what each part of the daemon is configured with, derived from the
// Options: the session table and its port pools, the controller, the sync
// endpoint and hello, the kernel fast path, the cluster view.
#pragma once

#include "app/options.h"
#include "core/cluster.h"
#include "core/event.h"
#include "core/controller.h"
#include "core/port_allocator.h"
#include "core/session_table.h"
#include "core/sync_codec.h"
#include "io/offload.h"

#include <boost/asio/ip/tcp.hpp>

#include <array>
#include <string>
#include <vector>

namespace anyrtpproxy {

// "HOST:FIRSTPORT": port ranges do not overlap between instances, so the first
// port names an instance, across restarts.
std::string instance_name(const Options& o);
TableConfig table_config(const Options& o);
// Every relay address has its own copy of the range; a slot without one has
// none. UDP control ports (and their pairs) are never handed out as media.
std::array<PortAllocator, slot_count> make_pools(const Options& o);
ControllerConfig controller_config(const Options& o, PromptLibrary* prompts, const std::string& instance);
// -I's address, or every address (IPv4 and IPv6).
boost::asio::ip::tcp::endpoint sync_endpoint(const Options& o);
SyncHello sync_hello(const Options& o, const std::string& instance);
OffloadConfig offload_config(const Options& o);
// What the daemon says once it serves: where, and what it advises about its
// configuration (running as root without -u, sync without TLS).
std::vector<Event> serving_notes(const Options& o, bool root);

// What this instance knows of itself when it checks what peers send.
ClusterView cluster_view(const Options& o, const std::string& instance);

}  // namespace anyrtpproxy
