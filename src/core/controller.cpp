// controller: see controller.h.
#include "core/controller.h"

#include "core/text.h"

#include <algorithm>
#include <charconv>
#include <cstdio>

namespace anyrtpproxy {
namespace {

namespace ip = boost::asio::ip;

constexpr std::size_t max_reply = 1024;  // rtpproxy's reply buffer; G/Q answer E25/E26 beyond
constexpr std::size_t max_cached_cookie = 128;

// Capability dates answered 1 (man page: VF): what anyrtpproxy implements, nothing more.
constexpr std::array<std::string_view, 9> features = {
    "20040107",  // base protocol
    "20050322",  // several media lines per call (";N" tags)
    "20060704",  // VF itself
    "20080403",  // Q
    "20081102",  // c<codec list> stored per stream
    "20141004",  // G
    "20150330",  // n modifier: a new port pair
    "20200226",  // N (stops recording and copying)
    "20250523",  // p modifier on C
};
constexpr std::string_view feature_notify = "20081224";  // only with --notify

std::string describe(const SessionKey& k) { return "call-id=" + k.call_id + " tag=" + k.from_tag; }

const char* shortage_text(PortShortage why) {
  switch (why) {
    case PortShortage::range_used_up: return "every port pair of the -p range is in use";
    case PortShortage::all_taken: return "every free port pair of the -p range is taken by another program";
    case PortShortage::file_limit: return "the open-file limit is reached (raise it: ulimit -n, LimitNOFILE)";
  }
  return "no port pair";
}

// What the table needs of a U or L (the notification is checked by the caller).
Offer offer_of(const UpdateLookup& ul) {
  Offer o;
  o.create = ul.create;
  o.call_id = ul.call_id;
  o.from_tag = ul.from_tag;
  o.to_tag = ul.to_tag;
  if (ul.address) o.remote = udp::endpoint(*ul.address, ul.port);
  o.hold = ul.hold;
  o.asymmetric = ul.mods.asymmetric;
  o.weak = ul.mods.weak;
  o.new_port = ul.mods.new_port;
  o.codecs = ul.mods.codecs;
  return o;
}

}  // namespace

Controller::Controller(CommandTable table, ControllerConfig config) : table_(table), config_(std::move(config)) {}

const std::string* Controller::cached(const std::string& key) const {
  if (auto it = cache_now_.find(key); it != cache_now_.end()) return &it->second;
  if (auto it = cache_old_.find(key); it != cache_old_.end()) return &it->second;
  return nullptr;
}

// What an entry costs: its strings and about what a hash node and two string
// headers take, so that the byte bound holds for memory, not just for text.
constexpr std::size_t cache_entry_overhead = 128;

void Controller::remember(std::string key, const std::string& reply, Clock::time_point now) {
  const std::size_t cost = key.size() + reply.size() + cache_entry_overhead;
  if (now - cache_started_ >= config_.reply_cache_age || cache_now_.size() >= config_.reply_cache_entries ||
      cache_now_bytes_ + cost > config_.reply_cache_bytes / 2) {
    cache_old_ = std::move(cache_now_);
    cache_old_bytes_ = cache_now_bytes_;
    cache_now_.clear();
    cache_now_bytes_ = 0;
    cache_started_ = now;
  }
  if (cost > config_.reply_cache_bytes / 2) return;  // cannot happen with our bounded replies; stay bounded anyway
  if (cache_now_.emplace(std::move(key), reply).second) cache_now_bytes_ += cost;
}

std::string Controller::error_datagram(std::string_view datagram, Error e) {
  ++stats_.received;
  ++stats_.errors;
  const auto cookie = split_cookie(datagram.substr(0, std::min(datagram.size(), max_command_bytes))).cookie;
  return std::string(cookie) + " " + format_error(e) + "\n";
}

std::string Controller::handle_datagram(std::string_view datagram, const std::string& source,
                                        Clock::time_point now, Effects& effects) {
  if (datagram.size() > max_command_bytes) {
    effects.events.push_back({Level::warning,
                              "command failed: E5 (a datagram of " + std::to_string(datagram.size()) +
                                  " bytes, longer than " + std::to_string(max_command_bytes) + ")",
                              "too long"});
    ++stats_.results[{'?', static_cast<int>(Error::syntax)}];
    return error_datagram(datagram, Error::syntax);
  }
  const auto [cookie, rest] = split_cookie(datagram);
  if (cookie.empty()) {  // nothing but blanks: no cookie to answer with
    ++stats_.received;
    ++stats_.errors;
    return format_error(Error::syntax) + "\n";
  }
  // Clients use short cookies (Kamailio: "%u_%u"); a long one is answered but not
  // cached, so that the cache stays small whatever a client sends.
  const bool cacheable = cookie.size() <= max_cached_cookie;
  std::string key = cacheable ? source + ' ' + std::string(cookie) : std::string();
  if (cacheable) {
    if (const std::string* reply = cached(key)) {
      ++stats_.duplicates;
      return *reply;
    }
  }
  std::string reply = std::string(cookie) + " " + execute(rest, now, effects);
  if (cacheable) remember(std::move(key), reply, now);
  return reply;
}

std::string Controller::handle_text(std::string_view text, Clock::time_point now, Effects& effects) {
  return execute(text, now, effects);
}

namespace {

// The call-id and from-tag a command names, for its log line; empty when it names none.
std::string named_session(const ParseResult& parsed) {
  const auto* request = std::get_if<Request>(&parsed);
  if (!request) return {};
  return std::visit(
      [](const auto& c) -> std::string {
        using T = std::decay_t<decltype(c)>;
        if constexpr (std::is_same_v<T, Version> || std::is_same_v<T, Feature> || std::is_same_v<T, Info> ||
                      std::is_same_v<T, Stats> || std::is_same_v<T, DeleteAll>)
          return {};
        else
          return " call-id=" + one_line(c.call_id, 256) + " tag=" + one_line(c.from_tag, 128);
      },
      request->command);
}

std::string_view trimmed(std::string_view s) {
  const auto first = s.find_first_not_of(" \t\r\n");
  if (first == std::string_view::npos) return {};
  return s.substr(first, s.find_last_not_of(" \t\r\n") - first + 1);
}

}  // namespace

// Every command: counted by letter and result; a failure is logged once, with
// its E-code and why (rate-limited per letter and code), unless the command
// already said why in a line of its own (a U/L without ports).
std::string Controller::execute(std::string_view text, Clock::time_point now, Effects& effects) {
  const std::size_t before = effects.events.size();
  ParseResult parsed = parse_command(text);  // once: a failure's log line names its session from it
  std::string reply = run(parsed, now, effects);
  const char letter = command_letter(text);
  int result = CommandStats::ok_result;
  if (reply[0] == 'E') {
    int code = 0;
    std::from_chars(reply.data() + 1, reply.data() + reply.size(), code);
    result = code;
    const bool explained = std::any_of(effects.events.begin() + static_cast<std::ptrdiff_t>(before), effects.events.end(),
                                       [](const Event& e) { return !e.cause.empty(); });
    if (!explained) {
      const auto e = static_cast<Error>(code);
      const std::string name = letter == '?' ? "command" : std::string(1, letter);
      effects.events.push_back({e == Error::no_session ? Level::notice : Level::warning,
                                name + " failed: " + format_error(e) + " (" + std::string(error_reason(e)) + ")" +
                                    named_session(parsed) + ": " +
                                    one_line(trimmed(text), 160),
                                name + " " + format_error(e)});
    }
  }
  ++stats_.results[{letter, result}];
  return reply;
}

std::string Controller::run(ParseResult& parsed, Clock::time_point now, Effects& effects) {
  ++stats_.received;
  std::string reply;
  if (auto* e = std::get_if<Error>(&parsed)) {
    reply = format_error(*e);
  } else {
    auto& request = std::get<Request>(parsed);
    std::optional<SessionKey> target;  // the session U/L/Q named, for sub-commands
    reply = std::visit(
        [&](auto& c) -> std::string {
          using T = std::decay_t<decltype(c)>;
          if constexpr (std::is_same_v<T, UpdateLookup>) return on(c, now, effects, target);
          if constexpr (std::is_same_v<T, Query>) return on(c, now, target);
          if constexpr (std::is_same_v<T, Delete>) return on(c, now, effects);
          if constexpr (std::is_same_v<T, Stats>) return on(c);
          if constexpr (std::is_same_v<T, Feature>) return on(c);
          if constexpr (std::is_same_v<T, Version>) return "20040107";
          if constexpr (std::is_same_v<T, Info>) return info();
          if constexpr (std::is_same_v<T, DeleteAll>) {
            if (const auto n = table_.clear(now))
              effects.events.push_back({Level::info, "X: deleted all " + std::to_string(n) + " sessions"});
            return "0";
          }
          if constexpr (std::is_same_v<T, Play>) return on(c, now);
          if constexpr (std::is_same_v<T, StopPlay>)  // 0 also when nothing plays
            return table_.stop_play(c.call_id, c.from_tag, c.to_tag) ? "0" : format_error(Error::no_session);
          if constexpr (std::is_same_v<T, Copy>) {  // C: to udp:HOST:PORT, or into a file of --record-dir
            const auto m = table_.find(c.call_id, c.from_tag, c.to_tag);
            if (!m) return format_error(Error::no_session);
            if (c.target.compare(0, 4, "udp:") != 0) {
              if (!config_.recording || !valid_record_name(c.target)) return format_error(Error::copy_failed);
              table_.record_into(c.call_id, c.from_tag, c.to_tag, c.target);
              effects.events.push_back({Level::info, "recording call-id=" + c.call_id + " tag=" + c.from_tag +
                                                         " into " + c.target});
              return "0";
            }
            const auto to = parse_copy_target(c.target);
            // Copies leave from the leg's own socket: the target must be of its family.
            const Slot slot = m->entry->session.legs[1 - m->side].slot;
            if (!to || to->address().is_v6() != (family_of(slot) == Family::v6)) return format_error(Error::copy_failed);
            const auto from = table_.copy(c.call_id, c.from_tag, c.to_tag, *to);
            effects.events.push_back({Level::info, "copying call-id=" + c.call_id + " tag=" + c.from_tag + " to " +
                                                       endpoint_text(*to)});
            if (!c.reply_port) return "0";
            if (from->second == 0) return format_error(Error::copy_failed);  // that leg has no port yet
            const auto& shown = config_.advertised[from->first] ? config_.advertised[from->first] : config_.local[from->first];
            return format_port(from->second, shown);
          }
          if constexpr (std::is_same_v<T, Record>) {  // E50 also when recording is not configured (no -r)
            if (!config_.recording || !table_.record(c.call_id, c.from_tag, c.to_tag, true, false))
              return format_error(Error::no_session);
            effects.events.push_back({Level::info, "recording call-id=" + c.call_id + " tag=" + c.from_tag});
            return "0";
          }
          if constexpr (std::is_same_v<T, NoRecord>) {  // N: stop recording and copying (both directions with a)
            return table_.record(c.call_id, c.from_tag, c.to_tag, false, c.all)
                       ? "0"
                       : format_error(Error::no_session);
          }
          return format_error(Error::internal);  // every command is handled above
        },
        request.command);
    if (reply[0] != 'E' && target && !request.subcommands.empty()) {
      // "&& D" (or Dw): the session the main command named goes; a second D has nothing left.
      effects.events.push_back({Level::info, "deleted by sub-command " + describe(*target)});
      table_.destroy(*target, now);
      for (std::size_t i = 1; i < request.subcommands.size(); ++i) reply += " && -1";
    } else if (reply[0] != 'E' && !request.subcommands.empty()) {
      reply += " && -1";  // L found nothing: there is no session to delete
    }
  }
  if (reply[0] == 'E')
    ++stats_.errors;
  else
    ++stats_.succeeded;
  return reply + "\n";
}

// Two sides: a family with -i INTERNAL/EXTERNAL, or one IPv4 and one IPv6 -i.
bool Controller::bridge_mode() const {
  const auto& l = config_.local;
  return l[slot_of(Family::v4, Side::external)] || l[slot_of(Family::v6, Side::external)] ||
         (l[slot_of(Family::v4, Side::internal)] && l[slot_of(Family::v6, Side::internal)]);
}

// The slot of a side for a remote of `family`: that family's own side if it
// has two addresses; else, with one IPv4 and one IPv6 address, IPv4 is the
// internal side and IPv6 the external one (rtpproxy's -l A -6 B).
std::optional<Slot> Controller::slot_for(Side side, Family family) const {
  const auto& l = config_.local;
  if (l[slot_of(family, Side::external)]) return slot_of(family, side);
  if (l[slot_of(Family::v4, Side::internal)] && l[slot_of(Family::v6, Side::internal)])
    return slot_of(side == Side::internal ? Family::v4 : Family::v6, Side::internal);
  return std::nullopt;
}

// Where this command's legs go (the l and I/E modifiers): the family's address by default (the
// 6 modifier), bridge mode's sides with E/I, the named address with L<addr>.
std::optional<Error> Controller::choose_slots(const UlModifiers& mods, Offer& offer) const {
  const auto& l = config_.local;
  const Family family = mods.ipv6 ? Family::v6 : Family::v4;
  const Slot base = slot_of(family, Side::internal);
  offer.own_slot = offer.facing_slot = base;
  if (mods.bridge_count > 0) {
    const auto refusal = [&](Side s) { return s == Side::external ? Error::bridge_external : Error::bridge_internal; };
    if (!bridge_mode()) return refusal(mods.bridge[0]);
    std::array<Slot, 2> chosen{base, base};
    for (int i = 0; i < mods.bridge_count; ++i) {
      const auto slot = slot_for(mods.bridge[i], family);
      if (!slot) return refusal(mods.bridge[i]);
      chosen[i] = *slot;
    }
    // The first names the side the SDP came from; the second, the side it goes to
    // (this command's own leg); alone, the first leaves the own leg internal.
    offer.facing_slot = chosen[0];
    offer.own_slot = mods.bridge_count == 2 ? chosen[1] : *slot_for(Side::internal, family);
    offer.explicit_slot = true;
  } else if (!l[base]) {
    return Error::no_family;
  }
  if (mods.local) {
    const auto it = std::find(l.begin(), l.end(), mods.local);
    if (it == l.end()) return Error::local_addr;
    offer.own_slot = static_cast<Slot>(it - l.begin());
    offer.explicit_slot = true;
    offer.named_address = true;
  }
  if (mods.route_to && !l[slot_of(mods.route_to->is_v6() ? Family::v6 : Family::v4, Side::internal)])
    return Error::route_addr;
  return std::nullopt;
}

std::optional<Error> Controller::resolve_notify(UpdateLookup& ul) const {
  const auto& targets = config_.notify_targets;
  // Kamailio glues "<socket>;<tag>" into the sixth token of a U without To-tag
  // (doc/protocol.md, Timeout notifications).
  if (!ul.notify_socket && !ul.to_tag.empty()) {
    for (const auto& t : targets) {
      if (ul.to_tag.size() > t.size() && ul.to_tag.compare(0, t.size(), t) == 0 && ul.to_tag[t.size()] == ';') {
        auto tag = url_decode(std::string_view(ul.to_tag).substr(t.size() + 1));
        if (!tag) return Error::notify_tag;
        ul.notify_socket = t;
        ul.notify_tag = std::move(*tag);
        ul.to_tag.clear();
        break;
      }
    }
  }
  if (ul.notify_socket && targets.empty()) return Error::notify_off;
  return std::nullopt;
}

std::string Controller::on(UpdateLookup& ul, Clock::time_point now, Effects& effects,
                           std::optional<SessionKey>& target) {
  // The bounds a peer's session must keep (session.h), so that what one
  // instance takes every instance takes.
  if (ul.call_id.size() > max_call_id || ul.from_tag.size() > max_tag || ul.to_tag.size() > max_tag ||
      (ul.mods.codecs && ul.mods.codecs->size() > max_codecs) || ul.notify_tag.size() > max_notify)
    return format_error(Error::syntax);
  Offer where;  // checked before the notify arguments, as rtpproxy does
  if (auto e = choose_slots(ul.mods, where)) return format_error(*e);
  if (ul.create) {
    if (auto e = resolve_notify(ul)) return format_error(*e);
  }
  Offer offer = offer_of(ul);
  offer.own_slot = where.own_slot;
  offer.facing_slot = where.facing_slot;
  offer.explicit_slot = where.explicit_slot;
  offer.named_address = where.named_address;
  offer.record = config_.record_all && config_.recording;
  bool notify_refused = false;
  if (ul.create && ul.notify_socket) {
    const auto& t = config_.notify_targets;
    if (std::find(t.begin(), t.end(), *ul.notify_socket) != t.end()) {
      offer.notify_target = *ul.notify_socket;
      offer.notify_tag = ul.notify_tag;
    } else {
      notify_refused = true;
    }
  }
  auto result = table_.update(offer, now);
  if (auto* f = std::get_if<OfferFailure>(&result)) {
    const Error e = f->error == OfferError::no_ports_session ? Error::no_ports_session : Error::no_ports_leg;
    const std::string code = format_error(e);
    effects.events.push_back({Level::warning,
                              std::string(ul.create ? "U" : "L") + " call-id=" + ul.call_id + " tag=" + ul.from_tag +
                                  ": " + code + ": " + shortage_text(f->why),
                              code + " " + shortage_text(f->why)});
    return code;
  }
  auto& r = std::get<OfferResult>(result);
  if (!r.found) return "0";  // L on an unknown call
  target = r.key;
  if (notify_refused)
    effects.events.push_back({Level::info, "notify socket " + *ul.notify_socket + " is not a --notify target; " +
                                               describe(r.key) + " will expire silently"});
  const char* what = r.created ? "created " : ul.create ? "updated " : "answered ";
  effects.events.push_back({Level::info, what + describe(r.key) + " port=" + std::to_string(r.port)});
  const auto& shown = config_.advertised[r.slot] ? config_.advertised[r.slot] : config_.local[r.slot];
  return format_port(r.port, shown);
}

std::string Controller::on(const Query& q, Clock::time_point now, std::optional<SessionKey>& target) {
  auto m = table_.find(q.call_id, q.from_tag, q.to_tag);
  if (!m) return format_error(Error::no_session);
  const Session& s = m->entry->session;
  target = s.key();
  const int side = 1 - m->side;
  const Counters in = m->entry->local.cluster_counters(side);  // what every instance that relayed it reported
  const Counters other = m->entry->local.cluster_counters(1 - side);
  auto value = [&](std::string_view name) -> std::string {
    if (name == "ttl") return std::to_string(table_.ttl_left(s, now).count());
    if (name == "npkts_ina") return std::to_string(in.received);
    if (name == "npkts_ino") return std::to_string(other.received);
    if (name == "nrelayed") return std::to_string(in.relayed + other.relayed);
    if (name == "ndropped") return std::to_string(in.dropped + other.dropped);
    // RTP analysis is not implemented (VF 20150420 and 20230424 answer 0): the names are
    // accepted so that scripts written for rtpproxy get a well-formed zero.
    if (name == "longest_ipi" || name.substr(0, 6) == "rtpa_j") return "0.000000";
    return "0";
  };
  static const std::vector<std::string> simple = {"ttl", "npkts_ina", "npkts_ino", "nrelayed", "ndropped"};
  const auto& names = q.counters.empty() ? simple : q.counters;
  std::string out;
  for (const auto& name : names) {
    if (!out.empty()) out += ' ';
    if (q.verbose) out += name + "=";
    out += value(name);
  }
  if (out.size() >= max_reply) return format_error(Error::query_too_big);
  return out;
}

std::string Controller::on(const Delete& d, Clock::time_point now, Effects& effects) {
  const auto n = table_.remove(d.call_id, d.from_tag, d.to_tag, d.weak, now);
  if (n == 0) return format_error(Error::no_session);
  effects.events.push_back({Level::info, "deleted call-id=" + d.call_id + " tag=" + d.from_tag + " (" +
                                             std::to_string(n) + " media line" + (n == 1 ? "" : "s") + ")"});
  return "0";
}

// P (man page: PLAYBACK): the first of the codecs with a prompt file plays towards the
// party of from_tag, count times (-1: until S; 0: only stops).
std::string Controller::on(const Play& p, Clock::time_point now) {
  auto m = table_.find(p.call_id, p.from_tag, p.to_tag);
  if (!m) return format_error(Error::no_session);
  if (p.count == 0) {
    table_.stop_play(p.call_id, p.from_tag, p.to_tag);
    return "0";
  }
  std::string list = p.codecs;
  if (list == "session") list = m->entry->session.legs[1 - m->side].codecs;  // what that party offered (c)
  if (list.empty()) return format_error(Error::ul_modifier);
  std::vector<std::uint8_t> pts;
  for (std::size_t at = 0; at <= list.size() && pts.size() < 32;) {
    const auto comma = std::min(list.find(',', at), list.size());
    int pt = -1;
    const auto [end, ec] = std::from_chars(list.data() + at, list.data() + comma, pt);
    if (ec == std::errc() && end == list.data() + comma && pt >= 0 && pt <= 127) pts.push_back(static_cast<std::uint8_t>(pt));
    at = comma + 1;
  }
  // A prompt is a file name in --prompts, never a path.
  const bool safe = !p.name.empty() && p.name.size() <= 200 && p.name[0] != '.' &&
                    std::none_of(p.name.begin(), p.name.end(), [](char ch) { return ch == '/' || is_control(ch); });
  const auto pt = config_.prompts && safe ? config_.prompts->find(p.name, pts) : std::nullopt;
  if (!pt) return format_error(Error::play_failed);
  // The first packet's numbers: different for every prompt, the same on every instance that continues it.
  const auto seed = std::hash<std::string>{}(p.call_id + '\n' + p.from_tag + '\n' + p.name) ^
                    static_cast<std::size_t>(now.time_since_epoch().count());
  Playback play;
  play.name = p.name;
  play.pt = *pt;
  play.count = p.count < 0 ? -1 : p.count;
  play.start = now;
  play.ssrc = static_cast<std::uint32_t>(seed);
  play.seq = static_cast<std::uint16_t>(seed >> 32);
  play.ts = static_cast<std::uint32_t>(seed >> 16);
  play.owner = config_.instance;
  table_.play(p.call_id, p.from_tag, p.to_tag, std::move(play));
  return "0";
}

std::string Controller::on(const Feature& f) const {
  if (f.date == feature_notify) return config_.notify_targets.empty() ? "0" : "1";
  if (f.date == "20071218") return config_.recording ? "1" : "0";  // R (and C): OpenSIPS then sends both
  return std::find(features.begin(), features.end(), f.date) != features.end() ? "1" : "0";
}

std::string Controller::on(const Stats& g) const {
  const auto& t = table_.stats();
  const std::array<std::pair<std::string_view, std::uint64_t>, 12> counters = {{
      {"nsess_created", t.created},
      {"nsess_destroyed", t.destroyed},
      {"nsess_timeout", t.timeouts},
      {"nsess_complete", t.completed},
      {"npkts_rcvd", t.packets_received},
      {"npkts_relayed", t.packets_relayed},
      {"npkts_discard", t.packets_dropped},
      {"ncmds_rcvd", stats_.received},
      {"ncmds_rcvd_ndups", stats_.duplicates},
      {"ncmds_succd", stats_.succeeded},
      {"ncmds_errs", stats_.errors},
      {"ncmds_repld", stats_.received + stats_.duplicates},
  }};
  std::string out;
  for (const auto& name : g.names) {
    auto it = std::find_if(counters.begin(), counters.end(), [&](const auto& c) { return c.first == name; });
    if (it == counters.end()) return format_error(Error::stats_counter);
    if (!out.empty()) out += ' ';
    if (g.verbose) out += name + "=";
    out += std::to_string(it->second);
    if (out.size() >= max_reply) return format_error(Error::stats_too_big);
  }
  return out;
}

std::string Controller::info() const {
  const auto& t = table_.stats();
  const auto active = table_.sessions().size();
  std::size_t local = 0;
  for (const auto& [key, e] : table_.sessions()) local += e.session.origin == table_.config().instance;
  // rtpproxy's lines first, as its parsers expect them; then local and synced apart.
  return "sessions created: " + std::to_string(t.created) + "\nactive sessions: " + std::to_string(active) +
         "\nactive streams: " + std::to_string(2 * active) + "\npackets received: " +
         std::to_string(t.packets_received) + "\npackets transmitted: " + std::to_string(t.packets_relayed) +
         "\nunbound legs: " + std::to_string(table_.unbound_legs()) + "\nsessions created here: " +
         std::to_string(t.created_local) + "\nsessions synced from peers: " + std::to_string(t.created - t.created_local) +
         "\nactive local sessions: " + std::to_string(local) + "\nactive synced sessions: " +
         std::to_string(active - local) + "\npackets forwarded by the kernel: " + std::to_string(t.packets_offloaded) +
         "\nparked legs: " + std::to_string(table_.parked_legs()) + "\nadopted legs: " + std::to_string(table_.adoptions()) +
         "\nhealth: " + health_;
}

}  // namespace anyrtpproxy
