#include "fakes.h"
#include "core/offload_plan.h"
#include "core/session_table.h"

#include <boost/test/unit_test.hpp>

using namespace anyrtpproxy;
using namespace anyrtpproxy::test;
using namespace std::chrono_literals;

namespace {

// A call whose two legs latched: the caller 192.0.2.10:4000 on leg 1 (port
// 20000), the callee 192.0.2.20:5000 on leg 0 (port 20002), both bound here.
struct Latched {
  Session s;
  LocalState local;
  Latched() {
    s.legs[0].port = 20002;
    s.legs[1].port = 20000;
    s.legs[0].rtp = Stream{ep("192.0.2.20", 5000), true, true};
    s.legs[0].rtcp = Stream{ep("192.0.2.20", 5001), true, true};
    s.legs[1].rtp = Stream{ep("192.0.2.10", 4000), true, true};
    s.legs[1].rtcp = Stream{ep("192.0.2.10", 4001), true, false};  // signalled, not yet heard
    local.legs[0].bound = local.legs[1].bound = true;
  }
};

}  // namespace

BOOST_AUTO_TEST_SUITE(offload_plan)

BOOST_AUTO_TEST_CASE(a_latched_stream_is_forwarded_to_the_other_legs_remote_from_its_port) {
  Latched c;
  const auto caller = forward_of(c.s, c.local, 1, Kind::rtp, t0);
  BOOST_REQUIRE(caller);
  BOOST_TEST(caller->from == ep("192.0.2.10", 4000));
  BOOST_TEST(caller->in_port == 20000);
  BOOST_TEST(caller->out_port == 20002);
  BOOST_TEST(caller->dest == ep("192.0.2.20", 5000));
  const auto callee_rtcp = forward_of(c.s, c.local, 0, Kind::rtcp, t0);
  BOOST_REQUIRE(callee_rtcp);
  BOOST_TEST((callee_rtcp->in_port == 20003 && callee_rtcp->out_port == 20001));
  BOOST_TEST(callee_rtcp->dest == ep("192.0.2.10", 4001));  // a known (signalled) destination is enough
  BOOST_TEST(!forward_of(c.s, c.local, 1, Kind::rtcp, t0));  // not latched: the daemon still decides
}

BOOST_AUTO_TEST_CASE(whatever_the_daemon_must_still_see_stays_in_userspace) {
  auto none = [](auto change) {
    Latched c;
    change(c);
    return !forward_of(c.s, c.local, 1, Kind::rtp, t0);
  };
  BOOST_TEST(none([](Latched& c) { c.s.legs[1].record = true; }));        // R: the recorder needs it
  BOOST_TEST(none([](Latched& c) { c.s.legs[1].copy = true; }));          // C: the copy
  BOOST_TEST(none([](Latched& c) { c.s.legs[0].play.name = "moh"; }));   // P: held back for the prompt
  BOOST_TEST(none([](Latched& c) { c.s.legs[1].asymmetric = true; }));
  BOOST_TEST(none([](Latched& c) { c.s.legs[1].relatch_until = t0 + 1s; }));  // a re-offer may move it
  BOOST_TEST(none([](Latched& c) { c.local.legs[0].bound = false; }));   // not this instance's sockets
  BOOST_TEST(none([](Latched& c) { c.s.legs[0].port = 0; }));
  BOOST_TEST(none([](Latched& c) { c.s.legs[0].rtp.known = false; }));  // nowhere to send
  BOOST_TEST(none([](Latched& c) { c.s.legs[0].slot = at(Family::v6); }));  // IPv4 <-> IPv6
  // what concerns the other direction only leaves this one offloaded
  BOOST_TEST(!none([](Latched& c) { c.s.legs[0].record = true; }));
  BOOST_TEST(!none([](Latched& c) { c.s.legs[1].play.name = "moh"; }));
  BOOST_TEST(!none([](Latched& c) { c.s.legs[1].relatch_until = t0 - 1s; }));  // the window closed
}

BOOST_AUTO_TEST_CASE(the_table_names_the_sessions_that_changed_and_counts_what_the_kernel_forwarded) {
  FakeBinder binder;
  TableConfig config{60s, 60s, LatchPolicy::once};
  config.offload = true;
  SessionTable table{config, pools(30000, 30020), binder};
  Offer u;
  u.call_id = "c";
  u.from_tag = "A;1";
  u.remote = ep("192.0.2.10", 4000);
  table.update(u, t0);
  const auto touched = table.take_touched();
  BOOST_TEST((touched.size() == 1u && touched.begin()->call_id == "c"));
  BOOST_TEST(table.take_touched().empty());
  const SessionKey key{"c", "A;1"};
  BOOST_TEST(table.offloaded(key, 1, Kind::rtp, 50, 8000, t0 + 5s, 77, 1234));
  const auto& e = table.sessions().at(key);
  BOOST_TEST(e.local.legs[1].counters.received == 50u);
  BOOST_TEST(e.local.legs[1].counters.relayed == 50u);
  BOOST_TEST((e.session.last_active == t0 + 5s && e.local.legs[1].heard == t0 + 5s));
  BOOST_TEST((e.session.legs[1].ssrc == 77u && e.session.legs[1].seq == 1234));
  BOOST_TEST(table.stats().packets_offloaded == 50u);
  BOOST_TEST(table.stats().packets_relayed == 50u);
  BOOST_TEST(table.expire(t0 + 64s).empty());  // the kernel's packets kept it alive
  BOOST_TEST(table.remove("c", "A;1", "", false, t0 + 64s) == 1u);
  BOOST_TEST(table.take_touched().count(key) == 1u);  // gone: its entries must go
  BOOST_TEST(!table.offloaded(key, 1, Kind::rtp, 1, 1, t0, 0, 0));
  table.track_touched(false);
  table.update(u, t0);
  BOOST_TEST(table.take_touched().empty());  // without the fast path nothing is kept
}

BOOST_AUTO_TEST_SUITE_END()
