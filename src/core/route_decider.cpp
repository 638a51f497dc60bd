// route_decider: see route_decider.h.
#include "core/route_decider.h"

namespace anyrtpproxy {

RouteDecider::Action RouteDecider::down() {
  healthy_since_.reset();
  if (!announced_) return Action::none;
  announced_ = false;
  return Action::withdraw;
}

RouteDecider::Action RouteDecider::connected(Clock::time_point now) {
  connected_ = true;
  last_line_ = now;  // the silence is counted from here
  return Action::none;
}

RouteDecider::Action RouteDecider::line(std::string_view text, Clock::time_point now) {
  last_line_ = now;
  if (text.rfind("healthy", 0) != 0 || (text.size() > 7 && text[7] != ' ')) return down();
  if (!healthy_since_) healthy_since_ = now;
  return tick(now);
}

RouteDecider::Action RouteDecider::lost(Clock::time_point) {
  connected_ = false;
  return down();
}

RouteDecider::Action RouteDecider::tick(Clock::time_point now) {
  if (!connected_) return down();
  if (now - last_line_ > config_.silence) return down();
  if (healthy_since_ && !announced_ && now - *healthy_since_ >= config_.steady) {
    announced_ = true;
    return Action::announce;
  }
  return Action::none;
}

}  // namespace anyrtpproxy
