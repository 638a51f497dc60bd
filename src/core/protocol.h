// protocol: the rtpproxy control protocol (base 20040107) as pure functions.
//
// Splits a request into cookie and tokens, parses one command into a closed
// set of value types, and formats replies. It keeps no state, performs no I/O
// and knows nothing about sessions or configuration: checks that need the
// daemon's configuration (address families, notify targets) belong to the
// controller. The grammar: doc/protocol.md, Framing; the commands and
// errors: the man page, CONTROL PROTOCOL and ERROR CODES.
#pragma once

#include "core/session.h"

#include <boost/asio/ip/address.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace anyrtpproxy {

// rtpproxy's modern error numbers (man page: ERROR CODES), one per failure reason.
enum class Error : int {
  unknown_command = 0,
  arg_count = 1,
  modifiers = 2,
  subcommand = 3,
  syntax = 5,
  record_modifier_p = 6,
  record_modifier = 7,
  delete_modifier = 8,
  stats_modifier = 9,
  notify_tag = 10,
  bridge_external = 11,
  bridge_internal = 12,
  repacketize = 13,
  codecs = 14,
  local_addr_syntax = 15,
  route_addr_syntax = 16,
  play_count = 17,
  info_modifier = 18,
  query_modifier = 19,
  stats_too_big = 25,
  query_too_big = 26,
  local_addr = 31,
  route_addr = 32,
  ul_modifier = 35,
  no_family = 36,
  bad_address = 37,
  no_session = 50,
  play_failed = 60,
  query_counter = 62,
  copy_failed = 65,
  stats_counter = 68,
  no_ports_leg = 71,
  no_ports_session = 72,
  notify_off = 75,
  internal = 90,  // unused by rtpproxy: a bug caught at the request boundary
};

constexpr std::size_t max_command_bytes = 8191;  // rtpproxy's RTPP_CMD_BUFLEN - 1
constexpr std::size_t max_tokens = 23;           // per command or sub-command
constexpr std::size_t max_subcommands = 15;

// Modifiers of U and L (man page: CONTROL PROTOCOL).
struct UlModifiers {
  bool asymmetric = false;
  bool weak = false;
  bool ipv6 = false;
  bool new_port = false;
  int repacketize_ms = 0;  // parsed and accepted, not performed (VF 20071116 answers 0)
  std::optional<std::string> codecs;
  std::optional<boost::asio::ip::address> local;     // L<addr>
  std::optional<boost::asio::ip::address> route_to;  // R<addr>
  // Bridge mode's E/I, in order: the first names the side the SDP came from
  // (the leg facing its sender), the second the side of the leg this command
  // allocates (whose port the reply carries).
  std::array<Side, 2> bridge{};
  int bridge_count = 0;
};

// U (create = true) and L (create = false).
struct UpdateLookup {
  bool create = true;
  UlModifiers mods;
  std::string call_id;
  std::optional<boost::asio::ip::address> address;  // absent: none or implausible
  std::uint16_t port = 0;
  bool hold = false;  // 0.0.0.0 or ::
  std::string from_tag;
  std::string to_tag;  // empty: not given
  std::optional<std::string> notify_socket;
  std::string notify_tag;  // URL-decoded
};

struct Delete { bool weak = false; std::string call_id, from_tag, to_tag; };
struct Query { bool verbose = false; std::string call_id, from_tag, to_tag; std::vector<std::string> counters; };
struct Play { int count = 1; std::string call_id, name, codecs, from_tag, to_tag; };
struct StopPlay { std::string call_id, from_tag, to_tag; };
struct Record { std::string call_id, from_tag, to_tag; };
struct Copy {
  std::string call_id, target, from_tag, to_tag;
  bool reply_port = false;  // p: the reply names the local port and address the copies leave from
};
// C's target "udp:HOST:PORT" or "udp:[IPV6]:PORT" (numeric); nothing when it is not one.
std::optional<boost::asio::ip::udp::endpoint> parse_copy_target(std::string_view target);
struct NoRecord { bool all = false; std::string call_id, from_tag, to_tag; };
struct Version {};
struct Feature { std::string date; };
struct Info { bool brief = false; };
struct Stats { bool verbose = false; std::vector<std::string> names; };
struct DeleteAll {};

using Command = std::variant<UpdateLookup, Delete, Query, Play, StopPlay, Record, Copy,
                             NoRecord, Version, Feature, Info, Stats, DeleteAll>;

// The only sub-command implemented: `&& D[w]` deletes the session the main command named.
struct SubDelete { bool weak = false; };

struct Request {
  Command command;
  std::vector<SubDelete> subcommands;
};

using ParseResult = std::variant<Request, Error>;

// Splits a UDP datagram into its cookie and the rest. An empty datagram has no cookie.
struct CookieSplit { std::string_view cookie, rest; };
CookieSplit split_cookie(std::string_view datagram);

// Parses one command without cookie (stream/unix framing or the rest of a datagram).
ParseResult parse_command(std::string_view text);

// %XX decoding of notify tags; nullopt on a bad escape or an escaped control character.
std::optional<std::string> url_decode(std::string_view s);

// Reply builders; the result never carries the cookie nor the final "\n".
std::string format_error(Error e);
// What an error code means, for the log line of a failed command.
std::string_view error_reason(Error e);
// The command letters of the protocol, for counting commands with bounded labels.
constexpr std::string_view command_letters = "VULDPSRCQXIGN";
// A command's letter (upper case) from its text, '?' when it names none of them.
char command_letter(std::string_view text);
std::string format_port(std::uint16_t port, const std::optional<boost::asio::ip::address>& addr);

}  // namespace anyrtpproxy
