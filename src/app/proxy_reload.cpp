// proxy_reload: SIGHUP, the running daemon reading its -c file again.
#include "app/proxy.h"

#include "io/log.h"

#include <functional>
#include <map>

namespace anyrtpproxy {

// SIGHUP: reopen the log; with -c, read the configuration again, apply what can
// change while running and name what takes a restart (option_rules()). A file
// that no longer parses changes nothing.
void Proxy::reload() {
  log_.reopen();
  if (options_.config_file.empty()) {
    log_.notice("SIGHUP: log reopened; no -c/--config file to read again");
    return;
  }
  Options next;
  try {
    next = parse_options(options_.args, host_);
  } catch (const std::exception& e) {
    log_.error(std::string("SIGHUP: ") + e.what() + "; nothing changed");
    return;
  }
  const auto notify_texts = [](const Options& o) {
    std::vector<std::string> out;
    for (const auto& t : o.notify) out.push_back(t.text);
    return out;
  };
  const std::map<std::string, std::function<void()>> apply_live = {
      {"log-level", [&] { log_.set_level(next.log_level); }},
      {"timeout", [&] { table_.set_timeouts(next.ttl, next.setup_ttl); }},
      {"setup-timeout", [&] { table_.set_timeouts(next.ttl, next.setup_ttl); }},
      {"notify",
       [&] {
         controller_.set_notify_targets(notify_texts(next));
         notifier_.set_targets(next.notify);
         view_.notify_targets = notify_texts(next);
       }},
      {"sync-allow", [&] { if (sync_server_) sync_server_->set_operators(next.sync_allow); }},
      {"metrics-allow", [&] { if (metrics_) metrics_->allow(next.metrics_allow); }},
  };
  const ReloadPlan plan = plan_reload(options_, next);
  for (const auto& name : plan.live) apply_live.at(name)();
  take_live(options_, next);
  const auto joined = [](const std::vector<std::string>& names) {
    std::string out;
    for (const auto& n : names) out += (out.empty() ? "" : ", ") + n;
    return out;
  };
  log_.notice("SIGHUP: read " + options_.config_file + " again: " +
              (plan.live.empty() ? std::string("nothing to change") : "changed " + joined(plan.live)));
  if (!plan.restart.empty())
    log_.warning("SIGHUP: " + options_.config_file + " also changes " + joined(plan.restart) +
                 ", which take a restart; running with the old values");
}

}  // namespace anyrtpproxy
