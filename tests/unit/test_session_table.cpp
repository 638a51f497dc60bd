#include "fakes.h"
#include "core/session_table.h"

#include <boost/test/unit_test.hpp>

#include <random>

using namespace anyrtpproxy;
using namespace anyrtpproxy::test;
using namespace std::chrono_literals;
namespace ip = boost::asio::ip;

namespace {

Offer ul(bool create, const char* call, const char* addr, std::uint16_t port, const char* from, const char* to = "") {
  Offer u;
  u.create = create;
  u.call_id = call;
  u.remote = udp::endpoint(ip::make_address(addr), port);
  u.from_tag = from;
  u.to_tag = to;
  return u;
}

std::uint16_t port_of(std::variant<OfferResult, OfferFailure> r) {
  BOOST_REQUIRE(std::holds_alternative<OfferResult>(r));
  return std::get<OfferResult>(r).port;
}

struct Fixture {
  FakeBinder binder;
  SessionTable table{TableConfig{60s, 30s, LatchPolicy::once}, pools(30000, 30020), binder};
  std::array<unsigned char, 172> packet{};
  Fixture() {
    packet[0] = 0x80;
    packet[11] = 7;  // SSRC 7
  }
  Route send(std::uint16_t port, const udp::endpoint& from, Clock::time_point now = t0) {
    return table.route(at(Family::v4), port, from, packet.data(), packet.size(), now);
  }
};
}  // namespace

BOOST_FIXTURE_TEST_SUITE(session_table, Fixture)

BOOST_AUTO_TEST_CASE(dialog_walkthrough_of_section_2_2) {
  const auto p = port_of(table.update(ul(true, "c", "192.0.2.10", 4000, "A;1"), t0));
  BOOST_TEST(p != 0);
  BOOST_TEST(binder.open_ports.count({at(Family::v4), p}) == 1u);
  BOOST_TEST(port_of(table.update(ul(true, "c", "192.0.2.10", 4000, "A;1"), t0)) == p);  // idempotent
  const auto q = port_of(table.update(ul(false, "c", "192.0.2.20", 5000, "A;1", "B;1"), t0));
  BOOST_TEST(q != p);
  BOOST_TEST(port_of(table.update(ul(true, "c", "192.0.2.20", 5000, "B;1", "A;1"), t0)) == q);   // re-INVITE from B
  BOOST_TEST(port_of(table.update(ul(false, "c", "192.0.2.10", 4000, "B;1", "A;1"), t0)) == p);  // its answer
  BOOST_TEST(port_of(table.update(ul(false, "other", "192.0.2.10", 4000, "A;1", "B;1"), t0)) == 0);
  const Session& s = table.sessions().begin()->second.session;
  BOOST_TEST(s.legs[1].rtp.remote == ep("192.0.2.10", 4000));  // caller-facing leg: A's address
  BOOST_TEST(s.legs[0].rtp.remote == ep("192.0.2.20", 5000));
  BOOST_TEST(s.complete());
  BOOST_TEST(table.stats().created == 1u);
}

BOOST_AUTO_TEST_CASE(media_lines_are_separate_sessions_and_d_removes_all) {
  table.update(ul(true, "c", "192.0.2.10", 4000, "A;1"), t0);
  table.update(ul(true, "c", "192.0.2.10", 4002, "A;2"), t0);
  table.update(ul(true, "c2", "192.0.2.10", 4002, "A;1"), t0);
  BOOST_TEST(table.sessions().size() == 3u);
  BOOST_TEST(table.remove("c", "B", "A", false, t0) == 2u);  // BYE from the callee: matched by to-tag
  BOOST_TEST(table.sessions().size() == 1u);
  BOOST_TEST(table.remove("c", "A", "B", false, t0) == 0u);
  BOOST_TEST(binder.open_ports.size() == 1u);
}

BOOST_AUTO_TEST_CASE(d_with_media_index_removes_only_that_line) {
  table.update(ul(true, "c", "192.0.2.10", 4000, "A;1"), t0);
  table.update(ul(true, "c", "192.0.2.10", 4002, "A;2"), t0);
  BOOST_TEST(table.remove("c", "A;2", "", false, t0) == 1u);
  BOOST_TEST(table.sessions().size() == 1u);
  BOOST_TEST(table.sessions().begin()->first.from_tag == "A;1");
}

BOOST_AUTO_TEST_CASE(weak_sessions_survive_a_plain_delete) {
  auto weak = ul(true, "c", "192.0.2.10", 4000, "A;1");
  weak.weak = true;
  table.update(weak, t0);
  BOOST_TEST(table.remove("c", "A", "", false, t0) == 1u);
  BOOST_TEST(table.sessions().size() == 1u);
  BOOST_TEST(table.remove("c", "B", "A", true, t0) == 1u);  // Dw from the other side clears leg 0's weak flag
  BOOST_TEST(table.sessions().empty());
}

BOOST_AUTO_TEST_CASE(setup_timeout_then_normal_timeout) {
  table.update(ul(true, "c", "192.0.2.10", 4000, "A;1"), t0);
  BOOST_TEST(table.ttl_left(table.sessions().begin()->second.session, t0 + 10s).count() == 20);
  BOOST_TEST(table.expire(t0 + 29s).empty());
  table.update(ul(false, "c", "192.0.2.20", 5000, "A;1", "B;1"), t0 + 29s);  // answered: TTL reset, now -T
  BOOST_TEST(table.expire(t0 + 29s + 59s).empty());
  const auto gone = table.expire(t0 + 29s + 60s);
  BOOST_TEST(gone.size() == 1u);
  BOOST_TEST(binder.open_ports.empty());
  BOOST_TEST(table.stats().timeouts == 1u);
  BOOST_TEST(table.stats().closed[static_cast<std::size_t>(CloseReason::timeout)] == 1u);
  table.update(ul(true, "d", "192.0.2.10", 4000, "A;1"), t0 + 100s);  // never answered
  table.update(ul(true, "e", "192.0.2.10", 4000, "A;1"), t0 + 100s);
  BOOST_TEST(table.remove("e", "A", "", false, t0 + 100s) == 1u);
  BOOST_TEST(table.expire(t0 + 130s).size() == 1u);
  const auto& closed = table.stats().closed;
  BOOST_TEST(closed[static_cast<std::size_t>(CloseReason::setup_timeout)] == 1u);
  BOOST_TEST(closed[static_cast<std::size_t>(CloseReason::deleted)] == 1u);
  BOOST_TEST(table.stats().created_local == 3u);
  BOOST_TEST(table.stats().destroyed == 3u);
  BOOST_TEST(table.pool(at(Family::v4)).available() == 10u);
}

BOOST_AUTO_TEST_CASE(unanswered_offer_expires_after_setup_timeout) {
  table.update(ul(true, "c", "192.0.2.10", 4000, "A;1"), t0);
  BOOST_TEST(table.expire(t0 + 30s).size() == 1u);
}

BOOST_AUTO_TEST_CASE(packets_keep_a_session_alive) {
  const auto p = port_of(table.update(ul(true, "c", "192.0.2.10", 4000, "A;1"), t0));
  port_of(table.update(ul(false, "c", "192.0.2.20", 5000, "A;1", "B;1"), t0));
  send(p, ep("192.0.2.20", 5000), t0 + 50s);
  BOOST_TEST(table.expire(t0 + 100s).empty());
  BOOST_TEST(table.expire(t0 + 110s).size() == 1u);
}

BOOST_AUTO_TEST_CASE(relay_both_ways_and_latch) {
  const auto p = port_of(table.update(ul(true, "c", "192.0.2.10", 4000, "A;1"), t0));
  // before the answer, the callee's packets have nowhere to go
  Route early = send(p, ep("192.0.2.20", 5000));
  BOOST_TEST(!early.forward);
  const auto q = port_of(table.update(ul(false, "c", "192.0.2.20", 5000, "A;1", "B;1"), t0));
  Route to_a = send(p, ep("192.0.2.20", 5000));  // callee -> S0 -> out of S1 to A
  BOOST_TEST(to_a.forward);
  BOOST_TEST(to_a.out_port == q);
  BOOST_TEST(to_a.dest == ep("192.0.2.10", 4000));
  // the caller is behind NAT: its first packet latches S1
  Route to_b = send(q, ep("198.51.100.1", 40000));
  BOOST_TEST(to_b.forward);
  BOOST_TEST(to_b.learned);
  BOOST_TEST(to_b.out_port == p);
  BOOST_TEST(to_b.dest == ep("192.0.2.20", 5000));
  BOOST_TEST(send(p, ep("192.0.2.20", 5000)).dest == ep("198.51.100.1", 40000));
  // RTCP follows: guessed as the learned port + 1
  Route rtcp = send(static_cast<std::uint16_t>(p + 1), ep("192.0.2.20", 5001));
  BOOST_TEST(rtcp.forward);
  BOOST_TEST(rtcp.out_port == q + 1);
  BOOST_TEST(rtcp.dest == ep("198.51.100.1", 40001));
  // a third party is refused once the leg latched
  packet[11] = 99;
  BOOST_TEST(!send(q, ep("203.0.113.66", 1234)).forward);
  const auto& c = table.sessions().begin()->second.local.legs[1].counters;
  BOOST_TEST(c.received == 2u);
  BOOST_TEST(c.relayed == 1u);
  BOOST_TEST(c.dropped == 1u);
  BOOST_TEST(table.stats().packets_relayed == 4u);  // to A, to B, to A again, RTCP
}

BOOST_AUTO_TEST_CASE(a_nat_rebinding_is_followed_only_after_the_latched_source_went_silent) {
  const auto p = port_of(table.update(ul(true, "c", "192.0.2.10", 4000, "A;1"), t0));
  const auto q = port_of(table.update(ul(false, "c", "192.0.2.20", 5000, "A;1", "B;1"), t0));
  BOOST_TEST(send(q, ep("198.51.100.1", 40000), t0).learned);  // the caller, behind NAT, latches S1
  // its SSRC from another port while it still sends: refused
  BOOST_TEST(!send(q, ep("198.51.100.1", 40002), t0 + 1s).forward);
  BOOST_TEST(send(q, ep("198.51.100.1", 40000), t0 + 3s).forward);
  BOOST_TEST(!send(q, ep("198.51.100.1", 40002), t0 + 4s).forward);
  // silent for 2 s: the NAT moved it, and the leg follows
  const Route moved = send(q, ep("198.51.100.1", 40002), t0 + 5s);
  BOOST_TEST(moved.forward);
  BOOST_TEST(moved.learned);
  BOOST_TEST(send(p, ep("192.0.2.20", 5000), t0 + 5s).dest == ep("198.51.100.1", 40002));
  BOOST_TEST(!send(q, ep("198.51.100.1", 40000), t0 + 5s).forward);  // and the old mapping is a stranger now
}

BOOST_AUTO_TEST_CASE(signalling_does_not_override_a_learned_address) {
  const auto p = port_of(table.update(ul(true, "c", "192.0.2.10", 4000, "A;1"), t0));
  const auto q = port_of(table.update(ul(false, "c", "192.0.2.20", 5000, "A;1", "B;1"), t0));
  send(q, ep("198.51.100.1", 40000));  // S1 learns the NAT address
  table.update(ul(true, "c", "192.0.2.10", 4000, "A;1"), t0 + 1s);  // re-INVITE with the private address
  BOOST_TEST(send(p, ep("192.0.2.20", 5000), t0 + 1s).dest == ep("198.51.100.1", 40000));
}

BOOST_AUTO_TEST_CASE(unbindable_ports_are_skipped) {
  for (std::uint16_t port = 30000; port < 30018; port += 2) binder.busy.insert(port);
  const auto p = port_of(table.update(ul(true, "c", "192.0.2.10", 4000, "A;1"), t0));
  BOOST_TEST(p == 30018);
  auto r = table.update(ul(true, "d", "192.0.2.10", 4000, "A;1"), t0);
  BOOST_REQUIRE(std::holds_alternative<OfferFailure>(r));
  BOOST_TEST((std::get<OfferFailure>(r).error == OfferError::no_ports_session));  // E72, as the controller answers
  BOOST_TEST((std::get<OfferFailure>(r).why == PortShortage::all_taken));
  BOOST_TEST(table.sessions().size() == 1u);  // the failed U left nothing behind
  binder.busy.clear();
  const auto used = table.update(ul(true, "d", "192.0.2.10", 4000, "A;1"), t0);  // 30000..30016 now free again
  BOOST_TEST(std::holds_alternative<OfferResult>(used));
}

BOOST_AUTO_TEST_CASE(a_new_leg_goes_to_the_address_with_the_most_free_ports) {
  // -i A1,A2 for IPv4: slots 0 and 4, each its own copy of a range (4 and 6 pairs here)
  FakeBinder two;
  SessionTable t{TableConfig{60s, 30s, LatchPolicy::once}, make_slot_pools([](Slot slot) {
                   return slot == 0 ? PortAllocator(30000, 30008, 1)
                                    : slot == 4 ? PortAllocator(30000, 30012, 2) : PortAllocator(0, 0, 0);
                 }), two};
  std::array<int, slot_count> on{};
  for (int i = 0; i < 10; ++i) {
    const auto r = t.update(ul(true, ("c" + std::to_string(i)).c_str(), "192.0.2.10", 4000, "A;1"), t0);
    BOOST_REQUIRE(std::holds_alternative<OfferResult>(r));
    const Slot slot = std::get<OfferResult>(r).slot;
    BOOST_TEST((slot == 0 || slot == 4));
    ++on[slot];
    BOOST_TEST(two.open_ports.count({slot, std::get<OfferResult>(r).port}) == 1u);
    if (i == 1) BOOST_TEST(on[4] == 2);  // the wider one first, until both have as many free
    if (i >= 2) BOOST_TEST(std::abs(int(t.pool(0).available()) - int(t.pool(4).available())) <= 1);
  }
  BOOST_TEST(on[0] == 4);
  BOOST_TEST(on[4] == 6);
  const auto full = t.update(ul(true, "c10", "192.0.2.10", 4000, "A;1"), t0);
  BOOST_REQUIRE(std::holds_alternative<OfferFailure>(full));
  BOOST_TEST((std::get<OfferFailure>(full).why == PortShortage::range_used_up));
  // An address named by the command (L<addr>) is taken as it is, full or not.
  Offer named = ul(true, "n", "192.0.2.10", 4000, "A;1");
  named.own_slot = named.facing_slot = 0;
  named.named_address = true;
  t.remove("c0", "A;1", "", false, t0);  // the first two went to slot 4, the third to slot 0:
  t.remove("c1", "A;1", "", false, t0);  // two pairs free on slot 4, one on slot 0
  t.remove("c2", "A;1", "", false, t0);
  BOOST_TEST(t.widest(0) == 4);
  const auto r = t.update(named, t0);
  BOOST_REQUIRE(std::holds_alternative<OfferResult>(r));
  BOOST_TEST(std::get<OfferResult>(r).slot == 0);
}

BOOST_AUTO_TEST_CASE(the_file_limit_ends_the_port_search_at_once) {
  binder.descriptors = 1;  // one pair open, then the process is out of descriptors
  port_of(table.update(ul(true, "c", "192.0.2.10", 4000, "A;1"), t0));
  binder.attempts = 0;
  const auto r = table.update(ul(true, "d", "192.0.2.10", 4000, "A;1"), t0);
  BOOST_REQUIRE(std::holds_alternative<OfferFailure>(r));
  BOOST_TEST((std::get<OfferFailure>(r).why == PortShortage::file_limit));
  BOOST_TEST(binder.attempts == 1u);  // not one try per free pair
  BOOST_TEST(table.pool(at(Family::v4)).available() == 9u);  // the pair it tried went back
  // the answer's leg (L) fails the same way, and the session keeps what it had
  const auto l = table.update(ul(false, "c", "192.0.2.20", 5000, "A;1", "B;1"), t0);
  BOOST_REQUIRE(std::holds_alternative<OfferFailure>(l));
  BOOST_TEST((std::get<OfferFailure>(l).error == OfferError::no_ports_leg));
  BOOST_TEST(table.sessions().size() == 1u);
}

BOOST_AUTO_TEST_CASE(a_used_up_range_says_so) {
  for (int i = 0; i < 10; ++i) port_of(table.update(ul(true, ("c" + std::to_string(i)).c_str(), "192.0.2.10", 4000, "A;1"), t0));
  binder.attempts = 0;
  const auto r = table.update(ul(true, "full", "192.0.2.10", 4000, "A;1"), t0);
  BOOST_REQUIRE(std::holds_alternative<OfferFailure>(r));
  BOOST_TEST((std::get<OfferFailure>(r).why == PortShortage::range_used_up));
  BOOST_TEST(binder.attempts == 0u);
}

BOOST_AUTO_TEST_CASE(new_port_modifier_swaps_the_pair) {
  table.update(ul(true, "c", "192.0.2.10", 4000, "A;1"), t0);
  const auto q = port_of(table.update(ul(false, "c", "192.0.2.20", 5000, "A;1", "B;1"), t0));
  auto again = ul(false, "c", "192.0.2.20", 5000, "A;1", "B;1");
  again.new_port = true;
  const auto q2 = port_of(table.update(again, t0));
  BOOST_TEST(q2 != q);
  BOOST_TEST(binder.open_ports.count({at(Family::v4), q}) == 0u);
  BOOST_TEST(binder.open_ports.count({at(Family::v4), q2}) == 1u);
  BOOST_TEST(!send(q, ep("192.0.2.10", 4000)).forward);
}

BOOST_AUTO_TEST_CASE(ports_are_per_family) {
  auto v6 = ul(true, "c6", "2001:db8::1", 4000, "A;1");
  v6.own_slot = v6.facing_slot = at(Family::v6);
  const auto p6 = port_of(table.update(v6, t0));
  BOOST_TEST(binder.open_ports.count({at(Family::v6), p6}) == 1u);
  BOOST_TEST((table.sessions().begin()->second.session.family == Family::v6));
  BOOST_TEST(table.pool(at(Family::v4)).available() == 10u);
}

BOOST_AUTO_TEST_CASE(bridged_legs_live_on_their_own_slots_and_relay_across) {
  // U from the internal side to the external one: leg 0 (callee) external, leg 1 (caller) internal.
  const Slot internal = slot_of(Family::v4, Side::internal), external = slot_of(Family::v4, Side::external);
  auto offer = ul(true, "b", "10.0.0.5", 4000, "A;1");
  offer.own_slot = external;
  offer.facing_slot = internal;
  offer.explicit_slot = true;
  const auto p = port_of(table.update(offer, t0));
  auto answer_on = [&](Slot slot, bool new_port) {  // an L that names a slot for its own leg
    auto answer = ul(false, "b", "192.0.2.20", 5000, "A;1", "B;1");
    answer.own_slot = slot;
    answer.explicit_slot = true;
    answer.new_port = new_port;
    return port_of(table.update(answer, t0));
  };
  const auto q = answer_on(external, false);  // it does not move the leg the U placed
  BOOST_TEST(binder.open_ports.count({external, p}) == 1u);
  BOOST_TEST(binder.open_ports.count({internal, q}) == 1u);
  BOOST_TEST(table.pool(external).available() == 9u);
  BOOST_TEST(table.pool(internal).available() == 9u);
  // The caller's packet on the internal leg goes out of the external one, to the callee.
  std::array<unsigned char, 12> pkt{0x80};
  auto r = table.route(internal, q, ep("10.0.0.5", 4000), pkt.data(), pkt.size(), t0);
  BOOST_TEST(r.forward);
  BOOST_TEST(r.out_slot == external);
  BOOST_TEST(r.out_port == p);
  BOOST_TEST(r.dest == ep("192.0.2.20", 5000));
  BOOST_TEST(!table.route(external, q, ep("10.0.0.5", 4000), pkt.data(), pkt.size(), t0).forward);  // no such port there
  // n with a named slot moves the leg; the old pair goes back to its own pool.
  const auto q2 = answer_on(external, true);
  BOOST_TEST(binder.open_ports.count({external, q2}) == 1u);
  BOOST_TEST(binder.open_ports.count({internal, q}) == 0u);
  BOOST_TEST(table.pool(internal).available() == 10u);
  BOOST_TEST(table.clear(t0) == 1u);
  BOOST_TEST(binder.open_ports.empty());
}

BOOST_AUTO_TEST_CASE(a_recording_reopens_under_the_name_c_gives_and_closes_when_nothing_records) {
  const auto p = port_of(table.update(ul(true, "c", "192.0.2.10", 4000, "A;1"), t0));
  const auto q = port_of(table.update(ul(false, "c", "192.0.2.20", 5000, "A;1", "B;1"), t0));
  BOOST_TEST(table.record("c", "A;1", "", true, true) == 1u);
  BOOST_TEST(send(p, ep("192.0.2.20", 5000)).record);
  table.set_recording(at(Family::v4), p, 41);  // the packet path opened recording 41
  BOOST_TEST(send(q, ep("192.0.2.10", 4000)).recording == 41u);
  BOOST_TEST(table.take_closed_recordings().empty());
  BOOST_TEST(table.record_into("c", "A;1", "B;1", "conf"));  // another name: 41 closes, the next packet reopens
  BOOST_TEST((table.take_closed_recordings() == std::vector<std::uint32_t>{41}));
  BOOST_TEST(send(q, ep("192.0.2.10", 4000)).recording == 0u);
  BOOST_TEST(table.session_at(at(Family::v4), q)->record_name == "conf");
  table.set_recording(at(Family::v4), q, 42);
  BOOST_TEST(table.record_into("c", "A;1", "B;1", "conf"));  // the same name: it stays open
  BOOST_TEST(table.take_closed_recordings().empty());
  BOOST_TEST(!table.record_into("other", "A;1", "", "conf"));
  BOOST_TEST(table.record("c", "A;1", "", false, true) == 1u);  // N a: nothing records, 42 closes
  BOOST_TEST((table.take_closed_recordings() == std::vector<std::uint32_t>{42}));
  BOOST_TEST(table.session_at(at(Family::v4), q)->record_name.empty());
  BOOST_TEST(table.session_at(at(Family::v4), 9) == nullptr);
}

BOOST_AUTO_TEST_CASE(clear_frees_everything) {
  table.update(ul(true, "c", "192.0.2.10", 4000, "A;1"), t0);
  table.update(ul(false, "c", "192.0.2.20", 5000, "A;1", "B;1"), t0);
  BOOST_TEST(table.clear(t0) == 1u);
  BOOST_TEST(binder.open_ports.empty());
  BOOST_TEST(table.pool(at(Family::v4)).available() == 10u);
}

BOOST_AUTO_TEST_SUITE_END()

namespace {
struct Cluster {
  FakeBinder binder;
  SessionTable table{TableConfig{60s, 60s, LatchPolicy::once, "me:30000"}, pools(30000, 30020), binder};
  Session peer_session(const char* call, std::uint16_t p, std::uint16_t q, std::uint64_t version,
                       const char* owner = "peer:40000") {
    Session s;
    s.call_id = call;
    s.from_tag = "A;1";
    s.legs[0].port = p;
    s.legs[0].owner = owner;
    s.legs[1].port = q;
    s.legs[1].owner = owner;
    s.legs[0].rtp = Stream{ep("192.0.2.20", 5000), true, false};
    s.legs[1].rtp = Stream{ep("192.0.2.10", 4000), true, true};
    s.version = version;
    s.changed_by = owner;
    s.origin = owner;
    s.created = t0;
    s.last_active = t0;
    return s;
  }
};
}  // namespace

BOOST_FIXTURE_TEST_SUITE(session_table_sync, Cluster)

BOOST_AUTO_TEST_CASE(peer_sessions_are_bound_here_and_never_republished) {
  BOOST_TEST(table.apply_upsert(peer_session("c", 40000, 40002, 1)).problems.empty());
  BOOST_TEST(binder.open_ports.count({at(Family::v4), 40000}) == 1u);
  BOOST_TEST(binder.open_ports.count({at(Family::v4), 40002}) == 1u);
  BOOST_TEST(table.take_changes().upserts.empty());
  // the learned address came along: a third party cannot re-open learning here
  std::array<unsigned char, 20> pkt{0x80};
  auto r = table.route(at(Family::v4), 40002, ep("203.0.113.66", 1), pkt.data(), pkt.size(), t0);
  BOOST_TEST(!r.forward);
  r = table.route(at(Family::v4), 40002, ep("192.0.2.10", 4000), pkt.data(), pkt.size(), t0);
  BOOST_TEST(r.forward);
  BOOST_TEST(r.dest == ep("192.0.2.20", 5000));
}

BOOST_AUTO_TEST_CASE(parked_peer_legs_hold_no_sockets_until_a_packet_adopts_them) {
  binder.parking = true;
  BOOST_TEST(table.apply_upsert(peer_session("c", 40000, 40002, 1)).problems.empty());
  BOOST_TEST(binder.open_ports.empty());
  BOOST_TEST(binder.parked.size() == 2u);
  BOOST_TEST(table.parked_legs() == 2u);
  BOOST_TEST(table.unbound_legs() == 0u);  // parked is held, not missing
  std::array<unsigned char, 20> pkt{0x80};
  auto r = table.route(at(Family::v4), 40002, ep("192.0.2.10", 4000), pkt.data(), pkt.size(), t0);
  BOOST_TEST(r.forward);  // routed as ever: only the socket to send from is missing
  BOOST_TEST(r.out_port == 40000);
  BOOST_TEST((table.adopt(at(Family::v4), 40003) == BindResult::bound));  // by its RTCP port too
  BOOST_TEST(binder.open_ports.count({at(Family::v4), 40000}) == 1u);
  BOOST_TEST(binder.open_ports.count({at(Family::v4), 40002}) == 1u);
  BOOST_TEST(binder.parked.empty());
  BOOST_TEST(table.parked_legs() == 0u);
  BOOST_TEST(table.adoptions() == 2u);
  BOOST_TEST((table.adopt(at(Family::v4), 40002) == BindResult::bound));  // again: nothing to do
  BOOST_TEST(table.adoptions() == 2u);
  BOOST_TEST((table.adopt(at(Family::v4), 40010) == BindResult::taken));  // no such leg
  table.apply_removal(Tombstone{"c", "A;1", 2, "peer:40000", false}, t0);
  BOOST_TEST(binder.open_ports.empty());
}

BOOST_AUTO_TEST_CASE(a_peer_leg_on_an_address_this_instance_lacks_is_reported) {
  auto s = peer_session("c", 40000, 40002, 1);
  s.legs[1].slot = slot_of(Family::v4, Side::internal, 1);  // the peer's second IPv4 address; we have one
  const auto applied = table.apply_upsert(s);
  BOOST_REQUIRE(applied.problems.size() == 1u);
  BOOST_TEST(applied.problems[0].cause == "sync-no-address");
  BOOST_TEST(applied.problems[0].text.find("relay address 2 of its family") != std::string::npos);
  BOOST_TEST(table.unbound_legs() == 1u);
  BOOST_TEST(binder.open_ports.count({at(Family::v4), 40000}) == 1u);  // the other leg is held
}

BOOST_AUTO_TEST_CASE(adopted_legs_idle_here_are_parked_again) {
  binder.parking = true;
  table.apply_upsert(peer_session("c", 40000, 40002, 1));
  std::array<unsigned char, 20> pkt{0x80};
  BOOST_TEST(table.route(at(Family::v4), 40002, ep("192.0.2.10", 4000), pkt.data(), pkt.size(), t0).forward);
  BOOST_TEST((table.adopt(at(Family::v4), 40002) == BindResult::bound));
  BOOST_TEST(binder.open_ports.size() == 2u);
  BOOST_TEST(table.repark_idle(t0 + 30s, 60s) == 0u);  // media 30 s ago: stays
  BOOST_TEST(table.repark_idle(t0 + 61s, 60s) == 2u);
  BOOST_TEST(binder.open_ports.empty());
  BOOST_TEST(binder.parked.size() == 2u);
  BOOST_TEST(table.parked_legs() == 2u);
  BOOST_TEST(table.repark_idle(t0 + 120s, 60s) == 0u);  // parked legs are not adopted ones
  // Adopted again, and the catch-all gone meanwhile: the legs are bound again, not lost.
  BOOST_TEST((table.adopt(at(Family::v4), 40000) == BindResult::bound));
  binder.parking = false;
  BOOST_TEST(table.repark_idle(t0 + 300s, 60s) == 0u);
  BOOST_TEST(binder.open_ports.size() == 2u);
  BOOST_TEST(table.unbound_legs() == 0u);
}

BOOST_AUTO_TEST_CASE(parked_legs_that_move_or_end_are_unparked) {
  binder.parking = true;
  table.apply_upsert(peer_session("c", 40000, 40002, 5));
  table.apply_upsert(peer_session("c", 40000, 40004, 6));  // a new port pair for leg 1
  BOOST_TEST(binder.parked.count({at(Family::v4), 40002}) == 0u);
  BOOST_TEST(binder.parked.count({at(Family::v4), 40004}) == 1u);
  BOOST_TEST(table.parked_legs() == 2u);
  Offer u;  // a U with n here: leg 0 gets a pair of this instance's range, with its sockets
  u.call_id = "c";
  u.from_tag = "A;1";
  u.new_port = true;
  const auto p = port_of(table.update(u, t0));
  BOOST_TEST((p >= 30000 && p < 30020));
  BOOST_TEST(binder.parked.count({at(Family::v4), 40000}) == 0u);
  BOOST_TEST(binder.open_ports.count({at(Family::v4), p}) == 1u);
  BOOST_TEST(table.parked_legs() == 1u);
  table.apply_removal(Tombstone{"c", "A;1", 99, "peer:40000", false}, t0);
  BOOST_TEST(binder.parked.empty());
  BOOST_TEST(binder.open_ports.empty());
  BOOST_TEST(table.parked_legs() == 0u);
}

BOOST_AUTO_TEST_CASE(an_adoption_without_descriptors_leaves_the_legs_parked) {
  binder.parking = true;
  binder.descriptors = 0;
  table.apply_upsert(peer_session("c", 40000, 40002, 1));
  BOOST_TEST((table.adopt(at(Family::v4), 40002) == BindResult::no_descriptors));
  BOOST_TEST(binder.parked.size() == 2u);
  BOOST_TEST(table.parked_legs() == 2u);
  binder.descriptors = 10;
  BOOST_TEST((table.adopt(at(Family::v4), 40002) == BindResult::bound));
  BOOST_TEST(binder.parked.empty());
}

BOOST_AUTO_TEST_CASE(versions_order_changes) {
  table.apply_upsert(peer_session("c", 40000, 40002, 5));
  auto older = peer_session("c", 40000, 40004, 4);
  BOOST_TEST(!table.apply_upsert(older).changed);
  BOOST_TEST(table.sessions().begin()->second.session.legs[1].port == 40002);
  BOOST_TEST(table.stats().sync_stale == 1u);
  table.apply_upsert(peer_session("c", 40000, 40004, 6));  // a new port pair for leg 1
  BOOST_TEST(table.sessions().begin()->second.session.legs[1].port == 40004);
  BOOST_TEST(binder.open_ports.count({at(Family::v4), 40002}) == 0u);
  BOOST_TEST(binder.open_ports.count({at(Family::v4), 40004}) == 1u);
}

BOOST_AUTO_TEST_CASE(local_changes_bump_the_version_once_per_flush) {
  table.apply_upsert(peer_session("c", 40000, 40002, 5));
  Offer u;
  u.call_id = "c";
  u.from_tag = "A;1";
  table.update(u, t0);
  table.update(u, t0);
  auto c = table.take_changes();
  BOOST_REQUIRE(c.upserts.size() == 1u);
  BOOST_TEST(c.upserts[0].version == 6u);
  BOOST_TEST(c.upserts[0].changed_by == "me:30000");
  BOOST_TEST(table.take_changes().upserts.empty());
}

BOOST_AUTO_TEST_CASE(deleted_sessions_do_not_come_back) {
  table.apply_upsert(peer_session("c", 40000, 40002, 5));
  BOOST_TEST(table.remove("c", "A", "", false, t0) == 1u);
  auto c = table.take_changes();
  BOOST_REQUIRE(c.removals.size() == 1u);
  BOOST_TEST(c.removals[0].version == 6u);
  BOOST_TEST(binder.open_ports.empty());
  table.apply_upsert(peer_session("c", 40000, 40002, 5));  // a peer's dump from before the delete
  BOOST_TEST(table.sessions().empty());
  table.apply_upsert(peer_session("c", 40000, 40002, 7));  // a real later change: a new dialog
  BOOST_TEST(table.sessions().size() == 1u);
}

BOOST_AUTO_TEST_CASE(removals_from_peers) {
  table.apply_upsert(peer_session("c", 40000, 40002, 5));
  BOOST_TEST(!table.apply_removal(Tombstone{"c", "A;1", 4, "peer:40000", false}, t0));  // older than ours
  BOOST_TEST(table.sessions().size() == 1u);
  BOOST_TEST(table.apply_removal(Tombstone{"c", "A;1", 6, "peer:40000", false}, t0));
  BOOST_TEST(table.sessions().empty());
  BOOST_TEST(binder.open_ports.empty());
  BOOST_TEST(table.take_changes().removals.empty());  // not echoed back
  BOOST_TEST(table.tombstones().count(SessionKey{"c", "A;1"}) == 1u);
}

BOOST_AUTO_TEST_CASE(a_peers_expiry_does_not_kill_a_session_with_media_here) {
  table.apply_upsert(peer_session("c", 40000, 40002, 5));
  std::array<unsigned char, 20> pkt{0x80};
  table.route(at(Family::v4), 40002, ep("192.0.2.10", 4000), pkt.data(), pkt.size(), t0 + 59s);
  table.apply_removal(Tombstone{"c", "A;1", 6, "peer:40000", true}, t0 + 60s);
  BOOST_TEST(table.sessions().size() == 1u);
  auto c = table.take_changes();
  BOOST_REQUIRE(c.upserts.size() == 1u);
  BOOST_TEST(c.upserts[0].version == 7u);  // newer than the peer's tombstone: it comes back there
  // idle here too: the expiry stands
  table.apply_removal(Tombstone{"c", "A;1", 8, "peer:40000", true}, t0 + 59s + 58s);
  BOOST_TEST(table.sessions().empty());
}

BOOST_AUTO_TEST_CASE(activity_from_peers_keeps_a_session_alive) {
  table.apply_upsert(peer_session("c", 40000, 40002, 5));
  table.apply_activity(ActivityEntry{SessionKey{"c", "A;1"}, 0, {Counters{7, 6, 1}, Counters{3, 3, 0}}}, "peer:40000",
                       t0 + 50s);
  const LocalState& s = table.sessions().begin()->second.local;
  BOOST_TEST(s.cluster_counters(0).received == 7u);  // Q on any instance sees the media relayed anywhere
  BOOST_TEST(s.cluster_counters(1).relayed == 3u);
  table.apply_activity(ActivityEntry{SessionKey{"c", "A;1"}, 0, {Counters{9, 8, 1}, Counters{3, 3, 0}}}, "peer:40000",
                       t0 + 50s);
  BOOST_TEST(s.cluster_counters(0).received == 9u);  // a report replaces that peer's last one
  BOOST_TEST(s.peer_counters.size() == 1u);
  BOOST_TEST(table.expire(t0 + 100s).empty());
  BOOST_TEST(table.expire(t0 + 110s).size() == 1u);
}

BOOST_AUTO_TEST_CASE(ports_of_our_range_from_a_peer_are_refused_unless_ours) {
  auto foreign = peer_session("c", 30000, 40002, 1, "peer:40000");
  foreign.legs[1].owner = "peer:40000";
  const auto problems = table.apply_upsert(foreign).problems;
  BOOST_REQUIRE(problems.size() == 1u);
  BOOST_TEST(problems[0].text.find("overlap") != std::string::npos);
  BOOST_TEST(problems[0].cause == "sync-port-in-our-range");
  BOOST_TEST(binder.open_ports.count({at(Family::v4), 30000}) == 0u);
  BOOST_TEST(table.stats().sync_port_conflicts == 1u);
  // after a restart, our own session comes back from a peer: its port is claimed from our pool
  auto mine = peer_session("d", 30002, 40004, 1, "me:30000");
  mine.legs[1].owner = "peer:40000";
  BOOST_TEST(table.apply_upsert(mine).problems.empty());
  BOOST_TEST(binder.open_ports.count({at(Family::v4), 30002}) == 1u);
  BOOST_TEST(table.pool(at(Family::v4)).available() == 9u);
  table.clear(t0);
  BOOST_TEST(table.pool(at(Family::v4)).available() == 10u);
}

BOOST_AUTO_TEST_CASE(a_port_that_cannot_be_bound_is_counted_and_the_rest_applied) {
  binder.busy.insert(40002);
  const auto problems = table.apply_upsert(peer_session("c", 40000, 40002, 1)).problems;
  BOOST_TEST(problems.size() == 1u);
  BOOST_TEST(table.stats().sync_bind_failures == 1u);
  BOOST_TEST(table.sessions().size() == 1u);
  BOOST_TEST(binder.open_ports.count({at(Family::v4), 40000}) == 1u);
  table.clear(t0);
  BOOST_TEST(binder.open_ports.empty());
}

BOOST_AUTO_TEST_CASE(a_peer_cannot_grow_the_table_without_bound) {
  SessionTable small{TableConfig{60s, 60s, LatchPolicy::once, "me:30000", 3}, pools(30000, 30020), binder};
  for (int i = 0; i < 5; ++i)
    small.apply_upsert(peer_session(("f" + std::to_string(i)).c_str(), static_cast<std::uint16_t>(40000 + 4 * i),
                                    static_cast<std::uint16_t>(40002 + 4 * i), 1));
  BOOST_TEST(small.sessions().size() == 3u);
  BOOST_TEST(small.stats().sync_refused_full == 2u);
}

BOOST_AUTO_TEST_CASE(a_peers_sessions_stop_at_the_memory_budget) {
  TableConfig config{60s, 60s, LatchPolicy::once, "me:30000"};
  config.max_bytes = 64 * 1024;
  SessionTable small{config, pools(30000, 30020), binder};
  std::size_t taken = 0;
  for (int i = 0; i < 200; ++i) {  // maximal call-ids and tags
    auto s = peer_session((std::to_string(i) + std::string(max_call_id - 4, 'c')).c_str(), 40000, 40002, 1);
    s.from_tag = std::string(max_tag, 't');
    s.notify_tag = std::string(max_notify, 'n');
    s.legs[0].port = s.legs[1].port = 0;  // no sockets: only memory counts here
    if (small.apply_upsert(s).changed) ++taken;
    BOOST_REQUIRE(small.bytes() <= config.max_bytes);
  }
  BOOST_TEST(taken > 10u);
  BOOST_TEST(taken < 200u);
  BOOST_TEST(small.stats().sync_refused_budget == 200u - taken);
  small.clear(t0);
  BOOST_TEST(small.bytes() == 0u);  // the accounting balances
}

BOOST_AUTO_TEST_CASE(tombstones_stay_within_their_budget_oldest_first) {
  TableConfig config{60s, 60s, LatchPolicy::once, "me:30000"};
  config.max_tombstone_bytes = 32 * 1024;
  SessionTable small{config, pools(30000, 30020), binder};
  for (int i = 0; i < 1000; ++i) {  // removals of sessions never seen, with maximal strings
    const std::string call = std::to_string(i) + std::string(max_call_id - 4, 'c');
    small.apply_removal(Tombstone{call, std::string(max_tag, 't'), 1, "peer:40000", false}, t0);
    BOOST_REQUIRE(small.tombstone_bytes() <= config.max_tombstone_bytes);
  }
  BOOST_TEST(small.tombstones().size() > 5u);
  BOOST_TEST(small.tombstones().count(SessionKey{"999" + std::string(max_call_id - 4, 'c'), std::string(max_tag, 't')}) == 1u);
  BOOST_TEST(small.tombstones().count(SessionKey{"0" + std::string(max_call_id - 4, 'c'), std::string(max_tag, 't')}) == 0u);
}

BOOST_AUTO_TEST_CASE(an_unbound_leg_is_retried_reported_and_bound_once_it_can_be) {
  binder.busy.insert(40002);  // another program holds it
  table.apply_upsert(peer_session("c", 40000, 40002, 1));
  BOOST_TEST(table.unbound_legs() == 1u);
  auto report = table.take_activity(t0 + 5s);
  BOOST_REQUIRE(report.size() == 1u);  // no packets here, but the peers must know
  BOOST_TEST(report[0].unbound == 2);  // leg 1
  BOOST_TEST(report[0].idle == 5u);    // its true idle time: no expiry put off
  BOOST_TEST(table.retry_unbound().empty());  // still taken: nothing said again
  BOOST_TEST(table.stats().sync_bind_failures == 1u);  // nor counted again
  binder.busy.clear();
  const auto bound = table.retry_unbound();
  BOOST_REQUIRE(bound.size() == 1u);
  BOOST_TEST(bound[0].text.find("port 40002 is bound now") != std::string::npos);
  BOOST_TEST(binder.open_ports.count({at(Family::v4), 40002}) == 1u);
  BOOST_TEST(table.unbound_legs() == 0u);
  report = table.take_activity(t0 + 6s);
  BOOST_REQUIRE(report.size() == 1u);  // once more, so that the peers forget it
  BOOST_TEST(report[0].unbound == 0);
  BOOST_TEST(table.take_activity(t0 + 7s).empty());
  // packets relayed here now: reported with idle 0
  std::array<unsigned char, 20> pkt{0x80};
  table.route(at(Family::v4), 40002, ep("192.0.2.10", 4000), pkt.data(), pkt.size(), t0 + 8s);
  BOOST_TEST(table.take_activity(t0 + 9s).at(0).idle == 0u);
}

BOOST_AUTO_TEST_CASE(closed_sockets_make_a_retry_due_and_a_file_limit_ends_it) {
  table.apply_upsert(peer_session("c", 40000, 40002, 1));
  BOOST_TEST(!table.take_freed());
  table.remove("c", "A", "", false, t0);
  BOOST_TEST(table.take_freed());
  BOOST_TEST(!table.take_freed());
  binder.descriptors = 0;
  table.apply_upsert(peer_session("a", 40000, 40002, 1));
  table.apply_upsert(peer_session("b", 40004, 40006, 1));
  BOOST_TEST(table.unbound_legs() == 4u);
  binder.attempts = 0;
  BOOST_TEST(table.retry_unbound().empty());
  BOOST_TEST(binder.attempts == 1u);  // not one try per leg
}

BOOST_AUTO_TEST_CASE(learning_is_published) {
  table.apply_upsert(peer_session("c", 40000, 40002, 5));
  std::array<unsigned char, 20> pkt{0x80};
  auto r = table.route(at(Family::v4), 40000, ep("198.51.100.9", 7000), pkt.data(), pkt.size(), t0);  // S0 not learned yet
  BOOST_TEST(r.learned);
  auto c = table.take_changes();
  BOOST_REQUIRE(c.upserts.size() == 1u);
  BOOST_TEST(c.upserts[0].legs[0].rtp.remote == ep("198.51.100.9", 7000));
  BOOST_TEST(c.upserts[0].legs[0].rtp.learned);
  BOOST_TEST(table.take_activity(t0).size() == 1u);
  BOOST_TEST(table.take_activity(t0).empty());
}

BOOST_AUTO_TEST_CASE(tombstones_carry_the_time_of_their_own_deletion) {
  // D, && D and X are stamped with the time they are given, not with that of
  // whatever call came before (a packet much later, here).
  std::array<unsigned char, 20> pkt{0x80};
  table.apply_upsert(peer_session("c", 40000, 40002, 1));
  table.apply_upsert(peer_session("d", 40004, 40006, 1));
  table.apply_upsert(peer_session("e", 40008, 40010, 1));
  table.route(at(Family::v4), 40002, ep("192.0.2.10", 4000), pkt.data(), pkt.size(), t0 + 500s);
  BOOST_TEST(table.remove("c", "A", "", false, t0 + 10s) == 1u);
  BOOST_TEST(table.destroy(SessionKey{"d", "A;1"}, t0 + 20s));
  BOOST_TEST(!table.destroy(SessionKey{"d", "A;1"}, t0 + 21s));  // gone already
  BOOST_TEST(table.clear(t0 + 30s) == 1u);
  BOOST_TEST((table.tombstones().at(SessionKey{"c", "A;1"}).at == t0 + 10s));
  BOOST_TEST((table.tombstones().at(SessionKey{"d", "A;1"}).at == t0 + 20s));
  BOOST_TEST((table.tombstones().at(SessionKey{"e", "A;1"}).at == t0 + 30s));
  // a tombstone outlives its lifetime from that stamp on
  table.apply_removal(Tombstone{"x", "A;1", 1, "peer:40000", false}, t0 + 10s + tombstone_lifetime + 1s);
  BOOST_TEST(table.tombstones().count(SessionKey{"c", "A;1"}) == 0u);
  BOOST_TEST(table.tombstones().count(SessionKey{"e", "A;1"}) == 1u);
}

BOOST_AUTO_TEST_CASE(changes_and_activity_are_values_that_outlive_the_session) {
  table.apply_upsert(peer_session("c", 40000, 40002, 5));
  std::array<unsigned char, 20> pkt{0x80};
  table.route(at(Family::v4), 40000, ep("198.51.100.9", 7000), pkt.data(), pkt.size(), t0);
  auto changes = table.take_changes();
  auto activity = table.take_activity(t0);
  table.clear(t0);  // the session and its map node are gone
  BOOST_REQUIRE(changes.upserts.size() == 1u);
  BOOST_TEST(changes.upserts[0].call_id == "c");
  BOOST_TEST(changes.upserts[0].legs[0].rtp.remote == ep("198.51.100.9", 7000));
  BOOST_REQUIRE(activity.size() == 1u);
  BOOST_TEST((activity[0].key == SessionKey{"c", "A;1"}));
  BOOST_TEST(activity[0].counters[0].received == 1u);
}

BOOST_AUTO_TEST_CASE(a_latch_is_reported_as_a_value_and_refused_sends_are_counted_by_port) {
  table.apply_upsert(peer_session("c", 40000, 40002, 5));
  std::array<unsigned char, 20> pkt{0x80};
  BOOST_TEST(!table.latch_at(at(Family::v4), 40020).has_value());  // no leg there
  const auto r = table.route(at(Family::v4), 40000, ep("198.51.100.9", 7000), pkt.data(), pkt.size(), t0);
  BOOST_TEST(r.learned);  // leg 0 had not latched yet
  BOOST_TEST(r.forward);
  BOOST_TEST((table.latch_at(at(Family::v4), 40001)->kind == Kind::rtcp));  // the RTCP port names the same leg
  const auto latch = table.latch_at(at(Family::v4), 40000);
  BOOST_REQUIRE(latch.has_value());
  BOOST_TEST((latch->key == SessionKey{"c", "A;1"}));
  BOOST_TEST(latch->side == 0);
  BOOST_TEST((latch->kind == Kind::rtp));
  BOOST_TEST(latch->remote == ep("198.51.100.9", 7000));
  BOOST_TEST(table.stats().bytes_relayed == 20u);
  table.send_failed(at(Family::v4), 40000, pkt.size());  // the socket refused it
  const auto& c = table.sessions().begin()->second.local.legs[0].counters;
  BOOST_TEST(c.relayed == 0u);
  BOOST_TEST(c.dropped == 1u);
  BOOST_TEST(table.stats().packets_dropped == 1u);
  BOOST_TEST(table.stats().bytes_relayed == 0u);
  BOOST_TEST(table.stats().bytes_received == 20u);
  BOOST_TEST(table.stats().dropped[static_cast<std::size_t>(DropReason::send_failed)] == 1u);
  table.send_failed(at(Family::v4), 40020, 20);  // a port whose session went meanwhile: nothing to count
  BOOST_TEST(table.stats().packets_dropped == 1u);
  table.route(at(Family::v4), 40020, ep("198.51.100.9", 7000), pkt.data(), pkt.size(), t0);  // no session there
  BOOST_TEST(table.stats().dropped[static_cast<std::size_t>(DropReason::unknown_port)] == 1u);
  table.route(at(Family::v4), 40000, ep("203.0.113.66", 7000), pkt.data(), pkt.size(), t0);  // not the latched source
  BOOST_TEST(table.stats().dropped[static_cast<std::size_t>(DropReason::source_refused)] == 1u);
  BOOST_TEST(table.stats().packets_dropped == 3u);
}

BOOST_AUTO_TEST_CASE(a_peers_upsert_keeps_what_this_instance_knows_locally) {
  table.apply_upsert(peer_session("c", 40000, 40002, 5));
  std::array<unsigned char, 20> pkt{0x80};
  table.route(at(Family::v4), 40002, ep("192.0.2.10", 4000), pkt.data(), pkt.size(), t0);
  table.apply_activity(ActivityEntry{SessionKey{"c", "A;1"}, 0, {Counters{1, 1, 0}, {}}}, "peer:40000", t0);
  table.apply_upsert(peer_session("c", 40000, 40004, 6));  // leg 1 moved to another port
  const auto& local = table.sessions().begin()->second.local;
  BOOST_TEST(local.legs[0].bound);  // same port: the same sockets
  BOOST_TEST(local.legs[1].bound);  // the new port is bound
  BOOST_TEST(local.legs[1].counters.received == 1u);  // counters stay with the leg
  BOOST_TEST(local.peer_counters.size() == 1u);
  BOOST_TEST(!local.dirty);
  BOOST_TEST(binder.open_ports.count({at(Family::v4), 40002}) == 0u);
}

BOOST_AUTO_TEST_CASE(media_a_peer_relays_keeps_the_latched_source_heard_here) {
  auto s = peer_session("c", 40000, 40002, 5);
  s.legs[1].have_ssrc = true;  // SSRC 0, sequence 0: what pkt below carries
  table.apply_upsert(s);
  std::array<unsigned char, 20> pkt{0x80};
  const ActivityEntry reported{SessionKey{"c", "A;1"}, 0, {Counters{}, Counters{10, 10, 0}}};
  table.apply_activity(reported, "peer:40000", t0 + 10s);  // the caller's media flows through the peer
  auto r = table.route(at(Family::v4), 40002, ep("192.0.2.10", 4002), pkt.data(), pkt.size(), t0 + 11s);
  BOOST_TEST(!r.forward);  // the same SSRC from elsewhere while the caller sends there: refused here too
  table.apply_activity(reported, "peer:40000", t0 + 12s);  // no new packets there: not heard again
  r = table.route(at(Family::v4), 40002, ep("192.0.2.10", 4002), pkt.data(), pkt.size(), t0 + 12s + 500ms);
  BOOST_TEST(r.forward);
  BOOST_TEST(r.learned);
}

BOOST_AUTO_TEST_CASE(random_merges_keep_ports_and_pool_consistent) {
  // Local commands, peers' upserts (some into our range, some conflicting),
  // removals, activity and expiry in random order: bound legs are exactly the
  // open ports, and our pool accounts for every pair of our range in use.
  std::mt19937 rng(99);
  const char* calls[] = {"a", "b", "c", "d", "e"};
  const char* owners[] = {"peer:40000", "me:30000", "other:50000"};
  for (int i = 0; i < 5000; ++i) {
    const auto now = t0 + std::chrono::seconds(i / 50);
    const char* call = calls[rng() % 5];
    switch (rng() % 6) {
      case 0: {
        const char* owner = owners[rng() % 3];
        const std::uint16_t base = owner[0] == 'm' ? 30000 : owner[0] == 'p' ? 40000 : 50000;
        auto s = peer_session(call, static_cast<std::uint16_t>(base + 2 * (rng() % 10)),
                              static_cast<std::uint16_t>(base + 2 * (rng() % 10)), rng() % 20, owner);
        table.apply_upsert(s);
        break;
      }
      case 1:
        table.apply_removal(Tombstone{call, "A;1", rng() % 20, owners[rng() % 3], rng() % 2 == 0}, now);
        break;
      case 2: {
        Offer u;
        u.create = rng() % 2 == 0;
        u.call_id = call;
        u.from_tag = "A;1";
        u.to_tag = "B;1";
        u.new_port = rng() % 4 == 0;
        table.update(u, now);
        break;
      }
      case 3: table.remove(call, "A", "", false, now); break;
      case 4: table.expire(now + std::chrono::seconds(rng() % 120)); break;
      case 5: table.take_changes(); break;
    }
    std::size_t bound = 0, mine = 0;
    for (const auto& [key, e] : table.sessions())
      for (int side = 0; side < 2; ++side) {
        const Leg& leg = e.session.legs[side];
        if (!e.local.legs[side].bound) continue;
        ++bound;
        BOOST_REQUIRE(binder.open_ports.count({leg.slot, leg.port}) == 1u);
        if (table.pool(at(Family::v4)).owns(leg.port)) ++mine;
      }
    BOOST_REQUIRE(binder.open_ports.size() == bound);
    std::size_t bytes = 0;
    for (const auto& [key, e] : table.sessions()) bytes += e.local.bytes;
    BOOST_REQUIRE(table.bytes() == bytes);
    BOOST_REQUIRE(table.pool(at(Family::v4)).available() + mine == table.pool(at(Family::v4)).capacity());
  }
}

BOOST_AUTO_TEST_SUITE_END()
