// route_decider: what anyrtpproxy-health makes of the --health socket's lines:
// whether this instance's anycast route should be announced now. Pure: time
// comes in as a parameter.
//
// The route is withdrawn at once when the daemon closes the connection (it
// died), when no line came for `silence` (it hangs), and on any line but
// "healthy ..." ("unhealthy CAUSE", "draining"). It is announced again only
// after lines said healthy without a break for `steady`, so a daemon that
// flaps does not flap the route.
#pragma once

#include <chrono>
#include <optional>
#include <string_view>

namespace anyrtpproxy {

class RouteDecider {
public:
  using Clock = std::chrono::steady_clock;
  enum class Action { none, announce, withdraw };
  struct Config {
    std::chrono::milliseconds silence{300};
    std::chrono::milliseconds steady{1000};
  };

  explicit RouteDecider(Config config) : config_(config) {}
  Action connected(Clock::time_point now);           // a connection to the socket is up
  Action line(std::string_view text, Clock::time_point now);
  Action lost(Clock::time_point now);                // end of file, or a failed connection
  Action tick(Clock::time_point now);                // time passed: silence, steadiness
  bool announced() const { return announced_; }

private:
  Action down();
  Config config_;
  bool announced_ = false;
  bool connected_ = false;
  Clock::time_point last_line_{};
  std::optional<Clock::time_point> healthy_since_;
};

}  // namespace anyrtpproxy
