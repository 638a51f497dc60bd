// options: the command line and the -c file (Boost.ProgramOptions) as a
// validated value. Every bad value throws OptionError with one line naming the
// option, before anything is bound. Host names are resolved here, at start,
// before any chroot. What parsing asks of the machine (resolve a name, is an
// address local, is a path a directory, a file's text) goes through
// HostChecks, so the parser is tested without one.
//
// option_rules() is the one table of options: the parser builds its help and
// its config-file keys from it, and SIGHUP decides from it what it applies and
// what takes a restart.
#pragma once

#include "core/addresses.h"
#include "core/event.h"
#include "core/host.h"
#include "core/session.h"

#include <boost/asio/ip/address.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ip/udp.hpp>

#include <array>
#include <chrono>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

namespace anyrtpproxy {

struct OptionError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

struct ControlSpec {
  // udp: datagrams with cookies; tcp and unix_persistent (cunix:): newline-framed
  // commands, many per connection; unix_stream: rtpproxy's one-shot unix mode.
  enum class Kind { udp, tcp, unix_stream, unix_persistent } kind = Kind::udp;
  boost::asio::ip::udp::endpoint endpoint;  // udp, tcp (the protocol part is unused)
  std::string path;                         // unix
  std::string text;                         // as given, for messages
};

struct Options {
  bool help = false;
  bool version = false;
  std::string help_text;
  std::vector<std::string> args;  // the command line, to read the configuration again (SIGHUP)
  std::string config_file;        // -c: long option names as keys; the command line wins

  bool daemonize = true;
  bool chroot = false;
  std::string user;
  std::string chroot_dir;
  std::string pid_file;

  // -i, by slot (session.h): IPv4 and IPv6, internal (or only) and external
  // (bridge mode, -i INTERNAL/EXTERNAL).
  std::array<std::optional<boost::asio::ip::address>, slot_count> media;
  std::array<std::optional<boost::asio::ip::address>, slot_count> advertised;  // -A, by slot
  std::vector<ControlSpec> control;
  std::uint16_t port_min = 35000;
  std::uint16_t port_max = 65000;
  LatchPolicy policy = LatchPolicy::once;

  std::uint16_t sync_port = 0;
  std::optional<boost::asio::ip::address> sync_interface;  // -I, resolved; none: every address
  std::vector<SyncPeer> sync_hosts;
  std::vector<Network> sync_allow;  // operators who may read the listing (--sync-allow)
  std::optional<TlsFiles> sync_tls;  // none: sync is unauthenticated  // none: sync is unauthenticated

  std::chrono::seconds ttl{60};
  std::chrono::seconds setup_ttl{60};
  std::vector<NotifyTarget> notify;
  Level log_level = Level::info;
  int tos = 0xB8;  // -t: the TOS byte (IPv4) and traffic class (IPv6) of relayed packets; DSCP EF

  std::string record_dir;    // -r: where recordings go (R); empty: R answers E50
  std::string spool_dir;     // --spool-dir: written here, moved to record_dir when done
  bool record_pcap = false;  // --record-pcap: one pcap per session (else rtpproxy's per-direction files)
  bool record_all = false;   // -a: record every session
  // A kernel facility the daemon uses when it can (auto), must (on) or must not (off).
  enum class Mode { off, automatic, on };
  // --kernel-offload: the eBPF fast path for latched streams (offload.h).
  Mode kernel_offload = Mode::automatic;
  // --catch-all: peers' legs parked without sockets (catch_all.h); off: bound.
  Mode catch_all = Mode::automatic;
  std::chrono::seconds park_idle{60};  // --park-idle: an adopted call idle here this long is parked again; 0: never
  std::vector<std::string> offload_interfaces;  // --offload-interfaces; empty: every interface but lo
  std::string health_file;  // --health-file: there while this instance can take over its share
  std::chrono::seconds drain{5};  // --drain-seconds: the longest a planned stop waits for its calls to move
  std::string health_socket;
  std::string health_group;  // --health-group: the --health socket's group  // --health: a unix socket that tells its clients, every 100 ms, while alive
  std::string prompts_dir;   // --prompts: P's files "<name>.<pt>"; empty: P answers E60

  std::optional<boost::asio::ip::tcp::endpoint> metrics;  // --metrics: the Prometheus endpoint
  std::vector<Network> metrics_allow;                     // who may scrape it (default loopback)
};

Options parse_options(int argc, const char* const argv[], HostChecks& host);
Options parse_options(const std::vector<std::string>& args, HostChecks& host);  // args[0] is the program

// How SIGHUP treats an option once -c's file changed it: applied at once
// (live), named as taking a restart (restart), or never read from the file
// (command_line: help, version, config).
enum class Reload { live, restart, command_line };

struct OptionRule {
  const char* names;  // "interface,i": the long name, and the short one after a comma
  enum class Takes { nothing, one, repeated, words } takes;  // words: "START END" (-p)
  const char* value;  // the value's name in --help
  const char* help;
  Reload reload;
  bool (*differs)(const Options&, const Options&);  // none for command_line
  void (*take)(Options& into, const Options& from);  // live ones: copy its value
  std::string long_name() const;
};
const std::vector<OptionRule>& option_rules();

// What SIGHUP does with the file read again: the long names of the options
// that changed and apply now, and of those that take a restart.
struct ReloadPlan {
  std::vector<std::string> live, restart;
};
ReloadPlan plan_reload(const Options& running, const Options& next);
// `running` with the live options' values of `next`.
void take_live(Options& running, const Options& next);

constexpr std::uint16_t default_control_port = 22222;

}  // namespace anyrtpproxy
