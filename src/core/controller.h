// controller: applies parsed control commands to the session table and builds
// the replies; owns the cookie -> reply cache that makes UDP retransmissions
// harmless (doc/protocol.md, Retransmissions).
//
// Pure: no sockets, no clock reads, no logging. What the daemon should log is
// returned as text in Effects; the I/O layer decides where it goes.
#pragma once

#include "core/event.h"
#include "core/protocol.h"
#include "core/session_table.h"

#include <boost/asio/ip/address.hpp>

#include <array>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace anyrtpproxy {

// The prompts P can play (--prompts), as the controller sees them: the first
// payload type of `pts` for which "<name>.<pt>" exists and can be played.
// The I/O layer implements it (player.h), as the data plane implements PortBinder.
class PromptLibrary {
public:
  virtual ~PromptLibrary() = default;
  virtual std::optional<std::uint8_t> find(const std::string& name, const std::vector<std::uint8_t>& pts) = 0;
};

struct ControllerConfig {
  // Relay address per slot (session.h: family and side); nullopt: not served.
  // An unspecified address (0.0.0.0) binds the wildcard and replies carry the port only.
  std::array<std::optional<boost::asio::ip::address>, slot_count> local;
  // -A: the address a reply names for a slot instead of its bound one (1:1 NAT).
  std::array<std::optional<boost::asio::ip::address>, slot_count> advertised;
  std::vector<std::string> notify_targets;  // --notify, as written
  bool recording = false;   // --record-dir: R and N work (else R answers E50)
  bool record_all = false;  // --record-all: every new session is recorded
  PromptLibrary* prompts = nullptr;  // --prompts; none: P answers E60
  std::string instance;              // this instance's name: it plays what its P started
  std::size_t reply_cache_entries = 65536;   // per generation
  std::size_t reply_cache_bytes = 16 << 20;  // both generations together (keys, replies, bookkeeping)
  std::chrono::seconds reply_cache_age{40};  // a generation's lifetime: entries live 40-80 s
};

struct Effects {
  std::vector<Event> events;  // one line per session event, for the log
};

struct CommandStats {
  std::uint64_t received = 0, duplicates = 0, succeeded = 0, errors = 0;
  // Executed commands by letter (command_letter: '?' for none) and result
  // (ok_result, else the E-code). Bounded: 14 letters times the codes of Error.
  static constexpr int ok_result = -1;
  std::map<std::pair<char, int>, std::uint64_t> results;
};

class Controller {
public:
  Controller(CommandTable table, ControllerConfig config);

  // A UDP datagram: "<cookie> <command>"; the reply carries the cookie and ends in "\n".
  // `source` identifies the sender for the reply cache (its address and port).
  std::string handle_datagram(std::string_view datagram, const std::string& source, Clock::time_point now,
                              Effects& effects);
  // A stream/unix command without cookie; the reply ends in "\n".
  std::string handle_text(std::string_view text, Clock::time_point now, Effects& effects);
  // The reply to a datagram the boundary could not handle (too long, an exception).
  std::string error_datagram(std::string_view datagram, Error e);

  const CommandStats& stats() const { return stats_; }
  void set_notify_targets(std::vector<std::string> targets) { config_.notify_targets = std::move(targets); }  // SIGHUP
  std::size_t cache_entries() const { return cache_now_.size() + cache_old_.size(); }
  std::size_t cache_bytes() const { return cache_now_bytes_ + cache_old_bytes_; }

  // I's "health:" line: healthy, or the state and why (core/serving.h).
  void set_health(std::string text) { health_ = std::move(text); }

private:
  std::string execute(std::string_view text, Clock::time_point now, Effects& effects);
  std::string run(ParseResult& parsed, Clock::time_point now, Effects& effects);  // handlers read it, never move from it
  std::string on(UpdateLookup& ul, Clock::time_point now, Effects& effects, std::optional<SessionKey>& target);
  std::string on(const Query& q, Clock::time_point now, std::optional<SessionKey>& target);
  std::string on(const Delete& d, Clock::time_point now, Effects& effects);
  std::string on(const Stats& g) const;
  std::string on(const Play& p, Clock::time_point now);
  std::string on(const Feature& f) const;
  std::string info() const;
  std::optional<Error> choose_slots(const UlModifiers& mods, Offer& offer) const;
  std::optional<Slot> slot_for(Side side, Family family) const;
  bool bridge_mode() const;
  std::optional<Error> resolve_notify(UpdateLookup& ul) const;

  const std::string* cached(const std::string& key) const;
  void remember(std::string key, const std::string& reply, Clock::time_point now);

  CommandTable table_;
  ControllerConfig config_;
  CommandStats stats_;
  std::unordered_map<std::string, std::string> cache_now_, cache_old_;
  std::size_t cache_now_bytes_ = 0, cache_old_bytes_ = 0;
  std::string health_ = "syncing";  // set_health()
  Clock::time_point cache_started_{};
};

}  // namespace anyrtpproxy
