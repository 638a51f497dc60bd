// player: see player.h.
#include "io/player.h"

#include "core/cluster.h"
#include "io/log.h"

#include <sys/socket.h>

#include <cstring>
#include <fstream>
#include <iterator>
#include <optional>

namespace anyrtpproxy {

std::optional<std::pair<std::size_t, std::uint32_t>> frame_of(std::uint8_t pt) {
  switch (pt) {
    case 0:  // PCMU
    case 8:  // PCMA
    case 9:  // G.722 (its RTP clock is 8000 by RFC 3551's rule)
      return std::make_pair(std::size_t{160}, 160u);
    case 3:  // GSM
      return std::make_pair(std::size_t{33}, 160u);
    case 18:  // G.729
      return std::make_pair(std::size_t{20}, 160u);
    default:
      return std::nullopt;
  }
}

Player::Player(boost::asio::io_context& io, std::string dir, RelaySockets& sockets, PlaybackTable table,
               std::string self, Peers peers, std::function<void()> changed, Logger& log)
    : dir_(std::move(dir)), sockets_(sockets), table_(table), self_(std::move(self)), peers_(std::move(peers)),
      changed_(std::move(changed)), log_(log), timer_(io), packet_(12 + 1600) {}

std::shared_ptr<const std::string> Player::load(const std::string& name, std::uint8_t pt) {
  const std::string file = name + "." + std::to_string(pt);
  if (auto it = cache_.find(file); it != cache_.end()) return it->second;
  if (dir_.empty()) return nullptr;
  std::ifstream in(dir_ + "/" + file, std::ios::binary);
  if (!in) return nullptr;
  std::string bytes;
  bytes.reserve(64 * 1024);
  char chunk[16384];
  while (in.read(chunk, sizeof chunk) || in.gcount() > 0) {
    bytes.append(chunk, static_cast<std::size_t>(in.gcount()));
    if (bytes.size() > max_file) {
      log_.warning("prompt " + dir_ + "/" + file + " is larger than 8 MiB; not played");
      return nullptr;
    }
  }
  if (bytes.size() < frame_of(pt)->first) return nullptr;  // not one packet's worth
  if (cached_bytes_ + bytes.size() > max_cache) {  // full: forget every prompt not playing now
    cache_.clear();
    cached_bytes_ = 0;
  }
  cached_bytes_ += bytes.size();
  return cache_.emplace(file, std::make_shared<const std::string>(std::move(bytes))).first->second;
}

std::optional<std::uint8_t> Player::find(const std::string& name, const std::vector<std::uint8_t>& pts) {
  for (const auto pt : pts)
    if (frame_of(pt) && load(name, pt)) return pt;
  return std::nullopt;
}

void Player::kick() {
  if (ticking_ || table_.playing().empty()) return;
  ticking_ = true;
  timer_.expires_after(std::chrono::milliseconds(0));
  timer_.async_wait([this](boost::system::error_code ec) {
    if (!ec) tick();
  });
}

void Player::stop() {
  timer_.cancel();
  ticking_ = false;
}

void Player::tick() {
  const auto now = Clock::now();
  std::optional<std::vector<std::string>> peers;  // asked only about another instance's prompt
  bool changed = false;
  std::vector<std::pair<SessionKey, int>> done;
  for (const auto& [key, side] : table_.playing()) {
    const SessionTable::Entry* e = table_.at(key);
    if (!e) continue;
    const Leg& leg = e->session.legs[side];
    const Playback& p = leg.play;
    if (!p.owner.empty() && p.owner != self_) {
      if (!peers) peers = peers_();
      if (!sends_timeout_notification(p.owner, self_, *peers)) {  // another instance plays it
        sent_.erase({key, side});
        continue;
      }
    }
    const auto unit = frame_of(p.pt);  // bytes and clock ticks of one packet
    const auto known = sent_.find({key, side});
    std::shared_ptr<const std::string> bytes =
        known != sent_.end() && known->second.start == p.start ? known->second.bytes : nullptr;
    if (!bytes && unit) bytes = load(p.name, p.pt);
    if (!bytes) continue;  // not here (a peer's prompt this instance lacks): it stays silent
    const std::uint64_t frames = bytes->size() / unit->first;
    const std::uint64_t total = p.count < 0 ? UINT64_MAX : static_cast<std::uint64_t>(p.count) * frames;
    const std::uint64_t due = now < p.start ? 0 : static_cast<std::uint64_t>((now - p.start) / frame) + 1;
    auto [it, fresh] = sent_.try_emplace({key, side}, Progress{p.start, 0, nullptr});
    std::uint64_t& sent = it->second.sent;
    if (p.owner != self_) {  // the owner is gone: continue from what is due now
      log_.notice("playing prompt " + p.name + " for call-id=" + key.call_id + " tag=" + key.from_tag +
                  " (taken over from " + p.owner + ")");
      table_.take_over_play(key, side, self_);
      changed = true;
      sent = due > 0 ? due - 1 : 0;
    } else if (it->second.start != p.start) {  // a new P on this leg: from its first packet
      it->second = Progress{p.start, 0, nullptr};
    } else if (fresh && due > 10) {
      sent = due - 1;  // picked up long after it began (a restart): no burst of what was missed
    }
    it->second.bytes = bytes;
    if (sent >= total) {
      done.emplace_back(key, side);
      continue;
    }
    int fd = sockets_.fd(leg.slot, leg.port);
    if (fd < 0 && table_.adopt(leg.slot, leg.port) == BindResult::bound)  // a parked leg (catch_all.h) plays from here now
      fd = sockets_.fd(leg.slot, leg.port);
    for (unsigned n = 0; sent < std::min(due, total) && n < max_catch_up; ++n, ++sent) {
      const std::uint64_t k = sent;
      if (fd < 0 || !leg.rtp.known) continue;  // nowhere to send it: the prompt still runs its time
      unsigned char* h = packet_.data();
      h[0] = 0x80;
      h[1] = static_cast<unsigned char>((k == 0 ? 0x80 : 0) | p.pt);
      const auto seq = static_cast<std::uint16_t>(p.seq + k);
      const auto ts = static_cast<std::uint32_t>(p.ts + k * unit->second);
      h[2] = static_cast<unsigned char>(seq >> 8);
      h[3] = static_cast<unsigned char>(seq);
      for (int b = 0; b < 4; ++b) {
        h[4 + b] = static_cast<unsigned char>(ts >> (24 - 8 * b));
        h[8 + b] = static_cast<unsigned char>(p.ssrc >> (24 - 8 * b));
      }
      std::memcpy(h + 12, bytes->data() + (k % frames) * unit->first, unit->first);
      if (::sendto(fd, h, 12 + unit->first, MSG_DONTWAIT, leg.rtp.remote.data(),
                   static_cast<socklen_t>(leg.rtp.remote.size())) > 0)
        ++packets_sent_;
    }
  }
  for (const auto& [key, side] : done) {  // played count times: the leg relays again
    table_.finish_play(key, side);
    sent_.erase({key, side});
    changed = true;
  }
  for (auto it = sent_.begin(); it != sent_.end();)  // stopped (S), deleted, replaced elsewhere
    it = table_.playing().count(it->first) ? std::next(it) : sent_.erase(it);
  if (changed && changed_) changed_();
  ticking_ = false;
  if (table_.playing().empty()) return;
  ticking_ = true;
  timer_.expires_after(frame);
  timer_.async_wait([this](boost::system::error_code ec) {
    if (!ec) tick();
  });
}

}  // namespace anyrtpproxy
