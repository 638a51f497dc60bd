#include "core/protocol.h"

#include <boost/test/unit_test.hpp>

using namespace anyrtpproxy;

namespace {
Error error_of(std::string_view text) {
  auto r = parse_command(text);
  BOOST_REQUIRE_MESSAGE(std::holds_alternative<Error>(r), "expected an error for '" << text << "'");
  return std::get<Error>(r);
}
template <class T>
T command_of(std::string_view text) {
  auto r = parse_command(text);
  const int code = std::holds_alternative<Error>(r) ? static_cast<int>(std::get<Error>(r)) : -1;
  BOOST_REQUIRE_MESSAGE(code < 0, "'" << text << "' failed with E" << code);
  const auto& c = std::get<Request>(r).command;
  BOOST_REQUIRE(std::holds_alternative<T>(c));
  return std::get<T>(c);
}
}  // namespace

BOOST_AUTO_TEST_SUITE(protocol)

BOOST_AUTO_TEST_CASE(cookie_is_first_token) {
  auto s = split_cookie("  7845_3 Uc0,8 cid 1.2.3.4 5 t;1\n");
  BOOST_TEST(s.cookie == "7845_3");
  BOOST_TEST(s.rest == " Uc0,8 cid 1.2.3.4 5 t;1\n");
  BOOST_TEST(split_cookie("").cookie.empty());
  BOOST_TEST(split_cookie("k3").cookie == "k3");
  BOOST_TEST(split_cookie("k3").rest.empty());
}

BOOST_AUTO_TEST_CASE(tokenizer_accepts_any_blank_run_and_any_case) {
  auto ul = command_of<UpdateLookup>("u\tcid \r\n 192.0.2.1   4000\tA;1\r\n");
  BOOST_TEST(ul.create);
  BOOST_TEST(ul.call_id == "cid");
  BOOST_TEST(ul.from_tag == "A;1");
  BOOST_TEST(ul.address->to_string() == "192.0.2.1");
  BOOST_TEST(ul.port == 4000);
}

BOOST_AUTO_TEST_CASE(tokenizer_limits) {
  BOOST_TEST(static_cast<int>(error_of("")) == 5);
  BOOST_TEST(static_cast<int>(error_of(" \r\n\t ")) == 5);
  BOOST_TEST(static_cast<int>(error_of(std::string_view("V\0", 2))) == 5);
  BOOST_TEST(static_cast<int>(error_of(std::string(max_command_bytes + 1, 'V'))) == 5);
  std::string many = "G";
  for (int i = 0; i < 22; ++i) many += " x";
  BOOST_TEST(std::holds_alternative<Request>(parse_command(many)));  // 23 tokens: the most allowed
  BOOST_TEST(static_cast<int>(std::get<Error>(parse_command(many + " x"))) == 5);
}

BOOST_AUTO_TEST_CASE(update_token_counts_decide_meaning) {
  auto five = command_of<UpdateLookup>("U c 192.0.2.1 4000 A;1");
  BOOST_TEST(five.to_tag.empty());
  BOOST_TEST(!five.notify_socket);
  auto six = command_of<UpdateLookup>("U c 192.0.2.1 4000 A;1 B;1");
  BOOST_TEST(six.to_tag == "B;1");
  auto seven = command_of<UpdateLookup>("U c 192.0.2.1 4000 A;1 unix:/n tag%20x");
  BOOST_TEST(seven.to_tag.empty());
  BOOST_TEST(*seven.notify_socket == "unix:/n");
  BOOST_TEST(seven.notify_tag == "tag x");
  auto eight = command_of<UpdateLookup>("U c 192.0.2.1 4000 A;1 B;1 unix:/n t");
  BOOST_TEST(eight.to_tag == "B;1");
  BOOST_TEST(*eight.notify_socket == "unix:/n");
  BOOST_TEST(static_cast<int>(error_of("L c 192.0.2.1 4000 A;1 B;1 unix:/n")) == 1);
  BOOST_TEST(static_cast<int>(error_of("U c 192.0.2.1 4000 A;1 B;1 unix:/n t x")) == 1);
}

BOOST_AUTO_TEST_CASE(update_modifiers) {
  auto ul = command_of<UpdateLookup>("UASWc0,8,101z20 c 192.0.2.1 4000 A;1");
  BOOST_TEST(!ul.mods.asymmetric);  // S after A wins
  BOOST_TEST(ul.mods.weak);
  BOOST_TEST(*ul.mods.codecs == "0,8,101");
  BOOST_TEST(ul.mods.repacketize_ms == 20);
  auto v6 = command_of<UpdateLookup>("U6 c 2001:db8::1 4000 A;1");
  BOOST_TEST(v6.mods.ipv6);
  BOOST_TEST(v6.address->is_v6());
  BOOST_TEST(command_of<UpdateLookup>("Ln c 192.0.2.1 4000 A;1").mods.new_port);
  BOOST_TEST(command_of<UpdateLookup>("Ul127.0.0.1 c a p f").mods.local->to_string() == "127.0.0.1");
  BOOST_TEST(command_of<UpdateLookup>("Ul[::1]6 c a p f").mods.ipv6);
  BOOST_TEST(static_cast<int>(error_of("Uz1000 c a p f")) == 13);
  BOOST_TEST(static_cast<int>(error_of("Uz c a p f")) == 13);
  BOOST_TEST(static_cast<int>(error_of("Uc0c8 c a p f")) == 14);
  BOOST_TEST(static_cast<int>(error_of("Ul{lbl} c a p f")) == 31);
  BOOST_TEST(static_cast<int>(error_of("Ux c a p f")) == 35);
}

BOOST_AUTO_TEST_CASE(remote_address_rules) {
  // implausible length: no address, the port is not even looked at
  BOOST_TEST(!command_of<UpdateLookup>("U c host.example.org.invalid x A").address);
  BOOST_TEST(!command_of<UpdateLookup>("U c a p f").address);
  BOOST_TEST(static_cast<int>(error_of("U c 1.2.3.x 4000 A")) == 37);
  BOOST_TEST(static_cast<int>(error_of("U c 1.2.3.4 70000 A")) == 37);
  BOOST_TEST(static_cast<int>(error_of("U c 2001:db8::1 4000 A")) == 37);  // IPv6 without the 6 modifier
  auto hold = command_of<UpdateLookup>("U c 0.0.0.0 4000 A");
  BOOST_TEST(hold.hold);
  BOOST_TEST(!hold.address);
  BOOST_TEST(!command_of<UpdateLookup>("U c 1.2.3.4 0 A").address);  // SDP port 0
}

BOOST_AUTO_TEST_CASE(notify_tag_decoding) {
  BOOST_TEST(*url_decode("a%20b%2Fc") == "a b/c");
  BOOST_TEST(!url_decode("%%RTPP"));
  BOOST_TEST(!url_decode("abc%2"));
  BOOST_TEST(!url_decode("abc%zz"));
  BOOST_TEST(!url_decode("line%0Abreak"));
  BOOST_TEST(static_cast<int>(error_of("U c a p f s %0a")) == 10);
}

BOOST_AUTO_TEST_CASE(other_commands) {
  auto d = command_of<Delete>("Dw cid A B");
  BOOST_TEST(d.weak);
  BOOST_TEST(d.to_tag == "B");
  auto q = command_of<Query>("Qv cid A;1 B ttl npkts_ina");
  BOOST_TEST(q.verbose);
  BOOST_TEST(q.counters.size() == 2u);
  BOOST_TEST(command_of<Play>("P-1 c moh session A;1 B;1").count == -1);
  BOOST_TEST(command_of<Stats>("G").names.empty());
  BOOST_TEST(command_of<Info>("Ib").brief);
  BOOST_TEST(command_of<Feature>("vf 20050322").date == "20050322");
  BOOST_TEST(static_cast<int>(error_of("Il")) == 18);
  BOOST_TEST(static_cast<int>(error_of("Dx c A")) == 8);
  BOOST_TEST(static_cast<int>(error_of("Cx c t A")) == 7);
  BOOST_TEST(static_cast<int>(error_of("Z")) == 0);
}

BOOST_AUTO_TEST_CASE(subcommands) {
  auto r = parse_command("Qv c A B npkts_ina && D");
  BOOST_REQUIRE(std::holds_alternative<Request>(r));
  BOOST_TEST(std::get<Request>(r).subcommands.size() == 1u);
  BOOST_TEST(static_cast<int>(error_of("D c A && D")) == 3);
  BOOST_TEST(static_cast<int>(error_of("U c a p f && && D")) == 5);
  BOOST_TEST(static_cast<int>(error_of("U c a p f && X")) == 3);
}

BOOST_AUTO_TEST_CASE(reply_formats) {
  namespace ip = boost::asio::ip;
  BOOST_TEST(format_port(35000, std::nullopt) == "35000");
  BOOST_TEST(format_port(35000, ip::make_address("0.0.0.0")) == "35000");
  BOOST_TEST(format_port(35000, ip::make_address("203.0.113.5")) == "35000 203.0.113.5");
  BOOST_TEST(format_port(12000, ip::make_address("::1")) == "12000 ::1 6");
  BOOST_TEST(format_error(Error::no_session) == "E50");
}

BOOST_AUTO_TEST_SUITE_END()
