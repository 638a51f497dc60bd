// event: see event.h.
#include "core/event.h"

#include <algorithm>
#include <array>
#include <utility>

namespace anyrtpproxy {

namespace {
constexpr std::array<std::pair<std::string_view, Level>, 5> levels = {{
    {"error", Level::error}, {"warning", Level::warning}, {"notice", Level::notice},
    {"info", Level::info}, {"debug", Level::debug}}};
}  // namespace

bool parse_level(std::string_view name, Level& out) {
  for (const auto& [n, l] : levels)
    if (n == name) {
      out = l;
      return true;
    }
  return false;
}

std::string_view level_name(Level l) {
  for (const auto& [n, lv] : levels)
    if (lv == l) return n;
  return "info";
}

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
