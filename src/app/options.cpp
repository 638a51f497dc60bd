// options: see options.h.
#include "app/options.h"

#include "core/port_allocator.h"

#include <boost/asio/ip/tcp.hpp>
#include <boost/program_options.hpp>

#include <charconv>
#include <iterator>
#include <sstream>

namespace anyrtpproxy {
namespace {

namespace po = boost::program_options;
namespace ip = boost::asio::ip;

[[noreturn]] void fail(const std::string& option, const std::string& problem) {
  throw OptionError("option " + option + ": " + problem);
}

long number(const std::string& option, const std::string& text, long lo, long hi) {
  long v = 0;
  const auto [p, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (text.empty() || ec != std::errc() || p != text.data() + text.size())
    fail(option, "'" + text + "' is not a number");
  if (v < lo || v > hi) fail(option, text + " is out of range " + std::to_string(lo) + "-" + std::to_string(hi));
  return v;
}

std::uint16_t port_number(const std::string& option, const std::string& text) {
  return static_cast<std::uint16_t>(number(option, text, 1, 65535));
}

// A numeric address, or a host name resolved now (one address; IPv6 only if asked).
ip::address resolve(HostChecks& host, const std::string& option, const std::string& name, bool want_v6 = false) {
  boost::system::error_code ec;
  auto addr = ip::make_address(name, ec);
  if (!ec) return addr;
  const auto resolved = host.resolve(name, want_v6);
  if (!resolved) fail(option, "cannot resolve '" + name + "'");
  return *resolved;
}

// "host", "host:port", "[v6]:port", "v6" (two or more colons, no port).
std::pair<std::string, std::string> split_host_port(const std::string& s) {
  if (!s.empty() && s[0] == '[') {
    const auto close = s.find(']');
    if (close == std::string::npos) return {s, ""};
    const std::string rest = s.substr(close + 1);
    return {s.substr(1, close - 1), rest.size() > 1 && rest[0] == ':' ? rest.substr(1) : rest};
  }
  const auto colons = std::count(s.begin(), s.end(), ':');
  if (colons == 1) {
    const auto c = s.find(':');
    return {s.substr(0, c), s.substr(c + 1)};
  }
  return {s, ""};
}

ControlSpec parse_control(HostChecks& machine, const std::string& text) {
  const std::string opt = "-s/--control";
  ControlSpec spec;
  spec.text = text;
  auto endpoint_of = [&](const std::string& host, const std::string& port, bool v6) {
    if (host.empty()) fail(opt, "'" + text + "' has no host");
    const std::string h = host == "*" ? (v6 ? "::" : "0.0.0.0") : host;
    const auto addr = resolve(machine, opt, h, v6);
    if (v6 != addr.is_v6()) fail(opt, "'" + host + "' is not an " + (v6 ? "IPv6" : "IPv4") + " address");
    return ip::udp::endpoint(addr, port.empty() ? default_control_port : port_number(opt, port));
  };
  const bool persistent_unix = text.rfind("cunix:", 0) == 0;
  if (persistent_unix || text.rfind("unix:", 0) == 0 || (!text.empty() && text[0] == '/')) {
    spec.kind = persistent_unix ? ControlSpec::Kind::unix_persistent : ControlSpec::Kind::unix_stream;
    spec.path = text[0] == '/' ? text : text.substr(text.find(':') + 1);
    if (spec.path.empty() || spec.path[0] != '/') fail(opt, "'" + text + "' needs an absolute path");
    if (spec.path.size() >= 100) fail(opt, "the socket path '" + spec.path + "' is too long");
    return spec;
  }
  for (const char* v6_prefix : {"udp6:", "tcp6:"}) {
    if (text.rfind(v6_prefix, 0) != 0) continue;
    spec.kind = v6_prefix[0] == 't' ? ControlSpec::Kind::tcp : ControlSpec::Kind::udp;
    const std::string rest = text.substr(5);
    boost::system::error_code ec;
    ip::make_address_v6(rest, ec);  // "udp6:::1" has no port; else the port follows the last ':'
    const auto c = rest.rfind(':');
    if (!ec || c == std::string::npos)
      spec.endpoint = endpoint_of(rest == "*" || rest.empty() ? "*" : rest, "", true);
    else
      spec.endpoint = endpoint_of(rest.substr(0, c), rest.substr(c + 1), true);
    return spec;
  }
  for (const char* v4_prefix : {"udp:", "tcp:"}) {
    if (text.rfind(v4_prefix, 0) != 0) continue;
    spec.kind = v4_prefix[0] == 't' ? ControlSpec::Kind::tcp : ControlSpec::Kind::udp;
    auto [host, port] = split_host_port(text.substr(4));
    spec.endpoint = endpoint_of(host, port, false);
    return spec;
  }
  const auto scheme = text.find(':');
  if (scheme != std::string::npos && text.find("://") == std::string::npos) {
    const std::string prefix = text.substr(0, scheme);
    if (prefix == "stdio" || prefix == "stdioc" || prefix == "systemd")
      fail(opt, "'" + prefix + ":' control sockets are not supported (use udp:, udp6:, tcp:, tcp6:, unix: or cunix:)");
  }
  auto [host, port] = split_host_port(text);
  boost::system::error_code ec;
  const auto literal = ip::make_address(host, ec);
  spec.endpoint = endpoint_of(host, port, !ec && literal.is_v6());
  return spec;
}

NotifyTarget parse_notify(HostChecks& hc, const std::string& text) {
  const std::string opt = "--notify";
  NotifyTarget t;
  t.text = text;
  if (text.rfind("unix:", 0) == 0 || (!text.empty() && text[0] == '/')) {
    t.kind = NotifyTarget::Kind::unix_stream;
    t.path = text[0] == '/' ? text : text.substr(5);
    if (t.path.empty() || t.path[0] != '/') fail(opt, "'" + text + "' needs an absolute path");
    if (t.path.size() >= 100) fail(opt, "the socket path '" + t.path + "' is too long");
    return t;
  }
  if (text.rfind("tcp:", 0) != 0) fail(opt, "'" + text + "' is neither tcp:HOST:PORT nor unix:/PATH");
  const std::string rest = text.substr(4);
  const auto c = rest.rfind(':');
  if (c == std::string::npos || c == 0) fail(opt, "'" + text + "' needs tcp:HOST:PORT");
  std::string host = rest.substr(0, c);
  if (host.size() > 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
  t.endpoint = ip::udp::endpoint(resolve(hc, opt, host), port_number(opt, rest.substr(c + 1)));
  return t;
}

std::vector<Network> parse_networks(const std::string& opt, const std::vector<std::string>& values) {
  std::vector<Network> nets;
  for (const auto& value : values) {
    std::stringstream ss(value);
    std::string item;
    while (std::getline(ss, item, ',')) {
      const auto slash = item.find('/');
      boost::system::error_code ec;
      const auto addr = ip::make_address(item.substr(0, slash), ec);
      if (item.empty() || ec) fail(opt, "'" + item + "' is not an address or ADDRESS/PREFIX");
      const unsigned bits = addr.is_v6() ? 128 : 32;
      const unsigned prefix =
          slash == std::string::npos ? bits : static_cast<unsigned>(number(opt, item.substr(slash + 1), 0, bits));
      nets.push_back(Network{unmapped(addr), addr.is_v6() && addr.to_v6().is_v4_mapped() ? prefix - 96 : prefix});
      if (nets.size() > 256) fail(opt, "more than 256 networks");
    }
  }
  return nets;
}

// One address of an -i or -A value: its side (bridge mode: "INTERNAL/EXTERNAL")
// and position in its side's list ("A1,A2,...").
struct Listed {
  Side side;
  std::size_t index;
  std::string text;
};

// "A1,A2[/B1,B2]": each side non-empty, at most max_addresses a side, no empty entry.
std::vector<Listed> address_list(const std::string& opt, const std::string& value) {
  const auto slash = value.find('/');
  std::vector<std::string> sides{value.substr(0, slash)};
  if (slash != std::string::npos) sides.push_back(value.substr(slash + 1));
  std::vector<Listed> out;
  for (std::size_t side = 0; side < sides.size(); ++side) {
    const std::string& part = sides[side];
    if (part.empty() || part.find('/') != std::string::npos) fail(opt, "'" + value + "' is not ADDR or ADDR/ADDR");
    std::size_t index = 0, at = 0;
    for (;; ++index) {
      const auto comma = part.find(',', at);
      const std::string text = part.substr(at, comma == std::string::npos ? std::string::npos : comma - at);
      if (text.empty()) fail(opt, "'" + value + "' has an empty address");
      if (index >= max_addresses)
        fail(opt, "'" + part + "' lists more than " + std::to_string(max_addresses) + " addresses");
      out.push_back(Listed{static_cast<Side>(side), index, text});
      if (comma == std::string::npos) break;
      at = comma + 1;
    }
  }
  return out;
}

// A relay address must be this host's: else every call would fail with E72,
// one warning per port pair.
void check_local(HostChecks& host, const std::string& opt, const std::string& text, const ip::address& addr) {
  if (addr.is_multicast()) fail(opt, text + " is a multicast address");
  if (addr.is_unspecified()) return;
  if (auto why = host.cannot_bind(addr)) fail(opt, text + " " + *why);
}

std::vector<SyncPeer> parse_sync_hosts(const std::vector<std::string>& values) {
  const std::string opt = "-M/--sync-hosts";
  std::vector<SyncPeer> peers;
  for (const auto& value : values) {
    std::stringstream ss(value);
    std::string item;
    while (std::getline(ss, item, ',')) {
      if (item.empty()) fail(opt, "'" + value + "' has an empty entry");
      auto [host, port] = split_host_port(item);
      if (host.empty() || port.empty()) fail(opt, "'" + item + "' is not host:port");
      peers.push_back(SyncPeer{host, port_number(opt, port)});
      if (peers.size() > 64) fail(opt, "more than 64 sync hosts");
    }
  }
  return peers;
}


using Takes = OptionRule::Takes;

template <class T>
bool differ(const T& a, const T& b) { return !(a == b); }

std::vector<std::string> control_texts(const Options& o) {
  std::vector<std::string> out;
  for (const auto& c : o.control) out.push_back(c.text);
  return out;
}
std::vector<std::string> peer_texts(const Options& o) {
  std::vector<std::string> out;
  for (const auto& p : o.sync_hosts) out.push_back(p.host + ":" + std::to_string(p.port));
  return out;
}
std::vector<std::string> network_texts(const std::vector<Network>& nets) {
  std::vector<std::string> out;
  for (const auto& n : nets) out.push_back(n.text());
  return out;
}
std::vector<std::string> notify_texts(const Options& o) {
  std::vector<std::string> out;
  for (const auto& t : o.notify) out.push_back(t.text);
  return out;
}

#define ANYRTPPROXY_SAME(expr) [](const Options& a, const Options& b) { return differ(a.expr, b.expr); }
#define ANYRTPPROXY_TAKE(field) [](Options& into, const Options& from) { into.field = from.field; }

// clang-format off
const std::vector<OptionRule> rules = {
  {"help,h", Takes::nothing, "", "print this help and exit", Reload::command_line, nullptr, nullptr},
  {"version,V", Takes::nothing, "", "print the version and exit", Reload::command_line, nullptr, nullptr},
  {"config,c", Takes::one, "FILE",
   "read options from FILE (long names as keys: name = value); the command line wins; SIGHUP reads it again",
   Reload::command_line, nullptr, nullptr},
  {"nodaemonize,D", Takes::nothing, "", "stay in the foreground", Reload::restart, ANYRTPPROXY_SAME(daemonize), nullptr},
  {"chroot,C", Takes::nothing, "", "chroot to --chroot-dir and drop privileges to --username", Reload::restart,
   ANYRTPPROXY_SAME(chroot), nullptr},
  {"username,u", Takes::one, "USER", "drop privileges to this user after binding", Reload::restart,
   ANYRTPPROXY_SAME(user), nullptr},
  {"chroot-dir,H", Takes::one, "DIR", "chroot to this directory (with -C)", Reload::restart,
   ANYRTPPROXY_SAME(chroot_dir), nullptr},
  {"write-pid,P", Takes::one, "FILE", "write the daemon's pid to FILE", Reload::restart, ANYRTPPROXY_SAME(pid_file),
   nullptr},
  {"interface,i", Takes::repeated, "ADDR[,ADDR...][/ADDR[,ADDR...]]",
   "relay RTP on this address; once per family (default 0.0.0.0); INTERNAL/EXTERNAL: bridge mode; "
   "A1,A2,...: up to 8 addresses, each with the whole -p range, a new leg on the one with most free ports",
   Reload::restart, ANYRTPPROXY_SAME(media), nullptr},
  {"advertise,A", Takes::repeated, "ADDR[,ADDR...][/ADDR[,ADDR...]]",
   "the address replies name instead of the -i address of that family (and side, and position), e.g. behind 1:1 NAT",
   Reload::restart, ANYRTPPROXY_SAME(advertised), nullptr},
  {"control,s", Takes::repeated, "SOCKET",
   "control socket: host[:port], udp:host:port, udp6:host:port, tcp:host:port, tcp6:host:port, "
   "unix:/path or cunix:/path (default 127.0.0.1:22222)",
   Reload::restart, [](const Options& a, const Options& b) { return control_texts(a) != control_texts(b); }, nullptr},
  {"port-range,p", Takes::words, "START END", "RTP/RTCP ports to allocate from (default 35000 65000)", Reload::restart,
   [](const Options& a, const Options& b) { return a.port_min != b.port_min || a.port_max != b.port_max; }, nullptr},
  {"nat,n", Takes::nothing, "", "learn a new remote address from every new source (clients behind NAT)",
   Reload::restart,
   [](const Options& a, const Options& b) { return (a.policy == LatchPolicy::always) != (b.policy == LatchPolicy::always); },
   nullptr},
  {"no-nat-once,o", Takes::nothing, "", "never learn a remote address that signalling gave: accept only that source",
   Reload::restart,
   [](const Options& a, const Options& b) { return (a.policy == LatchPolicy::never) != (b.policy == LatchPolicy::never); },
   nullptr},
  {"sync-port,S", Takes::one, "PORT", "TCP port of the session sync server", Reload::restart,
   ANYRTPPROXY_SAME(sync_port), nullptr},
  {"sync-interface,I", Takes::one, "ADDR", "address of the sync server (default all)", Reload::restart,
   ANYRTPPROXY_SAME(sync_interface), nullptr},
  {"sync-hosts,M", Takes::repeated, "HOST:PORT,...", "other instances to sync with", Reload::restart,
   [](const Options& a, const Options& b) { return peer_texts(a) != peer_texts(b); }, nullptr},
  {"sync-allow", Takes::repeated, "NET,...", "who may read the sync port's listing (default 127.0.0.1,::1)",
   Reload::live,
   [](const Options& a, const Options& b) { return network_texts(a.sync_allow) != network_texts(b.sync_allow); },
   ANYRTPPROXY_TAKE(sync_allow)},
  {"sync-tls-cert", Takes::one, "FILE", "this instance's certificate for sync TLS (PEM)", Reload::restart,
   [](const Options& a, const Options& b) { return (a.sync_tls ? a.sync_tls->cert : "") != (b.sync_tls ? b.sync_tls->cert : ""); },
   nullptr},
  {"sync-tls-key", Takes::one, "FILE", "its private key (PEM)", Reload::restart,
   [](const Options& a, const Options& b) { return (a.sync_tls ? a.sync_tls->key : "") != (b.sync_tls ? b.sync_tls->key : ""); },
   nullptr},
  {"sync-tls-ca", Takes::one, "FILE", "the cluster's CA: peers must present a certificate it signed", Reload::restart,
   [](const Options& a, const Options& b) { return (a.sync_tls ? a.sync_tls->ca : "") != (b.sync_tls ? b.sync_tls->ca : ""); },
   nullptr},
  {"tos,t", Takes::one, "TOS",
   "TOS byte (IPv4) and traffic class (IPv6) of relayed packets, 0-255 (default 184: DSCP EF)", Reload::restart,
   ANYRTPPROXY_SAME(tos), nullptr},
  {"timeout,T", Takes::one, "SECONDS", "inactivity timeout of a session (default 60)", Reload::live,
   ANYRTPPROXY_SAME(ttl), ANYRTPPROXY_TAKE(ttl)},
  {"setup-timeout,W", Takes::one, "SECONDS", "timeout of an offer that is never answered (default: --timeout)",
   Reload::live, ANYRTPPROXY_SAME(setup_ttl), ANYRTPPROXY_TAKE(setup_ttl)},
  {"notify", Takes::repeated, "TARGET",
   "allowed timeout-notification target: tcp:HOST:PORT or unix:/PATH (repeatable)", Reload::live,
   [](const Options& a, const Options& b) { return notify_texts(a) != notify_texts(b); }, ANYRTPPROXY_TAKE(notify)},
  {"log-level,d", Takes::one, "LEVEL", "error, warning, notice, info (default) or debug", Reload::live,
   ANYRTPPROXY_SAME(log_level), ANYRTPPROXY_TAKE(log_level)},
  {"record-dir,r", Takes::one, "DIR", "where recordings (R) go; without it R answers E50", Reload::restart,
   ANYRTPPROXY_SAME(record_dir), nullptr},
  {"spool-dir", Takes::one, "DIR", "write recordings here, move them to --record-dir when they end (rtpproxy's -S)",
   Reload::restart, ANYRTPPROXY_SAME(spool_dir), nullptr},
  {"record-pcap", Takes::nothing, "", "record in pcap format, one file per session (rtpproxy's -P)", Reload::restart,
   ANYRTPPROXY_SAME(record_pcap), nullptr},
  {"record-all,a", Takes::nothing, "", "record every session", Reload::restart, ANYRTPPROXY_SAME(record_all), nullptr},
  {"prompts", Takes::one, "DIR",
   "P's prompts: pre-encoded payload files NAME.PT (moh.8 for PCMA); without it P answers E60", Reload::restart,
   ANYRTPPROXY_SAME(prompts_dir), nullptr},
  {"health-file", Takes::one, "FILE",
   "a file that exists while this instance has headroom to take over its share (for BIRD or ExaBGP)", Reload::restart,
   ANYRTPPROXY_SAME(health_file), nullptr},
  {"health", Takes::one, "PATH",
   "a unix socket whose clients get a line every 100 ms while this instance lives: healthy or unhealthy "
   "(EOF when it dies, silence when it hangs)", Reload::restart, ANYRTPPROXY_SAME(health_socket), nullptr},
  {"health-group", Takes::one, "GROUP",
   "the --health socket's group (mode 0660): one the routing daemon's user (exabgp, bird) is in", Reload::restart,
   ANYRTPPROXY_SAME(health_group), nullptr},
  {"drain-seconds", Takes::one, "SECONDS",
   "on SIGTERM (with -M peers), say draining and keep relaying until the calls' packets stop for a second "
   "(their route moved) or this long passed, then stop; 0: stop at once (default 5)",
   Reload::live, ANYRTPPROXY_SAME(drain), ANYRTPPROXY_TAKE(drain)},
  {"kernel-offload", Takes::one, "MODE",
   "forward latched streams in the kernel (eBPF at tc ingress): auto (default: if the kernel allows it), on or off",
   Reload::restart, ANYRTPPROXY_SAME(kernel_offload), nullptr},
  {"offload-interfaces", Takes::repeated, "IF,...", "the interfaces media arrives on, for --kernel-offload "
   "(default: all but lo)", Reload::restart, ANYRTPPROXY_SAME(offload_interfaces), nullptr},
  {"catch-all", Takes::one, "MODE",
   "mirror peers' legs without sockets, their packets caught by eBPF sk_lookup until one adopts the leg: "
   "auto (default: if the kernel allows it), on or off (bind every mirrored leg)",
   Reload::restart, ANYRTPPROXY_SAME(catch_all), nullptr},
  {"park-idle", Takes::one, "SECONDS",
   "park an adopted peer's call again once it has had no packet here for this long (default 60; 0: never)",
   Reload::restart, ANYRTPPROXY_SAME(park_idle), nullptr},
  {"metrics", Takes::one, "ADDR:PORT", "serve Prometheus metrics at http://ADDR:PORT/metrics ([v6]:PORT for IPv6)",
   Reload::restart, ANYRTPPROXY_SAME(metrics), nullptr},
  {"metrics-allow", Takes::repeated, "NET,...", "who may scrape the metrics (default 127.0.0.0/8,::1)", Reload::live,
   [](const Options& a, const Options& b) { return network_texts(a.metrics_allow) != network_texts(b.metrics_allow); },
   ANYRTPPROXY_TAKE(metrics_allow)},
};
// clang-format on

#undef ANYRTPPROXY_SAME
#undef ANYRTPPROXY_TAKE

po::options_description describe() {
  po::options_description d("Options");
  for (const auto& r : rules) {
    switch (r.takes) {
      case Takes::nothing:
        d.add_options()(r.names, r.help);
        break;
      case Takes::one:
        d.add_options()(r.names, po::value<std::string>()->value_name(r.value), r.help);
        break;
      case Takes::repeated:
        d.add_options()(r.names, po::value<std::vector<std::string>>()->value_name(r.value), r.help);
        break;
      case Takes::words:
        d.add_options()(r.names, po::value<std::vector<std::string>>()->multitoken()->value_name(r.value), r.help);
        break;
    }
  }
  return d;
}

// The file's options go into vm after the command line's, so the command line
// wins. Switches take "yes" or "no" there (see flag() below); help, version
// and config are not keys of the file.
void read_config_file(HostChecks& host, const std::string& file, po::variables_map& vm) {
  const std::string opt = "-c/--config";
  if (file.empty()) fail(opt, "empty file name");
  std::string error;
  const auto text = host.read_file(file, error);
  if (!text) fail(opt, "cannot read " + file + ": " + error);
  po::options_description keys;
  for (const auto& r : rules) {
    if (r.reload == Reload::command_line) continue;
    const std::string name = r.long_name();
    if (r.takes == Takes::nothing)
      keys.add_options()(name.c_str(), po::value<std::string>());
    else if (r.takes == Takes::one)
      keys.add_options()(name.c_str(), po::value<std::string>());
    else
      keys.add_options()(name.c_str(), po::value<std::vector<std::string>>());
  }
  std::istringstream in(*text);
  try {
    po::store(po::parse_config_file(in, keys, false), vm);
  } catch (const po::error& e) {
    fail(opt, file + ": " + e.what());
  }
}

// The values of the options, by long name, as given (command line first, then the file).
class Given {
public:
  Given(const po::variables_map& vm, const std::string& config_file) : vm_(vm), config_file_(config_file) {}
  bool has(const char* name) const { return vm_.count(name) > 0; }
  std::string str(const char* name) const { return vm_[name].as<std::string>(); }
  std::vector<std::string> list(const char* name) const { return vm_[name].as<std::vector<std::string>>(); }
  std::vector<std::string> list_or(const char* name, const char* fallback) const {
    return has(name) ? list(name) : std::vector<std::string>{fallback};
  }
  // A switch: given on the command line, or "name = yes|no" in the file.
  bool flag(const char* name, const char* option) const {
    if (!has(name)) return false;
    const auto* text = boost::any_cast<std::string>(&vm_[name].value());
    if (!text || text->empty()) return true;  // a switch on the command line (or "name =" in the file)
    if (*text == "yes" || *text == "true" || *text == "on" || *text == "1") return true;
    if (*text == "no" || *text == "false" || *text == "off" || *text == "0") return false;
    fail(option, "'" + *text + "' in " + config_file_ + " is neither yes nor no");
  }

private:
  const po::variables_map& vm_;
  const std::string& config_file_;
};

// -i: every address this host's, one family per -i, a wildcard alone on its side.
void parse_interfaces(HostChecks& host, const Given& g, Options& o) {
  const std::string opt = "-i/--interface";
  if (!g.has("interface")) {
    o.media[0] = ip::address_v4::any();
    return;
  }
  for (const auto& value : g.list("interface")) {
    const auto listed = address_list(opt, value);
    const bool v6 = resolve(host, opt, listed.front().text).is_v6();
    const Family family = v6 ? Family::v6 : Family::v4;
    std::array<std::size_t, 2> on_side{};
    for (const auto& l : listed) ++on_side[static_cast<std::size_t>(l.side)];
    for (const auto& l : listed) {
      const auto addr = resolve(host, opt, l.text, v6);
      if (addr.is_v6() != v6) fail(opt, "'" + value + "' mixes IPv4 and IPv6 (one -i per family)");
      if (addr.is_unspecified() && on_side[static_cast<std::size_t>(l.side)] > 1)
        fail(opt, "'" + value + "' lists a wildcard address among others");
      const Slot slot = slot_of(family, l.side, l.index);
      if (o.media[slot])
        fail(opt, "given twice for " + std::string(v6 ? "IPv6" : "IPv4") + " (" + o.media[slot]->to_string() + ", " +
                      l.text + ")");
      for (const auto& other : o.media)
        if (other && *other == addr) fail(opt, l.text + " is listed twice");
      check_local(host, opt, l.text, addr);
      o.media[slot] = addr;
    }
    if (on_side[1] > 0 && (o.media[slot_of(family, Side::internal)]->is_unspecified() ||
                           o.media[slot_of(family, Side::external)]->is_unspecified()))
      fail(opt, "bridge mode needs two addresses of this host, not a wildcard: '" + value + "'");
  }
}

// -A: numeric unicast addresses, each standing for the -i address at its place.
void parse_advertised(const Given& g, Options& o) {
  const std::string opt = "-A/--advertise";
  if (!g.has("advertise")) return;
  for (const auto& value : g.list("advertise")) {
    for (const auto& l : address_list(opt, value)) {
      boost::system::error_code ec;
      const auto addr = ip::make_address(l.text, ec);
      if (ec || addr.is_unspecified() || addr.is_multicast()) fail(opt, "'" + l.text + "' is not a unicast IP address");
      const Slot slot = slot_of(addr.is_v6() ? Family::v6 : Family::v4, l.side, l.index);
      if (!o.media[slot])
        fail(opt, "'" + value + "' has no -i " + (l.side == Side::external ? "external " : "") +
                      "address of its family" + (l.index ? " at position " + std::to_string(l.index + 1) : ""));
      if (o.advertised[slot]) fail(opt, "given twice for " + o.media[slot]->to_string());
      o.advertised[slot] = addr;
    }
  }
}

void parse_ports(const Given& g, Options& o) {
  if (!g.has("port-range")) return;
  auto r = g.list("port-range");
  if (r.size() == 1) {  // from the file: "port-range = 20000 25000"
    std::istringstream words(r[0]);
    r.assign(std::istream_iterator<std::string>(words), std::istream_iterator<std::string>());
  }
  if (r.size() != 2) fail("-p/--port-range", "takes two numbers, START END");
  o.port_min = port_number("-p/--port-range", r[0]);
  o.port_max = port_number("-p/--port-range", r[1]);
  if (o.port_min > o.port_max) fail("-p/--port-range", r[0] + " " + r[1] + " is inverted");
  if (PortAllocator::pairs_in(o.port_min, o.port_max) == 0)
    fail("-p/--port-range", r[0] + " " + r[1] + " holds no even RTP port with its RTCP port");
}

void parse_sync(HostChecks& host, const Given& g, Options& o) {
  if (g.has("sync-port")) o.sync_port = port_number("-S/--sync-port", g.str("sync-port"));
  if (g.has("sync-interface")) o.sync_interface = resolve(host, "-I/--sync-interface", g.str("sync-interface"));
  if (g.has("sync-hosts")) o.sync_hosts = parse_sync_hosts(g.list("sync-hosts"));
  o.sync_allow = parse_networks("--sync-allow", g.list_or("sync-allow", "127.0.0.1,::1"));
  const char* tls[] = {"sync-tls-cert", "sync-tls-key", "sync-tls-ca"};
  const auto given = std::count_if(std::begin(tls), std::end(tls), [&](const char* n) { return g.has(n); });
  if (given > 0 && given < 3)
    for (const char* n : tls)
      if (!g.has(n))
        fail(std::string("--") + n, "is needed too: sync TLS takes --sync-tls-cert, --sync-tls-key and --sync-tls-ca");
  if (given == 3) {
    for (const char* n : tls)
      if (g.str(n).empty()) fail(std::string("--") + n, "empty file name");
    o.sync_tls = TlsFiles{g.str("sync-tls-cert"), g.str("sync-tls-key"), g.str("sync-tls-ca")};
  }
}

// Directories must exist (under -C they are looked up in the chroot, which is not entered yet).
void parse_files(HostChecks& host, const Given& g, Options& o) {
  auto directory = [&](const char* name, const std::string& option) {
    const std::string dir = g.str(name);
    if (dir.empty() || dir[0] != '/') fail(option, "'" + dir + "' is not an absolute path");
    if (!o.chroot && !host.is_directory(dir)) fail(option, "'" + dir + "' is not a directory");
    return dir.size() > 1 && dir.back() == '/' ? dir.substr(0, dir.size() - 1) : dir;
  };
  if (g.has("record-dir")) o.record_dir = directory("record-dir", "-r/--record-dir");
  if (g.has("spool-dir")) o.spool_dir = directory("spool-dir", "--spool-dir");
  if (g.has("prompts")) o.prompts_dir = directory("prompts", "--prompts");
  o.record_pcap = g.flag("record-pcap", "--record-pcap");
  o.record_all = g.flag("record-all", "-a/--record-all");
  if (o.record_dir.empty() && (!o.spool_dir.empty() || o.record_pcap || o.record_all))
    fail(!o.spool_dir.empty() ? "--spool-dir" : o.record_pcap ? "--record-pcap" : "-a/--record-all",
         "needs -r/--record-dir");
  if (g.has("health-file")) {
    const std::string file = g.str("health-file");
    const auto slash = file.rfind('/');
    if (file.empty() || file[0] != '/' || slash + 1 == file.size())
      fail("--health-file", "'" + file + "' is not an absolute file name");
    o.health_file = file;
    const std::string dir = slash == 0 ? "/" : file.substr(0, slash);
    if (!o.chroot && !host.is_directory(dir)) fail("--health-file", "'" + dir + "' is not a directory");
  }
  if (g.has("health")) {
    const std::string path = g.str("health");
    const auto slash = path.rfind('/');
    if (path.empty() || path[0] != '/' || slash + 1 == path.size())
      fail("--health", "'" + path + "' is not an absolute file name");
    if (path.size() >= 100) fail("--health", "the socket path '" + path + "' is too long");
    const std::string dir = slash == 0 ? "/" : path.substr(0, slash);
    if (!o.chroot && !host.is_directory(dir)) fail("--health", "'" + dir + "' is not a directory");
    o.health_socket = path;
  }
  if (g.has("health-group")) {
    const std::string group = g.str("health-group");
    if (o.health_socket.empty()) fail("--health-group", "it names the group of the --health socket: give --health");
    if (group.empty() || group.size() > 32 || group.find_first_of(" /:\n") != std::string::npos)
      fail("--health-group", "'" + group + "' is not a group name");
    o.health_group = group;
  }
}

void parse_kernel(const Given& g, Options& o) {
  const auto mode_of = [&](const char* name, Options::Mode& out) {
    if (!g.has(name)) return;
    const std::string mode = g.str(name);
    if (mode == "auto") out = Options::Mode::automatic;
    else if (mode == "on") out = Options::Mode::on;
    else if (mode == "off") out = Options::Mode::off;
    else fail(std::string("--") + name, "'" + mode + "' is not auto, on or off");
  };
  mode_of("kernel-offload", o.kernel_offload);
  mode_of("catch-all", o.catch_all);
  if (g.has("drain-seconds"))
    o.drain = std::chrono::seconds(number("--drain-seconds", g.str("drain-seconds"), 0, 3600));
  if (g.has("park-idle")) o.park_idle = std::chrono::seconds(number("--park-idle", g.str("park-idle"), 0, 86400));
  if (!g.has("offload-interfaces")) return;
  for (const auto& item : g.list("offload-interfaces")) {
    std::stringstream in(item);
    for (std::string name; std::getline(in, name, ',');) {
      const bool ok = !name.empty() && name.size() < 16 && name.find_first_of("/ \t:") == std::string::npos &&
                      name != "." && name != "..";
      if (!ok) fail("--offload-interfaces", "'" + name + "' is not an interface name");
      o.offload_interfaces.push_back(name);
    }
  }
  if (o.kernel_offload == Options::Mode::off) fail("--offload-interfaces", "needs --kernel-offload auto or on");
}

}  // namespace

std::string OptionRule::long_name() const {
  const std::string n = names;
  return n.substr(0, n.find(','));
}

const std::vector<OptionRule>& option_rules() { return rules; }

Options parse_options(int argc, const char* const argv[], HostChecks& host) {
  Options o;
  const po::options_description d = describe();
  std::ostringstream help;
  help << "usage: anyrtpproxy [options]\n\n" << d;
  o.help_text = help.str();

  po::options_description all;
  all.add(d).add_options()("unexpected", po::value<std::vector<std::string>>());
  po::positional_options_description stray;
  stray.add("unexpected", -1);
  po::variables_map vm;
  try {
    po::store(po::command_line_parser(argc, argv).options(all).positional(stray).run(), vm);
  } catch (const po::error& e) {
    throw OptionError(e.what());
  }
  for (int i = 0; i < argc; ++i) o.args.emplace_back(argv[i]);
  if (vm.count("config") && !vm.count("help") && !vm.count("version")) {
    o.config_file = vm["config"].as<std::string>();
    read_config_file(host, o.config_file, vm);
  }
  try {
    po::notify(vm);
  } catch (const po::error& e) {
    throw OptionError(e.what());
  }
  const Given g(vm, o.config_file);
  if (g.has("unexpected")) throw OptionError("unexpected argument '" + g.list("unexpected").front() + "'");
  o.help = g.has("help");
  o.version = g.has("version");
  o.daemonize = !g.flag("nodaemonize", "-D/--nodaemonize");
  o.chroot = g.flag("chroot", "-C/--chroot");
  if (g.has("username")) o.user = g.str("username");
  if (g.has("chroot-dir")) o.chroot_dir = g.str("chroot-dir");
  if (g.has("write-pid")) o.pid_file = g.str("write-pid");
  if (o.chroot && o.chroot_dir.empty()) fail("-C/--chroot", "needs -H/--chroot-dir");
  if (o.chroot && o.user.empty()) fail("-C/--chroot", "needs -u/--username (the user to drop to)");
  if (!o.chroot && !o.chroot_dir.empty()) fail("-H/--chroot-dir", "is used only with -C/--chroot");
  if (g.has("write-pid") && o.pid_file.empty()) fail("-P/--write-pid", "empty file name");

  parse_interfaces(host, g, o);
  parse_advertised(g, o);
  for (const auto& text : g.list_or("control", "127.0.0.1")) o.control.push_back(parse_control(host, text));
  parse_ports(g, o);

  const bool nat = g.flag("nat", "-n/--nat"), no_nat_once = g.flag("no-nat-once", "-o/--no-nat-once");
  if (nat && no_nat_once) fail("-n/--nat", "and -o/--no-nat-once exclude each other");
  if (nat) o.policy = LatchPolicy::always;
  if (no_nat_once) o.policy = LatchPolicy::never;

  parse_sync(host, g, o);
  if (g.has("timeout")) o.ttl = std::chrono::seconds(number("-T/--timeout", g.str("timeout"), 1, 86400));
  if (g.has("tos")) o.tos = static_cast<int>(number("-t/--tos", g.str("tos"), 0, 255));
  o.setup_ttl = g.has("setup-timeout")
                    ? std::chrono::seconds(number("-W/--setup-timeout", g.str("setup-timeout"), 1, 86400))
                    : o.ttl;
  if (g.has("notify"))
    for (const auto& text : g.list("notify")) o.notify.push_back(parse_notify(host, text));
  if (o.notify.size() > 64) fail("--notify", "more than 64 targets");
  if (g.has("log-level") && !parse_level(g.str("log-level"), o.log_level))
    fail("-d/--log-level", "'" + g.str("log-level") + "' is not one of error, warning, notice, info, debug");
  parse_files(host, g, o);
  if (g.has("metrics")) {
    const std::string opt = "--metrics", text = g.str("metrics");
    auto [name, port] = split_host_port(text);
    if (name.empty() || port.empty()) fail(opt, "'" + text + "' is not ADDR:PORT (or [IPv6]:PORT)");
    boost::system::error_code ec;
    const auto addr = ip::make_address(name, ec);
    if (ec) fail(opt, "'" + name + "' is not an IP address");
    o.metrics = ip::tcp::endpoint(addr, port_number(opt, port));
  }
  parse_kernel(g, o);
  o.metrics_allow = parse_networks("--metrics-allow", g.list_or("metrics-allow", "127.0.0.0/8,::1"));
  return o;
}

Options parse_options(const std::vector<std::string>& args, HostChecks& host) {
  std::vector<const char*> argv;
  for (const auto& a : args) argv.push_back(a.c_str());
  return parse_options(static_cast<int>(argv.size()), argv.data(), host);
}

ReloadPlan plan_reload(const Options& running, const Options& next) {
  ReloadPlan plan;
  for (const auto& r : rules) {
    if (r.reload == Reload::command_line || !r.differs(running, next)) continue;
    (r.reload == Reload::live ? plan.live : plan.restart).push_back(r.long_name());
  }
  return plan;
}

void take_live(Options& running, const Options& next) {
  for (const auto& r : rules)
    if (r.reload == Reload::live) r.take(running, next);
}

}  // namespace anyrtpproxy
