// Test doubles shared by the unit tests.
#pragma once

#include "core/session_table.h"

#include <set>
#include <utility>

namespace anyrtpproxy::test {

inline const Clock::time_point t0 = Clock::time_point() + std::chrono::hours(1);
inline udp::endpoint ep(const char* a, unsigned short p) {
  return udp::endpoint(boost::asio::ip::make_address(a), p);
}

// Records what the table opened; refuses ports listed in `busy` as a taken port
// would, and every port once `descriptors` open sockets are held (a file limit).
// The internal (or only) slot of a family: where legs go without bridge mode.
constexpr Slot at(Family f) { return slot_of(f, Side::internal); }

struct FakeBinder : PortBinder {
  std::set<std::pair<Slot, std::uint16_t>> open_ports;
  std::set<std::uint16_t> busy;
  std::size_t descriptors = static_cast<std::size_t>(-1);
  std::size_t attempts = 0;
  BindResult open(Slot f, std::uint16_t p) override {
    ++attempts;
    if (open_ports.size() >= descriptors) return BindResult::no_descriptors;
    if (busy.count(p)) return BindResult::taken;
    open_ports.insert({f, p});
    return BindResult::bound;
  }
  void close(Slot f, std::uint16_t p) override { open_ports.erase({f, p}); }
  // With `parking`, a catch-all path (catch_all.h) takes peers' legs.
  bool parking = false;
  std::set<std::pair<Slot, std::uint16_t>> parked;
  bool park(Slot f, std::uint16_t p) override { return parking && parked.insert({f, p}).second; }
  void unpark(Slot f, std::uint16_t p) override { parked.erase({f, p}); }
};

inline std::array<PortAllocator, slot_count> pools(std::uint16_t first, std::uint16_t last) {
  // The first address of each family and side; further ones (slots 4 and up) serve nothing.
  return make_slot_pools([&](Slot slot) {
    return slot < 4 ? PortAllocator(first, last, slot + 1u) : PortAllocator(0, 0, 0);
  });
}

}  // namespace anyrtpproxy::test
