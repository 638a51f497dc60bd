// proxy: see proxy.h.
#include "proxy.h"

#include "log.h"

#include <sys/resource.h>

#include <csignal>
#include <random>

namespace anyrtpproxy {

namespace {

std::array<PortAllocator, 2> make_pools(const Options& o) {
  std::random_device rd;
  std::array<PortAllocator, 2> pools{PortAllocator(o.port_min, o.port_max, rd()),
                                     PortAllocator(o.port_min, o.port_max, rd())};
  for (const auto& c : o.control) {  // never hand out the control port as media (nor its pair)
    if (c.kind != ControlSpec::Kind::udp) continue;
    for (auto& pool : pools) pool.reserve(c.endpoint.port());
  }
  return pools;
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
      table_(TableConfig{options.ttl, options.setup_ttl, options.policy}, make_pools(options), relays_),
      controller_(table_, controller_config(options)), notifier_(io, options.notify, log), sweep_(io),
      signals_(io, SIGTERM, SIGINT, SIGHUP) {
  signals_.add(SIGUSR1);
  relays_.attach(table_, [this](const Session& s, int side, bool rtcp) {
    const auto& st = s.legs[side].stream(rtcp ? Kind::rtcp : Kind::rtp);
    log_.info("latched call-id=" + s.call_id + " tag=" + s.from_tag + " " + (side ? "caller" : "callee") +
              (rtcp ? " RTCP" : " RTP") + " to " + st.remote.address().to_string() + ":" +
              std::to_string(st.remote.port()));
  });
  auto apply = [this](Effects& e) { this->apply(e); };
  for (const auto& c : options.control) {
    if (c.kind == ControlSpec::Kind::udp)
      udp_.push_back(std::make_unique<UdpControl>(io, c.endpoint, controller_, apply, log));
    else
      unix_.push_back(std::make_unique<UnixControl>(io, c.path, controller_, apply, log));
  }
  check_file_limit();
  if (options.sync_port || !options.sync_hosts.empty())
    log_.warning("session sync (-S, -M) is not implemented in this version: this instance relays only its own sessions");
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
  for (auto& u : unix_) u->start();
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
  for (auto& u : unix_) u->close();
  sweep_.cancel();
  signals_.cancel(ec);
  table_.clear();
  io_.stop();
}

void Proxy::apply(Effects& effects) {
  for (const auto& line : effects.events) log_.info(line);
}

void Proxy::sweep() {
  for (const auto& e : table_.expire(Clock::now())) {
    log_.info("expired call-id=" + e.call_id + " tag=" + e.from_tag);
    if (!e.notify_target.empty()) notifier_.send(e.notify_target, e.notify_tag);
  }
  sweep_.expires_after(std::chrono::seconds(1));
  sweep_.async_wait([this](boost::system::error_code ec) {
    if (!ec) sweep();
  });
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
              " bind-failures=" + std::to_string(relays_.bind_failures()));
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
