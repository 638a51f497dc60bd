#include "core/controller.h"
#include "fakes.h"

#include <boost/test/unit_test.hpp>

#include <cstdlib>
#include <fstream>
#include <map>
#include <random>
#include <set>

using namespace anyrtpproxy;
using namespace anyrtpproxy::test;
using namespace std::chrono_literals;
namespace ip = boost::asio::ip;

namespace {


std::string golden_path() {
  const char* dir = std::getenv("ANYRTPPROXY_GOLDEN");
  return std::string(dir ? dir : "tests/golden") + "/commands.txt";
}

// Matches a reply against an expectation with {NAME} port placeholders: the
// text around them must be equal, each placeholder stands for a number.
bool matches(const std::string& expected, const std::string& got, std::map<std::string, std::string>& names) {
  std::size_t e = 0, g = 0;
  while (e < expected.size()) {
    const auto close = expected[e] == '{' ? expected.find('}', e) : std::string::npos;
    if (close == std::string::npos) {  // a literal character
      if (g >= got.size() || got[g] != expected[e]) return false;
      ++e, ++g;
      continue;
    }
    const std::string name = expected.substr(e + 1, close - e - 1);
    const std::size_t digits = got.find_first_not_of("0123456789", g);
    const std::string value = got.substr(g, digits == std::string::npos ? std::string::npos : digits - g);
    if (value.empty()) return false;
    auto known = names.find(name);
    if (known != names.end() && known->second != value) return false;
    if (known == names.end()) {
      for (const auto& [n, v] : names)
        if (v == value) return false;  // a different name must be a different port
      names[name] = value;
    }
    e = close + 1;
    g += value.size();
  }
  return g == got.size();
}

struct Fixture {
  FakeBinder binder;
  SessionTable table{TableConfig{60s, 60s, LatchPolicy::once}, pools(23820, 23824), binder};
  ControllerConfig config() {
    ControllerConfig c;
    c.local[0] = ip::make_address("0.0.0.0");
    return c;
  }
};

}  // namespace

BOOST_FIXTURE_TEST_SUITE(controller, Fixture)

BOOST_AUTO_TEST_CASE(golden_transcript_of_section_9) {
  Controller controller(table, config());
  std::ifstream in(golden_path());
  BOOST_REQUIRE_MESSAGE(in, "cannot open " << golden_path());
  std::map<std::string, std::string> names;
  std::string line, request, expected, got;
  int checked = 0;
  auto finish = [&] {
    if (request.empty()) return;
    const bool ok = matches(expected, got, names);
    BOOST_TEST(ok, "'" << request << "' answered '" << got << "', expected '" << expected << "'");
    ++checked;
    request.clear();
  };
  while (std::getline(in, line)) {
    if (line.empty() || line[0] == '#') continue;
    if (line == "~") {
      finish();
      names.clear();
      continue;
    }
    if (line[0] == '>') {
      finish();
      request = line;
      expected.clear();
      Effects effects;
      got = controller.handle_text(line.size() > 2 ? line.substr(2) : "", t0, effects);
      BOOST_TEST(got.back() == '\n');
      got.pop_back();
      continue;
    }
    BOOST_REQUIRE(line.rfind("= ", 0) == 0);
    if (!expected.empty()) expected += "\n";
    expected += line.substr(2);
  }
  finish();
  BOOST_TEST(checked > 80);
}

BOOST_AUTO_TEST_CASE(retransmitted_cookie_is_answered_from_the_cache) {
  Controller controller(table, config());
  Effects e;
  const auto first = controller.handle_datagram("k2 U c1 192.0.2.10 4000 A;1", "127.0.0.1:5060", t0, e);
  const auto again = controller.handle_datagram("k2 U c1 192.0.2.10 4000 A;1", "127.0.0.1:5060", t0 + 1s, e);
  BOOST_TEST(first == again);
  BOOST_TEST(table.stats().created == 1u);
  BOOST_TEST(controller.stats().duplicates == 1u);
  BOOST_TEST(controller.handle_datagram("k3 D c1 A", "127.0.0.1:5060", t0, e) == "k3 0\n");
  BOOST_TEST(controller.handle_datagram("k3 D c1 A", "127.0.0.1:5060", t0 + 34s, e) == "k3 0\n");  // not E50
  BOOST_TEST(controller.handle_datagram("k3 D c1 A", "127.0.0.1:5061", t0 + 34s, e) == "k3 E50\n");  // other client
  BOOST_TEST(controller.handle_datagram("k4", "x", t0, e) == "k4 E5\n");
  BOOST_TEST(controller.handle_datagram(" \n", "x", t0, e) == "E5\n");
}

BOOST_AUTO_TEST_CASE(reply_cache_is_bounded_in_bytes) {
  // 200,000 distinct cookies with long replies (I): the cache stays within its
  // byte bound, and a retransmission of a recent command still hits it.
  auto c = config();
  c.reply_cache_bytes = 256 * 1024;
  Controller controller(table, c);
  Effects e;
  std::size_t most = 0;
  for (int i = 0; i < 200000; ++i) {
    controller.handle_datagram("cookie-" + std::to_string(i) + " I", "192.0.2.1:5060", t0, e);
    most = std::max(most, controller.cache_bytes());
  }
  BOOST_TEST(most <= c.reply_cache_bytes);
  BOOST_TEST(controller.cache_entries() > 300u);  // and it still holds many (I replies are ~600 bytes)
  const auto dups = controller.stats().duplicates;
  controller.handle_datagram("cookie-199999 I", "192.0.2.1:5060", t0, e);
  BOOST_TEST(controller.stats().duplicates == dups + 1);
}

BOOST_AUTO_TEST_CASE(reply_cache_is_bounded_and_ages) {
  auto c = config();
  c.reply_cache_entries = 10;
  Controller controller(table, c);
  Effects e;
  for (int i = 0; i < 1000; ++i) controller.handle_datagram("k" + std::to_string(i) + " V", "s", t0, e);
  BOOST_TEST(controller.handle_datagram("k999 V", "s", t0, e) == "k999 20040107\n");
  BOOST_TEST(controller.stats().duplicates == 1u);
  controller.handle_datagram("k0 D c A", "s", t0, e);  // long forgotten: executed again
  BOOST_TEST(controller.stats().duplicates == 1u);
}

BOOST_AUTO_TEST_CASE(a_failing_offer_is_one_warning_with_its_code_and_cause) {
  Controller controller(table, config());
  binder.descriptors = 0;  // the file limit is reached
  Effects e;
  BOOST_TEST(controller.handle_text("U c1 192.0.2.1 4000 A;1", t0, e) == "E72\n");
  BOOST_REQUIRE(e.events.size() == 1u);
  BOOST_TEST((e.events[0].level == Level::warning));
  BOOST_TEST(e.events[0].text == "U call-id=c1 tag=A;1: E72: the open-file limit is reached (raise it: ulimit -n, LimitNOFILE)");
  BOOST_TEST(binder.attempts == 1u);
  Effects again;
  controller.handle_text("U c2 192.0.2.1 4000 A;1", t0, again);
  BOOST_REQUIRE(again.events.size() == 1u);
  BOOST_TEST(again.events[0].cause == e.events[0].cause);  // one cause: rate-limited together
  BOOST_TEST(again.events[0].text.find("call-id=c2") != std::string::npos);
}

BOOST_AUTO_TEST_CASE(every_failed_command_is_one_event_naming_its_code_reason_and_call) {
  Controller controller(table, config());
  Effects e;
  BOOST_TEST(controller.handle_text("D nosuch A;1 B;1", t0, e) == "E50\n");
  BOOST_REQUIRE(e.events.size() == 1u);
  BOOST_TEST(e.events[0].text == "D failed: E50 (no such session) call-id=nosuch tag=A;1: D nosuch A;1 B;1");
  BOOST_TEST(e.events[0].cause == "D E50");  // rate-limited per letter and code
  Effects bad;
  BOOST_TEST(controller.handle_text("  Zap\x1b[2J\n", t0, bad) == "E0\n");
  BOOST_REQUIRE(bad.events.size() == 1u);
  BOOST_TEST((bad.events[0].level == Level::warning));
  BOOST_TEST(bad.events[0].text == "command failed: E0 (unknown command): Zap?[2J");  // no control character
  Effects long_one;
  controller.handle_datagram("k " + std::string(max_command_bytes, 'U'), "s", t0, long_one);
  BOOST_REQUIRE(long_one.events.size() == 1u);
  BOOST_TEST(long_one.events[0].text.find("E5") != std::string::npos);
  Effects ok;
  controller.handle_text("V", t0, ok);
  BOOST_TEST(ok.events.empty());
  const auto& results = controller.stats().results;
  BOOST_TEST(results.at({'D', 50}) == 1u);
  BOOST_TEST(results.at({'?', 0}) == 1u);
  BOOST_TEST(results.at({'?', 5}) == 1u);
  BOOST_TEST(results.at({'V', CommandStats::ok_result}) == 1u);
}

BOOST_AUTO_TEST_CASE(bridge_modifiers_choose_the_side_and_replies_name_its_address) {
  ControllerConfig c = config();
  c.local[slot_of(Family::v4, Side::internal)] = ip::make_address("10.0.0.1");
  c.local[slot_of(Family::v4, Side::external)] = ip::make_address("192.0.2.1");
  c.advertised[slot_of(Family::v4, Side::external)] = ip::make_address("198.51.100.1");
  Controller controller(table, c);
  Effects e;
  // From inside to outside: the offer's port is on the external side, named by its advertised address.
  BOOST_TEST(controller.handle_text("UIE b 10.0.0.5 4000 A;1", t0, e).find(" 198.51.100.1\n") != std::string::npos);
  BOOST_TEST(controller.handle_text("LEI b 192.0.2.20 5000 A;1 B;1", t0, e).find(" 10.0.0.1\n") != std::string::npos);
  const auto& legs = table.sessions().begin()->second.session.legs;
  BOOST_TEST(legs[0].slot == slot_of(Family::v4, Side::external));
  BOOST_TEST(legs[1].slot == slot_of(Family::v4, Side::internal));
  BOOST_TEST(controller.handle_text("UEEE b 10.0.0.5 4000 A;1", t0, e) == "E11\n");  // at most two
  BOOST_TEST(controller.handle_text("UIE6 b ::1 4000 A;1", t0, e) == "E12\n");      // IPv6 has no sides here
  // L<addr> names a slot by its address; an address that is not ours is E31.
  BOOST_TEST(controller.handle_text("Ul192.0.2.1 c 10.0.0.5 4000 A;1", t0, e).find(" 198.51.100.1\n") != std::string::npos);
  BOOST_TEST(controller.handle_text("Ul192.0.2.9 d 10.0.0.5 4000 A;1", t0, e) == "E31\n");
  // Without two sides, E and I are refused by their own codes.
  Controller plain(table, config());
  BOOST_TEST(plain.handle_text("UIE p 10.0.0.5 4000 A;1", t0, e) == "E12\n");
  BOOST_TEST(plain.handle_text("UEI p 10.0.0.5 4000 A;1", t0, e) == "E11\n");
}

BOOST_AUTO_TEST_CASE(p_chooses_the_first_codec_with_a_prompt_and_plays_towards_the_from_tag_party) {
  struct Library : PromptLibrary {
    std::vector<std::uint8_t> asked;
    std::optional<std::uint8_t> find(const std::string& name, const std::vector<std::uint8_t>& pts) override {
      asked = pts;
      for (auto pt : pts)
        if (name == "moh" && (pt == 8 || pt == 18)) return pt;
      return std::nullopt;
    }
  } library;
  ControllerConfig c = config();
  c.prompts = &library;
  c.instance = "me:1";
  Controller controller(table, c);
  Effects e;
  controller.handle_text("Uc0,18,8 p 192.0.2.10 4000 A;1", t0, e);  // the caller offers 0, 18, 8
  BOOST_TEST(controller.handle_text("P-1 p moh session A;1", t0, e) == "0\n");
  BOOST_TEST((library.asked == std::vector<std::uint8_t>{0, 18, 8}));
  const auto& play = table.sessions().begin()->second.session.legs[1].play;  // towards the caller
  BOOST_TEST(play.name == "moh");
  BOOST_TEST(play.pt == 18);  // the first with a file
  BOOST_TEST(play.count == -1);
  BOOST_TEST(play.owner == "me:1");
  BOOST_TEST(table.playing().size() == 1u);
  BOOST_TEST(controller.handle_text("P1 p bad/../name 8 A;1", t0, e) == "E60\n");
  BOOST_TEST(controller.handle_text("P1 p other 8 A;1", t0, e) == "E60\n");
  BOOST_TEST(controller.handle_text("P0 p moh 8 A;1", t0, e) == "0\n");  // P0 only stops
  BOOST_TEST(table.playing().empty());
  BOOST_TEST(controller.handle_text("P1 p moh 8,x,300 A;1", t0, e) == "0\n");  // what is not a payload type is skipped
  BOOST_TEST(controller.handle_text("S p A;1", t0, e) == "0\n");
  BOOST_TEST(table.playing().empty());
  BOOST_TEST(controller.handle_text("S nosuch A;1", t0, e) == "E50\n");
}

BOOST_AUTO_TEST_CASE(c_records_into_a_named_file_or_copies_to_a_udp_target) {
  ControllerConfig c = config();
  c.recording = true;
  Controller controller(table, c);
  Effects e;
  controller.handle_text("U r 192.0.2.10 4000 A;1", t0, e);
  controller.handle_text("L r 192.0.2.20 5000 A;1 B;1", t0, e);
  const auto& s = table.sessions().begin()->second.session;
  BOOST_TEST(controller.handle_text("C r conf-7_a=b A;1 B;1", t0, e) == "0\n");
  BOOST_TEST(s.record_name == "conf-7_a=b");
  BOOST_TEST(s.legs[1].record);  // what the caller (A) sends
  BOOST_TEST(!s.legs[0].record);
  BOOST_TEST(!s.legs[1].copy);  // a file is not a copy
  const std::string port = controller.handle_text("Cp r udp:192.0.2.99:9000 B;1 A;1", t0, e);
  BOOST_TEST(port == std::to_string(s.legs[0].port) + "\n");  // the port the copies leave from
  BOOST_TEST((s.legs[0].copy && s.legs[0].copy_to == udp::endpoint(ip::make_address("192.0.2.99"), 9000)));
  // A name that would leave --record-dir, or is no name at all, is E65; the session keeps its file.
  for (const char* bad : {"../etc/x", "a/b", ".hidden", "udp:nohost", "udp:192.0.2.1:0", "tcp:1.2.3.4:5", "x\x01y"})
    BOOST_TEST(controller.handle_text(std::string("C r ") + bad + " A;1 B;1", t0, e) == "E65\n", bad);
  BOOST_TEST(controller.handle_text("C r " + std::string(max_record_name + 1, 'n') + " A;1", t0, e) == "E65\n");
  BOOST_TEST(s.record_name == "conf-7_a=b");
  BOOST_TEST(controller.handle_text("C nosuch file A;1", t0, e) == "E50\n");
  // N stops it, and a later R records under rtpproxy's own name again.
  BOOST_TEST(controller.handle_text("Na r A;1", t0, e) == "0\n");
  BOOST_TEST((!s.legs[0].record && !s.legs[1].record && !s.legs[0].copy && s.record_name.empty()));
  // Without --record-dir a file target fails as rtpproxy's does.
  Controller plain(table, config());
  BOOST_TEST(plain.handle_text("C r file A;1", t0, e) == "E65\n");
}

BOOST_AUTO_TEST_CASE(info_counts_local_and_synced_sessions_apart) {
  Controller controller(table, config());
  Effects e;
  controller.handle_text("U c1 192.0.2.1 4000 A;1", t0, e);
  Session peer;
  peer.call_id = "c2";
  peer.from_tag = "A;1";
  peer.origin = "other:40000";
  peer.version = 1;
  peer.changed_by = peer.origin;
  peer.legs[0].port = 23822;
  peer.legs[0].owner = peer.origin;
  table.apply_upsert(peer);
  const auto info = controller.handle_text("I", t0, e);
  for (const char* line : {"sessions created: 2\n", "active sessions: 2\n", "sessions created here: 1\n",
                           "sessions synced from peers: 1\n", "active local sessions: 1\n", "active synced sessions: 1\n"})
    BOOST_TEST(info.find(line) != std::string::npos, line);
}

BOOST_AUTO_TEST_CASE(sessions_keep_the_bounds_peers_are_held_to) {
  Controller controller(table, config());
  Effects e;
  const std::string long_id(max_call_id + 1, 'c');
  BOOST_TEST(controller.handle_text("U " + long_id + " 192.0.2.1 4000 A;1", t0, e) == "E5\n");
  BOOST_TEST(controller.handle_text("U c 192.0.2.1 4000 " + std::string(max_tag + 1, 't'), t0, e) == "E5\n");
  BOOST_TEST(table.sessions().empty());
  BOOST_TEST(controller.handle_text("U " + std::string(max_call_id, 'c') + " 192.0.2.1 4000 A;1", t0, e) != "E5\n");
}

BOOST_AUTO_TEST_CASE(long_cookies_are_answered_but_not_cached) {
  Controller controller(table, config());
  Effects e;
  const std::string cookie(200, 'k');
  BOOST_TEST(controller.handle_datagram(cookie + " V", "s", t0, e) == cookie + " 20040107\n");
  BOOST_TEST(controller.handle_datagram(cookie + " V", "s", t0, e) == cookie + " 20040107\n");
  BOOST_TEST(controller.stats().duplicates == 0u);
  BOOST_TEST(controller.stats().received == 2u);
}

BOOST_AUTO_TEST_CASE(ipv6_replies_carry_the_address_and_family) {
  auto c = config();
  c.local[1] = ip::make_address("::1");
  Controller controller(table, c);
  Effects e;
  const auto reply = controller.handle_text("U6 c6 2001:db8::10 4000 A;1", t0, e);
  BOOST_TEST((reply == "23820 ::1 6\n" || reply == "23822 ::1 6\n"));
  BOOST_TEST(controller.handle_text("Ul[::1]6 c7 2001:db8::10 4000 A;1", t0, e) != "E31\n");
  BOOST_TEST(controller.handle_text("Ul[::2]6 c7 2001:db8::10 4000 A;1", t0, e) == "E31\n");
}

BOOST_AUTO_TEST_CASE(notify_targets) {
  auto c = config();
  c.notify_targets = {"unix:/run/n.sock", "tcp:127.0.0.1:9999"};
  Controller controller(table, c);
  Effects e;
  BOOST_TEST(controller.handle_text("VF 20081224", t0, e) == "1\n");
  controller.handle_text("U c 192.0.2.10 4000 A;1 unix:/run/n.sock my%20tag", t0, e);
  BOOST_TEST(table.sessions().at({"c", "A;1"}).session.notify_tag == "my tag");
  BOOST_TEST(table.sessions().at({"c", "A;1"}).session.notify_target == "unix:/run/n.sock");
  // Kamailio's glued sixth token "<socket>;<tag>"
  controller.handle_text("U d 192.0.2.10 4000 A;1 tcp:127.0.0.1:9999;t%3Dx", t0, e);
  BOOST_TEST(table.sessions().at({"d", "A;1"}).session.notify_tag == "t=x");
  BOOST_TEST(table.sessions().at({"d", "A;1"}).session.notify_target == "tcp:127.0.0.1:9999");
  // a U without notify arguments clears them; an unknown socket is accepted, without notification
  controller.handle_text("U d 192.0.2.10 4000 A;1", t0, e);
  BOOST_TEST(table.sessions().at({"d", "A;1"}).session.notify_target.empty());
  BOOST_TEST(controller.handle_text("U c 192.0.2.10 4000 A;1 unix:/elsewhere t", t0, e) != "E75\n");
  BOOST_TEST(table.sessions().at({"c", "A;1"}).session.notify_target.empty());
}

BOOST_AUTO_TEST_CASE(query_counts_per_direction) {
  Controller controller(table, config());
  Effects e;
  const auto p = std::stoi(controller.handle_text("U c 192.0.2.10 4000 A;1", t0, e));
  controller.handle_text("L c 192.0.2.20 5000 A;1 B;1", t0, e);
  std::array<unsigned char, 20> pkt{0x80};
  for (int i = 0; i < 3; ++i)
    table.route(at(Family::v4), static_cast<std::uint16_t>(p), udp::endpoint(ip::make_address("192.0.2.20"), 5000),
                pkt.data(), pkt.size(), t0);
  // from A's point of view (its tag first) npkts_ina counts what A sent: nothing yet
  BOOST_TEST(controller.handle_text("Q c A;1 B;1", t0 + 5s, e) == "55 0 3 3 0\n");
  BOOST_TEST(controller.handle_text("Q c B;1 A;1", t0 + 5s, e) == "55 3 0 3 0\n");
  BOOST_TEST(controller.handle_text("Gv npkts_rcvd npkts_relayed", t0, e) == "npkts_rcvd=3 npkts_relayed=3\n");
}

BOOST_AUTO_TEST_CASE(random_command_streams_keep_the_table_consistent) {
  // Commands built from the protocol's own vocabulary, in random order and shape:
  // whatever the replies, the ports the table holds are exactly the ports bound,
  // and free plus used pairs always add up to the pool.
  Controller controller(table, config());
  std::mt19937 rng(2024);
  const std::vector<std::string> words = {"U", "L", "D", "Q", "Qv", "X", "I", "G", "V", "VF", "Un", "Ln", "Dw", "UW",
                                          "Uc0,8", "U6", "Ux", "P", "S", "R", "C", "N", "&&"};
  const std::vector<std::string> args = {"c1", "c2", "A;1", "A;2", "B;1", "A", "B", "192.0.2.1", "0.0.0.0", "4000",
                                         "x", "20050322", "ttl", "1.2.3.x", "unix:/n", "t%20"};
  Effects e;
  for (int i = 0; i < 20000; ++i) {
    std::string cmd = words[rng() % words.size()];
    const int n = static_cast<int>(rng() % 8);
    for (int k = 0; k < n; ++k) cmd += " " + args[rng() % args.size()];
    const auto reply = controller.handle_text(cmd, t0 + std::chrono::seconds(i / 100), e);
    BOOST_REQUIRE(!reply.empty() && reply.back() == '\n');
    if (i % 500 == 0) table.expire(t0 + std::chrono::seconds(i / 100));
    std::size_t legs = 0;
    for (const auto& [key, e] : table.sessions())
      for (const auto& leg : e.session.legs)
        if (leg.port) {
          ++legs;
          BOOST_REQUIRE(binder.open_ports.count({leg.slot, leg.port}) == 1u);
        }
    BOOST_REQUIRE(binder.open_ports.size() == legs);
    // no IPv6 relay address here: U6 fails with E36, every session is IPv4
    BOOST_REQUIRE(table.pool(at(Family::v4)).available() + legs == table.pool(at(Family::v4)).capacity());
  }
}

BOOST_AUTO_TEST_SUITE_END()
