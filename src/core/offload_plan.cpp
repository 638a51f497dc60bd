#include "core/offload_plan.h"

namespace anyrtpproxy {

std::optional<StreamForward> forward_of(const Session& s, const LocalState& local, int side, Kind kind,
                                        Clock::time_point now) {
  const Leg& in = s.legs[side];
  const Leg& out = s.legs[1 - side];
  if (in.port == 0 || out.port == 0 || !local.legs[0].bound || !local.legs[1].bound) return std::nullopt;
  if (family_of(in.slot) != family_of(out.slot)) return std::nullopt;  // IPv4 <-> IPv6: the daemon translates
  if (in.asymmetric || in.record || in.copy || out.play.active() || now < in.relatch_until) return std::nullopt;
  const Stream& src = in.stream(kind);
  const Stream& dst = out.stream(kind);
  if (!src.known || !src.learned || !dst.known) return std::nullopt;
  if (src.remote.port() == 0 || dst.remote.port() == 0) return std::nullopt;
  const auto rtcp = kind == Kind::rtcp ? 1 : 0;
  StreamForward f;
  f.from = src.remote;
  f.in_slot = in.slot;
  f.in_port = static_cast<std::uint16_t>(in.port + rtcp);
  f.out_slot = out.slot;
  f.out_port = static_cast<std::uint16_t>(out.port + rtcp);
  f.dest = dst.remote;
  return f;
}

}  // namespace anyrtpproxy
