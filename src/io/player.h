// player: P's prompts (man page: PLAYBACK). It is the controller's
// PromptLibrary: pre-encoded payload files "<name>.<pt>" in --prompts (as
// rtpproxy's makeann writes them: the codec's bytes, nothing else), read at
// the first P that names them and kept in memory (at most 32 MiB in all, a
// file at most 8 MiB). And it plays them: one timer on the relay thread's
// io_context ticks every 20 ms while any prompt plays, and each tick sends,
// for every playing leg, the packets due since the prompt began (real RTP:
// one SSRC, consecutive sequence numbers, timestamps 20 ms apart, the marker
// on the first) from the leg's own socket to its remote address. No thread,
// no timer per playback.
//
// In a cluster the playback travels with the session. Its owner plays it;
// when the owner is gone (not among the connected peers), the instance the
// timeout-notification rule picks (cluster.h) takes it over and continues at
// the packet due then, with the same SSRC and sequence.
#pragma once

#include "core/controller.h"
#include "io/relay_sockets.h"
#include "core/session_table.h"

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace anyrtpproxy {

class Logger;

class Player : public PromptLibrary {
public:
  using Peers = std::function<std::vector<std::string>()>;  // the instances connected now
  // `dir`: --prompts (empty: nothing plays); `changed`: after a playback ended or was taken over.
  Player(boost::asio::io_context& io, std::string dir, RelaySockets& sockets, PlaybackTable table, std::string self,
         Peers peers, std::function<void()> changed, Logger& log);
  std::optional<std::uint8_t> find(const std::string& name, const std::vector<std::uint8_t>& pts) override;
  void kick();  // a prompt may have started (a command, a peer): tick if not ticking
  void stop();
  std::uint64_t packets_sent() const { return packets_sent_; }

  static constexpr std::chrono::milliseconds frame{20};
  static constexpr std::size_t max_file = 8 << 20, max_cache = 32 << 20;
  static constexpr unsigned max_catch_up = 5;  // packets per leg and tick after a late tick

private:
  std::shared_ptr<const std::string> load(const std::string& name, std::uint8_t pt);
  void tick();

  std::string dir_;
  RelaySockets& sockets_;
  PlaybackTable table_;
  std::string self_;
  Peers peers_;
  std::function<void()> changed_;
  Logger& log_;
  boost::asio::steady_timer timer_;
  bool ticking_ = false;
  std::map<std::string, std::shared_ptr<const std::string>> cache_;  // "<name>.<pt>" -> payload bytes
  std::size_t cached_bytes_ = 0;
  struct Progress {
    Clock::time_point start;  // of the playback counted (a new P replaces it)
    std::uint64_t sent = 0;   // its packets sent (or skipped) here
    std::shared_ptr<const std::string> bytes;  // its prompt, looked up once, not at every tick
  };
  std::map<std::pair<SessionKey, int>, Progress> sent_;
  std::vector<unsigned char> packet_;
  std::uint64_t packets_sent_ = 0;
};

// Bytes and RTP clock ticks of 20 ms of a static payload type; nothing for
// one the player cannot pace (dynamic, or not frame-based).
std::optional<std::pair<std::size_t, std::uint32_t>> frame_of(std::uint8_t pt);

}  // namespace anyrtpproxy
