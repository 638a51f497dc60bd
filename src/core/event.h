// event: a line the daemon should log, as a value, and the rule that keeps a
// repeated cause from flooding the log. The core returns events (what a
// command or a peer's frame did); the I/O layer writes them.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>

namespace anyrtpproxy {

enum class Level : int { error = 3, warning = 4, notice = 5, info = 6, debug = 7 };  // the priorities of RFC 5424

// "error", "warning", "notice", "info", "debug" (-d/--log-level) and back.
bool parse_level(std::string_view name, Level& out);
std::string_view level_name(Level l);

struct Event {
  Event(Level l, std::string t, std::string c = {}) : level(l), text(std::move(t)), cause(std::move(c)) {}
  Level level;
  std::string text;
  // Non-empty: a failure that can repeat at the rate of the input (commands,
  // frames). Lines of the same cause are rate-limited by a LogLimiter.
  std::string cause;
};

// At most one line per cause per interval; the lines it holds back are counted
// and the next line of that cause says how many. Bounded: at most max_causes
// causes are tracked (the oldest is forgotten). Time comes in as a parameter.
class LogLimiter {
public:
  using Clock = std::chrono::steady_clock;
  explicit LogLimiter(std::chrono::seconds interval = std::chrono::seconds(10), std::size_t max_causes = 256)
      : interval_(interval), max_causes_(max_causes) {}

  // The line to log now (with "(N more like it suppressed)" when some were),
  // or nothing when this cause was logged less than an interval ago.
  std::optional<std::string> admit(const Event& e, Clock::time_point now);
  std::uint64_t suppressed() const { return suppressed_total_; }

private:
  struct Cause {
    Clock::time_point last;
    std::uint64_t held = 0;
  };
  std::chrono::seconds interval_;
  std::size_t max_causes_;
  std::map<std::string, Cause> causes_;
  std::uint64_t suppressed_total_ = 0;
};

}  // namespace anyrtpproxy
