// sync_codec: see sync_codec.h.
#include "core/sync_codec.h"

#include "core/text.h"

#include <boost/archive/archive_exception.hpp>
#include <boost/archive/text_iarchive.hpp>
#include <boost/archive/text_oarchive.hpp>
#include <boost/serialization/string.hpp>

#include <charconv>
#include <sstream>

namespace anyrtpproxy {
namespace {

namespace ip = boost::asio::ip;
constexpr unsigned archive_flags = boost::archive::no_header | boost::archive::no_codecvt | boost::archive::no_tracking;

struct Limit : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// Writing and reading share one field list per type (serialize below), as
// Boost.Serialization's free functions do; these helpers keep every field a
// primitive or a checked string.
struct Out {
  boost::archive::text_oarchive& ar;
  Clock::time_point now;
  unsigned version;  // written: the peer's
  template <class T> void num(const T& v) { ar << v; }
  void flag(const bool& v) { ar << v; }
  void str(const std::string& s) { ar << s; }  // Boost writes "<size> <bytes>": readable on the sync port
  void age(const Clock::time_point& t) {  // milliseconds before now; -1 for "never"
    const std::int64_t ms = t == Clock::time_point{} ? -1
        : std::max<std::int64_t>(0, std::chrono::duration_cast<std::chrono::milliseconds>(now - t).count());
    ar << ms;
  }
  void until(const Clock::time_point& t) {  // milliseconds from now; 0 for "passed"
    const std::int64_t ms = t <= now ? 0 : std::chrono::duration_cast<std::chrono::milliseconds>(t - now).count();
    ar << ms;
  }
};

struct In {
  boost::archive::text_iarchive& ar;
  std::istream& is;  // the archive's stream
  Clock::time_point now;
  unsigned version;  // of the frame being read
  template <class T> void num(T& v) { ar >> v; }
  void flag(bool& v) { ar >> v; }
  // Boost's own string loader resizes to whatever size the input claims before
  // reading a byte: a crafted "4000000000" would allocate gigabytes. This reads
  // the same "<size> <bytes>" layout, checking the size first.
  void str(std::string& s) {
    std::size_t n = 0;
    ar >> n;
    if (n > sync_max_string) throw Limit("a string of " + std::to_string(n) + " bytes");
    is.get();  // the separating space
    s.assign(n, '\0');
    if (n && !is.read(s.data(), static_cast<std::streamsize>(n))) throw Limit("a truncated string");
  }
  void age(Clock::time_point& t) {
    std::int64_t ms = 0;
    ar >> ms;
    if (ms < -1 || ms > 10LL * 365 * 24 * 3600 * 1000) throw Limit("an age of " + std::to_string(ms) + " ms");
    t = ms < 0 ? Clock::time_point{} : now - std::chrono::milliseconds(ms);
  }
  void until(Clock::time_point& t) {
    std::int64_t ms = 0;
    ar >> ms;
    if (ms < 0 || ms > 3600 * 1000) throw Limit("a window of " + std::to_string(ms) + " ms");
    t = ms == 0 ? Clock::time_point{} : now + std::chrono::milliseconds(ms);
  }
};

template <class IO, class A>
void address(IO& io, A& a) {
  std::string text;
  if constexpr (std::is_same_v<IO, Out>) text = a.to_string();
  io.str(text);
  if constexpr (std::is_same_v<IO, In>) {
    if (text.size() > 64) throw Limit("an address of " + std::to_string(text.size()) + " bytes");
    boost::system::error_code ec;
    a = ip::make_address(text, ec);
    if (ec) throw Limit("a bad address");
  }
}

template <class IO, class E>
void endpoint(IO& io, E& ep) {
  ip::address a = ep.address();
  std::uint16_t port = ep.port();
  address(io, a);
  io.num(port);
  if constexpr (std::is_same_v<IO, In>) ep = udp::endpoint(a, port);
}

template <class IO, class StreamT>
void serialize(IO& io, StreamT& s) {
  endpoint(io, s.remote);
  io.flag(s.known);
  io.flag(s.learned);
}

template <class IO, class LegT>
void serialize_leg(IO& io, LegT& leg) {
  io.num(leg.port);
  serialize(io, leg.rtp);
  serialize(io, leg.rtcp);
  io.flag(leg.asymmetric);
  io.flag(leg.hold);
  io.flag(leg.weak);
  io.str(leg.codecs);
  io.flag(leg.have_ssrc);
  io.num(leg.ssrc);
  io.num(leg.seq);
  io.until(leg.relatch_until);
  io.str(leg.owner);
  if (io.version >= 2) {
    endpoint(io, leg.signalled);
    io.flag(leg.has_signalled);
  }
  if (io.version >= 3) {
    std::uint16_t slot = leg.slot;  // a number in the archive, not a character
    io.num(slot);
    if constexpr (std::is_same_v<IO, In>) {
      if (slot >= slot_count) throw Limit("an unknown relay address slot " + std::to_string(slot));
      leg.slot = static_cast<Slot>(slot);
    }
    io.flag(leg.record);
    io.flag(leg.copy);
    endpoint(io, leg.copy_to);
    io.str(leg.play.name);
    std::uint16_t pt = leg.play.pt;  // numbers in the archive, not characters
    io.num(pt);
    io.num(leg.play.count);
    io.age(leg.play.start);
    io.num(leg.play.ssrc);
    io.num(leg.play.ts);
    io.num(leg.play.seq);
    io.str(leg.play.owner);
    if constexpr (std::is_same_v<IO, In>) {
      if (pt > 127) throw Limit("a payload type of " + std::to_string(pt));
      leg.play.pt = static_cast<std::uint8_t>(pt);
    }
  }
}

template <class IO, class SessionT>
void serialize_session(IO& io, SessionT& s) {
  io.str(s.call_id);
  io.str(s.from_tag);
  io.str(s.to_tag);
  std::uint16_t family = static_cast<std::uint16_t>(s.family);
  io.num(family);
  if constexpr (std::is_same_v<IO, In>) {
    if (family > 1) throw Limit("an unknown address family");
    s.family = static_cast<Family>(family);
  }
  serialize_leg(io, s.legs[0]);
  serialize_leg(io, s.legs[1]);
  if constexpr (std::is_same_v<IO, In>) {
    if (io.version < 3)  // before bridge mode: both legs on the session family's address
      for (auto& leg : s.legs) leg.slot = slot_of(s.family, Side::internal);
  }
  io.age(s.created);
  io.age(s.last_active);
  io.flag(s.strong);
  io.str(s.notify_target);
  io.str(s.notify_tag);
  if (io.version >= 4) {
    io.str(s.record_name);
    if constexpr (std::is_same_v<IO, In>) {
      if (!s.record_name.empty() && !valid_record_name(s.record_name)) throw Limit("a bad recording name");
    }
  }
  io.str(s.origin);
  io.num(s.version);
  io.str(s.changed_by);
}

template <class IO, class HelloT>
void serialize_hello(IO& io, HelloT& h) {
  io.str(h.instance);
  io.num(h.port_min);
  io.num(h.port_max);
  io.num(h.sessions);
  if (io.version >= 6) {
    std::uint32_t n = static_cast<std::uint32_t>(h.addresses.size());
    io.num(n);
    if constexpr (std::is_same_v<IO, In>) {
      if (n > slot_count) throw Limit("a list of " + std::to_string(n) + " relay addresses");
      h.addresses.resize(n);
    }
    for (auto& [slot, a] : h.addresses) {
      std::uint16_t s = slot;  // a number in the archive, not a character
      io.num(s);
      if constexpr (std::is_same_v<IO, In>) {
        if (s >= slot_count) throw Limit("a relay address at slot " + std::to_string(s));
        slot = static_cast<Slot>(s);
      }
      address(io, a);
    }
  }
  if (io.version >= 7) {
    std::uint16_t oldest = static_cast<std::uint16_t>(h.oldest);
    io.num(oldest);
    if constexpr (std::is_same_v<IO, In>) {
      if (oldest == 0 || oldest > io.version) throw Limit("an oldest wire version of " + std::to_string(oldest));
      h.oldest = oldest;
    }
  }
}

template <class IO, class TombstoneT>
void serialize_tombstone(IO& io, TombstoneT& t) {
  io.str(t.call_id);
  io.str(t.from_tag);
  io.num(t.version);
  io.str(t.changed_by);
  io.flag(t.expired);
}

template <class IO, class CountersT>
void serialize_counters(IO& io, CountersT& c) {
  io.num(c.received);
  io.num(c.relayed);
  io.num(c.dropped);
}

template <class IO, class ActivityT>
void serialize_activity(IO& io, ActivityT& a) {
  io.str(a.instance);
  std::uint32_t n = static_cast<std::uint32_t>(a.entries.size());
  io.num(n);
  if constexpr (std::is_same_v<IO, In>) {
    if (n > sync_max_activity) throw Limit("an activity list of " + std::to_string(n) + " entries");
    a.entries.resize(n);
  }
  for (auto& e : a.entries) {
    io.str(e.key.call_id);
    io.str(e.key.from_tag);
    io.num(e.idle);
    serialize_counters(io, e.counters[0]);
    serialize_counters(io, e.counters[1]);
    if (io.version >= 2) {
      std::uint16_t unbound = e.unbound;  // a number in the archive, not a character
      io.num(unbound);
      if constexpr (std::is_same_v<IO, In>) {
        if (unbound > 3) throw Limit("an unbound-legs mask of " + std::to_string(unbound));
        e.unbound = static_cast<std::uint8_t>(unbound);
      }
    }
  }
  if (io.version >= 5) {
    std::uint16_t has = a.capacity.has_value();
    io.num(has);
    if constexpr (std::is_same_v<IO, In>) {
      if (has > 1) throw Limit("a capacity flag of " + std::to_string(has));
      if (has) a.capacity.emplace();
    }
    if (has) {
      auto& c = *a.capacity;
      std::uint16_t healthy = c.healthy;
      io.num(c.headroom_legs);
      io.num(c.relayed_legs);
      io.num(c.parked_legs);
      io.num(healthy);
      if constexpr (std::is_same_v<IO, In>) {
        if (healthy > 1) throw Limit("a health flag of " + std::to_string(healthy));
        c.healthy = healthy != 0;
      }
      if (io.version >= 7) {
        io.str(c.state);
        if constexpr (std::is_same_v<IO, In>) {
          if (c.state != "healthy" && c.state != "unhealthy" && c.state != "syncing" && c.state != "draining")
            throw Limit("a serving state '" + printable(c.state) + "'");
        }
      }
    }
  }
}

std::string frame(unsigned version, std::string_view kind, const std::string& payload, const std::string& summary) {
  std::string out = "F " + std::to_string(version) + " " + std::string(kind) + " " +
                    std::to_string(payload.size()) + " " + summary + "\n";
  out += payload;
  out += "\n";
  return out;
}

std::string where(const Stream& st) {
  if (!st.known) return "-";
  return endpoint_text(st.remote) + (st.learned ? "(learned)" : "");
}

template <class Write>
std::string archive(Write&& write) {
  std::ostringstream os;
  {
    boost::archive::text_oarchive ar(os, archive_flags);
    write(ar);
  }
  return os.str();
}

template <class T>
bool to_num(std::string_view s, T& out) {
  const auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
  return !s.empty() && ec == std::errc() && p == s.data() + s.size();
}

}  // namespace

std::optional<unsigned> hello_line_version(std::string_view line, std::string& why) {
  // "P <version> <instance>"
  std::string_view rest = line.substr(std::min<std::size_t>(2, line.size()));
  const std::string_view field = rest.substr(0, rest.find(' '));
  unsigned version = 0;
  if (line.substr(0, 2) != "P " || !to_num(field, version) || version == 0) {
    why = "a peer's hello that names no sync wire version";
    return std::nullopt;
  }
  if (version < sync_oldest_wire_version) {
    why = "a peer that speaks sync wire version " + std::to_string(version) + "; this release speaks " +
          std::to_string(sync_oldest_wire_version) + " to " + std::to_string(sync_wire_version) +
          ": upgrade that instance (man anyrtpproxy, UPGRADING)";
    return std::nullopt;
  }
  return version;
}

std::string encode(const SyncHello& hello, unsigned version) {
  SyncHello h = hello;
  if (version >= 7 && h.oldest == 0) h.oldest = sync_oldest_wire_version;
  const auto payload = archive([&](auto& ar) {
    Out io{ar, {}, version};
    serialize_hello(io, h);
  });
  return frame(version, "hello", payload, "instance=" + printable(h.instance) + " ports=" + std::to_string(h.port_min) + "-" +
                                     std::to_string(h.port_max) + " sessions=" + std::to_string(h.sessions));
}

std::string encode(const Session& s, Clock::time_point now, unsigned version) {
  const auto payload = archive([&](auto& ar) {
    Out io{ar, now, version};
    serialize_session(io, s);
  });
  return frame(version, "upsert", payload, "call-id=" + printable(s.call_id) + " tag=" + printable(s.from_tag) + " version=" +
                                      std::to_string(s.version) + " by=" + printable(s.changed_by));
}

std::string encode(const Tombstone& t, unsigned version) {
  const auto payload = archive([&](auto& ar) {
    Out io{ar, {}, version};
    serialize_tombstone(io, t);
  });
  return frame(version, "remove", payload, "call-id=" + printable(t.call_id) + " tag=" + printable(t.from_tag) +
                                      (t.expired ? " expired" : " deleted") + " by=" + printable(t.changed_by));
}

std::string encode(const SyncActivity& activity, unsigned version) {
  SyncActivity a = activity;
  if (version >= 7 && a.capacity && a.capacity->state.empty())
    a.capacity->state = a.capacity->healthy ? "healthy" : "unhealthy";
  const auto payload = archive([&](auto& ar) {
    Out io{ar, {}, version};
    serialize_activity(io, a);
  });
  return frame(version, "activity", payload,
               "instance=" + printable(a.instance) + " sessions=" + std::to_string(a.entries.size()) +
                   (a.capacity ? " headroom=" + std::to_string(a.capacity->headroom_legs) : ""));
}

namespace {
// What R, C and P added to a session, for the listing: "recording=NAME"
// (the file's base name), "copy-to=ADDR:PORT", "playing=PROMPT".
std::string extras(const Session& s) {
  std::string out;
  if (s.legs[0].record || s.legs[1].record)
    out += " recording=" + (s.record_name.empty() ? std::string("call-id=tag") : s.record_name);
  for (const auto& l : s.legs) {
    if (l.copy) out += " copy-to=" + l.copy_to.address().to_string() + ":" + std::to_string(l.copy_to.port());
    if (l.play.active()) out += " playing=" + printable(l.play.name, 64);
  }
  return out;
}
}  // namespace

std::string listing_line(const Session& s, const LocalState& local, Clock::time_point now,
                         std::chrono::seconds ttl_left) {
  using std::chrono::duration_cast;
  using std::chrono::seconds;
  const auto semi = s.from_tag.rfind(';');
  const std::string media = semi == std::string::npos ? "1" : s.from_tag.substr(semi + 1);
  auto leg = [&](const char* name, int side) {
    const Leg& l = s.legs[side];
    const LegLocal& here = local.legs[side];
    std::string elsewhere;  // the peers that reported this leg unbound there
    for (const auto& p : local.peer_counters)
      if (p.unbound >> side & 1) elsewhere += (elsewhere.empty() ? "" : ",") + printable(p.instance, 64);
    return std::string(" ") + name + "=" + (l.port ? std::to_string(l.port) : "-") +
           (l.port && side_of(l.slot) == Side::external ? "@external" : "") +  // bridge mode
           (l.port && address_index(l.slot) > 0 ? "#" + std::to_string(address_index(l.slot) + 1) : "") +  // -i A1,A2
           (l.port && !here.bound ? "(unbound)" : "") + (elsewhere.empty() ? "" : "(unbound at " + elsewhere + ")") +
           " " + name + "-remote=" + where(l.rtp) + " " + name +
           "-pkts=" + std::to_string(here.counters.received) + "/" + std::to_string(here.counters.relayed) + "/" +
           std::to_string(here.counters.dropped);
  };
  return "S call-id=" + printable(s.call_id) + " media=" + printable(media) + " from-tag=" + printable(s.from_tag) +
         " to-tag=" + printable(s.to_tag) + " state=" + (s.complete() ? "answered" : "offered") +
         " age=" + std::to_string(duration_cast<seconds>(now - s.created).count()) + "s idle=" +
         std::to_string(duration_cast<seconds>(now - s.last_active).count()) + "s ttl=" +
         std::to_string(ttl_left.count()) + "s" + leg("callee", 0) + leg("caller", 1) + extras(s) +
         " origin=" + printable(s.origin) + "\n";
}

std::variant<SyncMessage, SyncError> decode(unsigned version, std::string_view kind, std::string_view payload,
                                            Clock::time_point now) {
  if (version > sync_wire_version)
    return SyncError{"a frame of sync wire version " + std::to_string(version) + ", newer than ours (" +
                     std::to_string(sync_wire_version) + "); upgrade this instance"};
  if (version == 0) return SyncError{"a frame of sync wire version 0"};
  try {
    std::istringstream is{std::string(payload)};
    boost::archive::text_iarchive ar(is, archive_flags);
    In io{ar, is, now, version};
    if (kind == "hello") {
      SyncHello h;
      serialize_hello(io, h);
      return SyncMessage{std::move(h)};
    }
    if (kind == "upsert") {
      Session s;
      serialize_session(io, s);
      if (s.call_id.empty() || s.from_tag.empty()) return SyncError{"a session without call-id or tag"};
      return SyncMessage{std::move(s)};
    }
    if (kind == "remove") {
      Tombstone t;
      serialize_tombstone(io, t);
      return SyncMessage{std::move(t)};
    }
    if (kind == "activity") {
      SyncActivity a;
      serialize_activity(io, a);
      return SyncMessage{std::move(a)};
    }
    return SyncError{"an unknown frame kind '" + printable(std::string(kind), 32) + "'"};
  } catch (const Limit& e) {
    return SyncError{std::string("a frame with ") + e.what()};
  } catch (const boost::archive::archive_exception& e) {
    return SyncError{std::string("an undecodable frame: ") + e.what()};
  } catch (const std::bad_alloc&) {
    return SyncError{"a frame that asked for too much memory"};
  } catch (const std::exception& e) {  // length_error, ios failures: hostile or broken input
    return SyncError{std::string("an undecodable frame: ") + e.what()};
  }
}

bool FrameReader::feed(std::string_view bytes) {
  if (!error_.empty()) return false;
  if (used_ > 0) {  // drop what was consumed before growing
    buffer_.erase(0, used_);
    used_ = 0;
  }
  // The caller drains next() after every feed, so more than one maximal frame
  // of unparsed bytes means a peer that is not speaking our protocol.
  if (buffer_.size() + bytes.size() > sync_max_payload + 2 * sync_max_line) {
    error_ = "more than a maximal frame of unparsed data";
    return false;
  }
  buffer_.append(bytes);
  return true;
}

std::optional<std::variant<SyncMessage, SyncError>> FrameReader::next(Clock::time_point now) {
  auto fail = [&](std::string what) -> std::optional<std::variant<SyncMessage, SyncError>> {
    if (error_.empty()) error_ = std::move(what);
    return std::variant<SyncMessage, SyncError>(SyncError{error_});
  };
  if (!error_.empty()) return fail(error_);
  for (;;) {
    const std::string_view rest = std::string_view(buffer_).substr(used_);
    const auto eol = rest.find('\n');
    if (eol == std::string_view::npos) {
      if (rest.size() > sync_max_line) return fail("a line longer than " + std::to_string(sync_max_line) + " bytes");
      return std::nullopt;
    }
    if (eol > sync_max_line) return fail("a line longer than " + std::to_string(sync_max_line) + " bytes");
    const std::string_view line = rest.substr(0, eol);
    if (line.empty() || line[0] == '#' || line.substr(0, 2) == "S ") {  // the listing: for people
      if (line.substr(0, sync_refusal.size()) == sync_refusal)
        refusal_ = printable(std::string(line.substr(sync_refusal.size(), 300)));
      used_ += eol + 1;
      continue;
    }
    if (line.substr(0, 2) != "F ") return fail("a line that is neither listing nor frame");
    // F <version> <kind> <length> <summary>
    std::string_view f = line.substr(2);
    std::string_view fields[3];
    for (auto& field : fields) {
      const auto sp = f.find(' ');
      field = f.substr(0, sp);
      f = sp == std::string_view::npos ? std::string_view() : f.substr(sp + 1);
    }
    unsigned version = 0;
    std::size_t length = 0;
    if (!to_num(fields[0], version) || fields[1].empty() || !to_num(fields[2], length))
      return fail("a malformed frame header");
    if (length > sync_max_payload) return fail("a frame of " + std::to_string(length) + " bytes");
    if (rest.size() < eol + 1 + length + 1) return std::nullopt;  // wait for the payload
    const std::string_view payload = rest.substr(eol + 1, length);
    if (rest[eol + 1 + length] != '\n') return fail("a frame whose length does not match its payload");
    used_ += eol + 1 + length + 1;
    auto decoded = decode(version, fields[1], payload, now);
    if (auto* e = std::get_if<SyncError>(&decoded)) return fail(e->what);
    last_version_ = version;
    return decoded;
  }
}

}  // namespace anyrtpproxy
