#include "fakes.h"
#include "session_table.h"

#include <boost/test/unit_test.hpp>

using namespace anyrtpproxy;
using namespace anyrtpproxy::test;
using namespace std::chrono_literals;
namespace ip = boost::asio::ip;

namespace {
const Clock::time_point t0 = Clock::time_point() + std::chrono::hours(1);
udp::endpoint ep(const char* a, unsigned short p) { return udp::endpoint(ip::make_address(a), p); }

UpdateLookup ul(bool create, const char* call, const char* addr, std::uint16_t port, const char* from,
                const char* to = "") {
  UpdateLookup u;
  u.create = create;
  u.call_id = call;
  u.address = ip::make_address(addr);
  u.port = port;
  u.from_tag = from;
  u.to_tag = to;
  return u;
}

std::uint16_t port_of(std::variant<UlResult, Error> r) {
  BOOST_REQUIRE(std::holds_alternative<UlResult>(r));
  return std::get<UlResult>(r).port;
}

struct Fixture {
  FakeBinder binder;
  SessionTable table{TableConfig{60s, 30s, LatchPolicy::once}, pools(30000, 30019), binder};
  std::array<unsigned char, 172> packet{};
  Fixture() {
    packet[0] = 0x80;
    packet[11] = 7;  // SSRC 7
  }
  Route send(std::uint16_t port, const udp::endpoint& from, Clock::time_point now = t0) {
    return table.route(Family::v4, port, from, packet.data(), packet.size(), now);
  }
};
}  // namespace

BOOST_FIXTURE_TEST_SUITE(session_table, Fixture)

BOOST_AUTO_TEST_CASE(dialog_walkthrough_of_section_2_2) {
  const auto p = port_of(table.update(ul(true, "c", "192.0.2.10", 4000, "A;1"), t0));
  BOOST_TEST(p != 0);
  BOOST_TEST(binder.open_ports.count({Family::v4, p}) == 1u);
  BOOST_TEST(port_of(table.update(ul(true, "c", "192.0.2.10", 4000, "A;1"), t0)) == p);  // idempotent
  const auto q = port_of(table.update(ul(false, "c", "192.0.2.20", 5000, "A;1", "B;1"), t0));
  BOOST_TEST(q != p);
  BOOST_TEST(port_of(table.update(ul(true, "c", "192.0.2.20", 5000, "B;1", "A;1"), t0)) == q);   // re-INVITE from B
  BOOST_TEST(port_of(table.update(ul(false, "c", "192.0.2.10", 4000, "B;1", "A;1"), t0)) == p);  // its answer
  BOOST_TEST(port_of(table.update(ul(false, "other", "192.0.2.10", 4000, "A;1", "B;1"), t0)) == 0);
  const Session& s = table.sessions().begin()->second;
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
  BOOST_TEST(table.remove(Delete{false, "c", "B", "A"}) == 2u);  // BYE from the callee: matched by to-tag
  BOOST_TEST(table.sessions().size() == 1u);
  BOOST_TEST(table.remove(Delete{false, "c", "A", "B"}) == 0u);
  BOOST_TEST(binder.open_ports.size() == 1u);
}

BOOST_AUTO_TEST_CASE(d_with_media_index_removes_only_that_line) {
  table.update(ul(true, "c", "192.0.2.10", 4000, "A;1"), t0);
  table.update(ul(true, "c", "192.0.2.10", 4002, "A;2"), t0);
  BOOST_TEST(table.remove(Delete{false, "c", "A;2", ""}) == 1u);
  BOOST_TEST(table.sessions().size() == 1u);
  BOOST_TEST(table.sessions().begin()->first.from_tag == "A;1");
}

BOOST_AUTO_TEST_CASE(weak_sessions_survive_a_plain_delete) {
  auto weak = ul(true, "c", "192.0.2.10", 4000, "A;1");
  weak.mods.weak = true;
  table.update(weak, t0);
  BOOST_TEST(table.remove(Delete{false, "c", "A", ""}) == 1u);
  BOOST_TEST(table.sessions().size() == 1u);
  BOOST_TEST(table.remove(Delete{true, "c", "B", "A"}) == 1u);  // Dw from the other side clears leg 0's weak flag
  BOOST_TEST(table.sessions().empty());
}

BOOST_AUTO_TEST_CASE(setup_timeout_then_normal_timeout) {
  table.update(ul(true, "c", "192.0.2.10", 4000, "A;1"), t0);
  BOOST_TEST(table.ttl_left(table.sessions().begin()->second, t0 + 10s).count() == 20);
  BOOST_TEST(table.expire(t0 + 29s).empty());
  table.update(ul(false, "c", "192.0.2.20", 5000, "A;1", "B;1"), t0 + 29s);  // answered: TTL reset, now -T
  BOOST_TEST(table.expire(t0 + 29s + 59s).empty());
  const auto gone = table.expire(t0 + 29s + 60s);
  BOOST_TEST(gone.size() == 1u);
  BOOST_TEST(binder.open_ports.empty());
  BOOST_TEST(table.stats().timeouts == 1u);
  BOOST_TEST(table.pool(Family::v4).available() == 10u);
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
  const auto& c = table.sessions().begin()->second.legs[1].counters;
  BOOST_TEST(c.received == 2u);
  BOOST_TEST(c.relayed == 1u);
  BOOST_TEST(c.dropped == 1u);
  BOOST_TEST(table.stats().packets_relayed == 4u);  // to A, to B, to A again, RTCP
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
  BOOST_TEST(std::holds_alternative<Error>(r));
  BOOST_TEST(static_cast<int>(std::get<Error>(r)) == 72);
  BOOST_TEST(table.sessions().size() == 1u);  // the failed U left nothing behind
}

BOOST_AUTO_TEST_CASE(new_port_modifier_swaps_the_pair) {
  table.update(ul(true, "c", "192.0.2.10", 4000, "A;1"), t0);
  const auto q = port_of(table.update(ul(false, "c", "192.0.2.20", 5000, "A;1", "B;1"), t0));
  auto again = ul(false, "c", "192.0.2.20", 5000, "A;1", "B;1");
  again.mods.new_port = true;
  const auto q2 = port_of(table.update(again, t0));
  BOOST_TEST(q2 != q);
  BOOST_TEST(binder.open_ports.count({Family::v4, q}) == 0u);
  BOOST_TEST(binder.open_ports.count({Family::v4, q2}) == 1u);
  BOOST_TEST(!send(q, ep("192.0.2.10", 4000)).forward);
}

BOOST_AUTO_TEST_CASE(ports_are_per_family) {
  auto v6 = ul(true, "c6", "2001:db8::1", 4000, "A;1");
  v6.mods.ipv6 = true;
  const auto p6 = port_of(table.update(v6, t0));
  BOOST_TEST(binder.open_ports.count({Family::v6, p6}) == 1u);
  BOOST_TEST((table.sessions().begin()->second.family == Family::v6));
  BOOST_TEST(table.pool(Family::v4).available() == 10u);
}

BOOST_AUTO_TEST_CASE(clear_frees_everything) {
  table.update(ul(true, "c", "192.0.2.10", 4000, "A;1"), t0);
  table.update(ul(false, "c", "192.0.2.20", 5000, "A;1", "B;1"), t0);
  BOOST_TEST(table.clear() == 1u);
  BOOST_TEST(binder.open_ports.empty());
  BOOST_TEST(table.pool(Family::v4).available() == 10u);
}

BOOST_AUTO_TEST_SUITE_END()
