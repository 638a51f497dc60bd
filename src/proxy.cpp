// proxy: see proxy.h.
#include "proxy.h"

#include "log.h"

#include <sys/resource.h>
#include <unistd.h>

#include <csignal>
#include <random>

namespace anyrtpproxy {

namespace {

std::array<PortAllocator, 2> make_pools(const Options& o) {
  std::random_device rd;
  std::array<PortAllocator, 2> pools{PortAllocator(o.port_min, o.port_max, rd()),
                                     PortAllocator(o.port_min, o.port_max, rd())};
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

boost::asio::ip::tcp::endpoint sync_endpoint(const Options& o) {
  namespace ip = boost::asio::ip;
  return ip::tcp::endpoint(o.sync_interface ? *o.sync_interface : ip::address(ip::address_v6::any()), o.sync_port);
}

ControllerConfig controller_config(const Options& o) {
  ControllerConfig c;
  c.local = o.media;
  for (const auto& t : o.notify) c.notify_targets.push_back(t.text);
  return c;
}

}  // namespace

Proxy::Proxy(boost::asio::io_context& io, const Options& options, Logger& log)
    : io_(io), options_(options), log_(log), relays_(io, options.media, log),
      table_(TableConfig{options.ttl, options.setup_ttl, options.policy, instance_name(options)}, make_pools(options),
             relays_),
      controller_(table_, controller_config(options)), notifier_(io, options.notify, log), flush_timer_(io), sweep_(io),
      signals_(io, SIGTERM, SIGINT, SIGHUP) {
  signals_.add(SIGUSR1);
  relays_.attach(table_, [this](const Session& s, int side, bool rtcp) {
    const auto& st = s.legs[side].stream(rtcp ? Kind::rtcp : Kind::rtp);
    log_.info("latched call-id=" + s.call_id + " tag=" + s.from_tag + " " + (side ? "caller" : "callee") +
              (rtcp ? " RTCP" : " RTP") + " to " + st.remote.address().to_string() + ":" +
              std::to_string(st.remote.port()));
    flush_soon();
  });
  auto apply = [this](Effects& e) { this->apply(e); };
  for (const auto& c : options.control) {
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
  const SyncHello hello{table_.config().instance, options.port_min, options.port_max, 0};
  if (options.sync_port) {
    auto at = sync_endpoint(options);  // IPv4 and IPv6 unless -I names one address
    try {
      sync_server_ = std::make_unique<SyncServer>(io, at, table_, hello, log, sync_stats_);
    } catch (const std::runtime_error&) {
      if (options.sync_interface) throw;
      at = boost::asio::ip::tcp::endpoint(boost::asio::ip::address_v4::any(), options.sync_port);  // no IPv6 here
      sync_server_ = std::make_unique<SyncServer>(io, at, table_, hello, log, sync_stats_);
    }
  }
  for (const auto& peer : options.sync_hosts)
    peers_.push_back(std::make_unique<SyncClient>(
        io, peer.host, peer.port, hello,
        [this](SyncMessage& msg, const std::string& from) { on_sync(msg, from); }, log, sync_stats_));
}

void Proxy::on_sync(SyncMessage& msg, const std::string& peer) {
  const auto now = Clock::now();
  if (auto* s = std::get_if<Session>(&msg)) {
    const SessionKey key{s->call_id, s->from_tag};
    const auto applied = table_.apply_upsert(std::move(*s), now);
    for (const auto& problem : applied.problems) log_.error(problem);
    if (applied.changed) {
      const Session& mine = table_.sessions().at(key);
      if (log_.enabled(Level::debug)) log_.debug("sync: call-id=" + key.call_id + " tag=" + key.from_tag + " from " + peer);
      if (sync_server_) sync_server_->note(listing_line(mine, now, table_.ttl_left(mine, now)));
    }
  } else if (auto* t = std::get_if<Tombstone>(&msg)) {
    if (table_.apply_removal(*t, now)) {
      const std::string line = std::string(t->expired ? "expired" : "deleted") + " call-id=" + t->call_id +
                               " tag=" + t->from_tag + " by " + t->changed_by;
      log_.info(line);
      if (sync_server_) sync_server_->note("# " + printable(line, 1000) + "\n");
    }
  } else if (auto* a = std::get_if<SyncActivity>(&msg)) {
    for (const auto& e : a->entries)
      table_.apply_activity(e.key, std::chrono::seconds(e.idle), a->instance, e.counters, now);
  } else if (auto* h = std::get_if<SyncHello>(&msg)) {
    log_.notice("sync: " + peer + " is instance " + h->instance + " (ports " + std::to_string(h->port_min) + "-" +
                std::to_string(h->port_max) + ", " + std::to_string(h->sessions) + " sessions)");
  }
  if (sync_server_) sync_server_->table_changed();
  flush_changes();  // a session kept alive against a peer's expiry goes back out
}

void Proxy::flush_changes() {
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
  const rlim_t needed = table_.pool(Family::v4).capacity() * 2 + 64;  // RTP+RTCP per port pair, plus our own
  if (lim.rlim_cur < needed && lim.rlim_cur < lim.rlim_max) {
    lim.rlim_cur = std::min(needed, lim.rlim_max);
    ::setrlimit(RLIMIT_NOFILE, &lim);
  }
  if (lim.rlim_cur < needed)
    log_.warning("the open-file limit " + std::to_string(lim.rlim_cur) + " holds only about " +
                 std::to_string((lim.rlim_cur - 64) / 4) + " sessions, fewer than the port range's " +
                 std::to_string(table_.pool(Family::v4).capacity() / 2) + "; raise it (ulimit -n) or shrink -p");
}

void Proxy::start() {
  for (auto& u : udp_) u->start();
  for (auto& t : tcp_) t->start();
  for (auto& u : unix_) u->start();
  if (sync_server_) sync_server_->start();
  for (auto& p : peers_) p->start();
  sweep();
  wait_signal();
  std::string where;
  for (const auto& c : options_.control) where += " " + c.text;
  log_.notice("serving control on" + where + ", ports " + std::to_string(options_.port_min) + "-" +
              std::to_string(options_.port_max));
}

void Proxy::stop() {
  boost::system::error_code ec;
  for (auto& u : udp_) u->close();
  for (auto& t : tcp_) t->close();
  for (auto& u : unix_) u->close();
  if (sync_server_) sync_server_->close();
  for (auto& p : peers_) p->close();
  flush_timer_.cancel();
  sweep_.cancel();
  signals_.cancel(ec);
  table_.clear();
  io_.stop();
}

void Proxy::apply(Effects& effects) {
  for (const auto& line : effects.events) log_.info(line);
  flush_changes();
}

void Proxy::sweep() {
  for (const auto& e : table_.expire(Clock::now())) {
    log_.info("expired call-id=" + e.call_id + " tag=" + e.from_tag);
    if (!e.notify_target.empty() && notifies_for(e.origin)) notifier_.send(e.notify_target, e.notify_tag);
  }
  flush_changes();
  if (++sweeps_ % 2 == 0) {  // coarse activity: media here keeps the session alive everywhere
    const auto active = table_.take_active();
    for (std::size_t i = 0; sync_server_ && i < active.size(); i += sync_max_activity) {
      SyncActivity a{table_.config().instance, {}};
      for (std::size_t j = i; j < std::min(active.size(), i + sync_max_activity); ++j) {
        const Session& s = *active[j];
        a.entries.push_back(ActivityEntry{{s.call_id, s.from_tag}, 0, {s.legs[0].counters, s.legs[1].counters}});
      }
      sync_server_->publish(a);
    }
  }
  sweep_.expires_after(std::chrono::seconds(1));
  sweep_.async_wait([this](boost::system::error_code ec) {
    if (!ec) sweep();
  });
}

// Every instance expires the session; one of them tells the SIP proxy: the one that
// created it, or, when that one is out of reach, the smallest name among this
// instance and the peers it reaches (so a dead creator's calls are reported once).
bool Proxy::notifies_for(const std::string& origin) const {
  const std::string& me = table_.config().instance;
  if (origin == me || origin.empty()) return true;
  std::string smallest = me;
  for (const auto& p : peers_) {
    if (!p->connected() || p->peer_instance().empty()) continue;
    if (p->peer_instance() == origin) return false;  // the creator is alive: its duty
    smallest = std::min(smallest, p->peer_instance());
  }
  return smallest == me;
}

void Proxy::dump_stats() {
  const auto& t = table_.stats();
  const auto& c = controller_.stats();
  log_.notice("stats: sessions active=" + std::to_string(table_.sessions().size()) +
              " created=" + std::to_string(t.created) + " timeouts=" + std::to_string(t.timeouts) +
              " packets received=" + std::to_string(t.packets_received) + " relayed=" +
              std::to_string(t.packets_relayed) + " dropped=" + std::to_string(t.packets_dropped) +
              " commands=" + std::to_string(c.received) + " errors=" + std::to_string(c.errors) +
              " retransmissions=" + std::to_string(c.duplicates) + " sockets=" + std::to_string(relays_.sockets()) +
              " bind-failures=" + std::to_string(relays_.bind_failures()) + " sync: connections=" +
              std::to_string(sync_server_ ? sync_server_->connections() : 0) + " applied=" +
              std::to_string(t.sync_applied) + " stale=" + std::to_string(t.sync_stale) + " port-conflicts=" +
              std::to_string(t.sync_port_conflicts) + " bind-failures=" + std::to_string(t.sync_bind_failures) +
              " refused-full=" + std::to_string(t.sync_refused_full) +
              " bad-streams=" + std::to_string(sync_stats_.bad_streams) + " refused=" +
              std::to_string(sync_stats_.connections_refused));
}

void Proxy::wait_signal() {
  signals_.async_wait([this](boost::system::error_code ec, int sig) {
    if (ec) return;
    if (sig == SIGTERM || sig == SIGINT) {
      log_.notice(std::string("stopping on ") + (sig == SIGTERM ? "SIGTERM" : "SIGINT"));
      stop();
      return;
    }
    if (sig == SIGHUP) {
      log_.reopen();
      log_.notice("SIGHUP: log reopened");
    }
    if (sig == SIGUSR1) dump_stats();
    wait_signal();
  });
}

}  // namespace anyrtpproxy
