// proxy: see proxy.h.
#include "app/proxy.h"

#include "app/configs.h"
#include "core/cluster.h"
#include "core/text.h"
#include "io/daemon.h"
#include "io/log.h"

#include <unistd.h>

#include <csignal>
#include <ctime>

namespace anyrtpproxy {

Proxy::Proxy(boost::asio::io_context& io, Options options, Logger& log)
    : io_(io), options_(std::move(options)), log_(log),
      recorder_(RecorderConfig{options_.record_dir, options_.spool_dir, options_.record_pcap}),
      sockets_(options_.media, options_.tos),
      table_(table_config(options_), make_pools(options_), sockets_),
      packets_(io, sockets_, PacketTable(table_), recorder_, [this](const Latch& latch) { on_latched(latch); },
               [this](Slot slot, std::uint16_t port, BindResult r) { on_adopted(slot, port, r); }),
      player_(io, options_.prompts_dir, sockets_, PlaybackTable(table_), table_.config().instance, [this] { return reachable_peers(); },
              [this] { flush_changes(); }, log),
      controller_(CommandTable(table_), controller_config(options_, &player_, table_.config().instance)),
      notifier_(io, options_.notify, log),
      health_watch_(options_.health_file), started_(Clock::now()), serve_timer_(io), flush_timer_(io), sweep_(io),
      signals_(io, SIGTERM, SIGINT, SIGHUP) {
  signals_.add(SIGUSR1);
  signals_.add(SIGUSR2);
  view_ = cluster_view(options_, table_.config().instance);
  open_controls();
  check_file_limit();
  start_time_ = static_cast<double>(std::time(nullptr));
  if (!options_.health_file.empty()) health_ = StatusFile(options_.health_file);  // its directory, before any chroot
  if (!options_.health_socket.empty()) health_server_ = std::make_unique<HealthServer>(io, options_.health_socket, options_.health_group, log);
  if (options_.metrics)
    metrics_ = std::make_unique<MetricsServer>(io, *options_.metrics, options_.metrics_allow,
                                               [this] { return prometheus_text(gather()); }, log);
  open_kernel_paths();
  open_sync();
}

void Proxy::open_controls() {
  auto apply = [this](Effects& e) { this->apply(e); };
  for (const auto& c : options_.control) {
    switch (c.kind) {
      case ControlSpec::Kind::udp:
        udp_.push_back(std::make_unique<UdpControl>(io_, c.endpoint, controller_, apply, log_));
        break;
      case ControlSpec::Kind::tcp:
        tcp_.push_back(std::make_unique<TcpControl>(io_, boost::asio::ip::tcp::endpoint(c.endpoint.address(), c.endpoint.port()),
                                                    c.text, TcpControl::Mode::persistent, controller_, apply, log_));
        break;
      case ControlSpec::Kind::unix_stream:
      case ControlSpec::Kind::unix_persistent:
        unix_.push_back(std::make_unique<UnixControl>(
            io_, boost::asio::local::stream_protocol::endpoint(c.path), c.text,
            c.kind == ControlSpec::Kind::unix_stream ? UnixControl::Mode::one_shot : UnixControl::Mode::persistent,
            controller_, apply, log_));
        break;
    }
  }
}

void Proxy::open_kernel_paths() {
  if (options_.kernel_offload != Options::Mode::off) {
    std::string why;
    offload_ = Offload::open(offload_config(options_), why);
    if (!offload_ && options_.kernel_offload == Options::Mode::on) throw std::runtime_error("--kernel-offload=on: " + why);
    if (offload_) {
      std::string names;
      for (const auto& n : offload_->interface_names()) names += (names.empty() ? "" : ",") + n;
      offload_note_ = "kernel offload: latched streams are forwarded by eBPF at tc ingress of " + names +
                      (offload_->tc_filters() ? " (as tc filters: this kernel has no tcx links)" : "");
    } else {
      offload_note_ = "kernel offload unavailable, relaying in userspace: " + why;
    }
    table_.track_touched(offload_ != nullptr);
  }
  catch_all_note_ = "catch-all off: every peer's leg is bound here (4 descriptors per mirrored session)";
  if (options_.catch_all == Options::Mode::off) return;  // attached before any peer's session
  std::string why;
  auto catch_all = CatchAll::open(options_.media, why);
  if (!catch_all && options_.catch_all == Options::Mode::on) throw std::runtime_error("--catch-all=on: " + why);
  if (catch_all) {
    sockets_.use_catch_all(std::move(catch_all));
    catch_all_note_ = "catch-all: peers' legs are mirrored without sockets, adopted on their first packet (eBPF sk_lookup)";
  } else {
    catch_all_note_ = "catch-all unavailable, every peer's leg is bound here (4 descriptors per mirrored session): " + why;
  }
}

void Proxy::open_sync() {
  const SyncHello hello = sync_hello(options_, table_.config().instance);
  if (options_.sync_tls) sync_tls_ = make_sync_tls(*options_.sync_tls);  // read now, before any chroot
  SyncServer::Access access{{}, options_.sync_allow};
  for (const auto& peer : options_.sync_hosts) {
    peers_.push_back(std::make_unique<SyncClient>(
        io_, peer.host, peer.port, hello, options_.sync_interface, sync_tls_.get(),
        [this](SyncMessage& msg, const SyncSource& from) { on_sync(msg, from); }, log_, sync_stats_));
    for (const auto& e : peers_.back()->endpoints()) access.peers.push_back(e.address());  // who may speak as a peer
  }
  if (!options_.sync_port) return;
  auto at = sync_endpoint(options_);  // IPv4 and IPv6 unless -I names one address
  try {
    sync_server_ = std::make_unique<SyncServer>(io_, at, ListingTable(table_), hello, access, sync_tls_.get(), log_, sync_stats_);
  } catch (const std::runtime_error&) {
    if (options_.sync_interface) throw;
    at = boost::asio::ip::tcp::endpoint(boost::asio::ip::address_v4::any(), options_.sync_port);  // no IPv6 here
    sync_server_ = std::make_unique<SyncServer>(io_, at, ListingTable(table_), hello, access, sync_tls_.get(), log_, sync_stats_);
  }
  sync_server_->describe_cluster([this] {
    const Headroom room = this->room();
    const Health h = health(room);
    return capacity_lines(members(table_.config().instance, capacity(as_served(room, h)), view_.capacity, Clock::now(),
                                  h.word(), h.cause),
                          table_.config().instance) +
           peer_lines();
  });
}

std::uint64_t Proxy::capabilities_kept() const {
  constexpr int cap_bpf = 39;  // CAP_BPF (Linux 5.8)
  return offload_ || sockets_.catch_all() ? capability_bit(cap_bpf) : 0;
}

void Proxy::on_latched(const Latch& latch) {
  log_.info("latched call-id=" + latch.key.call_id + " tag=" + latch.key.from_tag + " " +
            (latch.side ? "caller" : "callee") + (latch.kind == Kind::rtcp ? " RTCP" : " RTP") + " to " +
            endpoint_text(latch.remote));
  flush_soon();
}

void Proxy::on_adopted(Slot slot, std::uint16_t port, BindResult result) {
  const Session* s = table_.session_at(slot, port);
  const std::string what = s ? "call-id=" + s->call_id + " tag=" + s->from_tag : "port " + std::to_string(port);
  if (result == BindResult::bound) {
    log_.info("adopted " + what + ": its packets arrive here now");
    flush_soon();  // the kernel fast path's entries follow
    return;
  }
  const std::string why = result == BindResult::no_descriptors ? "the open-file limit is reached" : "a port is taken by another program";
  log({Event{Level::error, "cannot adopt " + what + " (" + why + "): its packets are dropped until it can", "adopt-failed"}});
}

void Proxy::on_sync(SyncMessage& msg, const SyncSource& from) {
  const auto outcome =
      apply_sync(SyncTable(table_), view_, msg, from, Clock::now(), sync_server_ && sync_server_->has_operators());
  if (outcome.refused) ++sync_stats_.frames_refused;
  log(outcome.events);
  if (sync_server_) {
    for (const auto& line : outcome.listing) sync_server_->note(line);
    sync_server_->table_changed();
  }
  flush_changes();  // a session kept alive against a peer's expiry goes back out
  player_.kick();   // a peer's prompt this instance may have to take over
}

void Proxy::close_recordings() {
  for (const auto id : table_.take_closed_recordings()) recorder_.close(id);
}

void Proxy::flush_changes() {
  if (offload_) offload_->follow(OffloadTable(table_), Clock::now());  // the kernel's entries follow the table
  close_recordings();  // every path that changes the table ends here
  const Changes changes = table_.take_changes();  // always drained, with or without peers
  if (sync_server_) sync_server_->publish(changes, Clock::now());
}

void Proxy::flush_soon() {
  if (flush_armed_) return;
  flush_armed_ = true;
  flush_timer_.expires_after(std::chrono::milliseconds(20));
  flush_timer_.async_wait([this](boost::system::error_code ec) {
    flush_armed_ = false;
    if (!ec) flush_changes();
  });
}

void Proxy::check_file_limit() {
  std::uint64_t pairs = 0;  // every served slot (relay address) has the whole range
  for (Slot slot = 0; slot < slot_count; ++slot)
    if (options_.media[slot]) pairs += table_.pool(slot).capacity();
  const std::uint64_t limit = raise_open_file_limit(descriptors_needed(pairs));
  if (limit != 0 && limit < descriptors_needed(pairs))
    log_.warning("the open-file limit " + std::to_string(limit) + " holds only about " +
                 std::to_string(sessions_within(limit)) + " sessions, fewer than the port range's " +
                 std::to_string(pairs / 2) + "; raise it (ulimit -n) or shrink -p");
}

void Proxy::start() {
  packets_.start();
  for (auto& u : udp_) u->start();
  for (auto& t : tcp_) t->start();
  for (auto& u : unix_) u->start();
  if (sync_server_) sync_server_->start();
  for (auto& p : peers_) p->start();
  if (metrics_) metrics_->start();
  started_ = Clock::now();
  sweep();  // the first health line before the first client
  serve_tick();
  if (health_server_) health_server_->start();
  wait_signal();
  log(serving_notes(options_, ::geteuid() == 0));
  if (!offload_note_.empty()) log_.notice(offload_note_);
  if (!catch_all_note_.empty()) log_.notice(catch_all_note_);
}

void Proxy::stop() {
  stopped_ = true;
  boost::system::error_code ec;
  for (auto& u : udp_) u->close();
  for (auto& t : tcp_) t->close();
  for (auto& u : unix_) u->close();
  if (sync_server_) sync_server_->close();
  for (auto& p : peers_) p->close();
  if (metrics_) metrics_->close();
  if (health_server_) health_server_->close();
  player_.stop();
  flush_timer_.cancel();
  serve_timer_.cancel();
  sweep_.cancel();
  signals_.cancel(ec);
  table_.clear(Clock::now());
  close_recordings();  // the recorder moves them out of the spool as it stops
  io_.stop();
}

void Proxy::apply(Effects& effects) {
  log(effects.events);
  flush_changes();
  player_.kick();  // a P may have started a prompt
}

void Proxy::log(const std::vector<Event>& events) {
  const auto now = Clock::now();
  for (const auto& e : events) {
    if (!log_.enabled(e.level)) continue;
    if (auto line = limiter_.admit(e, now)) log_.log(e.level, *line);
  }
}

void Proxy::sweep() {
  const std::string& self = table_.config().instance;
  if (offload_) offload_->harvest(OffloadTable(table_));  // what the kernel forwarded keeps its sessions alive
  for (const auto& e : table_.expire(Clock::now())) {
    log_.info("expired call-id=" + e.call_id + " tag=" + e.from_tag);
    if (!e.notify_target.empty() && sends_timeout_notification(e.origin, self, reachable_peers()))
      notifier_.send(e.notify_target, e.notify_tag);
  }
  flush_changes();
  if (offload_) offload_->follow_all(OffloadTable(table_), Clock::now());  // re-offer windows that closed
  room_ = this->room();
  const Headroom room = as_served(room_, health(room_));  // draining or syncing: not healthy
  if (!options_.health_file.empty()) check_health(room);
  recorder_.retry_closes();
  for (const auto& line : recorder_.take_problems()) log_.error(line);
  if (sockets_.catch_all() && options_.park_idle.count() > 0)  // a route that moved back: its calls' sockets go
    if (const auto n = table_.repark_idle(Clock::now(), options_.park_idle))
      log_.info("parked again " + std::to_string(n) + " adopted legs without packets here for " +
                std::to_string(options_.park_idle.count()) + " s");
  // Peers' legs that could not be bound: again once sockets were closed, and every 5 s.
  if (table_.take_freed() || sweeps_ % 5 == 0) log(table_.retry_unbound());
  check_wire_versions();
  if (++sweeps_ % 2 == 0) {  // coarse activity: media here keeps the session alive everywhere
    log(takeover_.check(room_, view_.capacity, Clock::now()));
    // clears the flags, read or not
    const auto frames = activity_frames(self, table_.take_activity(Clock::now()), capacity(room));
    if (sync_server_)
      for (const auto& frame : frames) sync_server_->publish(frame);
  }
  sweep_.expires_after(std::chrono::seconds(1));
  sweep_.async_wait([this](boost::system::error_code ec) {
    if (!ec) sweep();
  });
}

// The instances this one is connected to now (the notification duty's witnesses).
std::vector<std::string> Proxy::reachable_peers() const {
  std::vector<std::string> names;
  for (const auto& p : peers_)
    if (p->connected() && !p->peer_instance().empty()) names.push_back(p->peer_instance());
  return names;
}

void Proxy::wait_signal() {
  signals_.async_wait([this](boost::system::error_code ec, int sig) {
    if (ec) return;
    if (sig == SIGTERM || sig == SIGINT) {
      on_stop_signal(sig);
      if (!stopped_) wait_signal();  // a second one stops at once
      return;
    }
    if (sig == SIGHUP) reload();
    if (sig == SIGUSR2) on_maintenance_signal();
    if (sig == SIGUSR1) log_.notice(stats_line(gather()));
    wait_signal();
  });
}

}  // namespace anyrtpproxy
