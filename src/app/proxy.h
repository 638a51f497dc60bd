// proxy: the running daemon's composition root. Owns the data plane (relay
// sockets and packet path), the session table, the controller, the control
// servers, the sync endpoints, the notifier, the one-second expiry sweep and
// the signal handling, all on the one io_context. It wires them together and
// applies what the core decided (Effects, sync outcomes, capacity); the rules
// themselves live in the core (controller, session_table, cluster, capacity).
// proxy.cpp composes; proxy_stats.cpp gathers every part's counters.
#pragma once

#include "io/control_server.h"
#include "io/metrics_server.h"
#include "io/offload.h"
#include "core/controller.h"
#include "io/notify.h"
#include "app/options.h"
#include "io/packet_path.h"
#include "io/player.h"
#include "io/recorder.h"
#include "io/relay_sockets.h"
#include "core/session_table.h"
#include "core/stats.h"
#include "io/sync.h"
#include "core/capacity.h"
#include "io/fd.h"
#include "core/serving.h"
#include "io/health_server.h"
#include "io/host.h"

#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>

#include <memory>
#include <string>
#include <optional>
#include <vector>

namespace anyrtpproxy {

class Logger;

class Proxy {
public:
  // Binds every control socket; throws std::runtime_error naming what failed.
  Proxy(boost::asio::io_context& io, Options options, Logger& log);
  void start();  // begin serving: sockets, sweep timer, signals
  // What the daemon still needs after setting up: CAP_BPF for the fast path's
  // map (kernels before 6.5 check it on every update), else nothing.
  std::uint64_t capabilities_kept() const;
  void stop();   // close everything; io.run() returns once handlers drain

private:
  void open_controls();
  void open_kernel_paths();  // the fast path and the catch-all, while privileged
  void open_sync();
  void apply(Effects& effects);
  void log(const std::vector<Event>& events);
  void flush_changes();
  void flush_soon();
  void on_latched(const Latch& latch);
  void on_adopted(Slot slot, std::uint16_t port, BindResult result);
  void on_sync(SyncMessage& msg, const SyncSource& from);
  void sweep();
  std::vector<std::string> reachable_peers() const;
  void wait_signal();
  void check_file_limit();
  void close_recordings();
  DaemonStats gather() const;
  void reload();
  void check_health(const Headroom& h);  // --health-file and its log lines, every sweep
  Headroom room() const;                 // this instance's, now
  Capacity capacity(const Headroom& h) const;  // what the peers are told of it
  std::uint64_t free_pairs() const;            // port pairs left in this instance's ranges
  std::uint64_t room_in_table() const;         // sessions the table's bounds still allow
  // The listing's "# peer:" lines: each -M peer, connected or not, and its wire version.
  std::string peer_lines() const;
  // Logs when the version every connected peer speaks changes (a rolling upgrade's progress).
  void check_wire_versions();
  // proxy_serving.cpp: the --health socket's state and the planned stops.
  Health health(const Headroom& room) const;
  static Headroom as_served(const Headroom& room, const Health& h);
  void tell_health(const Health& h);
  std::uint64_t packets_seen();
  void serve_tick();
  void begin_drain(std::string cause, std::chrono::milliseconds limit);
  void on_stop_signal(int sig);
  void on_maintenance_signal();

  boost::asio::io_context& io_;
  Options options_;  // as started, with what SIGHUP changed since
  Logger& log_;
  Recorder recorder_;     // before the packet path, which feeds it; closes its files last
  RelaySockets sockets_;  // before the table, which binds through it
  SessionTable table_;
  PacketPath packets_;  // after both: it reads the sockets and routes through the table
  Player player_;  // before the controller, whose PromptLibrary it is
  Controller controller_;
  Notifier notifier_;
  std::vector<std::unique_ptr<UdpControl>> udp_;
  std::vector<std::unique_ptr<TcpControl>> tcp_;
  std::vector<std::unique_ptr<UnixControl>> unix_;  // one-shot (unix:) and persistent (cunix:)
  ClusterView view_;    // what peers have said of themselves, to check what they send
  LogLimiter limiter_;  // repeated causes (failing commands, bad frames) are logged once per 10 s
  SyncStats sync_stats_;
  std::unique_ptr<boost::asio::ssl::context> sync_tls_;  // before the server and clients that use it
  std::unique_ptr<SyncServer> sync_server_;
  std::vector<std::unique_ptr<SyncClient>> peers_;
  std::unique_ptr<MetricsServer> metrics_;
  std::unique_ptr<Offload> offload_;  // the kernel fast path; none: userspace relays everything
  std::string offload_note_;          // what start() logs about it (after detaching)
  std::string catch_all_note_;        // the same of the catch-all path (--catch-all)
  std::unique_ptr<HealthServer> health_server_;  // --health
  StatusFile health_;                 // --health-file
  HealthWatch health_watch_;
  TakeoverWatch takeover_;
  Headroom room_;               // as the last sweep found it
  unsigned cluster_version_ = 0;  // the oldest wire version a connected peer speaks (ours without any)
  Clock::time_point started_;   // the startup rule's clock (core/serving.h)
  bool synced_ = false;         // the startup rule held once
  Drain drain_;
  std::string drain_cause_;
  bool stopping_ = false;       // SIGTERM came: the drain ends in stop()
  bool stopped_ = false;
  bool drained_said_ = false;
  boost::asio::steady_timer serve_timer_;
  double start_time_ = 0;
  OpenFiles open_files_;  // opened before any chroot: the open-descriptor count
  SystemHost host_;       // SIGHUP parses the configuration again
  boost::asio::steady_timer flush_timer_;
  bool flush_armed_ = false;
  unsigned sweeps_ = 0;
  boost::asio::steady_timer sweep_;
  boost::asio::signal_set signals_;
};

}  // namespace anyrtpproxy
