#include "core/capacity.h"

#include <boost/test/unit_test.hpp>

using namespace anyrtpproxy;

BOOST_AUTO_TEST_SUITE(capacity)

BOOST_AUTO_TEST_CASE(headroom_is_the_fewer_of_descriptors_and_ports_and_names_what_runs_out) {
  const auto h = headroom(1000, std::size_t{100}, 5000, 0);
  BOOST_TEST(h.healthy());
  BOOST_TEST(h.legs == (1000u - 100u - descriptor_reserve) / 2);  // two descriptors a leg
  BOOST_TEST(headroom(1000, std::size_t{100}, 40, 0).legs == 40u);  // ports run out first
  const auto fds = headroom(1000, std::size_t{1000 - descriptor_reserve - 2}, 5000, 0);
  BOOST_TEST((!fds.healthy() && fds.legs == 1u));  // room for one leg is no session
  BOOST_TEST(fds.problem.find("open-file limit is reached (966 of 1000") != std::string::npos, fds.problem);
  BOOST_TEST(headroom(1000, std::size_t{1000}, 5000, 0).legs == 0u);  // and never below zero
  BOOST_TEST(headroom(1000, std::size_t{100}, 1, 0).problem.find("port range is used up") != std::string::npos);
  const auto unbound = headroom(1000, std::size_t{100}, 5000, 3);
  BOOST_TEST(unbound.problem.find("3 legs of peers' sessions are not bound here") != std::string::npos);
  BOOST_TEST(headroom(1000, std::nullopt, 5000, 0).healthy());  // without /proc only the limit counts
  BOOST_TEST(headroom(1000, std::size_t{100}, 5000, 0, 10).legs == 20u);  // the table's bounds: two legs a session
  const auto full = headroom(1000, std::size_t{100}, 5000, 0, 0);
  BOOST_TEST(full.legs == 0u);
  BOOST_TEST(full.problem.find("session table is full") != std::string::npos);
}

BOOST_AUTO_TEST_CASE(the_file_limit_holds_every_pair_and_the_reserve) {
  BOOST_TEST(descriptors_needed(1000) == 2000u + descriptor_reserve + descriptors_of_its_own);
  BOOST_TEST(sessions_within(descriptors_needed(1000)) == 500u);  // two legs of a pair each
  BOOST_TEST(sessions_within(10) == 0u);  // below what the daemon keeps: none, not a wrap-around
}

BOOST_AUTO_TEST_CASE(sessions_left_is_the_tighter_of_count_and_memory) {
  TableConfig c;
  c.max_sessions = 100;
  c.max_bytes = 100 * 1000;
  BOOST_TEST(sessions_left(c, 0, 0) == 100u);               // empty: 600 bytes a session assumed, count binds
  BOOST_TEST(sessions_left(c, 10, 10 * 5000) == 10u);       // 5,000 bytes each: memory binds first
  BOOST_TEST(sessions_left(c, 100, 100) == 0u);             // full by count
  BOOST_TEST(sessions_left(c, 10, 200 * 1000) == 0u);       // over the memory bound: none, not a wrap-around
  c.max_bytes = 1000;
  BOOST_TEST(sessions_left(c, 0, 0) == 1u);                 // 1,000 bytes at 600 a session
}

BOOST_AUTO_TEST_CASE(the_table_grows_with_every_two_relay_addresses) {
  const TableConfig base;
  BOOST_TEST(scaled_for(base, 0).max_sessions == base.max_sessions);
  BOOST_TEST(scaled_for(base, 2).max_sessions == base.max_sessions);  // one IPv4 and one IPv6 address
  BOOST_TEST(scaled_for(base, 3).max_sessions == 2 * base.max_sessions);
  BOOST_TEST(scaled_for(base, 4).max_bytes == 2 * base.max_bytes);
}

BOOST_AUTO_TEST_CASE(members_list_this_instance_first_and_lines_say_whose) {
  const auto now = Clock::now();
  std::map<std::string, ClusterView::Announced> announced;
  announced["b:25000"] = ClusterView::Announced{Capacity{10, 4, 2, false, ""}, now - std::chrono::seconds(3)};
  const auto m = members("a:20000", Capacity{50, 6, 0, true, ""}, announced, now);
  BOOST_REQUIRE(m.size() == 2u);
  BOOST_TEST(m[0].instance == "a:20000");
  BOOST_TEST(m[1].age == 3.0);
  const std::string lines = capacity_lines(m, "a:20000");
  BOOST_TEST(lines ==
             "# capacity: instance a:20000 headroom=50 relays=6 parks=0 healthy (this instance)\n"
             "# capacity: instance b:25000 headroom=10 relays=4 parks=2 unhealthy (announced 3s ago)\n");
  const auto draining = members("a:20000", Capacity{50, 6, 0, false, ""}, {}, now, "draining", "stopping on SIGTERM");
  BOOST_TEST(capacity_lines(draining, "a:20000") ==
             "# capacity: instance a:20000 headroom=50 relays=6 parks=0 draining (this instance); stopping on SIGTERM\n");
}

BOOST_AUTO_TEST_CASE(a_peer_this_instance_cannot_take_over_is_said_once_and_once_again_when_it_can) {
  TakeoverWatch watch;
  auto now = Clock::now();
  std::map<std::string, ClusterView::Announced> announced;
  announced["b"] = ClusterView::Announced{Capacity{0, 100, 0, true, ""}, now};
  Headroom small{40, "", ""};
  auto events = watch.check(small, announced, now);
  BOOST_REQUIRE(events.size() == 1u);
  BOOST_TEST((events[0].level == Level::warning));
  BOOST_TEST(events[0].text.find("cannot take over instance b should its route move here: it relays 100 legs, "
                                 "this instance has room for 40") != std::string::npos, events[0].text);
  BOOST_TEST(watch.check(small, announced, now).empty());  // said once
  announced["b"].at = now - std::chrono::seconds(11);       // stale: not judged, nothing said
  BOOST_TEST(watch.check(Headroom{400, "", ""}, announced, now).empty());
  announced["b"].at = now;
  events = watch.check(Headroom{400, "", ""}, announced, now);
  BOOST_REQUIRE(events.size() == 1u);
  BOOST_TEST((events[0].level == Level::notice));
  BOOST_TEST(events[0].text == "capacity: can take over instance b again (100 legs, room for 400)");
}

BOOST_AUTO_TEST_CASE(the_health_file_s_transitions_are_logged_once_each) {
  HealthWatch watch("/run/h");
  BOOST_TEST(watch.check(Headroom{10, "", ""}).empty());  // healthy from the start: nothing to say
  const auto down = watch.check(Headroom{0, "the port range is used up", ""});
  BOOST_REQUIRE(down.size() == 1u);
  BOOST_TEST(down[0].text == "health: cannot take over its share, /run/h removed: the port range is used up");
  BOOST_TEST(watch.check(Headroom{0, "the port range is used up", ""}).empty());
  const auto up = watch.check(Headroom{10, "", ""});
  BOOST_REQUIRE(up.size() == 1u);
  BOOST_TEST(up[0].text == "health: headroom again, /run/h is back");
  HealthWatch fresh("/run/h");
  BOOST_TEST(fresh.check(Headroom{0, "x", ""}).size() == 1u);  // unhealthy at the first check: said
}

BOOST_AUTO_TEST_SUITE_END()
