// proxy: see proxy.h.
#include "app/proxy.h"

#include "io/daemon.h"

#include "core/cluster.h"
#include "io/log.h"
#include "core/stats.h"
#include "core/text.h"

#include "core/version.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/resource.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <ctime>
#include <random>

namespace anyrtpproxy {

namespace {

// Every relay address has its own copy of the range; a slot without one has none.
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
  // Port ranges must not overlap between instances, so the first port names one, across restarts.
  return std::string(host[0] ? host : "anyrtpproxy") + ":" + std::to_string(o.port_min);
}

// The table's bounds grow with the relay addresses: every session owns a
// port pair of some address (at most 32,768 per address and family across
// the cluster), so two served addresses hold the 65,536 of the default.
TableConfig table_config(const Options& o) {
  TableConfig c{o.ttl, o.setup_ttl, o.policy, instance_name(o)};
  std::size_t served = 0;
  for (const auto& a : o.media) served += a.has_value();
  const std::size_t scale = std::max<std::size_t>(1, (served + 1) / 2);
  c.max_sessions *= scale;
  c.max_bytes *= scale;
  return c;
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

}  // namespace

Proxy::Proxy(boost::asio::io_context& io, Options options, Logger& log)
    : io_(io), options_(std::move(options)), log_(log),
      recorder_(RecorderConfig{options_.record_dir, options_.spool_dir, options_.record_pcap}),
      sockets_(options_.media, options_.tos),
      table_(table_config(options_), make_pools(options_), sockets_),
      packets_(io, sockets_, table_, recorder_, [this](const Latch& latch) { on_latched(latch); },
               [this](Slot slot, std::uint16_t port, BindResult r) { on_adopted(slot, port, r); }),
      player_(io, options_.prompts_dir, sockets_, table_, table_.config().instance, [this] { return reachable_peers(); },
              [this] { flush_changes(); }, log),
      controller_(table_, controller_config(options_, &player_, table_.config().instance)), notifier_(io, options_.notify, log), flush_timer_(io), sweep_(io),
      signals_(io, SIGTERM, SIGINT, SIGHUP) {
  signals_.add(SIGUSR1);
  view_.self = table_.config().instance;
  view_.own = PortRange{options_.port_min, options_.port_max};
  view_.addresses = options_.media;
  for (const auto& t : options_.notify) view_.notify_targets.push_back(t.text);
  auto apply = [this](Effects& e) { this->apply(e); };
  for (const auto& c : options_.control) {
    switch (c.kind) {
      case ControlSpec::Kind::udp:
        udp_.push_back(std::make_unique<UdpControl>(io, c.endpoint, controller_, apply, log));
        break;
      case ControlSpec::Kind::tcp:
        tcp_.push_back(std::make_unique<TcpControl>(io, boost::asio::ip::tcp::endpoint(c.endpoint.address(), c.endpoint.port()),
                                                    c.text, TcpControl::Mode::persistent, controller_, apply, log));
        break;
      case ControlSpec::Kind::unix_stream:
      case ControlSpec::Kind::unix_persistent:
        unix_.push_back(std::make_unique<UnixControl>(
            io, boost::asio::local::stream_protocol::endpoint(c.path), c.text,
            c.kind == ControlSpec::Kind::unix_stream ? UnixControl::Mode::one_shot : UnixControl::Mode::persistent,
            controller_, apply, log));
        break;
    }
  }
  check_file_limit();
  start_time_ = static_cast<double>(std::time(nullptr));
  if (!options_.health_file.empty()) health_ = StatusFile(options_.health_file);  // its directory, before any chroot
  // The open-descriptor count (headroom: health file, metrics, the peers); -1 without /proc: not counted.
  proc_fds_ = Fd(::open("/proc/self/fd", O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (options_.metrics)
    metrics_ = std::make_unique<MetricsServer>(io, *options_.metrics, options_.metrics_allow,
                                               [this] { return prometheus_text(gather()); }, log);
  if (options_.kernel_offload != Options::Offload::off) {  // loaded and attached now, while privileged
    OffloadConfig oc;
    oc.interfaces = options_.offload_interfaces;
    oc.local = options_.media;
    std::string why;
    offload_ = Offload::open(oc, why);
    if (!offload_ && options_.kernel_offload == Options::Offload::on)
      throw std::runtime_error("--kernel-offload=on: " + why);
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
  if (options_.catch_all != Options::Mode::off) {  // attached now, while privileged, before any peer's session
    std::string why;
    auto catch_all = CatchAll::open(options_.media, options_.port_max, why);
    if (!catch_all && options_.catch_all == Options::Mode::on) throw std::runtime_error("--catch-all=on: " + why);
    if (catch_all) {
      sockets_.use_catch_all(std::move(catch_all));
      catch_all_note_ = "catch-all: peers' legs are mirrored without sockets, adopted on their first packet (eBPF sk_lookup)";
    } else {
      catch_all_note_ = "catch-all unavailable, every peer's leg is bound here (4 descriptors per mirrored session): " + why;
    }
  }
  SyncHello hello{table_.config().instance, options_.port_min, options_.port_max, 0, {}};
  for (Slot s = 0; s < slot_count; ++s)
    if (options_.media[s]) hello.addresses.emplace_back(s, *options_.media[s]);
  if (options_.sync_tls) sync_tls_ = make_sync_tls(*options_.sync_tls);  // read now, before any chroot
  SyncServer::Access access{{}, options_.sync_allow};
  for (const auto& peer : options_.sync_hosts) {
    peers_.push_back(std::make_unique<SyncClient>(
        io, peer.host, peer.port, hello, options_.sync_interface, sync_tls_.get(),
        [this](SyncMessage& msg, const SyncSource& from) { on_sync(msg, from); }, log, sync_stats_));
    for (const auto& e : peers_.back()->endpoints()) access.peers.push_back(e.address());  // who may speak as a peer
  }
  if (options_.sync_port) {
    auto at = sync_endpoint(options_);  // IPv4 and IPv6 unless -I names one address
    try {
      sync_server_ = std::make_unique<SyncServer>(io, at, table_, hello, access, sync_tls_.get(), log, sync_stats_);
    } catch (const std::runtime_error&) {
      if (options_.sync_interface) throw;
      at = boost::asio::ip::tcp::endpoint(boost::asio::ip::address_v4::any(), options_.sync_port);  // no IPv6 here
      sync_server_ = std::make_unique<SyncServer>(io, at, table_, hello, access, sync_tls_.get(), log, sync_stats_);
    }
    sync_server_->describe_cluster([this] { return capacity_lines(); });
  }
}

// "# capacity: instance NAME headroom=N relays=R parks=P healthy|unhealthy (age)" per instance.
std::string Proxy::capacity_lines() const {
  std::string out;
  for (const auto& m : members(room()))
    out += "# capacity: instance " + m.instance + " headroom=" + std::to_string(m.capacity.headroom_legs) +
           " relays=" + std::to_string(m.capacity.relayed_legs) + " parks=" + std::to_string(m.capacity.parked_legs) +
           (m.capacity.healthy ? " healthy" : " unhealthy") +
           (m.instance == table_.config().instance ? " (this instance)"
                                                   : " (announced " + std::to_string(static_cast<long>(m.age)) + "s ago)") +
           "\n";
  return out;
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
      apply_sync(table_, view_, msg, from, Clock::now(), sync_server_ && sync_server_->has_operators());
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
  if (offload_) offload_->follow(table_, Clock::now());  // the kernel's entries follow the table
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
  rlimit lim{};
  if (::getrlimit(RLIMIT_NOFILE, &lim) != 0) return;
  std::size_t pairs = 0;  // every served slot (relay address) has the whole range
  for (Slot slot = 0; slot < slot_count; ++slot)
    if (options_.media[slot]) pairs += table_.pool(slot).capacity();
  const rlim_t needed = pairs * 2 + 64;  // RTP+RTCP per port pair, plus our own
  if (lim.rlim_cur < needed && lim.rlim_cur < lim.rlim_max) {
    lim.rlim_cur = std::min(needed, lim.rlim_max);
    ::setrlimit(RLIMIT_NOFILE, &lim);
  }
  if (lim.rlim_cur < needed)
    log_.warning("the open-file limit " + std::to_string(lim.rlim_cur) + " holds only about " +
                 std::to_string(lim.rlim_cur > 64 ? (lim.rlim_cur - 64) / 4 : 0) + " sessions, fewer than the port range's " +
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
  sweep();
  wait_signal();
  std::string where;
  for (const auto& c : options_.control) where += " " + c.text;
  log_.notice("serving control on" + where + ", ports " + std::to_string(options_.port_min) + "-" +
              std::to_string(options_.port_max));
  if (!offload_note_.empty()) log_.notice(offload_note_);
  if (!catch_all_note_.empty()) log_.notice(catch_all_note_);
  if (::geteuid() == 0 && options_.user.empty())
    log_.warning("running as root: give -u USER (the Debian package's anyrtpproxy) to drop privileges after binding");
  if (!sync_tls_ && (sync_server_ || !peers_.empty()))
    log_.warning("sync is unauthenticated: peers are told by their address alone, and what they send is not "
                 "encrypted; give --sync-tls-cert, --sync-tls-key and --sync-tls-ca");
}

void Proxy::stop() {
  boost::system::error_code ec;
  for (auto& u : udp_) u->close();
  for (auto& t : tcp_) t->close();
  for (auto& u : unix_) u->close();
  if (sync_server_) sync_server_->close();
  for (auto& p : peers_) p->close();
  if (metrics_) metrics_->close();
  player_.stop();
  flush_timer_.cancel();
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
  if (offload_) offload_->harvest(table_);  // what the kernel forwarded keeps its sessions alive
  for (const auto& e : table_.expire(Clock::now())) {
    log_.info("expired call-id=" + e.call_id + " tag=" + e.from_tag);
    if (!e.notify_target.empty() && sends_timeout_notification(e.origin, self, reachable_peers()))
      notifier_.send(e.notify_target, e.notify_tag);
  }
  flush_changes();
  if (offload_) offload_->follow_all(table_, Clock::now());  // re-offer windows that closed
  const Headroom room = this->room();
  if (!options_.health_file.empty()) check_health(room);
  recorder_.retry_closes();
  for (const auto& line : recorder_.take_problems()) log_.error(line);
  if (sockets_.catch_all() && options_.park_idle.count() > 0)  // a route that moved back: its calls' sockets go
    if (const auto n = table_.repark_idle(Clock::now(), options_.park_idle))
      log_.info("parked again " + std::to_string(n) + " adopted legs without packets here for " +
                std::to_string(options_.park_idle.count()) + " s");
  // Peers' legs that could not be bound: again once sockets were closed, and every 5 s.
  if (table_.take_freed() || sweeps_ % 5 == 0) log(table_.retry_unbound());
  if (++sweeps_ % 2 == 0) {  // coarse activity: media here keeps the session alive everywhere
    check_takeover(room);
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

namespace {

// Entries of the directory (the process's open descriptors), one of them the
// descriptor that reads it; none when /proc was not there at start. When no
// descriptor is left to read it with, every one is in use: `limit`.
std::optional<std::size_t> count_open_fds(const Fd& proc_fds, std::uint64_t limit) {
  if (!proc_fds) return std::nullopt;
  const int fd = ::openat(proc_fds.get(), ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0 && (errno == EMFILE || errno == ENFILE)) return static_cast<std::size_t>(limit);
  if (fd < 0) return std::nullopt;
  DIR* dir = ::fdopendir(fd);
  if (!dir) {
    ::close(fd);
    return std::nullopt;
  }
  std::size_t n = 0;
  while (const dirent* e = ::readdir(dir))
    if (e->d_name[0] != '.') ++n;
  ::closedir(dir);
  return n - 1;  // not the one that read it
}

}  // namespace

std::uint64_t Proxy::free_pairs() const {
  std::uint64_t pairs = 0;
  for (Slot slot = 0; slot < slot_count; ++slot)
    if (options_.media[slot]) pairs += table_.pool(slot).available();
  return pairs;
}

Headroom Proxy::room() const {
  const std::uint64_t limit = open_file_limit();
  return headroom(limit, count_open_fds(proc_fds_, limit), free_pairs(), table_.unbound_legs(), sessions_left());
}

// What the table's bounds still allow: by count, and by memory at what its
// sessions take on average now (600 bytes, a real session's, while empty).
std::uint64_t Proxy::sessions_left() const {
  const TableConfig& c = table_.config();
  const std::size_t n = table_.sessions().size();
  const std::size_t per = n ? std::max<std::size_t>(table_.bytes() / n, 1) : 600;
  const std::uint64_t by_count = c.max_sessions > n ? c.max_sessions - n : 0;
  const std::uint64_t by_memory = c.max_bytes > table_.bytes() ? (c.max_bytes - table_.bytes()) / per : 0;
  return std::min(by_count, by_memory);
}

// This instance (with headroom `h`) first, then every peer that announced its capacity.
std::vector<DaemonStats::Member> Proxy::members(const Headroom& h) const {
  std::vector<DaemonStats::Member> out{{table_.config().instance, capacity(h), 0}};
  for (const auto& [instance, a] : view_.capacity)
    out.push_back({instance, a.capacity, std::chrono::duration<double>(Clock::now() - a.at).count()});
  return out;
}

Capacity Proxy::capacity(const Headroom& h) const {
  return Capacity{h.legs, sockets_.stats().sockets / 2, table_.parked_legs(), h.healthy()};
}

// Every 2 s: an instance that could not adopt all the legs a peer relays,
// should that peer's route move here, says so once (and once more when it can).
void Proxy::check_takeover(const Headroom& h) {
  const auto now = Clock::now();
  for (const auto& [instance, a] : view_.capacity) {
    const bool fresh = now - a.at < std::chrono::seconds(10);
    const bool short_of = fresh && a.capacity.relayed_legs > h.legs;
    const bool warned = short_.count(instance) != 0;
    if (short_of && !warned) {
      log_.warning("capacity: cannot take over instance " + instance + " should its route move here: it relays " +
                   std::to_string(a.capacity.relayed_legs) + " legs, this instance has room for " +
                   std::to_string(h.legs) + (h.healthy() ? "" : " (" + h.problem + ")") +
                   "; raise the file limit, add relay addresses or instances");
      short_.insert(instance);
    } else if (!short_of && warned && fresh) {
      log_.notice("capacity: can take over instance " + instance + " again (" + std::to_string(a.capacity.relayed_legs) +
                  " legs, room for " + std::to_string(h.legs) + ")");
      short_.erase(instance);
    }
  }
}

void Proxy::check_health(const Headroom& h) {
  const bool ok = h.healthy();
  if (!ok && healthy_.value_or(true))
    log_.warning("health: cannot take over its share, " + options_.health_file + " removed: " + h.problem);
  if (ok && healthy_ && !*healthy_) log_.notice("health: headroom again, " + options_.health_file + " is back");
  if (!health_.set(ok, "ok headroom_legs=" + std::to_string(h.legs) + "\n") && healthy_ != ok)
    log_.error("health: cannot update " + options_.health_file + ": " + std::strerror(errno));
  healthy_ = ok;
}

DaemonStats Proxy::gather() const {
  DaemonStats s;
  s.sessions = table_.sessions().size();
  s.table = table_.stats();
  s.commands = controller_.stats();
  s.relay = sockets_.stats();
  s.sync_connections = sync_server_ ? sync_server_->connections() : 0;
  s.sync = sync_stats_;
  if (sync_server_) s.sync.connections_refused = sync_server_->refused();
  s.by_state = count_sessions(table_);
  s.unbound_legs = table_.unbound_legs();
  s.parked_legs = table_.parked_legs();
  s.adoptions = table_.adoptions();
  s.reply_cache_entries = controller_.cache_entries();
  s.reply_cache_bytes = controller_.cache_bytes();
  s.fd_limit = open_file_limit();
  s.open_fds = count_open_fds(proc_fds_, s.fd_limit);
  for (const auto& t : tcp_) s.control_refused += t->refused();
  for (const auto& u : unix_) s.control_refused += u->refused();
  if (metrics_) s.metrics_refused = metrics_->refused();
  const auto now = Clock::now();
  for (const auto& p : peers_) {
    PeerStats ps;
    ps.name = p->name();
    ps.connected = p->connected();
    ps.messages_in = p->received().messages;
    ps.bytes_in = p->received().bytes;
    if (p->last_frame() != Clock::time_point{})
      ps.last_frame_age = std::chrono::duration<double>(now - p->last_frame()).count();
    if (sync_server_) {
      for (const auto& e : p->endpoints()) {
        const auto it = sync_server_->sent().find(unmapped(e.address()));
        if (it == sync_server_->sent().end()) continue;
        ps.messages_out += it->second.messages;
        ps.bytes_out += it->second.bytes;
      }
    }
    s.peers.push_back(std::move(ps));
  }
  const auto rec = recorder_.stats();
  s.recorder = DaemonStats::Recording{rec.packets, rec.dropped, rec.failed, rec.opened};
  s.prompt_packets = player_.packets_sent();
  s.free_pairs = free_pairs();
  s.sessions_left = sessions_left();
  s.cluster = members(headroom(s.fd_limit, s.open_fds, s.free_pairs, s.unbound_legs, s.sessions_left));
  if (offload_) {
    const auto& o = offload_->stats();
    s.offload = {true, o.streams, o.packets, o.bytes, o.installs, o.removals, o.failures};
  }
  s.version = ANYRTPPROXY_VERSION;
  s.instance = table_.config().instance;
  s.start_time = start_time_;
  return s;
}

void Proxy::dump_stats() { log_.notice(stats_line(gather())); }

namespace {

std::vector<std::string> texts(const std::vector<Network>& nets) {
  std::vector<std::string> out;
  for (const auto& n : nets) out.push_back(n.address.to_string() + "/" + std::to_string(n.prefix));
  return out;
}

std::vector<std::string> texts(const std::vector<NotifyTarget>& targets) {
  std::vector<std::string> out;
  for (const auto& t : targets) out.push_back(t.text);
  return out;
}

}  // namespace

// SIGHUP: reopen the log; with -c, read the configuration again, apply what can
// change while running and name what takes a restart. A file that no longer
// parses changes nothing.
void Proxy::reload() {
  log_.reopen();
  if (options_.config_file.empty()) {
    log_.notice("SIGHUP: log reopened; no -c/--config file to read again");
    return;
  }
  Options next;
  try {
    next = parse_options(options_.args);
  } catch (const std::exception& e) {
    log_.error(std::string("SIGHUP: ") + e.what() + "; nothing changed");
    return;
  }
  std::vector<std::string> changed;
  if (next.log_level != options_.log_level) {
    log_.set_level(next.log_level);
    changed.push_back("log-level");
  }
  if (next.ttl != options_.ttl || next.setup_ttl != options_.setup_ttl) {
    table_.set_timeouts(next.ttl, next.setup_ttl);
    changed.push_back("timeout");
  }
  if (texts(next.notify) != texts(options_.notify)) {
    controller_.set_notify_targets(texts(next.notify));
    notifier_.set_targets(next.notify);
    view_.notify_targets = texts(next.notify);
    changed.push_back("notify");
  }
  if (texts(next.sync_allow) != texts(options_.sync_allow)) {
    if (sync_server_) sync_server_->set_operators(next.sync_allow);
    changed.push_back("sync-allow");
  }
  if (texts(next.metrics_allow) != texts(options_.metrics_allow)) {
    if (metrics_) metrics_->allow(next.metrics_allow);
    changed.push_back("metrics-allow");
  }
  const auto restart = restart_needed(options_, next);
  const auto joined = [](const std::vector<std::string>& names) {
    std::string out;
    for (const auto& n : names) out += (out.empty() ? "" : ", ") + n;
    return out;
  };
  options_.log_level = next.log_level;
  options_.ttl = next.ttl;
  options_.setup_ttl = next.setup_ttl;
  options_.notify = next.notify;
  options_.sync_allow = next.sync_allow;
  options_.metrics_allow = next.metrics_allow;
  log_.notice("SIGHUP: read " + options_.config_file + " again: " +
              (changed.empty() ? std::string("nothing to change") : "changed " + joined(changed)));
  if (!restart.empty())
    log_.warning("SIGHUP: " + options_.config_file + " also changes " + joined(restart) +
                 ", which take a restart; running with the old values");
}

void Proxy::wait_signal() {
  signals_.async_wait([this](boost::system::error_code ec, int sig) {
    if (ec) return;
    if (sig == SIGTERM || sig == SIGINT) {
      log_.notice(std::string("stopping on ") + (sig == SIGTERM ? "SIGTERM" : "SIGINT"));
      stop();
      return;
    }
    if (sig == SIGHUP) reload();
    if (sig == SIGUSR1) dump_stats();
    wait_signal();
  });
}

}  // namespace anyrtpproxy
