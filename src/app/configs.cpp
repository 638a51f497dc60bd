// configs: see configs.h.
#include "app/configs.h"

#include "core/capacity.h"

#include <unistd.h>

#include <random>

namespace anyrtpproxy {

std::array<PortAllocator, slot_count> make_pools(const Options& o) {
  std::random_device rd;
  auto pools = make_slot_pools([&](Slot slot) {
    return o.media[slot] ? PortAllocator(o.port_min, o.port_max, rd()) : PortAllocator(0, 0, 0);
  });
  for (const auto& c : o.control) {  // never hand out the control port as media (nor its pair)
    if (c.kind != ControlSpec::Kind::udp) continue;  // media is UDP: a TCP control port does not collide
    for (auto& pool : pools) pool.reserve(c.endpoint.port());
  }
  return pools;
}

std::string instance_name(const Options& o) {
  char host[256] = {};
  if (::gethostname(host, sizeof host - 1) != 0) host[0] = '\0';
  return std::string(host[0] ? host : "anyrtpproxy") + ":" + std::to_string(o.port_min);
}

TableConfig table_config(const Options& o) {
  std::size_t served = 0;
  for (const auto& a : o.media) served += a.has_value();
  return scaled_for(TableConfig{o.ttl, o.setup_ttl, o.policy, instance_name(o)}, served);
}

boost::asio::ip::tcp::endpoint sync_endpoint(const Options& o) {
  namespace ip = boost::asio::ip;
  return ip::tcp::endpoint(o.sync_interface ? *o.sync_interface : ip::address(ip::address_v6::any()), o.sync_port);
}

ControllerConfig controller_config(const Options& o, PromptLibrary* prompts, const std::string& instance) {
  ControllerConfig c;
  c.prompts = prompts;
  c.instance = instance;
  c.local = o.media;
  c.advertised = o.advertised;
  c.recording = !o.record_dir.empty();
  c.record_all = o.record_all;
  for (const auto& t : o.notify) c.notify_targets.push_back(t.text);
  return c;
}

SyncHello sync_hello(const Options& o, const std::string& instance) {
  SyncHello hello{instance, o.port_min, o.port_max, 0, {}};
  for (Slot s = 0; s < slot_count; ++s)
    if (o.media[s]) hello.addresses.emplace_back(s, *o.media[s]);
  return hello;
}

OffloadConfig offload_config(const Options& o) {
  OffloadConfig oc;
  oc.interfaces = o.offload_interfaces;
  oc.local = o.media;
  return oc;
}

std::vector<Event> serving_notes(const Options& o, bool root) {
  std::string where;
  for (const auto& c : o.control) where += " " + c.text;
  std::vector<Event> out{{Level::notice, "serving control on" + where + ", ports " + std::to_string(o.port_min) + "-" +
                                             std::to_string(o.port_max)}};
  if (root && o.user.empty())
    out.emplace_back(Level::warning,
                     "running as root: give -u USER (the Debian package's anyrtpproxy) to drop privileges after binding");
  if (!o.sync_tls && (o.sync_port || !o.sync_hosts.empty()))
    out.emplace_back(Level::warning, "sync is unauthenticated: peers are told by their address alone, and what they "
                                     "send is not encrypted; give --sync-tls-cert, --sync-tls-key and --sync-tls-ca");
  return out;
}

ClusterView cluster_view(const Options& o, const std::string& instance) {
  ClusterView v;
  v.self = instance;
  v.own = PortRange{o.port_min, o.port_max};
  v.addresses = o.media;
  for (const auto& t : o.notify) v.notify_targets.push_back(t.text);
  return v;
}

}  // namespace anyrtpproxy
