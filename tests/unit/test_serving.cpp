#include "core/serving.h"

#include <boost/test/unit_test.hpp>

using namespace anyrtpproxy;
using namespace std::chrono_literals;
using DrainVerdict = Drain::Verdict;

BOOST_AUTO_TEST_SUITE(serving)

BOOST_AUTO_TEST_CASE(the_health_line_says_healthy_with_the_headroom_or_why_not) {
  const Headroom ok{42, "", ""};
  const Headroom full{0, "the port range is used up (1 port pairs left)", "port_range"};
  BOOST_TEST(judge(ok, true, false, "", "").line() == "healthy headroom_legs=42");
  const Health sick = judge(full, true, false, "", "");
  BOOST_TEST(sick.line() == "unhealthy the port range is used up (1 port pairs left)");
  BOOST_TEST(sick.reason == "port_range");
  BOOST_TEST(std::string(sick.word()) == "unhealthy");
}

BOOST_AUTO_TEST_CASE(draining_wins_over_everything_then_syncing_then_the_headroom) {
  const Headroom full{0, "the session table is full", "table_full"};
  const Health d = judge(full, false, true, "stopping on SIGTERM", "stop");
  BOOST_TEST(d.line() == "draining");
  BOOST_TEST(std::string(d.word()) == "draining");
  BOOST_TEST(d.cause == "stopping on SIGTERM");
  BOOST_TEST(d.reason == "stop");
  const Health s = judge(full, false, false, "", "");
  BOOST_TEST(std::string(s.word()) == "syncing");
  BOOST_TEST(s.line().rfind("unhealthy syncing", 0) == 0);  // a helper withdraws on it like on any unhealthy line
  BOOST_TEST((judge(full, true, false, "", "").state == Serving::unhealthy));
}

BOOST_AUTO_TEST_CASE(a_start_waits_for_the_connected_peers_tables_within_bounds) {
  const SyncRule rule{1000ms, 5000ms};
  const std::vector<PeerLink> none;
  const std::vector<PeerLink> silent{{true, false}, {false, false}};
  const std::vector<PeerLink> heard{{true, true}, {false, false}};  // the other peer is down: not waited for
  BOOST_TEST(synced(rule, 0ms, none));      // no peers: nothing to wait for
  BOOST_TEST(!synced(rule, 500ms, {{false, false}}));  // the links get a second to come up
  BOOST_TEST(!synced(rule, 2000ms, silent));
  BOOST_TEST(synced(rule, 2000ms, heard));
  BOOST_TEST(!synced(rule, 900ms, heard));
  BOOST_TEST(synced(rule, 5000ms, silent));  // a peer that never sends does not keep it out
}

BOOST_AUTO_TEST_CASE(a_drain_ends_a_second_after_the_last_packet) {
  Drain d;
  const auto t0 = Drain::Clock::time_point{} + 100s;
  BOOST_TEST(!d.active());
  BOOST_TEST((d.check(5, t0) == DrainVerdict::going_on));  // not draining: nothing ends
  d.begin({1000ms, 5000ms}, 100, t0);
  BOOST_TEST(d.active());
  BOOST_TEST((d.check(150, t0 + 500ms) == DrainVerdict::going_on));   // packets still come
  BOOST_TEST((d.check(180, t0 + 1200ms) == DrainVerdict::going_on));  // the route moves now
  BOOST_TEST((d.check(180, t0 + 2100ms) == DrainVerdict::going_on));  // 900 ms quiet
  BOOST_TEST((d.check(180, t0 + 2200ms) == DrainVerdict::quiet));
}

BOOST_AUTO_TEST_CASE(a_drain_without_traffic_ends_after_the_quiet_second_and_one_that_never_quiets_at_its_limit) {
  const auto t0 = Drain::Clock::time_point{} + 100s;
  Drain idle;
  idle.begin({1000ms, 5000ms}, 7, t0);
  BOOST_TEST((idle.check(7, t0 + 999ms) == DrainVerdict::going_on));
  BOOST_TEST((idle.check(7, t0 + 1000ms) == DrainVerdict::quiet));
  Drain busy;
  busy.begin({1000ms, 5000ms}, 0, t0);
  std::uint64_t packets = 0;
  DrainVerdict v = DrainVerdict::going_on;
  auto t = t0;
  for (int i = 0; i < 100 && v == DrainVerdict::going_on; ++i) {  // the route never moves
    t += 100ms;
    v = busy.check(packets += 10, t);
  }
  BOOST_TEST((v == DrainVerdict::timed_out));
  BOOST_TEST((t - t0 == 5000ms));
  busy.begin({1000ms, 60000ms}, 0, t);  // a second begin keeps the first clock
  BOOST_TEST((busy.check(packets += 10, t + 100ms) == DrainVerdict::timed_out));
  busy.end();
  BOOST_TEST(!busy.active());
}

BOOST_AUTO_TEST_SUITE_END()
