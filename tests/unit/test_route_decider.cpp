#include "core/route_decider.h"

#include <boost/test/unit_test.hpp>

using namespace anyrtpproxy;
using namespace std::chrono_literals;
using Action = RouteDecider::Action;

namespace {

// A daemon that says healthy every 100 ms from `from` for `span`; the last action.
Action healthy_for(RouteDecider& d, RouteDecider::Clock::time_point from, std::chrono::milliseconds span) {
  Action last = Action::none;
  for (auto t = from; t <= from + span; t += 100ms) {
    const Action a = d.line("healthy headroom_legs=10", t);
    if (a != Action::none) last = a;
  }
  return last;
}

}  // namespace

BOOST_AUTO_TEST_SUITE(route_decider)

BOOST_AUTO_TEST_CASE(announced_after_a_steady_second_and_withdrawn_at_end_of_file) {
  RouteDecider d({300ms, 1000ms});
  const auto t0 = RouteDecider::Clock::time_point{} + 10s;
  BOOST_TEST((d.connected(t0) == Action::none));
  BOOST_TEST((healthy_for(d, t0, 900ms) == Action::none));  // not yet steady
  BOOST_TEST((d.line("healthy headroom_legs=10", t0 + 1000ms) == Action::announce));
  BOOST_TEST(d.announced());
  BOOST_TEST((d.line("healthy headroom_legs=9", t0 + 1100ms) == Action::none));  // said once
  BOOST_TEST((d.lost(t0 + 1150ms) == Action::withdraw));  // the daemon died
  BOOST_TEST((d.lost(t0 + 1200ms) == Action::none));      // said once
  BOOST_TEST((d.tick(t0 + 5s) == Action::none));          // not connected: nothing to announce
}

BOOST_AUTO_TEST_CASE(silence_withdraws_a_hung_daemon_and_it_must_be_steady_again) {
  RouteDecider d({300ms, 1000ms});
  const auto t0 = RouteDecider::Clock::time_point{} + 10s;
  d.connected(t0);
  BOOST_TEST((healthy_for(d, t0, 1000ms) == Action::announce));
  BOOST_TEST((d.tick(t0 + 1300ms) == Action::none));      // 300 ms after the last line: not yet
  BOOST_TEST((d.tick(t0 + 1301ms) == Action::withdraw));  // silent for longer: hung
  // it comes back: a whole steady second before the route does
  BOOST_TEST((healthy_for(d, t0 + 5s, 900ms) == Action::none));
  BOOST_TEST((d.line("healthy headroom_legs=10", t0 + 6s) == Action::announce));
}

BOOST_AUTO_TEST_CASE(unhealthy_and_draining_withdraw_and_flapping_does_not_announce) {
  RouteDecider d({300ms, 1000ms});
  const auto t0 = RouteDecider::Clock::time_point{} + 10s;
  d.connected(t0);
  healthy_for(d, t0, 1000ms);
  BOOST_TEST(d.announced());
  BOOST_TEST((d.line("unhealthy the open-file limit is reached", t0 + 1100ms) == Action::withdraw));
  for (int i = 0; i < 10; ++i) {  // healthy and unhealthy by turns: never steady
    const auto t = t0 + 1200ms + i * 200ms;
    BOOST_TEST((d.line("healthy headroom_legs=1", t) == Action::none));
    BOOST_TEST((d.line("unhealthy the port range is used up", t + 100ms) == Action::none));
  }
  BOOST_TEST(!d.announced());
  const auto t1 = t0 + 10s;
  healthy_for(d, t1, 1000ms);
  BOOST_TEST(d.announced());
  BOOST_TEST((d.line("draining", t1 + 1100ms) == Action::withdraw));
  BOOST_TEST((d.line("healthyish", t1 + 1200ms) == Action::none));  // not a healthy line
  BOOST_TEST((d.tick(t1 + 2300ms) == Action::none));  // and no steady time was counted from it
  BOOST_TEST(!d.announced());
}

BOOST_AUTO_TEST_SUITE_END()
