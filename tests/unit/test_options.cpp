// The option parser with a fake host: names resolve from a map, only listed
// addresses are local, only listed directories and files exist.
#include "app/options.h"

#include <boost/test/unit_test.hpp>

#include <map>
#include <set>

using namespace anyrtpproxy;
namespace ip = boost::asio::ip;

namespace {

struct FakeHost : HostChecks {
  std::map<std::string, ip::address> names{{"relay.example", ip::make_address("192.0.2.10")}};
  std::set<ip::address> local{ip::make_address("127.0.0.1"), ip::make_address("127.0.0.2"),
                              ip::make_address("192.0.2.10"), ip::make_address("::1")};
  std::set<std::string> dirs{"/var/rec", "/run/arp"};
  std::map<std::string, std::string> files;
  int resolved = 0;

  std::optional<ip::address> resolve(const std::string& host, bool want_v6) override {
    ++resolved;
    const auto it = names.find(host);
    if (it == names.end() || it->second.is_v6() != want_v6) return std::nullopt;
    return it->second;
  }
  std::optional<std::string> cannot_bind(const ip::address& a) override {
    if (local.count(a)) return std::nullopt;
    return std::string("is not an address of this host");
  }
  bool is_directory(const std::string& path) override { return dirs.count(path) != 0; }
  std::optional<std::string> read_file(const std::string& path, std::string& error) override {
    const auto it = files.find(path);
    if (it == files.end()) {
      error = "No such file or directory";
      return std::nullopt;
    }
    return it->second;
  }
};

Options parse(FakeHost& host, std::vector<std::string> args) {
  args.insert(args.begin(), "anyrtpproxy");
  return parse_options(args, host);
}

// The one line a bad command line gets.
std::string refusal(FakeHost& host, std::vector<std::string> args) {
  try {
    parse(host, std::move(args));
  } catch (const OptionError& e) {
    return e.what();
  }
  return "accepted";
}

}  // namespace

BOOST_AUTO_TEST_SUITE(options)

BOOST_AUTO_TEST_CASE(defaults_are_the_embedded_ones) {
  FakeHost host;
  const Options o = parse(host, {});
  BOOST_TEST(o.daemonize);
  BOOST_TEST(o.port_min == 35000);
  BOOST_TEST(o.port_max == 65000);
  BOOST_REQUIRE(o.control.size() == 1u);
  BOOST_TEST(o.control[0].endpoint.port() == default_control_port);
  BOOST_TEST(o.media[0]->is_unspecified());
  BOOST_TEST(o.sync_allow.size() == 2u);
  BOOST_TEST(o.ttl.count() == 60);
  BOOST_TEST(host.resolved == 0);  // numeric addresses never ask the resolver
}

BOOST_AUTO_TEST_CASE(every_bad_value_names_its_option) {
  FakeHost host;
  const std::vector<std::pair<std::vector<std::string>, std::string>> cases = {
      {{"-p", "40010", "40000"}, "option -p/--port-range: 40010 40000 is inverted"},
      {{"-p", "40001", "40002"}, "-p/--port-range"},
      {{"-T", "0"}, "option -T/--timeout: 0 is out of range 1-86400"},
      {{"-t", "ef"}, "option -t/--tos: 'ef' is not a number"},
      {{"-d", "loud"}, "-d/--log-level"},
      {{"-s", "udp:127.0.0.1:99999"}, "-s/--control"},
      {{"-s", "cunix:relative"}, "needs an absolute path"},
      {{"-i", "192.0.2.77"}, "option -i/--interface: 192.0.2.77 is not an address of this host"},
      {{"-i", "no.such.name"}, "option -i/--interface: cannot resolve 'no.such.name'"},
      {{"-i", "127.0.0.1,,127.0.0.2"}, "has an empty address"},
      {{"-i", "127.0.0.1,::1"}, "mixes IPv4 and IPv6"},
      {{"-i", "0.0.0.0/127.0.0.2"}, "bridge mode needs two addresses of this host"},
      {{"-A", "2001:db8::1"}, "has no -i address of its family"},
      {{"-A", "1.2.3.4,,5.6.7.8"}, "option -A/--advertise: '1.2.3.4,,5.6.7.8' has an empty address"},
      {{"-M", "host-without-port"}, "-M/--sync-hosts"},
      {{"--sync-allow", "10.0.0.0/33"}, "--sync-allow"},
      {{"--sync-tls-cert", "/c"}, "--sync-tls-key: is needed too"},
      {{"-r", "/nonexistent"}, "option -r/--record-dir: '/nonexistent' is not a directory"},
      {{"--record-pcap"}, "--record-pcap: needs -r/--record-dir"},
      {{"--health-file", "/nowhere/h"}, "option --health-file: '/nowhere' is not a directory"},
      {{"--health", "/nowhere/h.sock"}, "option --health: '/nowhere' is not a directory"},
      {{"--health", "/run/arp/" + std::string(100, 's')}, "option --health: the socket path"},
      {{"--health", "relative.sock"}, "option --health: 'relative.sock' is not an absolute file name"},
      {{"--catch-all", "maybe"}, "option --catch-all: 'maybe' is not auto, on or off"},
      {{"--drain-seconds", "3601"}, "option --drain-seconds: 3601 is out of range 0-3600"},
      {{"--drain-seconds", "soon"}, "option --drain-seconds: 'soon' is not a number"},
      {{"--health-group", "bird"}, "option --health-group: it names the group of the --health socket: give --health"},
      {{"--health", "/run/arp/h.sock", "--health-group", "a b"}, "option --health-group: 'a b' is not a group name"},
      {{"--kernel-offload=off", "--offload-interfaces", "eth0"}, "needs --kernel-offload auto or on"},
      {{"-n", "-o"}, "exclude each other"},
      {{"-C"}, "-C/--chroot: needs -H/--chroot-dir"},
      {{"stray"}, "unexpected argument 'stray'"},
      {{"-c", "/etc/none.conf"}, "option -c/--config: cannot read /etc/none.conf: No such file or directory"},
  };
  for (const auto& [args, wanted] : cases) {
    const std::string line = refusal(host, args);
    BOOST_TEST(line.find(wanted) != std::string::npos, args.front() << ": '" << line << "' lacks '" << wanted << "'");
  }
}

BOOST_AUTO_TEST_CASE(address_lists_fill_slots_by_family_side_and_position) {
  FakeHost host;
  const Options o = parse(host, {"-i", "127.0.0.1,relay.example/127.0.0.2", "-i", "::1",
                                 "-A", "203.0.113.1,203.0.113.2/203.0.113.3"});
  BOOST_TEST(*o.media[slot_of(Family::v4, Side::internal, 0)] == ip::make_address("127.0.0.1"));
  BOOST_TEST(*o.media[slot_of(Family::v4, Side::internal, 1)] == ip::make_address("192.0.2.10"));  // resolved
  BOOST_TEST(*o.media[slot_of(Family::v4, Side::external, 0)] == ip::make_address("127.0.0.2"));
  BOOST_TEST(*o.media[slot_of(Family::v6, Side::internal, 0)] == ip::make_address("::1"));
  BOOST_TEST(*o.advertised[slot_of(Family::v4, Side::internal, 1)] == ip::make_address("203.0.113.2"));
  BOOST_TEST(*o.advertised[slot_of(Family::v4, Side::external, 0)] == ip::make_address("203.0.113.3"));
  BOOST_TEST(!o.advertised[slot_of(Family::v6, Side::internal, 0)]);
  std::string nine = "127.0.0.1";
  for (int i = 0; i < 8; ++i) nine += ",127.0.0.1";
  BOOST_TEST(refusal(host, {"-i", nine}).find("lists more than 8 addresses") != std::string::npos);
}

BOOST_AUTO_TEST_CASE(the_config_file_fills_in_and_the_command_line_wins) {
  FakeHost host;
  host.files["/etc/a.conf"] = "# comment\nport-range = 20000 20999\ntimeout = 30\nnodaemonize = yes\n"
                              "record-dir = /var/rec\nrecord-pcap = no\nlog-level = debug\n";
  const Options o = parse(host, {"-c", "/etc/a.conf", "-T", "45"});
  BOOST_TEST(o.port_min == 20000);
  BOOST_TEST(o.port_max == 20999);
  BOOST_TEST(o.ttl.count() == 45);  // the command line wins
  BOOST_TEST(!o.daemonize);
  BOOST_TEST(!o.record_pcap);
  BOOST_TEST(o.record_dir == "/var/rec");
  BOOST_TEST((o.log_level == Level::debug));
  BOOST_TEST(o.config_file == "/etc/a.conf");
  host.files["/etc/b.conf"] = "nodaemonize = perhaps\n";
  BOOST_TEST(refusal(host, {"-c", "/etc/b.conf"}).find("'perhaps' in /etc/b.conf is neither yes nor no") !=
             std::string::npos);
  host.files["/etc/c.conf"] = "bogus = 1\n";
  BOOST_TEST(refusal(host, {"-c", "/etc/c.conf"}).find("option -c/--config: /etc/c.conf:") != std::string::npos);
  host.files["/etc/d.conf"] = "config = /etc/a.conf\n";  // not a key of the file
  BOOST_TEST(refusal(host, {"-c", "/etc/d.conf"}) != "accepted");
}

BOOST_AUTO_TEST_CASE(under_chroot_directories_are_not_looked_up_yet) {
  FakeHost host;
  const Options o = parse(host, {"-C", "-H", "/jail", "-u", "arp", "-r", "/rec"});
  BOOST_TEST(o.record_dir == "/rec");
}

BOOST_AUTO_TEST_CASE(every_option_has_one_rule_and_sighup_follows_them) {
  std::set<std::string> names;
  for (const auto& r : option_rules()) {
    BOOST_TEST(names.insert(r.long_name()).second, r.long_name() << " twice");
    BOOST_TEST((r.reload == Reload::command_line) == (r.differs == nullptr), r.long_name());
    BOOST_TEST((r.reload == Reload::live) == (r.take != nullptr), r.long_name());
  }
  for (const char* live : {"log-level", "timeout", "setup-timeout", "notify", "sync-allow", "metrics-allow"})
    BOOST_TEST(names.count(live) == 1u, live);

  FakeHost host;
  Options running = parse(host, {"-d", "notice", "-T", "60", "-t", "184", "-p", "20000", "20999"});
  const Options next = parse(host, {"-d", "info", "-T", "30", "-t", "0", "-p", "20000", "20999",
                                    "--metrics-allow", "10.0.0.0/8"});
  const ReloadPlan plan = plan_reload(running, next);
  BOOST_TEST(plan.live == (std::vector<std::string>{"timeout", "setup-timeout", "log-level", "metrics-allow"}),
             boost::test_tools::per_element());
  BOOST_TEST(plan.restart == std::vector<std::string>{"tos"}, boost::test_tools::per_element());
  take_live(running, next);
  BOOST_TEST(running.ttl.count() == 30);
  BOOST_TEST((running.log_level == Level::info));
  BOOST_TEST(running.tos == 184);  // takes a restart: the running value stays
  BOOST_TEST(plan_reload(running, running).live.empty());
}

BOOST_AUTO_TEST_SUITE_END()
