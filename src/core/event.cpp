// event: see event.h.
#include "core/event.h"

#include <algorithm>

namespace anyrtpproxy {

std::optional<std::string> LogLimiter::admit(const Event& e, Clock::time_point now) {
  if (e.cause.empty()) return e.text;
  auto it = causes_.find(e.cause);
  if (it != causes_.end() && now - it->second.last < interval_) {
    ++it->second.held;
    ++suppressed_total_;
    return std::nullopt;
  }
  if (it == causes_.end()) {
    if (causes_.size() >= max_causes_) {  // forget the cause logged longest ago
      causes_.erase(std::min_element(causes_.begin(), causes_.end(), [](const auto& a, const auto& b) {
        return a.second.last < b.second.last;
      }));
    }
    it = causes_.emplace(e.cause, Cause{now, 0}).first;
    return e.text;
  }
  const std::uint64_t held = it->second.held;
  it->second = Cause{now, 0};
  if (held == 0) return e.text;
  return e.text + " (" + std::to_string(held) + " more like it suppressed)";
}

}  // namespace anyrtpproxy
