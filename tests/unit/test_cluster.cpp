// The cluster rules (cluster.h), the stats line (stats.h), the text helpers
// (text.h) and the bounded write queue (write_queue.h).
#include "core/cluster.h"
#include "fakes.h"
#include "core/stats.h"
#include "core/text.h"
#include "core/write_queue.h"

#include <boost/test/unit_test.hpp>

using namespace anyrtpproxy;
using namespace anyrtpproxy::test;
using namespace std::chrono_literals;

namespace {

struct Peer {
  FakeBinder binder;
  SessionTable table{TableConfig{60s, 60s, LatchPolicy::once, "me:30000"}, pools(30000, 30020), binder};

  static Session session(const char* call, std::uint16_t p, std::uint16_t q, std::uint64_t version) {
    Session s;
    s.call_id = call;
    s.from_tag = "A;1";
    s.legs[0].port = p;
    s.legs[0].owner = "peer:40000";
    s.legs[1].port = q;
    s.legs[1].owner = "peer:40000";
    s.legs[1].rtp = Stream{ep("192.0.2.10", 4000), true, false};
    s.version = version;
    s.changed_by = "peer:40000";
    s.origin = "peer:40000";
    s.created = t0;
    s.last_active = t0;
    return s;
  }
  ClusterView view{"me:30000", PortRange{30000, 30020}, {"tcp:127.0.0.1:9999"}, {{"peer:40000", {40000, 44999}}}, {}, {}};
  SyncSource from{"10.0.0.2:2342", "peer:40000"};
  SyncOutcome apply(SyncMessage msg, Clock::time_point now = t0, bool listing = true) {
    return apply_sync(table, view, msg, from, now, listing);
  }
  // Refused, with an error naming why, and nothing applied.
  void refused(SyncMessage msg, const std::string& why) {
    const auto sessions = table.sessions().size();
    const auto out = apply(std::move(msg));
    BOOST_TEST(out.refused, why);
    BOOST_TEST(has(out.events, Level::error, why), why);
    BOOST_TEST(!out.events.empty());
    if (!out.events.empty()) BOOST_TEST(out.events[0].cause.rfind("sync-invalid ", 0) == 0u);
    BOOST_TEST(table.sessions().size() == sessions);
  }
  static bool has(const std::vector<Event>& events, Level level, const std::string& part) {
    for (const auto& e : events)
      if (e.level == level && e.text.find(part) != std::string::npos) return true;
    return false;
  }
};

}  // namespace

BOOST_AUTO_TEST_SUITE(cluster_rules)

BOOST_AUTO_TEST_CASE(the_creator_sends_the_timeout_notification) {
  BOOST_TEST(sends_timeout_notification("me:1", "me:1", {"a:1", "z:1"}));
  BOOST_TEST(sends_timeout_notification("", "me:1", {"a:1"}));  // no origin known: ours
}

BOOST_AUTO_TEST_CASE(a_reachable_creator_keeps_the_duty) {
  BOOST_TEST(!sends_timeout_notification("z:1", "a:1", {"z:1"}));  // even when we are the smallest
  BOOST_TEST(!sends_timeout_notification("z:1", "me:1", {"b:1", "z:1"}));
}

BOOST_AUTO_TEST_CASE(a_dead_creators_calls_are_reported_by_the_smallest_reachable_name_once) {
  const std::string creator = "c:1";
  // three survivors that all reach each other: exactly one of them sends it
  const std::vector<std::string> survivors = {"m:1", "b:1", "x:1"};
  int senders = 0;
  for (const auto& self : survivors) {
    std::vector<std::string> reachable;
    for (const auto& other : survivors)
      if (other != self) reachable.push_back(other);
    if (sends_timeout_notification(creator, self, reachable)) {
      ++senders;
      BOOST_TEST(self == "b:1");
    }
  }
  BOOST_TEST(senders == 1);
  // alone (a partition): each side reports its own view
  BOOST_TEST(sends_timeout_notification(creator, "x:1", {}));
  BOOST_TEST(sends_timeout_notification(creator, "x:1", {""}));  // a peer whose hello has not arrived yet
}

BOOST_AUTO_TEST_CASE(activity_is_cut_into_bounded_frames_in_order) {
  const Capacity cap{100, 40, 8, true, ""};
  const auto alone = activity_frames("me:1", {}, cap);  // no activity: the capacity still goes out
  BOOST_REQUIRE(alone.size() == 1u);
  BOOST_TEST(alone[0].entries.empty());
  BOOST_TEST((alone[0].capacity == cap));
  std::vector<ActivityEntry> entries;
  for (std::uint32_t i = 0; i < 2 * sync_max_activity + 76; ++i)
    entries.push_back(ActivityEntry{SessionKey{"call-" + std::to_string(i), "A;1"}, i, {}});
  const auto frames = activity_frames("me:1", entries, cap);
  BOOST_REQUIRE(frames.size() == 3u);
  BOOST_TEST((frames[0].capacity == cap));
  BOOST_TEST(!frames[1].capacity.has_value());
  BOOST_TEST(frames[0].entries.size() == sync_max_activity);
  BOOST_TEST(frames[1].entries.size() == sync_max_activity);
  BOOST_TEST(frames[2].entries.size() == 76u);
  std::uint32_t next = 0;
  for (const auto& f : frames) {
    BOOST_TEST(f.instance == "me:1");
    for (const auto& e : f.entries) BOOST_TEST(e.idle == next++);
  }
  // every frame decodes within the codec's own bound
  const auto text = encode(frames[0]);
  FrameReader r;
  BOOST_REQUIRE(r.feed(text));
  auto msg = r.next(t0);
  BOOST_REQUIRE(msg.has_value());
  BOOST_TEST(std::holds_alternative<SyncMessage>(*msg));
}

BOOST_AUTO_TEST_CASE(hellos_of_this_instance_or_an_overlapping_range_are_refused) {
  const SyncHello ours{"me:20000", 20000, 24999, 0, {}};
  auto self = refuse_hello(SyncHello{"me:20000", 30000, 34999, 0, {}}, ours);
  BOOST_REQUIRE(self.has_value());
  BOOST_TEST(self->why == "is this instance itself");
  BOOST_TEST(self->retry.count() == 60);
  auto overlap = refuse_hello(SyncHello{"other:24000", 24000, 28999, 0, {}}, ours);
  BOOST_REQUIRE(overlap.has_value());
  BOOST_TEST(overlap->why.find("overlap ours (20000-24999)") != std::string::npos);
  BOOST_TEST(overlap->retry.count() == 10);
  BOOST_TEST(!refuse_hello(SyncHello{"other:25000", 25000, 29999, 0, {}}, ours).has_value());
  BOOST_TEST(!refuse_hello(SyncHello{"other:10000", 10000, 20000, 0, {}}, ours).has_value());  // its end is never allocated
  BOOST_TEST(refuse_hello(SyncHello{"other:10000", 10000, 20002, 0, {}}, ours).has_value());   // 20000/20001 in both
}

BOOST_FIXTURE_TEST_CASE(an_upsert_is_applied_and_shown_to_the_listing_readers, Peer) {
  const auto out = apply(session("c", 40000, 40002, 1));
  BOOST_TEST(table.sessions().size() == 1u);
  BOOST_TEST(has(out.events, Level::debug, "sync: call-id=c tag=A;1 from 10.0.0.2:2342"));
  BOOST_REQUIRE(out.listing.size() == 1u);
  BOOST_TEST(out.listing[0].rfind("S call-id=c ", 0) == 0u);
  BOOST_TEST(out.listing[0].find("caller=40002 ") != std::string::npos);  // bound here: no "(unbound)"
  // nobody reads the sync port: no listing is rendered
  BOOST_TEST(apply(session("d", 40004, 40006, 1), t0, false).listing.empty());
  // a stale copy changes nothing and shows nothing
  const auto stale = apply(session("c", 40000, 40002, 1));
  BOOST_TEST(stale.listing.empty());
  BOOST_TEST(stale.events.empty());
}

BOOST_FIXTURE_TEST_CASE(a_leg_that_cannot_be_bound_is_an_error_and_listed_unbound, Peer) {
  binder.busy.insert(40002);
  const auto out = apply(session("c", 40000, 40002, 1));
  BOOST_TEST(has(out.events, Level::error, "port 40002: cannot bind it here"));
  BOOST_REQUIRE(out.listing.size() == 1u);
  BOOST_TEST(out.listing[0].find("caller=40002(unbound)") != std::string::npos);
}

BOOST_FIXTURE_TEST_CASE(a_removal_is_logged_and_listed_once_on_one_line, Peer) {
  apply(session("c-1", 40000, 40002, 1));
  const auto out = apply(Tombstone{"c-1", "A;1", 2, "peer:40000", false});
  BOOST_TEST(table.sessions().empty());
  BOOST_TEST(has(out.events, Level::info, "deleted call-id=c-1"));
  BOOST_REQUIRE(out.listing.size() == 1u);
  BOOST_TEST(out.listing[0] == "# deleted call-id=c-1 tag=A;1 by peer:40000\n");
  // the same removal again: nothing left to remove, nothing said
  const auto again = apply(Tombstone{"c-1", "A;1", 2, "peer:40000", false});
  BOOST_TEST(again.events.empty());
  BOOST_TEST(again.listing.empty());
}

BOOST_FIXTURE_TEST_CASE(nothing_but_a_hello_is_taken_before_the_hello, Peer) {
  from.instance.clear();
  refused(session("c", 40000, 40002, 1), "a frame before its hello");
  refused(Tombstone{"c", "A;1", 2, "peer:40000", false}, "a frame before its hello");
  BOOST_TEST(!apply(SyncHello{"peer:40000", 40000, 44999, 0, {}}).refused);
}

BOOST_FIXTURE_TEST_CASE(a_peer_binds_nothing_outside_the_range_its_owner_announced, Peer) {
  refused(session("dns", 52, 40002, 1), "port 52 outside the range 40000-44999 its owner peer:40000 announced");
  auto ghost = session("ghost", 40000, 40002, 1);
  ghost.legs[1].owner = "ghost:5060";
  refused(ghost, "port 40002 of ghost:5060, an instance that has not said its range, lies in the range of peer:40000");
  auto ours = session("ours", 30000, 40002, 1);  // our range, claimed by the peer
  refused(ours, "port 30000 outside the range 40000-44999");
  refused(session("odd", 40001, 40002, 1), "port 40001 outside");
  BOOST_TEST(binder.open_ports.empty());
  // the rest of the stream still applies
  BOOST_TEST(!apply(session("fine", 40000, 40002, 1)).refused);
  BOOST_TEST(binder.open_ports.size() == 2u);
}

BOOST_FIXTURE_TEST_CASE(a_session_of_an_instance_not_heard_yet_is_taken_outside_every_known_range, Peer) {
  // a restart hears the whole cluster from one peer, its owner may be down
  auto absent = session("absent", 40000, 50000, 1);
  absent.legs[1].owner = "down:50000";
  BOOST_TEST(!apply(absent).refused);
  auto odd = session("odd-absent", 40000, 50001, 1);
  odd.legs[1].owner = "down:50000";
  refused(odd, "port 50001 of down:50000, not an even port below 65535");
  auto ours = session("in-ours", 40000, 30010, 1);  // this instance's range (30000-30020 here)
  ours.legs[1].owner = "down:50000";
  refused(ours, "lies in this instance's range");
}

BOOST_FIXTURE_TEST_CASE(strings_names_and_families_are_checked_as_for_a_command, Peer) {
  refused(session(std::string(max_call_id + 1, 'c').c_str(), 40000, 40002, 1), "a call-id that is empty, over 1024");
  auto tag = session("c", 40000, 40002, 1);
  tag.to_tag = "t\r\nx";
  refused(tag, "a tag that is empty, over 256 bytes or not text");
  auto name = session("c", 40000, 40002, 1);
  name.origin = std::string(max_instance_name + 1, 'i');
  refused(name, "an instance name");
  auto notify = session("c", 40000, 40002, 1);
  notify.notify_target = "tcp:127.0.0.1:9999";
  notify.notify_tag = "dialog\r\nBYE";
  refused(notify, "a notify target or tag");
  auto owner = session("c", 40000, 40002, 1);
  owner.legs[0].port = 0;  // no port: its owner's name is still bounded
  owner.legs[0].owner = std::string(sync_max_string, 'o');
  refused(owner, "a leg whose owner's name is long or not text");
  auto family = session("c", 40000, 40002, 1);
  family.legs[0].rtp = Stream{ep("2001:db8::1", 4000), true, false};
  refused(family, "an address of the other family");
  refused(Tombstone{"c", "A\n;1", 2, "peer:40000", false}, "a removal whose call-id or tag");
  BOOST_TEST(table.sessions().empty());
}

BOOST_FIXTURE_TEST_CASE(a_notify_target_that_is_not_ours_is_dropped_as_for_u, Peer) {
  auto s = session("c", 40000, 40002, 1);
  s.notify_target = "tcp:198.51.100.66:5060";
  s.notify_tag = "x";
  const auto out = apply(s);
  BOOST_TEST(!out.refused);
  BOOST_TEST(has(out.events, Level::warning, "not a --notify target here"));
  BOOST_TEST(table.sessions().begin()->second.session.notify_target.empty());
  s = session("d", 40004, 40006, 1);
  s.notify_target = "tcp:127.0.0.1:9999";  // one of ours: kept
  s.notify_tag = "dialog 42";
  apply(s);
  BOOST_TEST(table.at(SessionKey{"d", "A;1"})->session.notify_tag == "dialog 42");
}

BOOST_FIXTURE_TEST_CASE(a_peer_reports_only_its_own_activity_and_only_its_own_range, Peer) {
  apply(session("c", 40000, 40002, 1));
  refused(SyncActivity{"other:50000", {ActivityEntry{SessionKey{"c", "A;1"}, 0, {}}}, {}}, "activity reported for another instance");
  refused(SyncHello{"other:50000", 44000, 49999, 0, {}}, "overlaps that of peer:40000");
  BOOST_TEST(!view.ranges.count("other:50000"));
  BOOST_TEST(!apply(SyncHello{"other:50000", 50000, 54999, 0, {}}).refused);
  BOOST_TEST(view.ranges.at("other:50000").min == 50000);
}

BOOST_FIXTURE_TEST_CASE(activity_keeps_sessions_alive_and_counts_the_peers_packets, Peer) {
  apply(session("c", 40000, 40002, 1));
  const auto out = apply(SyncActivity{"peer:40000", {ActivityEntry{SessionKey{"c", "A;1"}, 2, {Counters{5, 4, 1}, {}}},
                                                     ActivityEntry{SessionKey{"unknown", "A;1"}, 0, {}}}, {}},
                         t0 + 50s);
  BOOST_TEST(out.events.empty());
  const auto& e = table.sessions().begin()->second;
  BOOST_TEST((e.session.last_active == t0 + 48s));
  BOOST_TEST(e.local.cluster_counters(0).relayed == 4u);
  BOOST_TEST(table.sessions().size() == 1u);  // activity never creates a session
}

BOOST_FIXTURE_TEST_CASE(the_listing_says_which_instance_cannot_carry_which_leg, Peer) {
  apply(session("c", 40000, 40002, 1));
  const auto out = apply(SyncActivity{"peer:40000", {ActivityEntry{SessionKey{"c", "A;1"}, 3, {}, 1}}, {}});
  BOOST_TEST(!out.refused);
  const auto& e = table.sessions().begin()->second;
  const auto line = listing_line(e.session, e.local, t0, 60s);
  BOOST_TEST(line.find("callee=40000(unbound at peer:40000) ") != std::string::npos, line);
  BOOST_TEST(line.find("caller=40002 ") != std::string::npos, line);
  apply(SyncActivity{"peer:40000", {ActivityEntry{SessionKey{"c", "A;1"}, 3, {}, 0}}, {}});  // bound there now
  BOOST_TEST(listing_line(e.session, e.local, t0, 60s).find("unbound") == std::string::npos);
}

BOOST_FIXTURE_TEST_CASE(a_hello_is_noticed, Peer) {
  const auto out = apply(SyncHello{"peer:40000", 40000, 44999, 12, {}});
  BOOST_TEST(has(out.events, Level::notice, "is instance peer:40000 (ports 40000-44999, 12 sessions)"));
  BOOST_TEST(out.listing.empty());
}

BOOST_FIXTURE_TEST_CASE(a_peer_listing_our_addresses_in_another_order_is_told, Peer) {
  namespace ip = boost::asio::ip;
  const auto a = ip::make_address("192.0.2.1"), b = ip::make_address("192.0.2.2");
  const Slot first = slot_of(Family::v4, Side::internal, 0), second = slot_of(Family::v4, Side::internal, 1);
  view.addresses[first] = a;
  view.addresses[second] = b;
  // the same order, or addresses this instance does not have (unicast relays): nothing to say
  for (const auto& theirs : {std::vector<std::pair<Slot, ip::address>>{{first, a}, {second, b}},
                             std::vector<std::pair<Slot, ip::address>>{{first, ip::make_address("192.0.2.9")}},
                             std::vector<std::pair<Slot, ip::address>>{{first, ip::make_address("0.0.0.0")}}}) {
    const auto out = apply(SyncHello{"peer:40000", 40000, 44999, 0, theirs});
    BOOST_TEST(!out.refused);
    BOOST_TEST(out.events.size() == 1u);  // the notice only
  }
  const auto out = apply(SyncHello{"peer:40000", 40000, 44999, 0, {{first, b}, {second, a}}});
  BOOST_TEST(!out.refused);  // told, not refused: its sessions still apply
  BOOST_TEST(has(out.events, Level::error,
                 "instance peer:40000 lists 192.0.2.2 as relay address 1 of its IPv4 list, this instance as relay "
                 "address 2 of its IPv4 list"));
  BOOST_TEST(has(out.events, Level::error, "192.0.2.1 as relay address 2"));
  const auto external = apply(SyncHello{"peer:40000", 40000, 44999, 0, {{slot_of(Family::v4, Side::external), a}}});
  BOOST_TEST(has(external.events, Level::error, "as relay address 1 of its IPv4 external list, this instance as relay "
                                                "address 1 of its IPv4 list"));
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(stats_and_text)

BOOST_AUTO_TEST_CASE(the_stats_line_names_every_counter) {
  DaemonStats s;
  s.sessions = 3;
  s.table.created = 7;
  s.table.packets_relayed = 1000;
  s.table.sync_refused_full = 2;
  s.commands.received = 11;
  s.commands.errors = 1;
  s.relay = RelayStats{12, 4};
  s.sync_connections = 2;
  s.sync.bad_streams = 5;
  const auto line = stats_line(s);
  BOOST_TEST(line.rfind("stats: sessions active=3 created=7 ", 0) == 0u);
  for (const char* part : {" relayed=1000 ", " commands=11 errors=1 ", " sockets=12 bind-failures=4 ",
                           " sync: connections=2 ", " refused-full=2 ", " bad-streams=5 "})
    BOOST_TEST(line.find(part) != std::string::npos, part);
}

BOOST_AUTO_TEST_CASE(the_exposition_has_every_family_typed_and_bounded_labels) {
  DaemonStats s;
  s.version = "1.2.3";
  s.instance = "host\"a\\b\n:30000";  // quotes, backslashes and newlines are escaped
  s.by_state[1][0] = 4;  // answered, local
  s.by_state[0][1] = 2;  // offered, peer
  s.table.created = 10;
  s.table.created_local = 6;
  s.table.closed[static_cast<std::size_t>(CloseReason::setup_timeout)] = 3;
  s.table.dropped[static_cast<std::size_t>(DropReason::source_refused)] = 9;
  s.table.bytes_relayed = 172000;
  s.commands.results[{'U', CommandStats::ok_result}] = 5;
  s.commands.results[{'D', 50}] = 2;
  s.open_fds = 33;
  s.fd_limit = 20000;
  s.peers.push_back(PeerStats{"r2.example:7000", true, 3, 300, 4, 400, 1.5});
  s.peers.push_back(PeerStats{"r3.example:7000", false, 0, 0, 0, 0, std::nullopt});
  const auto text = prometheus_text(s);
  for (const char* line :
       {"anyrtpproxy_build_info{version=\"1.2.3\",instance=\"host\\\"a\\\\b\\n:30000\"} 1\n",
        "anyrtpproxy_sessions{state=\"answered\",origin=\"local\"} 4\n",
        "anyrtpproxy_sessions{state=\"offered\",origin=\"peer\"} 2\n",
        "anyrtpproxy_sessions_created_total{origin=\"local\"} 6\n",
        "anyrtpproxy_sessions_created_total{origin=\"peer\"} 4\n",
        "anyrtpproxy_sessions_closed_total{reason=\"setup_timeout\"} 3\n",
        "anyrtpproxy_packets_dropped_total{reason=\"source_not_latched\"} 9\n",
        "anyrtpproxy_bytes_relayed_total 172000\n",
        "anyrtpproxy_commands_total{command=\"U\",result=\"ok\"} 5\n",
        "anyrtpproxy_commands_total{command=\"D\",result=\"E50\"} 2\n",
        "anyrtpproxy_open_fds 33\n", "anyrtpproxy_max_fds 20000\n",
        "anyrtpproxy_sync_peer_up{peer=\"r2.example:7000\"} 1\n",
        "anyrtpproxy_sync_peer_up{peer=\"r3.example:7000\"} 0\n",
        "anyrtpproxy_sync_peer_bytes_sent_total{peer=\"r2.example:7000\"} 400\n",
        "anyrtpproxy_sync_peer_last_frame_age_seconds{peer=\"r2.example:7000\"} 1.5\n",
        "# TYPE anyrtpproxy_packets_relayed_total counter\n", "# TYPE anyrtpproxy_sessions gauge\n"})
    BOOST_TEST(text.find(line) != std::string::npos, line);
  // No age for a peer that never sent a frame; every sample's family is declared.
  BOOST_TEST(text.find("last_frame_age_seconds{peer=\"r3") == std::string::npos);
  std::size_t samples = 0, types = 0;
  for (std::size_t at = 0; at < text.size();) {
    const auto end = text.find('\n', at);
    const std::string line = text.substr(at, end - at);
    at = end + 1;
    if (line.rfind("# TYPE ", 0) == 0) ++types;
    if (line[0] == '#') continue;
    ++samples;
    const std::string name = line.substr(0, line.find_first_of("{ "));
    BOOST_TEST(text.find("# TYPE " + name + " ") != std::string::npos, name);
  }
  BOOST_TEST(types >= 30u);
  BOOST_TEST(samples > types);
}

BOOST_AUTO_TEST_CASE(network_strings_are_shown_on_one_bounded_line) {
  BOOST_TEST(one_line("a\r\nb\x1b\x7f", 100) == "a??b??");
  BOOST_TEST(one_line("abcdef", 3) == "abc...");
  BOOST_TEST(one_line("", 3) == "");
  BOOST_TEST(printable("") == "-");
  BOOST_TEST(printable("abc", 2) == "ab...");
  BOOST_TEST(is_control('\n'));
  BOOST_TEST(!is_control(' '));
  BOOST_TEST(!is_control('\xe4'));  // UTF-8 bytes are not control characters
}

BOOST_AUTO_TEST_CASE(endpoints_as_text) {
  BOOST_TEST(endpoint_text(ep("192.0.2.1", 5004)) == "192.0.2.1:5004");
  BOOST_TEST(endpoint_text(ep("2001:db8::1", 5004)) == "[2001:db8::1]:5004");
}

BOOST_AUTO_TEST_CASE(a_repeated_cause_is_logged_once_per_interval_with_a_count) {
  LogLimiter limiter(std::chrono::seconds(10), 2);
  const Event fail(Level::warning, "U call-id=a: E72: the open-file limit is reached", "E72 file");
  BOOST_TEST(*limiter.admit(fail, t0) == fail.text);
  for (int i = 0; i < 9999; ++i) BOOST_TEST(!limiter.admit(fail, t0 + std::chrono::milliseconds(i)).has_value());
  BOOST_TEST(limiter.suppressed() == 9999u);
  BOOST_TEST(*limiter.admit(fail, t0 + 10s) == fail.text + " (9999 more like it suppressed)");
  BOOST_TEST(!limiter.admit(fail, t0 + 11s).has_value());
  // other causes have their own turn; lines without a cause are never held
  BOOST_TEST(limiter.admit(Event(Level::warning, "x", "other"), t0 + 11s).has_value());
  const Event plain(Level::info, "created call-id=b");
  BOOST_TEST(limiter.admit(plain, t0 + 11s).has_value());
  BOOST_TEST(limiter.admit(plain, t0 + 11s).has_value());
  // bounded: a third cause pushes out the one logged longest ago, which is then new again
  BOOST_TEST(limiter.admit(Event(Level::warning, "y", "third"), t0 + 12s).has_value());
  BOOST_TEST(limiter.admit(fail, t0 + 12s).has_value());
}

BOOST_AUTO_TEST_CASE(write_queue_is_bounded_in_bytes_with_one_write_in_flight) {
  WriteQueue q(10);
  auto bytes = [](std::size_t n) { return std::make_shared<const std::string>(n, 'x'); };
  BOOST_TEST((q.push(bytes(4)) == WriteQueue::Push::start_writing));
  BOOST_TEST((q.push(bytes(4)) == WriteQueue::Push::queued));
  BOOST_TEST((q.push(bytes(3)) == WriteQueue::Push::over_limit));  // 11 > 10: nothing queued
  BOOST_TEST(q.bytes() == 8u);
  BOOST_TEST(q.front().size() == 4u);
  BOOST_TEST(q.pop());   // one more to write
  BOOST_TEST(!q.pop());  // idle
  BOOST_TEST(q.bytes() == 0u);
  BOOST_TEST((q.push(bytes(10)) == WriteQueue::Push::start_writing));
}

BOOST_AUTO_TEST_CASE(a_backlog_goes_into_chunks_of_its_own_in_order) {
  WriteQueue q(64 << 20);
  auto text = [](char c, std::size_t n) { return std::make_shared<const std::string>(n, c); };
  const auto first = text('a', 10);
  BOOST_TEST((q.push(first) == WriteQueue::Push::start_writing));
  BOOST_TEST(&q.front() == first.get());  // a reader that keeps up writes the shared buffer itself
  for (int i = 0; i < 3000; ++i) q.push(text(static_cast<char>('b' + i % 20), 1000));  // 3 MB behind it
  BOOST_TEST(q.bytes() == 10u + 3000u * 1000u);
  BOOST_TEST(q.pop());
  std::string behind;
  std::size_t pieces = 0;
  do {
    behind += q.front();
    ++pieces;
    BOOST_TEST(q.front().capacity() >= WriteQueue::backlog_chunk);  // mapped on its own
  } while (q.pop());
  BOOST_TEST(pieces == 3u);  // 1 MiB chunks, not 3000 small buffers
  BOOST_TEST(behind.size() == 3000u * 1000u);
  for (int i = 0; i < 3000; ++i) BOOST_REQUIRE(behind[static_cast<std::size_t>(i) * 1000] == static_cast<char>('b' + i % 20));
  BOOST_TEST(q.bytes() == 0u);
}


BOOST_AUTO_TEST_SUITE_END()
