#include "fakes.h"
#include "core/sync_codec.h"

#include <boost/test/unit_test.hpp>

#include <cstdlib>
#include <fstream>
#include <random>
#include <sstream>

using namespace anyrtpproxy;
using namespace std::chrono_literals;
namespace ip = boost::asio::ip;

namespace {
const Clock::time_point now = Clock::time_point() + std::chrono::hours(10);
udp::endpoint ep(const char* a, unsigned short p) { return udp::endpoint(ip::make_address(a), p); }

Session sample() {
  Session s;
  s.call_id = "a84b4c76e66710@pc33.example.com";
  s.from_tag = "1928301774;1";
  s.to_tag = "a6c85cf;1";
  s.family = Family::v4;
  s.legs[0].port = 35002;
  s.legs[0].owner = "relay1:35000";
  s.legs[0].rtp = Stream{ep("198.51.100.20", 61002), true, true};
  s.legs[0].rtcp = Stream{ep("198.51.100.20", 61003), true, false};
  s.legs[0].have_ssrc = true;
  s.legs[0].ssrc = 0xdeadbeef;
  s.legs[0].seq = 4711;
  s.legs[0].relatch_until = now + 4s;
  s.legs[1].port = 40000;
  s.legs[1].owner = "relay2:40000";
  s.legs[1].rtp = Stream{ep("192.0.2.10", 49170), true, false};
  s.legs[1].asymmetric = true;
  s.legs[1].codecs = "0,8,101";
  s.legs[1].signalled = ep("192.0.2.10", 49170);
  s.legs[1].has_signalled = true;
  s.created = now - 12s;
  s.last_active = now - 3s;
  s.strong = true;
  s.notify_target = "tcp:127.0.0.1:9999";
  s.notify_tag = "dialog 42";
  s.origin = "relay1:35000";
  s.version = 7;
  s.changed_by = "relay2:40000";
  return s;
}

std::vector<std::variant<SyncMessage, SyncError>> read_all(const std::string& stream, std::size_t chunk = 1 << 20) {
  FrameReader r;
  std::vector<std::variant<SyncMessage, SyncError>> out;
  for (std::size_t i = 0; i < stream.size(); i += chunk) {
    r.feed(std::string_view(stream).substr(i, chunk));
    while (auto m = r.next(now)) {
      out.push_back(std::move(*m));
      if (std::holds_alternative<SyncError>(out.back())) return out;
    }
  }
  return out;
}

std::string error_of(const std::string& stream) {
  auto all = read_all(stream);
  BOOST_REQUIRE(!all.empty());
  BOOST_REQUIRE(std::holds_alternative<SyncError>(all.back()));
  return std::get<SyncError>(all.back()).what;
}

// What a version-1 instance sent: no signalled addresses.
Session sample_v1() {
  Session s = sample();
  s.legs[1].signalled = udp::endpoint();
  s.legs[1].has_signalled = false;
  return s;
}

std::string frame(const std::string& kind, const std::string& payload, unsigned version = sync_wire_version) {
  return "F " + std::to_string(version) + " " + kind + " " + std::to_string(payload.size()) + " x\n" + payload + "\n";
}

void check_same(const Session& a, const Session& b) {
  BOOST_TEST(a.call_id == b.call_id);
  BOOST_TEST(a.from_tag == b.from_tag);
  BOOST_TEST(a.to_tag == b.to_tag);
  BOOST_TEST((a.family == b.family));
  for (int i = 0; i < 2; ++i) {
    BOOST_TEST(a.legs[i].port == b.legs[i].port);
    BOOST_TEST(a.legs[i].slot == b.legs[i].slot);
    BOOST_TEST(a.legs[i].record == b.legs[i].record);
    BOOST_TEST(a.legs[i].copy == b.legs[i].copy);
    BOOST_TEST(a.legs[i].copy_to == b.legs[i].copy_to);
    BOOST_TEST(a.legs[i].play.name == b.legs[i].play.name);
    BOOST_TEST(a.legs[i].play.pt == b.legs[i].play.pt);
    BOOST_TEST(a.legs[i].play.count == b.legs[i].play.count);
    BOOST_TEST((a.legs[i].play.start == b.legs[i].play.start));
    BOOST_TEST(a.legs[i].play.ssrc == b.legs[i].play.ssrc);
    BOOST_TEST(a.legs[i].play.seq == b.legs[i].play.seq);
    BOOST_TEST(a.legs[i].play.owner == b.legs[i].play.owner);
    BOOST_TEST(a.legs[i].owner == b.legs[i].owner);
    BOOST_TEST(a.legs[i].rtp.remote == b.legs[i].rtp.remote);
    BOOST_TEST(a.legs[i].rtp.learned == b.legs[i].rtp.learned);
    BOOST_TEST(a.legs[i].rtcp.remote == b.legs[i].rtcp.remote);
    BOOST_TEST(a.legs[i].asymmetric == b.legs[i].asymmetric);
    BOOST_TEST(a.legs[i].codecs == b.legs[i].codecs);
    BOOST_TEST(a.legs[i].ssrc == b.legs[i].ssrc);
    BOOST_TEST(a.legs[i].seq == b.legs[i].seq);
    BOOST_TEST((a.legs[i].relatch_until == b.legs[i].relatch_until));
    BOOST_TEST(a.legs[i].signalled == b.legs[i].signalled);
    BOOST_TEST(a.legs[i].has_signalled == b.legs[i].has_signalled);
  }
  BOOST_TEST((a.created == b.created));
  BOOST_TEST((a.last_active == b.last_active));
  BOOST_TEST(a.notify_target == b.notify_target);
  BOOST_TEST(a.notify_tag == b.notify_tag);
  BOOST_TEST(a.origin == b.origin);
  BOOST_TEST(a.version == b.version);
  BOOST_TEST(a.changed_by == b.changed_by);
}

std::string golden_path(unsigned version) {
  const char* dir = std::getenv("ANYRTPPROXY_GOLDEN");
  return std::string(dir ? dir : "tests/golden") + "/sync-v" + std::to_string(version) + ".frames";
}

std::string file_text(const std::string& path) {
  std::ifstream in(path);
  BOOST_REQUIRE_MESSAGE(in, "cannot open " << path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::string golden_stream(unsigned version = sync_wire_version) {
  Session v6 = sample();
  v6.call_id = "v6-call";
  v6.family = Family::v6;
  v6.legs[0].rtp = Stream{ep("2001:db8::20", 5004), true, false};
  v6.legs[0].rtcp = Stream{ep("2001:db8::20", 5005), true, false};
  v6.legs[1] = Leg{};
  v6.legs[1].slot = slot_of(Family::v6, Side::internal, 1);  // the second internal IPv6 address (-i A1,A2)
  v6.legs[0].slot = slot_of(Family::v6, Side::external);  // bridge mode: the callee's leg on the external address
  v6.legs[0].record = true;                               // R: what the callee sends is recorded
  v6.legs[0].copy = true;                                 // C: and copied to a collector
  v6.legs[0].copy_to = ep("2001:db8::99", 9000);
  v6.record_name = "conference-7";  // C into a file (version 4)
  v6.legs[1].play = Playback{"moh", 8, -1, now - 1500ms, 0x1234abcd, 160000, 4711, "relay1:35000"};  // P-1
  v6.legs[0].relatch_until = {};
  const SyncHello hello{"relay1:35000", 35000, 39999, 2,
                        {{slot_of(Family::v4, Side::internal), ip::make_address("192.0.2.1")},
                         {slot_of(Family::v6, Side::external, 1), ip::make_address("2001:db8::1")}}};  // version 6
  return encode(hello, version) + encode(sample(), now, version) + encode(v6, now, version) +
         encode(Tombstone{"gone-call", "A;1", 3, "relay3:45000", true}, version) +
         encode(SyncActivity{"relay1:35000",
                             {ActivityEntry{SessionKey{"a84b4c76e66710@pc33.example.com", "1928301774;1"}, 0,
                                            {Counters{500, 499, 1}, Counters{480, 480, 0}}},
                              ActivityEntry{SessionKey{"v6-call", "1928301774;1"}, 2, {}, 2}},
                             Capacity{1500, 42, 300, false, "draining"}},  // version 5; its state: 7
                version);
}
}  // namespace

BOOST_AUTO_TEST_SUITE(sync_codec)

BOOST_AUTO_TEST_CASE(session_round_trip) {
  auto all = read_all(encode(sample(), now));
  BOOST_REQUIRE(all.size() == 1u);
  const auto& msg = std::get<SyncMessage>(all[0]);
  check_same(std::get<Session>(msg), sample());
}

BOOST_AUTO_TEST_CASE(other_messages_round_trip_in_one_stream_fed_byte_by_byte) {
  const std::string stream = "# listing header\nS call-id=x ...\n" + encode(SyncHello{"me:1", 10, 20, 5, {}}) +
                             encode(Tombstone{"c", "t;1", 9, "other:2", true}) +
                             encode(SyncActivity{"other:2", {ActivityEntry{SessionKey{"c", "t;1"}, 4, {Counters{10, 9, 1}, Counters{20, 20, 0}}}}, {}});
  auto all = read_all(stream, 1);
  BOOST_REQUIRE(all.size() == 3u);
  const auto& h = std::get<SyncHello>(std::get<SyncMessage>(all[0]));
  BOOST_TEST(h.instance == "me:1");
  BOOST_TEST(h.port_max == 20);
  BOOST_TEST(h.sessions == 5u);
  const auto& t = std::get<Tombstone>(std::get<SyncMessage>(all[1]));
  BOOST_TEST(t.version == 9u);
  BOOST_TEST(t.expired);
  const auto& a = std::get<SyncActivity>(std::get<SyncMessage>(all[2]));
  BOOST_TEST(a.instance == "other:2");
  BOOST_TEST(a.entries.at(0).key.from_tag == "t;1");
  BOOST_TEST(a.entries.at(0).idle == 4u);
  BOOST_TEST(a.entries.at(0).counters[0].received == 10u);
  BOOST_TEST(a.entries.at(0).counters[1].relayed == 20u);
}

BOOST_AUTO_TEST_CASE(golden_frames_of_wire_version_7) {
  const std::string path = golden_path(7);
  if (std::getenv("ANYRTPPROXY_WRITE_GOLDEN")) std::ofstream(path) << golden_stream();
  const std::string text = file_text(path);
  // the committed bytes are what this version writes, whatever Boost version builds us
  BOOST_TEST(text == golden_stream());
  auto all = read_all(text);
  BOOST_REQUIRE(all.size() == 5u);
  check_same(std::get<Session>(std::get<SyncMessage>(all[1])), sample());
  const auto& v6 = std::get<Session>(std::get<SyncMessage>(all[2]));
  BOOST_TEST(v6.legs[0].rtp.remote == ep("2001:db8::20", 5004));
  BOOST_TEST(v6.legs[0].slot == slot_of(Family::v6, Side::external));
  BOOST_TEST(v6.legs[1].slot == slot_of(Family::v6, Side::internal, 1));
  BOOST_TEST(v6.legs[0].record);
  BOOST_TEST(!v6.legs[1].record);
  BOOST_TEST((v6.legs[0].copy && v6.legs[0].copy_to == ep("2001:db8::99", 9000)));
  BOOST_TEST((v6.legs[1].play.name == "moh" && v6.legs[1].play.count == -1 && v6.legs[1].play.seq == 4711));
  BOOST_TEST((v6.legs[1].play.start == now - 1500ms));  // ages travel as ages
  BOOST_TEST(std::get<SyncActivity>(std::get<SyncMessage>(all[4])).entries.at(1).unbound == 2);
  BOOST_TEST(v6.record_name == "conference-7");
  BOOST_TEST(std::get<Session>(std::get<SyncMessage>(all[1])).record_name.empty());
  const auto& cap = std::get<SyncActivity>(std::get<SyncMessage>(all[4])).capacity;
  BOOST_TEST((cap && *cap == Capacity{1500, 42, 300, false, "draining"}));
  const auto& hello = std::get<SyncHello>(std::get<SyncMessage>(all[0]));
  BOOST_TEST(hello.oldest == sync_oldest_wire_version);
  BOOST_REQUIRE(hello.addresses.size() == 2u);
  BOOST_TEST((hello.addresses[1].first == slot_of(Family::v6, Side::external, 1)));
  BOOST_TEST(hello.addresses[1].second == ip::make_address("2001:db8::1"));
}

BOOST_AUTO_TEST_CASE(a_version_6_peer_is_written_what_version_6_wrote_and_it_round_trips) {
  // tests/golden/sync-v6.frames is what the previous release wrote; never rewritten
  const std::string text = file_text(golden_path(6));
  BOOST_TEST(text == golden_stream(6));  // written for a version-6 peer: the same bytes
  auto all = read_all(text);
  BOOST_REQUIRE(all.size() == 5u);
  check_same(std::get<Session>(std::get<SyncMessage>(all[1])), sample());
  BOOST_TEST(std::get<Session>(std::get<SyncMessage>(all[2])).legs[1].play.name == "moh");
  const auto& cap = std::get<SyncActivity>(std::get<SyncMessage>(all[4])).capacity;
  BOOST_TEST((cap && *cap == Capacity{1500, 42, 300, false, ""}));  // the state is what version 6 leaves out
  BOOST_TEST(std::get<SyncHello>(std::get<SyncMessage>(all[0])).oldest == 0u);
}

BOOST_AUTO_TEST_CASE(a_peers_hello_line_says_its_version_and_too_old_or_none_is_refused) {
  std::string why;
  BOOST_TEST(hello_line_version("P 7 relay1:35000", why).value_or(0) == 7u);
  BOOST_TEST(hello_line_version("P 6 relay1:35000", why).value_or(0) == 6u);
  BOOST_TEST(hello_line_version("P 9 relay1:35000", why).value_or(0) == 9u);  // a newer one: written in ours
  BOOST_TEST(!hello_line_version("P 5 relay1:35000", why));
  BOOST_TEST(why.find("speaks sync wire version 5") != std::string::npos);
  BOOST_TEST(why.find("UPGRADING") != std::string::npos);
  BOOST_TEST(!hello_line_version("P relay1:35000", why));
  BOOST_TEST(why.find("names no sync wire version") != std::string::npos);
  BOOST_TEST(!hello_line_version("P 0 x", why));
  BOOST_TEST(!hello_line_version("P 99999999999 x", why));
}

BOOST_AUTO_TEST_CASE(a_bad_serving_state_or_oldest_version_is_refused) {
  const std::string ok = encode(SyncActivity{"x:1", {}, Capacity{1, 2, 3, true, "healthy"}});
  BOOST_TEST(std::holds_alternative<SyncMessage>(read_all(ok).at(0)));
  std::string bad = ok;
  const auto at = bad.rfind("7 healthy");
  BOOST_REQUIRE(at != std::string::npos);
  bad.replace(at, 9, "7 healthx");
  BOOST_TEST(error_of(bad).find("serving state") != std::string::npos);
}

BOOST_AUTO_TEST_CASE(a_hello_naming_an_impossible_oldest_version_is_refused) {
  const std::string ok = encode(SyncHello{"me:1", 10, 20, 5, {}});
  BOOST_TEST(std::get<SyncHello>(std::get<SyncMessage>(read_all(ok).at(0))).oldest == sync_oldest_wire_version);
  const auto nl = ok.find('\n');
  std::string payload = ok.substr(nl + 1, ok.size() - nl - 2);
  const std::string tail = " " + std::to_string(sync_oldest_wire_version) + "\n";
  BOOST_REQUIRE(payload.size() > tail.size() && payload.compare(payload.size() - tail.size(), tail.size(), tail) == 0);
  for (const char* bad : {" 0\n", " 8\n"}) {  // none, or newer than the frame itself
    const std::string p = payload.substr(0, payload.size() - tail.size()) + bad;
    BOOST_TEST(error_of(frame("hello", p)).find("an oldest wire version of") != std::string::npos, bad);
  }
}

BOOST_AUTO_TEST_CASE(frames_of_wire_version_5_are_still_read) {
  // what the previous release wrote (tests/golden/sync-v5.frames, never rewritten): no addresses in the hello then
  auto all = read_all(file_text(golden_path(5)));
  BOOST_REQUIRE(all.size() == 5u);
  BOOST_TEST(std::get<SyncHello>(std::get<SyncMessage>(all[0])).addresses.empty());
  check_same(std::get<Session>(std::get<SyncMessage>(all[1])), sample());
  const auto& cap = std::get<SyncActivity>(std::get<SyncMessage>(all[4])).capacity;
  BOOST_TEST((cap && *cap == Capacity{1500, 42, 300, false, ""}));
}

// A hello's payload with its tail `from` made `to`, framed again (its length follows).
std::string hello_with(const std::string& from, const std::string& to) {
  const std::string encoded = encode(SyncHello{"me:1", 10, 20, 5, {{1, ip::make_address("::1")}}}, 6);
  const auto nl = encoded.find('\n');
  std::string payload = encoded.substr(nl + 1, encoded.size() - nl - 2);
  const auto at = payload.rfind(from + "\n");  // the archive ends its text with a newline
  BOOST_REQUIRE(at != std::string::npos && at + from.size() + 1 == payload.size());
  return frame("hello", payload.replace(at, from.size(), to), 6);
}

BOOST_AUTO_TEST_CASE(a_hello_with_a_bad_relay_address_is_refused) {
  BOOST_TEST(read_all(hello_with(" 5 1 1 3 ::1", " 5 1 1 3 ::1")).size() == 1u);  // as written: read
  BOOST_TEST(std::holds_alternative<SyncMessage>(read_all(hello_with(" 3 ::1", " 3 ::1")).at(0)));
  BOOST_TEST(error_of(hello_with(" 3 ::1", " 3 ::g")).find("bad address") != std::string::npos);
  BOOST_TEST(error_of(hello_with(" 1 3 ::1", " 40 3 ::1")).find("slot 40") != std::string::npos);
  BOOST_TEST(error_of(hello_with(" 1 1 3 ::1", " 99 1 3 ::1")).find("99 relay addresses") != std::string::npos);
  BOOST_TEST(error_of(hello_with(" 3 ::1", " 70 " + std::string(70, '1'))).find("address of 70 bytes") != std::string::npos);
}

BOOST_AUTO_TEST_CASE(frames_of_wire_version_4_are_still_read) {
  // what the previous release wrote (tests/golden/sync-v4.frames, never rewritten): no capacity then
  auto all = read_all(file_text(golden_path(4)));
  BOOST_REQUIRE(all.size() == 5u);
  check_same(std::get<Session>(std::get<SyncMessage>(all[1])), sample());
  BOOST_TEST(std::get<Session>(std::get<SyncMessage>(all[2])).record_name == "conference-7");
  const auto& a = std::get<SyncActivity>(std::get<SyncMessage>(all[4]));
  BOOST_TEST(a.entries.at(1).unbound == 2);
  BOOST_TEST(!a.capacity.has_value());
}

BOOST_AUTO_TEST_CASE(a_bad_capacity_flag_is_refused) {
  std::string text = encode(SyncActivity{"me:1", {}, Capacity{1, 2, 3, true, ""}});
  const auto at = text.rfind(" 1 2 3 1");  // has, headroom, relayed, parked, healthy
  BOOST_REQUIRE(at != std::string::npos);
  text.replace(at + 7, 1, "7");
  BOOST_TEST(error_of(text).find("health flag") != std::string::npos);
}

BOOST_AUTO_TEST_CASE(frames_of_wire_version_3_are_still_read) {
  // what the previous release wrote (tests/golden/sync-v3.frames, never rewritten): no recording names then
  auto all = read_all(file_text(golden_path(3)));
  BOOST_REQUIRE(all.size() == 5u);
  check_same(std::get<Session>(std::get<SyncMessage>(all[1])), sample());
  const auto& v6 = std::get<Session>(std::get<SyncMessage>(all[2]));
  BOOST_TEST(v6.legs[0].slot == slot_of(Family::v6, Side::external));
  BOOST_TEST((v6.legs[0].record && v6.legs[0].copy && v6.legs[1].play.name == "moh"));
  BOOST_TEST(v6.record_name.empty());
}

BOOST_AUTO_TEST_CASE(a_recording_name_that_leaves_the_directory_is_refused) {
  Session s = sample();
  s.record_name = "x";
  std::string text = encode(s, now);
  const auto at = text.find(" 1 x ");  // the name, as the archive writes a one-byte string
  BOOST_REQUIRE(at != std::string::npos);
  text.replace(at, 5, " 1 / ");
  BOOST_TEST(error_of(text).find("recording name") != std::string::npos);
}

BOOST_AUTO_TEST_CASE(frames_of_wire_version_2_are_still_read) {
  // what the previous release wrote (tests/golden/sync-v2.frames, never rewritten):
  // no slots then, so both legs are on the session family's (only) address
  auto all = read_all(file_text(golden_path(2)));
  BOOST_REQUIRE(all.size() == 5u);
  check_same(std::get<Session>(std::get<SyncMessage>(all[1])), sample());
  const auto& v6 = std::get<Session>(std::get<SyncMessage>(all[2]));
  BOOST_TEST(v6.legs[0].rtp.remote == ep("2001:db8::20", 5004));
  BOOST_TEST(v6.legs[0].slot == slot_of(Family::v6, Side::internal));
  BOOST_TEST(v6.legs[1].slot == slot_of(Family::v6, Side::internal));
  BOOST_TEST(std::get<SyncActivity>(std::get<SyncMessage>(all[4])).entries.at(1).unbound == 2);
}

BOOST_AUTO_TEST_CASE(frames_of_wire_version_1_are_still_read) {
  // what the previous release wrote (tests/golden/sync-v1.frames, never rewritten)
  auto all = read_all(file_text(golden_path(1)));
  BOOST_REQUIRE(all.size() == 5u);
  BOOST_TEST(std::get<SyncHello>(std::get<SyncMessage>(all[0])).instance == "relay1:35000");
  check_same(std::get<Session>(std::get<SyncMessage>(all[1])), sample_v1());
  BOOST_TEST(std::get<Session>(std::get<SyncMessage>(all[2])).legs[0].rtp.remote == ep("2001:db8::20", 5004));
  BOOST_TEST(std::get<Tombstone>(std::get<SyncMessage>(all[3])).call_id == "gone-call");
  BOOST_TEST(std::get<SyncActivity>(std::get<SyncMessage>(all[4])).entries.size() == 2u);
  BOOST_TEST(std::get<SyncActivity>(std::get<SyncMessage>(all[4])).entries.at(1).unbound == 0);
}

BOOST_AUTO_TEST_CASE(a_newer_version_is_refused_not_misread) {
  const std::string payload = encode(SyncHello{"x", 1, 2, 0, {}});
  const std::string body = payload.substr(payload.find('\n') + 1);
  auto e = error_of(frame("hello", body.substr(0, body.size() - 1), sync_wire_version + 1));
  BOOST_TEST(e.find("version " + std::to_string(sync_wire_version + 1)) != std::string::npos);
  BOOST_TEST(e.find("newer") != std::string::npos);
}

BOOST_AUTO_TEST_CASE(hostile_frames_are_errors_without_big_allocations) {
  // a string that claims 4 GB: refused before anything is allocated
  BOOST_TEST(error_of(frame("remove", "4000000000 abc 3 t;1 1 1 x 0")).find("4000000000") != std::string::npos);
  // Boost's own archive header, as a crafted client would send it
  BOOST_TEST(!error_of(frame("upsert", "22 serialization::archive 17 0 0 4294967295")).empty());
  BOOST_TEST(!error_of(frame("upsert", "")).empty());
  BOOST_TEST(!error_of(frame("upsert", "2 c")).empty());  // truncated
  BOOST_TEST(!error_of(frame("activity", "99999999")).empty());  // too many entries
  BOOST_TEST(error_of(frame("bogus", "1")).find("unknown frame kind") != std::string::npos);
  BOOST_TEST(error_of("F 1 upsert 999999999 x\n").find("999999999") != std::string::npos);
  BOOST_TEST(error_of("F 1 upsert 3 x\nabcdef\n").find("length") != std::string::npos);
  BOOST_TEST(error_of("F one upsert 3 x\nabc\n").find("malformed") != std::string::npos);
  BOOST_TEST(error_of("GET / HTTP/1.0\n").find("neither") != std::string::npos);
  BOOST_TEST(error_of(std::string(sync_max_line + 10, 'x')).find("longer") != std::string::npos);
}

BOOST_AUTO_TEST_CASE(random_garbage_never_crashes) {
  std::mt19937 rng(7);
  const std::string good = encode(sample(), now);
  for (int i = 0; i < 2000; ++i) {
    std::string s = good;
    const int flips = 1 + static_cast<int>(rng() % 8);
    for (int k = 0; k < flips; ++k) s[rng() % s.size()] = static_cast<char>(rng() % 256);
    auto all = read_all(s, 1 + rng() % 64);
    for (const auto& m : all)
      if (auto* msg = std::get_if<SyncMessage>(&m))
        if (auto* sess = std::get_if<Session>(msg)) BOOST_TEST(sess->call_id.size() <= sync_max_string);
  }
}

BOOST_AUTO_TEST_CASE(feed_is_bounded) {
  FrameReader r;
  std::string junk(64 * 1024, 'x');
  bool ok = true;
  for (int i = 0; i < 10 && ok; ++i) ok = r.feed(junk);
  BOOST_TEST(!ok);
  BOOST_TEST(!r.error().empty());
}

BOOST_AUTO_TEST_CASE(listing_line_is_one_readable_line) {
  Session s = sample();
  s.call_id = "evil\x1b[2Jcall";
  LocalState local;
  local.legs[0].bound = true;
  const auto line = listing_line(s, local, now, 57s);
  BOOST_TEST(line.find('\x1b') == std::string::npos);
  BOOST_TEST(line.back() == '\n');
  BOOST_TEST(std::count(line.begin(), line.end(), '\n') == 1);
  BOOST_TEST(line.find("state=answered") != std::string::npos);
  BOOST_TEST(line.find("callee=35002 ") != std::string::npos);
  BOOST_TEST(line.find("caller=40000(unbound)") != std::string::npos);
  BOOST_TEST(line.find("callee-remote=198.51.100.20:61002(learned)") != std::string::npos);
  BOOST_TEST(line.find("age=12s idle=3s ttl=57s") != std::string::npos);
  BOOST_TEST(line.find("origin=relay1:35000") != std::string::npos);
}

BOOST_AUTO_TEST_SUITE_END()
