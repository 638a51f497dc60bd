#include "core/session.h"

#include <boost/test/unit_test.hpp>

using namespace anyrtpproxy;
namespace ip = boost::asio::ip;

namespace {
udp::endpoint ep(const char* a, unsigned short p) { return udp::endpoint(ip::make_address(a), p); }
const Clock::time_point t0 = Clock::time_point() + std::chrono::hours(1);
PacketInfo rtp(std::uint32_t ssrc = 1, std::uint16_t seq = 100) { return PacketInfo{true, ssrc, seq}; }
// judge_source with the latched source never heard, unless said.
Verdict judge(const Leg& leg, Kind kind, const udp::endpoint& from, const PacketInfo& info, LatchPolicy policy,
              Clock::time_point now, Clock::time_point heard = {}) {
  return judge_source(leg, kind, from, info, policy, now, heard);
}
Leg signalled(const char* a, unsigned short p) {
  Leg leg;
  leg.prefill(ep(a, p), t0);
  return leg;
}
}  // namespace

BOOST_AUTO_TEST_SUITE(session)

BOOST_AUTO_TEST_CASE(inspect_reads_rtp_and_rtcp_headers) {
  const unsigned char pkt[12] = {0x80, 0x00, 0x12, 0x34, 0, 0, 0, 0, 0xde, 0xad, 0xbe, 0xef};
  auto i = inspect(Kind::rtp, pkt, sizeof pkt);
  BOOST_TEST(i.valid);
  BOOST_TEST(i.seq == 0x1234);
  BOOST_TEST(i.ssrc == 0xdeadbeefu);
  BOOST_TEST(!inspect(Kind::rtp, pkt, 11).valid);
  BOOST_TEST(inspect(Kind::rtcp, pkt, 8).valid);
  const unsigned char v1[12] = {0x40};
  BOOST_TEST(!inspect(Kind::rtp, v1, sizeof v1).valid);
}

BOOST_AUTO_TEST_CASE(prefill_sets_rtcp_to_port_plus_one) {
  Leg leg = signalled("192.0.2.1", 4000);
  BOOST_TEST(leg.rtp.remote == ep("192.0.2.1", 4000));
  BOOST_TEST(leg.rtcp.remote == ep("192.0.2.1", 4001));
  BOOST_TEST(!leg.rtp.learned);
  BOOST_TEST((leg.relatch_until == Clock::time_point{}));  // a first offer opens no window
  leg.prefill(ep("192.0.2.2", 5000), t0);
  BOOST_TEST((leg.relatch_until == t0 + relatch_window));
}

BOOST_AUTO_TEST_CASE(default_policy_latches_once) {
  Leg leg = signalled("192.0.2.1", 4000);
  const auto nat = ep("198.51.100.7", 61000);
  BOOST_TEST((judge(leg, Kind::rtp, ep("192.0.2.1", 4000), rtp(), LatchPolicy::once, t0) == Verdict::forward));
  BOOST_TEST((judge(leg, Kind::rtp, nat, rtp(), LatchPolicy::once, t0) == Verdict::learn));
  BOOST_TEST((judge(leg, Kind::rtp, nat, PacketInfo{}, LatchPolicy::once, t0) == Verdict::drop));
  leg.rtp.remote = nat;
  leg.rtp.learned = true;
  leg.have_ssrc = true;
  leg.ssrc = 1;
  leg.seq = 100;
  BOOST_TEST((judge(leg, Kind::rtp, ep("203.0.113.9", 1), rtp(99, 5000), LatchPolicy::once, t0) == Verdict::drop));
  // same SSRC, nearby sequence: a NAT rebinding may move the leg
  BOOST_TEST((judge(leg, Kind::rtp, ep("198.51.100.7", 61002), rtp(1, 101), LatchPolicy::once, t0) == Verdict::learn));
  BOOST_TEST((judge(leg, Kind::rtp, ep("198.51.100.7", 61002), rtp(1, 2000), LatchPolicy::once, t0) == Verdict::drop));
  // a re-offer opens a window
  leg.relatch_until = t0 + relatch_window;
  BOOST_TEST((judge(leg, Kind::rtp, ep("203.0.113.9", 1), rtp(99), LatchPolicy::once, t0 + std::chrono::seconds(9)) == Verdict::learn));
  BOOST_TEST((judge(leg, Kind::rtp, ep("203.0.113.9", 1), rtp(99), LatchPolicy::once, t0 + std::chrono::seconds(10)) == Verdict::drop));
}

BOOST_AUTO_TEST_CASE(the_signalled_address_takes_its_leg_from_a_third_party_that_sent_first) {
  Leg leg = signalled("192.0.2.1", 4000);
  const auto third = ep("203.0.113.9", 1);
  BOOST_TEST((judge(leg, Kind::rtp, third, rtp(99), LatchPolicy::once, t0) == Verdict::learn));  // first: latches
  leg.rtp.remote = third;
  leg.rtp.learned = true;
  BOOST_TEST((judge(leg, Kind::rtp, third, rtp(99), LatchPolicy::once, t0) == Verdict::forward));
  // the caller's first packet from the signalled address takes the leg over
  BOOST_TEST((judge(leg, Kind::rtp, ep("192.0.2.1", 4000), rtp(1), LatchPolicy::once, t0) == Verdict::learn));
  leg.rtp.remote = ep("192.0.2.1", 4000);
  BOOST_TEST((judge(leg, Kind::rtp, third, rtp(99), LatchPolicy::once, t0) == Verdict::drop));  // and keeps it
  // a third party cannot use the same door: only the signalled address has it
  BOOST_TEST((judge(leg, Kind::rtp, ep("192.0.2.1", 4002), rtp(99), LatchPolicy::once, t0) == Verdict::drop));
}

BOOST_AUTO_TEST_CASE(a_same_ssrc_relatch_waits_until_the_latched_source_is_silent) {
  Leg leg = signalled("192.0.2.1", 4000);
  leg.rtp.remote = ep("198.51.100.7", 61000);
  leg.rtp.learned = true;
  leg.have_ssrc = true;
  leg.ssrc = 1;
  leg.seq = 100;
  const auto moved = ep("198.51.100.7", 61002);
  using std::chrono::milliseconds;
  // still sending (heard 1.9 s ago): the same SSRC from elsewhere is an attack, not a rebinding
  BOOST_TEST((judge(leg, Kind::rtp, moved, rtp(1, 101), LatchPolicy::once, t0 + milliseconds(1900), t0) ==
              Verdict::drop));
  BOOST_TEST((judge(leg, Kind::rtp, moved, rtp(1, 101), LatchPolicy::once, t0 + relatch_silence, t0) ==
              Verdict::learn));
  // the silence counts from the last packet heard, not from the latch
  BOOST_TEST((judge(leg, Kind::rtp, moved, rtp(1, 101), LatchPolicy::once, t0 + std::chrono::seconds(60),
                    t0 + std::chrono::seconds(59)) == Verdict::drop));
}

BOOST_AUTO_TEST_CASE(rtcp_never_latches_on_its_own) {
  Leg leg = signalled("192.0.2.1", 4000);
  // before RTP latched: the signalled host, any port
  BOOST_TEST((judge(leg, Kind::rtcp, ep("192.0.2.1", 4001), rtp(), LatchPolicy::once, t0) == Verdict::forward));
  BOOST_TEST((judge(leg, Kind::rtcp, ep("192.0.2.1", 5555), rtp(), LatchPolicy::once, t0) == Verdict::learn));
  BOOST_TEST((judge(leg, Kind::rtcp, ep("203.0.113.9", 4001), rtp(), LatchPolicy::once, t0) == Verdict::drop));
  // RTP latched to a NAT address (the table moves the RTCP guess along): RTCP follows that host
  leg.rtp.remote = ep("198.51.100.7", 61000);
  leg.rtp.learned = true;
  leg.rtcp.remote = ep("198.51.100.7", 61001);
  BOOST_TEST((judge(leg, Kind::rtcp, ep("198.51.100.7", 61001), rtp(), LatchPolicy::once, t0) == Verdict::forward));
  BOOST_TEST((judge(leg, Kind::rtcp, ep("198.51.100.7", 7), rtp(), LatchPolicy::once, t0) == Verdict::learn));
  BOOST_TEST((judge(leg, Kind::rtcp, ep("192.0.2.1", 4001), rtp(), LatchPolicy::once, t0) == Verdict::drop));
  BOOST_TEST((judge(leg, Kind::rtcp, ep("203.0.113.9", 61001), rtp(), LatchPolicy::once, t0) == Verdict::drop));
  // a leg with no RTP address at all accepts no RTCP
  BOOST_TEST((judge(Leg{}, Kind::rtcp, ep("203.0.113.9", 1), rtp(), LatchPolicy::once, t0) == Verdict::drop));
}

BOOST_AUTO_TEST_CASE(nat_policy_always_learns_valid_packets) {
  Leg leg = signalled("192.0.2.1", 4000);
  leg.rtp.learned = true;
  BOOST_TEST((judge(leg, Kind::rtp, ep("203.0.113.9", 1), rtp(), LatchPolicy::always, t0) == Verdict::learn));
  BOOST_TEST((judge(leg, Kind::rtp, ep("203.0.113.9", 1), PacketInfo{}, LatchPolicy::always, t0) == Verdict::drop));
}

BOOST_AUTO_TEST_CASE(no_nat_once_accepts_only_the_signalled_source) {
  Leg leg = signalled("192.0.2.1", 4000);
  BOOST_TEST((judge(leg, Kind::rtp, ep("192.0.2.1", 4002), rtp(), LatchPolicy::never, t0) == Verdict::drop));
  BOOST_TEST((judge(leg, Kind::rtcp, ep("192.0.2.1", 4001), rtp(), LatchPolicy::never, t0) == Verdict::forward));
  Leg unsignalled;
  BOOST_TEST((judge(unsignalled, Kind::rtp, ep("192.0.2.1", 4002), rtp(), LatchPolicy::never, t0) == Verdict::learn));
}

BOOST_AUTO_TEST_CASE(asymmetric_accepts_the_host_on_any_port_and_never_learns) {
  Leg leg = signalled("192.0.2.1", 4000);
  leg.asymmetric = true;
  BOOST_TEST((judge(leg, Kind::rtp, ep("192.0.2.1", 9999), rtp(), LatchPolicy::always, t0) == Verdict::forward));
  BOOST_TEST((judge(leg, Kind::rtp, ep("192.0.2.2", 4000), rtp(), LatchPolicy::always, t0) == Verdict::drop));
}

BOOST_AUTO_TEST_CASE(tag_prefix_rule) {
  BOOST_TEST(tag_matches("A;1", "A"));
  BOOST_TEST(tag_matches("A;1", "A;1"));
  BOOST_TEST(!tag_matches("AB;1", "A"));
  BOOST_TEST(!tag_matches("A;1", "A;2"));
  BOOST_TEST(!tag_matches("A", "A;1"));
}

BOOST_AUTO_TEST_SUITE_END()
