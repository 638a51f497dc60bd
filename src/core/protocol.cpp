// protocol: tokenizer, command parser and reply formatting (see protocol.h).
#include "core/protocol.h"
#include "core/text.h"

#include <algorithm>
#include <array>
#include <cctype>
#include <charconv>

namespace anyrtpproxy {
namespace {

namespace ip = boost::asio::ip;
using Tokens = std::vector<std::string_view>;

constexpr std::string_view blanks = " \t\r\n";

bool is_blank(char c) { return blanks.find(c) != std::string_view::npos; }

char lower(char c) { return static_cast<char>(std::tolower(static_cast<unsigned char>(c))); }

template <class Int>
std::optional<Int> to_int(std::string_view s) {
  Int value{};
  const auto* end = s.data() + s.size();
  const auto [ptr, ec] = std::from_chars(s.data(), end, value);
  if (s.empty() || ec != std::errc() || ptr != end) return std::nullopt;
  return value;
}

bool in_range(std::size_t n, std::size_t lo, std::size_t hi) { return n >= lo && n <= hi; }

std::string str(std::string_view s) { return std::string(s); }

// Tag arguments common to D, S, R, N: callid from_tag [to_tag] at position `first`.
struct Tags { std::string call_id, from_tag, to_tag; };
Tags tags_at(const Tokens& t, std::size_t call_pos, std::size_t from_pos) {
  Tags tags{str(t[call_pos]), str(t[from_pos]), {}};
  if (t.size() > from_pos + 1) tags.to_tag = str(t[from_pos + 1]);
  return tags;
}

// Reads an address glued to an L/R modifier: dotted digits, [IPv6] or {label}.
// Returns the characters consumed (0: syntax error) and the address if it parsed.
std::size_t glued_address(std::string_view rest, std::optional<ip::address>& out) {
  if (rest.empty()) return 0;
  std::string_view text;
  std::size_t used = 0;
  if (rest[0] == '[' || rest[0] == '{') {
    const char close = rest[0] == '[' ? ']' : '}';
    const auto end = rest.find(close);
    if (end == std::string_view::npos || end == 1) return 0;
    used = end + 1;
    if (rest[0] == '{') return used;  // labels: syntax fine, never known here
    text = rest.substr(1, end - 1);
  } else {
    used = std::min(rest.find_first_not_of("0123456789."), rest.size());
    if (used == 0) return 0;
    text = rest.substr(0, used);
  }
  boost::system::error_code ec;
  auto addr = ip::make_address(str(text), ec);
  if (!ec) out = addr;
  return used;
}

std::optional<Error> parse_ul_modifiers(std::string_view m, UlModifiers& out) {
  for (std::size_t i = 0; i < m.size();) {
    const char c = lower(m[i++]);
    switch (c) {
      case 'a': out.asymmetric = true; break;
      case 's': out.asymmetric = false; break;
      case 'w': out.weak = true; break;
      case '6': out.ipv6 = true; break;
      case 'n': out.new_port = true; break;
      case 'e':
      case 'i':  // bridge mode: the controller refuses them (E11/E12) without two sides
        if (out.bridge_count == 2) return c == 'e' ? Error::bridge_external : Error::bridge_internal;
        out.bridge[out.bridge_count++] = c == 'e' ? Side::external : Side::internal;
        break;
      case 'z': {
        const auto digits = std::min(m.find_first_not_of("0123456789", i), m.size()) - i;
        const auto ms = to_int<int>(m.substr(i, digits));
        if (!ms || *ms <= 0 || *ms >= 1000) return Error::repacketize;
        out.repacketize_ms = *ms;
        i += digits;
        break;
      }
      case 'c': {
        const auto n = std::min(m.find_first_not_of("0123456789,", i), m.size()) - i;
        if (n == 0 || out.codecs) return Error::codecs;
        out.codecs = str(m.substr(i, n));
        i += n;
        break;
      }
      case 'l':
      case 'r': {
        std::optional<ip::address> addr;
        const auto used = glued_address(m.substr(i), addr);
        if (used == 0) return c == 'l' ? Error::local_addr_syntax : Error::route_addr_syntax;
        if (!addr) return c == 'l' ? Error::local_addr : Error::route_addr;
        (c == 'l' ? out.local : out.route_to) = addr;
        i += used;
        break;
      }
      default: return Error::ul_modifier;
    }
  }
  return std::nullopt;
}

// The remote address of U/L: numeric only; an implausible length
// means "no address supplied", a plausible one that does not parse is E37.
std::optional<Error> parse_remote(std::string_view addr, std::string_view port, UpdateLookup& ul) {
  const bool plausible = ul.mods.ipv6 ? in_range(addr.size(), 2, 45) : in_range(addr.size(), 7, 15);
  if (!plausible) return std::nullopt;
  boost::system::error_code ec;
  const std::string text(addr);
  const ip::address a = ul.mods.ipv6 ? ip::address(ip::make_address_v6(text, ec))
                                     : ip::address(ip::make_address_v4(text, ec));
  if (ec) return Error::bad_address;
  const auto p = to_int<std::uint16_t>(port);
  if (!p) return Error::bad_address;
  if (a.is_unspecified()) {
    ul.hold = true;
    return std::nullopt;
  }
  if (*p == 0) return std::nullopt;  // SDP port 0: stream disabled, nothing to prefill
  ul.address = a;
  ul.port = *p;
  return std::nullopt;
}

ParseResult parse_ul(const Tokens& t, std::string_view mods, bool create) {
  if (!(create ? in_range(t.size(), 5, 8) : in_range(t.size(), 5, 6))) return Error::arg_count;
  UpdateLookup ul;
  ul.create = create;
  if (auto e = parse_ul_modifiers(mods, ul.mods)) return *e;
  ul.call_id = str(t[1]);
  ul.from_tag = str(t[4]);
  std::size_t notify_at = 0;
  if (t.size() == 6 || t.size() == 8) ul.to_tag = str(t[5]);
  if (t.size() == 7) notify_at = 5;
  if (t.size() == 8) notify_at = 6;
  if (notify_at) {
    auto tag = url_decode(t[notify_at + 1]);
    if (!tag) return Error::notify_tag;
    ul.notify_socket = str(t[notify_at]);
    ul.notify_tag = std::move(*tag);
  }
  if (auto e = parse_remote(t[2], t[3], ul)) return *e;
  return Request{std::move(ul), {}};
}

bool is_known_query_counter(std::string_view name) {
  static constexpr std::array<std::string_view, 14> names = {
      "ttl", "npkts_ina", "npkts_ino", "nrelayed", "ndropped", "rtpa_nsent", "rtpa_nrcvd",
      "rtpa_ndups", "rtpa_nlost", "rtpa_perrs", "longest_ipi", "rtpa_jlast", "rtpa_jmax",
      "rtpa_javg"};
  return std::find(names.begin(), names.end(), name) != names.end();
}

ParseResult parse_main(const Tokens& t) {
  const std::string_view word = t[0];
  const char letter = lower(word[0]);
  const std::string_view mods = word.substr(1);
  const std::size_t n = t.size();
  switch (letter) {
    case 'v':
      if (!mods.empty() && lower(mods[0]) == 'f') {
        if (n != 2) return Error::arg_count;
        if (mods.size() > 1) return Error::modifiers;
        return Request{Feature{str(t[1])}, {}};
      }
      if (n != 1) return Error::arg_count;
      if (!mods.empty()) return Error::modifiers;
      return Request{Version{}, {}};
    case 'u':
    case 'l': return parse_ul(t, mods, letter == 'u');
    case 'd': {
      if (!in_range(n, 3, 4)) return Error::arg_count;
      if (mods.find_first_not_of("wW") != std::string_view::npos) return Error::delete_modifier;
      auto tags = tags_at(t, 1, 2);
      return Request{Delete{!mods.empty(), tags.call_id, tags.from_tag, tags.to_tag}, {}};
    }
    case 'q': {
      if (!in_range(n, 3, 15)) return Error::arg_count;
      if (mods.find_first_not_of("vV") != std::string_view::npos) return Error::query_modifier;
      Query q{!mods.empty(), str(t[1]), str(t[2]), n > 3 ? str(t[3]) : std::string(), {}};
      for (std::size_t i = 4; i < n; ++i) {
        if (!is_known_query_counter(t[i])) return Error::query_counter;
        q.counters.push_back(str(t[i]));
      }
      return Request{std::move(q), {}};
    }
    case 'p': {
      if (!in_range(n, 5, 6)) return Error::arg_count;
      Play p;
      if (!mods.empty()) {
        const auto count = to_int<int>(mods);
        if (!count) return Error::play_count;
        p.count = *count;
      }
      auto tags = tags_at(t, 1, 4);
      p.call_id = tags.call_id;
      p.name = str(t[2]);
      p.codecs = str(t[3]);
      p.from_tag = tags.from_tag;
      p.to_tag = tags.to_tag;
      return Request{std::move(p), {}};
    }
    case 's': {
      if (!in_range(n, 3, 4)) return Error::arg_count;
      if (!mods.empty()) return Error::modifiers;
      auto tags = tags_at(t, 1, 2);
      return Request{StopPlay{tags.call_id, tags.from_tag, tags.to_tag}, {}};
    }
    case 'r': {
      if (!in_range(n, 3, 4)) return Error::arg_count;
      for (char c : mods) {
        if (lower(c) == 'p') return Error::record_modifier_p;
        if (lower(c) != 's') return Error::record_modifier;
      }
      auto tags = tags_at(t, 1, 2);
      return Request{Record{tags.call_id, tags.from_tag, tags.to_tag}, {}};
    }
    case 'c': {
      if (!in_range(n, 4, 5)) return Error::arg_count;
      if (mods.find_first_not_of("sSpP") != std::string_view::npos) return Error::record_modifier;
      auto tags = tags_at(t, 1, 3);
      const bool reply_port = mods.find_first_of("pP") != std::string_view::npos;
      return Request{Copy{tags.call_id, str(t[2]), tags.from_tag, tags.to_tag, reply_port}, {}};
    }
    case 'n': {
      if (!in_range(n, 3, 4)) return Error::arg_count;
      const bool all = !mods.empty() && lower(mods[0]) == 'a';
      if (!mods.empty() && !all) return Error::record_modifier;
      if (mods.size() > 1) return Error::record_modifier_p;
      auto tags = tags_at(t, 1, 2);
      return Request{NoRecord{all, tags.call_id, tags.from_tag, tags.to_tag}, {}};
    }
    case 'i':
      if (n != 1) return Error::arg_count;
      if (mods.find_first_not_of("bB") != std::string_view::npos) return Error::info_modifier;
      return Request{Info{!mods.empty()}, {}};
    case 'g': {
      if (mods.find_first_not_of("vV") != std::string_view::npos) return Error::stats_modifier;
      Stats s{!mods.empty(), {}};
      for (std::size_t i = 1; i < n; ++i) s.names.push_back(str(t[i]));
      return Request{std::move(s), {}};
    }
    case 'x':
      if (n != 1) return Error::arg_count;
      if (!mods.empty()) return Error::modifiers;
      return Request{DeleteAll{}, {}};
    default: return Error::unknown_command;
  }
}

}  // namespace

CookieSplit split_cookie(std::string_view datagram) {
  const auto start = std::min(datagram.find_first_not_of(blanks), datagram.size());
  datagram.remove_prefix(start);
  const auto end = std::min(datagram.find_first_of(blanks), datagram.size());
  return {datagram.substr(0, end), datagram.substr(end)};
}

ParseResult parse_command(std::string_view text) {
  if (text.size() > max_command_bytes) return Error::syntax;
  if (text.find('\0') != std::string_view::npos) return Error::syntax;
  std::vector<Tokens> groups(1);
  for (std::size_t i = 0; i < text.size();) {
    if (is_blank(text[i])) { ++i; continue; }
    std::size_t j = i;
    while (j < text.size() && !is_blank(text[j])) ++j;
    const auto token = text.substr(i, j - i);
    i = j;
    if (token == "&&") {
      if (groups.back().empty() || groups.size() > max_subcommands) return Error::syntax;
      groups.emplace_back();
      continue;
    }
    if (groups.back().size() == max_tokens) return Error::syntax;
    groups.back().push_back(token);
  }
  if (groups.back().empty()) return Error::syntax;  // empty command or a trailing "&&"

  auto result = parse_main(groups.front());
  if (groups.size() == 1 || std::holds_alternative<Error>(result)) return result;
  auto& request = std::get<Request>(result);
  const char letter = lower(groups.front()[0][0]);
  if (letter != 'u' && letter != 'l' && letter != 'q') return Error::subcommand;
  for (std::size_t g = 1; g < groups.size(); ++g) {
    const auto& sub = groups[g];
    const std::string_view word = sub[0];
    if (sub.size() != 1 || lower(word[0]) != 'd' ||
        word.substr(1).find_first_not_of("wW") != std::string_view::npos)
      return Error::subcommand;
    request.subcommands.push_back(SubDelete{word.size() > 1});
  }
  return result;
}

std::optional<std::string> url_decode(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] != '%') { out.push_back(s[i]); continue; }
    unsigned value = 0;
    for (std::size_t k = 1; k <= 2; ++k) {
      if (i + k >= s.size() || !std::isxdigit(static_cast<unsigned char>(s[i + k]))) return std::nullopt;
      const char c = lower(s[i + k]);
      value = value * 16 + static_cast<unsigned>(c <= '9' ? c - '0' : c - 'a' + 10);
    }
    if (is_control(static_cast<char>(value))) return std::nullopt;  // no line breaks smuggled into notifications
    out.push_back(static_cast<char>(value));
    i += 2;
  }
  return out;
}

std::string format_error(Error e) { return "E" + std::to_string(static_cast<int>(e)); }

std::string_view error_reason(Error e) {
  switch (e) {
    case Error::unknown_command: return "unknown command";
    case Error::arg_count: return "wrong number of arguments";
    case Error::modifiers: return "unknown or misplaced modifier";
    case Error::subcommand: return "bad sub-command";
    case Error::syntax: return "malformed command (a field too long, a bad number or address)";
    case Error::record_modifier_p: return "bad record modifier";
    case Error::record_modifier: return "bad record modifier";
    case Error::delete_modifier: return "bad delete modifier";
    case Error::stats_modifier: return "bad G modifier";
    case Error::notify_tag: return "bad notify tag (a bad %-escape)";
    case Error::bridge_external: return "bridge mode (E) is not configured";
    case Error::bridge_internal: return "bridge mode (I) is not configured";
    case Error::repacketize: return "bad re-packetization modifier";
    case Error::codecs: return "bad codec list";
    case Error::local_addr_syntax: return "bad local address modifier";
    case Error::route_addr_syntax: return "bad remote address modifier";
    case Error::play_count: return "bad play count";
    case Error::info_modifier: return "bad I modifier";
    case Error::query_modifier: return "bad Q modifier";
    case Error::stats_too_big: return "G reply too long";
    case Error::query_too_big: return "Q reply too long";
    case Error::local_addr: return "the local address is not one this relay serves";
    case Error::route_addr: return "no relay address of that family";
    case Error::ul_modifier: return "modifier not usable here";
    case Error::no_family: return "this relay serves no address of that family";
    case Error::bad_address: return "bad address";
    case Error::no_session: return "no such session";
    case Error::play_failed: return "playback is not available";
    case Error::query_counter: return "unknown Q counter";
    case Error::copy_failed: return "recording and copying are not available";
    case Error::stats_counter: return "unknown G counter";
    case Error::no_ports_leg: return "no port for the second leg";
    case Error::no_ports_session: return "no port for a new session";
    case Error::notify_off: return "timeout notification is not configured (--notify)";
    case Error::internal: return "internal error";
  }
  return "error";
}

std::optional<ip::udp::endpoint> parse_copy_target(std::string_view target) {
  if (target.substr(0, 4) != "udp:") return std::nullopt;
  std::string_view rest = target.substr(4), host;
  if (!rest.empty() && rest[0] == '[') {
    const auto close = rest.find("]:");
    if (close == std::string_view::npos) return std::nullopt;
    host = rest.substr(1, close - 1);
    rest = rest.substr(close + 2);
  } else {
    const auto colon = rest.rfind(':');
    if (colon == std::string_view::npos) return std::nullopt;
    host = rest.substr(0, colon);
    rest = rest.substr(colon + 1);
  }
  const auto port = to_int<int>(rest);
  boost::system::error_code ec;
  const auto addr = ip::make_address(str(host), ec);
  if (ec || !port || *port < 1 || *port > 65534 || addr.is_unspecified() || addr.is_multicast()) return std::nullopt;
  return ip::udp::endpoint(addr, static_cast<unsigned short>(*port));
}

char command_letter(std::string_view text) {
  const auto start = text.find_first_not_of(" \t");
  if (start == std::string_view::npos) return '?';
  char c = text[start];
  if (c >= 'a' && c <= 'z') c = static_cast<char>(c - 'a' + 'A');
  return command_letters.find(c) != std::string_view::npos ? c : '?';
}

std::string format_port(std::uint16_t port, const std::optional<ip::address>& addr) {
  std::string out = std::to_string(port);
  if (!addr || addr->is_unspecified()) return out;
  out += ' ';
  out += addr->to_string();
  if (addr->is_v6()) out += " 6";
  return out;
}

}  // namespace anyrtpproxy
