// options: see options.h.
#include "app/options.h"

#include "core/port_allocator.h"
#include "io/log.h"

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/program_options.hpp>

#include <sys/stat.h>

#include <cerrno>
#include <charconv>
#include <cstring>
#include <fstream>
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
ip::address resolve(const std::string& option, const std::string& host, bool want_v6 = false) {
  boost::system::error_code ec;
  auto addr = ip::make_address(host, ec);
  if (!ec) return addr;
  boost::asio::io_context io;
  ip::udp::resolver resolver(io);
  auto results = resolver.resolve(want_v6 ? ip::udp::v6() : ip::udp::v4(), host, "", ec);
  if (ec || results.empty()) fail(option, "cannot resolve '" + host + "'");
  return results.begin()->endpoint().address();
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

ControlSpec parse_control(const std::string& text) {
  const std::string opt = "-s/--control";
  ControlSpec spec;
  spec.text = text;
  auto endpoint_of = [&](const std::string& host, const std::string& port, bool v6) {
    if (host.empty()) fail(opt, "'" + text + "' has no host");
    const std::string h = host == "*" ? (v6 ? "::" : "0.0.0.0") : host;
    const auto addr = resolve(opt, h, v6);
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

NotifyTarget parse_notify(const std::string& text) {
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
  t.endpoint = ip::udp::endpoint(resolve(opt, host), port_number(opt, rest.substr(c + 1)));
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

// "A" or "A/B" (bridge mode: internal/external), each part non-empty.
std::vector<std::string> split_sides(const std::string& opt, const std::string& value) {
  const auto slash = value.find('/');
  std::vector<std::string> parts{value.substr(0, slash)};
  if (slash != std::string::npos) parts.push_back(value.substr(slash + 1));
  for (const auto& p : parts)
    if (p.empty() || p.find('/') != std::string::npos) fail(opt, "'" + value + "' is not ADDR or ADDR/ADDR");
  return parts;
}

// "A1,A2,..." as its parts (empty ones kept, for the caller to refuse).
std::vector<std::string> split_list(const std::string& text) {
  std::vector<std::string> out;
  std::size_t at = 0;
  for (std::size_t comma; (comma = text.find(',', at)) != std::string::npos; at = comma + 1)
    out.push_back(text.substr(at, comma - at));
  out.push_back(text.substr(at));
  return out;
}

// A relay address must be this host's: else every call would fail with E72,
// one warning per port pair.
void check_local(const std::string& opt, const std::string& text, const ip::address& addr) {
  if (addr.is_multicast()) fail(opt, text + " is a multicast address");
  if (addr.is_unspecified()) return;
  boost::asio::io_context io;
  ip::udp::socket probe(io);
  boost::system::error_code ec;
  probe.open(addr.is_v6() ? ip::udp::v6() : ip::udp::v4(), ec);
  if (!ec) probe.bind(ip::udp::endpoint(addr, 0), ec);
  if (ec == boost::system::errc::address_not_available) fail(opt, text + " is not an address of this host");
  if (ec) fail(opt, "cannot bind " + text + ": " + ec.message());
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


// The file's options go into vm after the command line's, so the command line
// wins. Switches take "yes" or "no" there (see flag() below).
void read_config_file(const std::string& file, const po::options_description& d, po::variables_map& vm) {
  const std::string opt = "-c/--config";
  if (file.empty()) fail(opt, "empty file name");
  std::ifstream in(file);
  if (!in) fail(opt, "cannot read " + file + ": " + std::strerror(errno));
  po::options_description keys;
  for (const auto& o : d.options()) {
    const std::string& name = o->long_name();
    if (name == "help" || name == "version" || name == "config") continue;
    const bool takes_value = o->semantic()->max_tokens() > 0;
    if (takes_value)
      keys.add(o);
    else
      keys.add_options()(name.c_str(), po::value<std::string>());
  }
  try {
    po::store(po::parse_config_file(in, keys, false), vm);
  } catch (const po::error& e) {
    fail(opt, file + ": " + e.what());
  }
}

}  // namespace

Options parse_options(int argc, const char* const argv[]) {
  Options o;
  po::options_description d("Options");
  // clang-format off
  d.add_options()
    ("help,h", "print this help and exit")
    ("version,V", "print the version and exit")
    ("config,c", po::value<std::string>()->value_name("FILE"),
     "read options from FILE (long names as keys: name = value); the command line wins; SIGHUP reads it again")
    ("nodaemonize,D", "stay in the foreground")
    ("chroot,C", "chroot to --chroot-dir and drop privileges to --username")
    ("username,u", po::value<std::string>()->value_name("USER"), "drop privileges to this user after binding")
    ("chroot-dir,H", po::value<std::string>()->value_name("DIR"), "chroot to this directory (with -C)")
    ("write-pid,P", po::value<std::string>()->value_name("FILE"), "write the daemon's pid to FILE")
    ("interface,i", po::value<std::vector<std::string>>()->value_name("ADDR[,ADDR...][/ADDR[,ADDR...]]"),
       "relay RTP on this address; once per family (default 0.0.0.0); INTERNAL/EXTERNAL: bridge mode; "
       "A1,A2,...: up to 8 addresses, each with the whole -p range, a new leg on the one with most free ports")
    ("advertise,A", po::value<std::vector<std::string>>()->value_name("ADDR[,ADDR...][/ADDR[,ADDR...]]"),
       "the address replies name instead of the -i address of that family (and side, and position), "
       "e.g. behind 1:1 NAT")
    ("control,s", po::value<std::vector<std::string>>()->value_name("SOCKET"),
       "control socket: host[:port], udp:host:port, udp6:host:port, tcp:host:port, tcp6:host:port, "
       "unix:/path or cunix:/path (default 127.0.0.1:22222)")
    ("port-range,p", po::value<std::vector<std::string>>()->multitoken()->value_name("START END"),
       "RTP/RTCP ports to allocate from (default 35000 65000)")
    ("nat,n", "learn a new remote address from every new source (clients behind NAT)")
    ("no-nat-once,o", "never learn a remote address that signalling gave: accept only that source")
    ("sync-port,S", po::value<std::string>()->value_name("PORT"), "TCP port of the session sync server")
    ("sync-interface,I", po::value<std::string>()->value_name("ADDR"), "address of the sync server (default all)")
    ("sync-hosts,M", po::value<std::vector<std::string>>()->value_name("HOST:PORT,..."), "other instances to sync with")
    ("sync-allow", po::value<std::vector<std::string>>()->value_name("NET,..."),
     "who may read the sync port's listing (default 127.0.0.1,::1)")
    ("sync-tls-cert", po::value<std::string>()->value_name("FILE"), "this instance's certificate for sync TLS (PEM)")
    ("sync-tls-key", po::value<std::string>()->value_name("FILE"), "its private key (PEM)")
    ("sync-tls-ca", po::value<std::string>()->value_name("FILE"), "the cluster's CA: peers must present a certificate it signed")
    ("tos,t", po::value<std::string>()->value_name("TOS"),
     "TOS byte (IPv4) and traffic class (IPv6) of relayed packets, 0-255 (default 184: DSCP EF)")
    ("timeout,T", po::value<std::string>()->value_name("SECONDS"), "inactivity timeout of a session (default 60)")
    ("setup-timeout,W", po::value<std::string>()->value_name("SECONDS"),
       "timeout of an offer that is never answered (default: --timeout)")
    ("notify", po::value<std::vector<std::string>>()->value_name("TARGET"),
       "allowed timeout-notification target: tcp:HOST:PORT or unix:/PATH (repeatable)")
    ("log-level,d", po::value<std::string>()->value_name("LEVEL"),
       "error, warning, notice, info (default) or debug")
    ("record-dir,r", po::value<std::string>()->value_name("DIR"),
     "where recordings (R) go; without it R answers E50")
    ("spool-dir", po::value<std::string>()->value_name("DIR"),
     "write recordings here, move them to --record-dir when they end (rtpproxy's -S)")
    ("record-pcap", "record in pcap format, one file per session (rtpproxy's -P)")
    ("record-all,a", "record every session")
    ("prompts", po::value<std::string>()->value_name("DIR"),
     "P's prompts: pre-encoded payload files NAME.PT (moh.8 for PCMA); without it P answers E60")
    ("health-file", po::value<std::string>()->value_name("FILE"),
     "a file that exists while this instance has headroom to take over its share (for BIRD or ExaBGP)")
    ("kernel-offload", po::value<std::string>()->value_name("MODE"),
     "forward latched streams in the kernel (eBPF at tc ingress): auto (default: if the kernel allows it), on or off")
    ("offload-interfaces", po::value<std::vector<std::string>>()->value_name("IF,..."),
     "the interfaces media arrives on, for --kernel-offload (default: all but lo)")
    ("catch-all", po::value<std::string>()->value_name("MODE"),
     "mirror peers' legs without sockets, their packets caught by eBPF sk_lookup until one adopts the leg: "
     "auto (default: if the kernel allows it), on or off (bind every mirrored leg)")
    ("park-idle", po::value<std::string>()->value_name("SECONDS"),
     "park an adopted peer's call again once it has had no packet here for this long (default 60; 0: never)")
    ("metrics", po::value<std::string>()->value_name("ADDR:PORT"),
     "serve Prometheus metrics at http://ADDR:PORT/metrics ([v6]:PORT for IPv6)")
    ("metrics-allow", po::value<std::vector<std::string>>()->value_name("NET,..."),
     "who may scrape the metrics (default 127.0.0.0/8,::1)");
  // clang-format on
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
    read_config_file(o.config_file, d, vm);
  }
  try {
    po::notify(vm);
  } catch (const po::error& e) {
    throw OptionError(e.what());
  }
  auto str = [&](const char* name) { return vm[name].as<std::string>(); };
  auto list = [&](const char* name) { return vm[name].as<std::vector<std::string>>(); };
  if (vm.count("unexpected")) throw OptionError("unexpected argument '" + list("unexpected").front() + "'");
  o.help = vm.count("help");
  o.version = vm.count("version");
  // A switch: given on the command line, or "name = yes|no" in the file.
  auto flag = [&](const char* name, const char* option) {
    if (!vm.count(name)) return false;
    const auto* text = boost::any_cast<std::string>(&vm[name].value());
    if (!text || text->empty()) return true;  // a switch on the command line (or "name =" in the file)
    if (*text == "yes" || *text == "true" || *text == "on" || *text == "1") return true;
    if (*text == "no" || *text == "false" || *text == "off" || *text == "0") return false;
    fail(option, "'" + *text + "' in " + o.config_file + " is neither yes nor no");
  };
  o.daemonize = !flag("nodaemonize", "-D/--nodaemonize");
  o.chroot = flag("chroot", "-C/--chroot");
  if (vm.count("username")) o.user = str("username");
  if (vm.count("chroot-dir")) o.chroot_dir = str("chroot-dir");
  if (vm.count("write-pid")) o.pid_file = str("write-pid");
  if (o.chroot && o.chroot_dir.empty()) fail("-C/--chroot", "needs -H/--chroot-dir");
  if (o.chroot && o.user.empty()) fail("-C/--chroot", "needs -u/--username (the user to drop to)");
  if (!o.chroot && !o.chroot_dir.empty()) fail("-H/--chroot-dir", "is used only with -C/--chroot");
  if (vm.count("write-pid") && o.pid_file.empty()) fail("-P/--write-pid", "empty file name");

  if (vm.count("interface")) {
    for (const auto& value : list("interface")) {
      const auto parts = split_sides("-i/--interface", value);
      const bool v6 = resolve("-i/--interface", split_list(parts[0])[0]).is_v6();
      const Family family = v6 ? Family::v6 : Family::v4;
      for (std::size_t side = 0; side < parts.size(); ++side) {
        const auto texts = split_list(parts[side]);
        if (texts.size() > max_addresses)
          fail("-i/--interface", "'" + parts[side] + "' lists more than " + std::to_string(max_addresses) + " addresses");
        for (std::size_t index = 0; index < texts.size(); ++index) {
          const auto& text = texts[index];
          if (text.empty()) fail("-i/--interface", "'" + value + "' has an empty address");
          const auto addr = resolve("-i/--interface", text, v6);
          if (addr.is_v6() != v6) fail("-i/--interface", "'" + value + "' mixes IPv4 and IPv6 (one -i per family)");
          if (addr.is_unspecified() && texts.size() > 1)
            fail("-i/--interface", "'" + parts[side] + "' lists a wildcard address among others");
          const Slot slot = slot_of(family, static_cast<Side>(side), index);
          if (o.media[slot])
            fail("-i/--interface", "given twice for " + std::string(v6 ? "IPv6" : "IPv4") + " (" +
                                       o.media[slot]->to_string() + ", " + text + ")");
          for (const auto& other : o.media)
            if (other && *other == addr) fail("-i/--interface", text + " is listed twice");
          check_local("-i/--interface", text, addr);
          o.media[slot] = addr;
        }
      }
      if (parts.size() == 2 && (o.media[slot_of(family, Side::internal)]->is_unspecified() ||
                                o.media[slot_of(family, Side::external)]->is_unspecified()))
        fail("-i/--interface", "bridge mode needs two addresses of this host, not a wildcard: '" + value + "'");
    }
  } else {
    o.media[0] = ip::address_v4::any();
  }
  if (vm.count("advertise")) {
    for (const auto& value : list("advertise")) {
      const auto parts = split_sides("-A/--advertise", value);
      for (std::size_t side = 0; side < parts.size(); ++side) {
        const auto texts = split_list(parts[side]);
        if (texts.size() > max_addresses) fail("-A/--advertise", "'" + parts[side] + "' lists too many addresses");
        for (std::size_t index = 0; index < texts.size(); ++index) {
          boost::system::error_code ec;
          const auto addr = ip::make_address(texts[index], ec);
          if (ec || addr.is_unspecified() || addr.is_multicast())
            fail("-A/--advertise", "'" + texts[index] + "' is not a unicast IP address");
          const Family family = addr.is_v6() ? Family::v6 : Family::v4;
          const Slot slot = slot_of(family, static_cast<Side>(side), index);
          if (!o.media[slot])
            fail("-A/--advertise", "'" + value + "' has no -i " + (side ? "external " : "") + "address of its family" +
                                       (index ? " at position " + std::to_string(index + 1) : ""));
          if (o.advertised[slot]) fail("-A/--advertise", "given twice for " + o.media[slot]->to_string());
          o.advertised[slot] = addr;
        }
      }
    }
  }

  for (const auto& text : vm.count("control") ? list("control") : std::vector<std::string>{"127.0.0.1"})
    o.control.push_back(parse_control(text));

  if (vm.count("port-range")) {
    auto r = list("port-range");
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

  const bool nat = flag("nat", "-n/--nat"), no_nat_once = flag("no-nat-once", "-o/--no-nat-once");
  if (nat && no_nat_once) fail("-n/--nat", "and -o/--no-nat-once exclude each other");
  if (nat) o.policy = LatchPolicy::always;
  if (no_nat_once) o.policy = LatchPolicy::never;

  if (vm.count("sync-port")) o.sync_port = port_number("-S/--sync-port", str("sync-port"));
  if (vm.count("sync-interface")) {
    o.sync_interface = resolve("-I/--sync-interface", str("sync-interface"));
  }
  if (vm.count("sync-hosts")) o.sync_hosts = parse_sync_hosts(list("sync-hosts"));
  o.sync_allow = parse_networks("--sync-allow", vm.count("sync-allow") ? list("sync-allow")
                                                                       : std::vector<std::string>{"127.0.0.1,::1"});
  const char* tls[] = {"sync-tls-cert", "sync-tls-key", "sync-tls-ca"};
  const auto given = std::count_if(std::begin(tls), std::end(tls), [&](const char* n) { return vm.count(n) > 0; });
  if (given > 0 && given < 3)
    for (const char* n : tls)
      if (!vm.count(n)) fail(std::string("--") + n, "is needed too: sync TLS takes --sync-tls-cert, --sync-tls-key and --sync-tls-ca");
  if (given == 3) {
    o.sync_tls = TlsFiles{str("sync-tls-cert"), str("sync-tls-key"), str("sync-tls-ca")};
    for (const char* n : tls)
      if (str(n).empty()) fail(std::string("--") + n, "empty file name");
  }

  if (vm.count("timeout")) o.ttl = std::chrono::seconds(number("-T/--timeout", str("timeout"), 1, 86400));
  if (vm.count("tos")) o.tos = static_cast<int>(number("-t/--tos", str("tos"), 0, 255));
  o.setup_ttl = vm.count("setup-timeout")
                    ? std::chrono::seconds(number("-W/--setup-timeout", str("setup-timeout"), 1, 86400))
                    : o.ttl;
  if (vm.count("notify"))
    for (const auto& text : list("notify")) o.notify.push_back(parse_notify(text));
  if (o.notify.size() > 64) fail("--notify", "more than 64 targets");
  if (vm.count("log-level") && !parse_level(str("log-level"), o.log_level))
    fail("-d/--log-level", "'" + str("log-level") + "' is not one of error, warning, notice, info, debug");
  auto directory = [&](const char* name, const std::string& option) {
    const std::string dir = str(name);
    if (dir.empty() || dir[0] != '/') fail(option, "'" + dir + "' is not an absolute path");
    struct stat st {};
    // Under -C the directory is looked up in the chroot, which is not entered yet.
    if (!o.chroot && (::stat(dir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)))
      fail(option, "'" + dir + "' is not a directory");
    return dir.size() > 1 && dir.back() == '/' ? dir.substr(0, dir.size() - 1) : dir;
  };
  if (vm.count("record-dir")) o.record_dir = directory("record-dir", "-r/--record-dir");
  if (vm.count("spool-dir")) o.spool_dir = directory("spool-dir", "--spool-dir");
  if (vm.count("prompts")) o.prompts_dir = directory("prompts", "--prompts");
  o.record_pcap = flag("record-pcap", "--record-pcap");
  o.record_all = flag("record-all", "-a/--record-all");
  if (o.record_dir.empty() && (!o.spool_dir.empty() || o.record_pcap || o.record_all))
    fail(!o.spool_dir.empty() ? "--spool-dir" : o.record_pcap ? "--record-pcap" : "-a/--record-all",
         "needs -r/--record-dir");
  if (vm.count("metrics")) {
    const std::string opt = "--metrics", text = str("metrics");
    auto [host, port] = split_host_port(text);
    if (host.empty() || port.empty()) fail(opt, "'" + text + "' is not ADDR:PORT (or [IPv6]:PORT)");
    boost::system::error_code ec;
    const auto addr = ip::make_address(host, ec);
    if (ec) fail(opt, "'" + host + "' is not an IP address");
    o.metrics = ip::tcp::endpoint(addr, port_number(opt, port));
  }
  if (vm.count("health-file")) {
    const std::string file = str("health-file");
    const auto slash = file.rfind('/');
    if (file.empty() || file[0] != '/' || slash + 1 == file.size())
      fail("--health-file", "'" + file + "' is not an absolute file name");
    o.health_file = file;
    const std::string dir = slash == 0 ? "/" : file.substr(0, slash);
    struct stat st {};
    if (!o.chroot && (::stat(dir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)))
      fail("--health-file", "'" + dir + "' is not a directory");
  }
  const auto mode_of = [&](const std::string& name, Options::Mode& out) {
    if (!vm.count(name)) return;
    const std::string mode = str(name.c_str());
    if (mode == "auto") out = Options::Mode::automatic;
    else if (mode == "on") out = Options::Mode::on;
    else if (mode == "off") out = Options::Mode::off;
    else fail("--" + name, "'" + mode + "' is not auto, on or off");
  };
  mode_of("kernel-offload", o.kernel_offload);
  mode_of("catch-all", o.catch_all);
  if (vm.count("park-idle")) o.park_idle = std::chrono::seconds(number("--park-idle", str("park-idle"), 0, 86400));
  if (vm.count("offload-interfaces")) {
    for (const auto& item : list("offload-interfaces")) {
      std::stringstream in(item);
      for (std::string name; std::getline(in, name, ',');) {
        const bool ok = !name.empty() && name.size() < 16 &&
                        name.find_first_of("/ \t:") == std::string::npos && name != "." && name != "..";
        if (!ok) fail("--offload-interfaces", "'" + name + "' is not an interface name");
        o.offload_interfaces.push_back(name);
      }
    }
    if (o.kernel_offload == Options::Offload::off) fail("--offload-interfaces", "needs --kernel-offload auto or on");
  }
  o.metrics_allow = parse_networks("--metrics-allow", vm.count("metrics-allow")
                                                          ? list("metrics-allow")
                                                          : std::vector<std::string>{"127.0.0.0/8,::1"});
  return o;
}

Options parse_options(const std::vector<std::string>& args) {
  std::vector<const char*> argv;
  for (const auto& a : args) argv.push_back(a.c_str());
  return parse_options(static_cast<int>(argv.size()), argv.data());
}

std::vector<std::string> restart_needed(const Options& a, const Options& b) {
  std::vector<std::string> changed;
  auto texts = [](const auto& items, auto&& text) {
    std::vector<std::string> out;
    for (const auto& i : items) out.push_back(text(i));
    return out;
  };
  auto check = [&](bool differs, const char* name) {
    if (differs) changed.emplace_back(name);
  };
  check(a.daemonize != b.daemonize, "nodaemonize");
  check(a.chroot != b.chroot || a.chroot_dir != b.chroot_dir, "chroot");
  check(a.user != b.user, "username");
  check(a.pid_file != b.pid_file, "write-pid");
  check(a.media != b.media, "interface");
  check(a.advertised != b.advertised, "advertise");
  check(texts(a.control, [](const ControlSpec& c) { return c.text; }) !=
            texts(b.control, [](const ControlSpec& c) { return c.text; }),
        "control");
  check(a.port_min != b.port_min || a.port_max != b.port_max, "port-range");
  check(a.policy != b.policy, "nat");
  check(a.sync_port != b.sync_port, "sync-port");
  check(a.sync_interface != b.sync_interface, "sync-interface");
  check(texts(a.sync_hosts, [](const SyncPeer& p) { return p.host + ":" + std::to_string(p.port); }) !=
            texts(b.sync_hosts, [](const SyncPeer& p) { return p.host + ":" + std::to_string(p.port); }),
        "sync-hosts");
  const auto tls = [](const Options& o) {
    return o.sync_tls ? o.sync_tls->cert + "\n" + o.sync_tls->key + "\n" + o.sync_tls->ca : std::string();
  };
  check(tls(a) != tls(b), "sync-tls");
  check(a.tos != b.tos, "tos");
  check(a.metrics != b.metrics, "metrics");
  check(a.prompts_dir != b.prompts_dir, "prompts");
  check(a.kernel_offload != b.kernel_offload || a.offload_interfaces != b.offload_interfaces, "kernel-offload");
  check(a.health_file != b.health_file, "health-file");
  check(a.catch_all != b.catch_all, "catch-all");
  check(a.park_idle != b.park_idle, "park-idle");
  check(a.record_dir != b.record_dir || a.spool_dir != b.spool_dir || a.record_pcap != b.record_pcap ||
            a.record_all != b.record_all,
        "record-dir");
  return changed;
}

}  // namespace anyrtpproxy
