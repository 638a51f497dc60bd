// proxy_serving: whether this instance asks for traffic, said every 100 ms
// on the --health socket (core/serving.h judges it), and the planned stops:
// SIGTERM drains, then stops; SIGUSR2 drains for maintenance and, sent
// again, serves again. A drain says "draining" at once, keeps relaying and
// answering, and ends when no packet came for a second (the route moved) or
// after --drain-seconds.
#include "app/proxy.h"

#include "io/log.h"

#include <csignal>

namespace anyrtpproxy {

namespace {
constexpr std::chrono::milliseconds serve_period{100};
}

Health Proxy::health(const Headroom& room) const {
  bool ready = synced_;  // the startup rule holds once for good: the links are looked at only before
  if (!ready) {
    std::vector<PeerLink> links;
    for (const auto& p : peers_) links.push_back({p->connected(), p->last_frame() != Clock::time_point{}});
    ready = synced(SyncRule{}, Clock::now() - started_, links);
  }
  return judge(room, ready, drain_.active(), drain_cause_, stopping_ ? "stop" : "maintenance");
}

// What the peers hear and the health file says: the room, as this instance's state has it.
Headroom Proxy::as_served(const Headroom& room, const Health& h) {
  Headroom out = room;
  if (h.state != Serving::healthy) {
    out.problem = h.cause;
    out.reason = h.reason;
  }
  return out;
}

void Proxy::tell_health(const Health& h) {
  if (h.state != Serving::syncing && !synced_) {
    synced_ = true;
    if (!peers_.empty()) log_.info("health: the peers' tables are here (or they did not answer): serving");
  }
  controller_.set_health(h.word() + (h.state == Serving::healthy ? std::string() : ": " + h.cause));
  if (health_server_) health_server_->set(h.line());
}

std::uint64_t Proxy::packets_seen() {
  if (offload_) offload_->harvest(OffloadTable(table_));  // what the kernel forwarded counts too
  return table_.stats().packets_received;
}

void Proxy::serve_tick() {
  tell_health(health(room_));
  if (drain_.active()) {
    const auto verdict = drain_.check(packets_seen(), Clock::now());
    if (verdict != Drain::Verdict::going_on) {
      const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(drain_.elapsed(Clock::now())).count();
      const std::string how = verdict == Drain::Verdict::quiet
                                  ? "no packet came for a second"
                                  : "--drain-seconds passed with packets still coming";
      if (stopping_) {
        log_.notice("drained after " + std::to_string(ms) + " ms (" + how + "): stopping");
        stop();
        return;
      }
      if (!drained_said_) {
        log_.notice("maintenance: drained after " + std::to_string(ms) + " ms (" + how +
                    "); still draining until SIGUSR2 again");
        drained_said_ = true;
      }
    }
  }
  serve_timer_.expires_after(serve_period);
  serve_timer_.async_wait([this](boost::system::error_code ec) {
    if (!ec) serve_tick();
  });
}

void Proxy::begin_drain(std::string cause, std::chrono::milliseconds limit) {
  drain_cause_ = std::move(cause);
  drained_said_ = false;
  drain_.begin(Drain::Config{std::chrono::seconds(1), limit}, packets_seen(), Clock::now());
  tell_health(health(room_));  // at once: the route goes before the next tick
}

void Proxy::on_stop_signal(int sig) {
  const std::string name = sig == SIGTERM ? "SIGTERM" : "SIGINT";
  if (stopping_ || options_.drain.count() == 0 || peers_.empty()) {
    log_.notice("stopping on " + name + (stopping_ ? " (the second): at once" : ""));
    stop();
    return;
  }
  stopping_ = true;
  const bool was_drained = drain_.active() && drained_said_;
  drain_.end();  // a maintenance drain becomes the stop's, with the stop's limit
  begin_drain("stopping on " + name, options_.drain);
  log_.notice("draining on " + name + ": relaying until no packet comes for a second, at most " +
              std::to_string(options_.drain.count()) + " s; " + name + " again stops at once");
  if (was_drained) {  // the route went long ago
    log_.notice("stopping: drained already");
    stop();
  }
}

void Proxy::on_maintenance_signal() {
  if (stopping_) return;
  if (drain_.active()) {
    drain_.end();
    log_.notice("maintenance over (SIGUSR2): serving again");
    tell_health(health(room_));
    return;
  }
  begin_drain("maintenance (SIGUSR2)", std::chrono::milliseconds(options_.drain.count() ? options_.drain : std::chrono::seconds(5)));
  log_.notice("maintenance (SIGUSR2): draining; relaying and answering as before; SIGUSR2 again serves again");
}

}  // namespace anyrtpproxy
