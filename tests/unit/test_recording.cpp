// Unit tests: recording file names and formats (recording.h), and the
// table's R/N flags with the recordings it tells the owner to close.
#include "fakes.h"
#include "core/protocol.h"
#include "core/recording.h"
#include "core/session_table.h"

#include <boost/test/unit_test.hpp>

#include <cstring>

using namespace anyrtpproxy;
using namespace anyrtpproxy::test;
using namespace std::chrono_literals;

namespace {

std::uint16_t be16(const unsigned char* p) { return static_cast<std::uint16_t>(p[0] << 8 | p[1]); }

// The Internet checksum over a buffer, 0 when it verifies.
std::uint16_t verify(const std::vector<unsigned char>& b) {
  std::uint32_t acc = 0;
  for (std::size_t i = 0; i + 1 < b.size(); i += 2) acc += static_cast<std::uint32_t>(b[i] << 8 | b[i + 1]);
  if (b.size() % 2) acc += static_cast<std::uint32_t>(b.back() << 8);
  while (acc >> 16) acc = (acc & 0xffff) + (acc >> 16);
  return static_cast<std::uint16_t>(~acc & 0xffff);
}

}  // namespace

BOOST_AUTO_TEST_SUITE(recording)

BOOST_AUTO_TEST_CASE(names_are_rtpproxys_and_cannot_leave_the_directory) {
  BOOST_TEST(recording_base("a84b4c76@pc33", "1928301774;1") == "a84b4c76@pc33=1928301774");
  BOOST_TEST(recording_base("../../etc/passwd", "x") == "_._.._etc_passwd=x");  // no separator, no leading dot
  BOOST_TEST(recording_base("c\nid", "t\x1b;2") == "c_id=t_");
  BOOST_TEST(recording_base(std::string(500, 'c'), "t").size() == 200u);
  BOOST_TEST(adhoc_suffix(1, Kind::rtp) == ".o.rtp");
  BOOST_TEST(adhoc_suffix(0, Kind::rtcp) == ".a.rtcp");
}

BOOST_AUTO_TEST_CASE(a_pcap_record_has_valid_ip_and_udp_headers) {
  const unsigned char payload[] = {0x80, 0x08, 0x00, 0x01, 1, 2, 3};
  const auto when = std::chrono::system_clock::time_point(std::chrono::seconds(1700000000) + 250ms);
  unsigned char out[max_record_header];
  const auto n = pcap_record_header(out, ep("192.0.2.1", 4000), ep("198.51.100.2", 30000), payload, sizeof payload,
                                    sizeof payload, when);
  BOOST_TEST(n == 16u + 20u + 8u);
  std::uint32_t sec, usec, incl, orig;
  std::memcpy(&sec, out, 4);
  std::memcpy(&usec, out + 4, 4);
  std::memcpy(&incl, out + 8, 4);
  std::memcpy(&orig, out + 12, 4);
  BOOST_TEST(sec == 1700000000u);
  BOOST_TEST(usec == 250000u);
  BOOST_TEST(incl == 20u + 8u + sizeof payload);
  BOOST_TEST(orig == incl);
  const unsigned char* ip = out + 16;
  BOOST_TEST(ip[0] == 0x45);
  BOOST_TEST(be16(ip + 2) == 20u + 8u + sizeof payload);
  BOOST_TEST(verify(std::vector<unsigned char>(ip, ip + 20)) == 0u);  // the IPv4 header checksum holds
  BOOST_TEST(be16(ip + 20) == 4000u);
  BOOST_TEST(be16(ip + 22) == 30000u);
  // UDP: the pseudo-header, the header and the payload sum to zero.
  std::vector<unsigned char> pseudo(ip + 12, ip + 20);
  pseudo.insert(pseudo.end(), {0, 17, 0, static_cast<unsigned char>(8 + sizeof payload)});
  pseudo.insert(pseudo.end(), ip + 20, ip + 28);
  pseudo.insert(pseudo.end(), payload, payload + sizeof payload);
  BOOST_TEST(verify(pseudo) == 0u);
  // A cut packet says how long it was, and has no UDP checksum.
  const auto m = pcap_record_header(out, ep("2001:db8::1", 4000), ep("2001:db8::2", 30000), payload, 1000, 7, when);
  BOOST_TEST(m == 16u + 40u + 8u);
  std::memcpy(&incl, out + 8, 4);
  std::memcpy(&orig, out + 12, 4);
  BOOST_TEST(incl == 40u + 8u + 7u);
  BOOST_TEST(orig == 40u + 8u + 1000u);
  BOOST_TEST(out[16] >> 4 == 6);
  BOOST_TEST(be16(out + 16 + 40 + 6) == 0u);
  const auto h = pcap_file_header();
  std::uint32_t magic, link;
  std::memcpy(&magic, h.data(), 4);
  std::memcpy(&link, h.data() + 20, 4);
  BOOST_TEST(magic == 0xa1b2c3d4u);
  BOOST_TEST(link == 101u);
}

BOOST_AUTO_TEST_CASE(an_adhoc_header_is_rtpproxys_30_bytes) {
  unsigned char out[adhoc_header_size];
  const auto when = std::chrono::system_clock::time_point(std::chrono::seconds(1700000000) + 500ms);
  BOOST_TEST(adhoc_record_header(out, ep("192.0.2.1", 4000), 172, when) == 30u);
  BOOST_TEST(be16(out + 2) == 4000u);
  BOOST_TEST((out[4] == 192 && out[5] == 0 && out[6] == 2 && out[7] == 1));
  double t;
  std::uint16_t len;
  std::memcpy(&t, out + 20, 8);
  std::memcpy(&len, out + 28, 2);
  BOOST_TEST(t == 1700000000.5);
  BOOST_TEST(len == 172u);
}

// A table with one offered session, call-id "c", from-tag "A;1".
struct OneCall {
  FakeBinder binder;
  SessionTable table{TableConfig{60s, 60s, LatchPolicy::once, "me:30000"}, pools(30000, 30020), binder};
  OneCall() {
    Offer u;
    u.call_id = "c";
    u.from_tag = "A;1";
    u.remote = ep("192.0.2.10", 4000);
    table.update(u, t0);
  }
};

BOOST_FIXTURE_TEST_CASE(r_and_n_flag_legs_and_finished_recordings_are_handed_back, OneCall) {
  BOOST_TEST(table.record("c", "A", "", true, false) == 1u);  // the caller's party: leg 1
  const auto& legs = table.sessions().begin()->second.session.legs;
  BOOST_TEST((legs[1].record && !legs[0].record));
  BOOST_TEST(table.record("c", "B", "A", true, false) == 1u);  // the other party, by its to-tag
  BOOST_TEST(legs[0].record);
  BOOST_TEST(table.record("other", "A", "", true, false) == 0u);
  BOOST_TEST(table.take_changes().upserts.size() == 1u);  // the flags go to the peers
  const auto port = legs[0].port;  // the U allocated leg 0
  table.set_recording(at(Family::v4), port, 7);
  BOOST_TEST(table.record("c", "A", "", false, false) == 1u);
  BOOST_TEST(table.take_closed_recordings().empty());  // the callee's direction is still recorded
  BOOST_TEST(table.record("c", "A", "", false, true) == 1u);  // Na: both
  BOOST_TEST(table.take_closed_recordings() == std::vector<std::uint32_t>{7});
  table.record("c", "A", "", true, true);
  table.set_recording(at(Family::v4), port, 8);
  BOOST_TEST(table.remove("c", "A", "", false, t0) == 1u);  // the session ends: its recording closes
  BOOST_TEST(table.take_closed_recordings() == std::vector<std::uint32_t>{8});
}

BOOST_AUTO_TEST_CASE(copy_targets_are_numeric_udp_endpoints) {
  BOOST_TEST(parse_copy_target("udp:192.0.2.1:5000").value() == ep("192.0.2.1", 5000));
  BOOST_TEST(parse_copy_target("udp:[2001:db8::1]:5000").value() == ep("2001:db8::1", 5000));
  for (const char* bad : {"file-name", "udp:collector.example:5000", "udp:192.0.2.1", "udp:192.0.2.1:0",
                          "udp:192.0.2.1:65535", "udp:0.0.0.0:5000", "udp:224.0.0.1:5000", "udp:[::1:5000",
                          "tcp:192.0.2.1:5000", "udp:192.0.2.1:50x0"})
    BOOST_TEST(!parse_copy_target(bad).has_value(), bad);
}

BOOST_FIXTURE_TEST_CASE(c_sets_the_copy_of_the_from_tag_partys_leg_and_n_clears_it, OneCall) {
  BOOST_TEST(!table.copy("x", "A", "", ep("192.0.2.9", 7000)).has_value());
  const auto where = table.copy("c", "A;1", "", ep("192.0.2.9", 7000));  // the caller: leg 1, no port yet
  BOOST_REQUIRE(where.has_value());
  BOOST_TEST(where->second == 0u);
  const auto& legs = table.sessions().begin()->second.session.legs;
  BOOST_TEST((legs[1].copy && legs[1].copy_to == ep("192.0.2.9", 7000) && !legs[0].copy));
  BOOST_TEST(table.record("c", "A", "", false, false) == 1u);  // N
  BOOST_TEST(!legs[1].copy);
}

BOOST_AUTO_TEST_SUITE_END()
