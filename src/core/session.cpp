// session: see session.h.
#include "core/session.h"

namespace anyrtpproxy {

void Leg::prefill(const udp::endpoint& remote_rtp, Clock::time_point now) {
  if (rtp.known && rtp.remote != remote_rtp) relatch_until = now + relatch_window;
  signalled = remote_rtp;
  has_signalled = true;
  if (rtp.learned) return;  // a learned address beats signalling; only the window opens
  rtp.remote = remote_rtp;
  rtp.known = true;
  if (!rtcp.learned) {
    rtcp.remote = udp::endpoint(remote_rtp.address(), static_cast<unsigned short>(remote_rtp.port() + 1));
    rtcp.known = true;
  }
}

PacketInfo inspect(Kind kind, const unsigned char* data, std::size_t size) {
  PacketInfo info;
  const std::size_t minimum = kind == Kind::rtp ? 12 : 8;
  if (size < minimum || (data[0] >> 6) != 2) return info;
  info.valid = true;
  if (kind == Kind::rtp) {
    info.seq = static_cast<std::uint16_t>(data[2] << 8 | data[3]);
    info.ssrc = static_cast<std::uint32_t>(data[8]) << 24 | static_cast<std::uint32_t>(data[9]) << 16 |
                static_cast<std::uint32_t>(data[10]) << 8 | data[11];
  }
  return info;
}

namespace {
bool same_stream_moved(const Leg& leg, const PacketInfo& info) {
  if (!leg.have_ssrc || info.ssrc != leg.ssrc) return false;
  const auto ahead = static_cast<std::uint16_t>(info.seq - leg.seq);
  const auto behind = static_cast<std::uint16_t>(leg.seq - info.seq);
  return ahead <= relatch_max_seq_distance || behind <= relatch_max_seq_distance;
}
}  // namespace

Verdict judge_source(const Leg& leg, Kind kind, const udp::endpoint& from, const PacketInfo& info,
                     LatchPolicy policy, Clock::time_point now, Clock::time_point heard) {
  const Stream& s = leg.stream(kind);
  if (s.known && from == s.remote) return Verdict::forward;
  if (leg.asymmetric)  // fixed by signalling: that host, any port; never learned
    return s.known && from.address() == s.remote.address() ? Verdict::forward : Verdict::drop;
  if (!info.valid) return Verdict::drop;  // only a real RTP/RTCP header may move a leg
  switch (policy) {
    case LatchPolicy::always: return Verdict::learn;
    case LatchPolicy::never: return s.known ? Verdict::drop : Verdict::learn;
    case LatchPolicy::once:
      if (kind == Kind::rtcp)  // follows the RTP stream's host, never a host of its own
        return leg.rtp.known && from.address() == leg.rtp.remote.address() ? Verdict::learn : Verdict::drop;
      if (!s.learned) return Verdict::learn;
      if (leg.has_signalled && from == leg.signalled) return Verdict::learn;  // takes its leg over
      if (now < leg.relatch_until) return Verdict::learn;
      if (same_stream_moved(leg, info) && now - heard >= relatch_silence) return Verdict::learn;
      return Verdict::drop;
  }
  return Verdict::drop;
}

Counters LocalState::cluster_counters(int side) const {
  Counters c = legs[side].counters;
  for (const auto& p : peer_counters) {
    c.received += p.legs[side].received;
    c.relayed += p.legs[side].relayed;
    c.dropped += p.legs[side].dropped;
  }
  return c;
}

bool valid_record_name(std::string_view name) {
  if (name.empty() || name.size() > max_record_name || name[0] == '.') return false;
  for (const char c : name) {
    const bool alnum = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
    if (!alnum && std::string_view("-_.=+@%,~").find(c) == std::string_view::npos) return false;
  }
  return true;
}

bool tag_matches(const std::string& stored, const std::string& tag) {
  if (stored.size() < tag.size() || stored.compare(0, tag.size(), tag) != 0) return false;
  return stored.size() == tag.size() || stored[tag.size()] == ';';
}

}  // namespace anyrtpproxy
