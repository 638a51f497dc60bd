// port_allocator: see port_allocator.h.
#include "core/port_allocator.h"

#include <algorithm>
#include <random>

namespace anyrtpproxy {

namespace {
std::uint32_t even_up(std::uint32_t p) { return p + (p & 1u); }
}  // namespace

std::size_t PortAllocator::pairs_in(std::uint16_t first, std::uint16_t last) {
  const std::uint32_t start = even_up(first);
  if (start + 1 >= last) return 0;  // the end port itself is never allocated
  return (last - start) / 2;
}

PortAllocator::PortAllocator(std::uint16_t first, std::uint16_t last, std::uint32_t seed)
    : first_(static_cast<std::uint16_t>(even_up(first))), last_(last) {
  const std::size_t n = pairs_in(first, last);
  std::vector<std::uint16_t> ports(n);
  for (std::size_t i = 0; i < n; ++i) ports[i] = static_cast<std::uint16_t>(first_ + 2 * i);
  std::mt19937 rng(seed);
  std::shuffle(ports.begin(), ports.end(), rng);
  free_.assign(ports.begin(), ports.end());
  state_.assign(n, State::free);
}

std::optional<std::uint16_t> PortAllocator::take() {
  if (free_.empty()) return std::nullopt;
  const auto port = free_.front();
  free_.pop_front();
  state_[index(port)] = State::taken;
  return port;
}

bool PortAllocator::owns(std::uint16_t port) const {
  return port >= first_ && port < last_ && index(port) < state_.size();
}

void PortAllocator::give_back(std::uint16_t port) {
  if (!owns(port) || (port - first_) % 2 != 0 || state_[index(port)] != State::taken) return;
  state_[index(port)] = State::free;
  free_.push_back(port);
}

bool PortAllocator::claim(std::uint16_t port) {
  if (!owns(port) || (port - first_) % 2 != 0 || state_[index(port)] != State::free) return false;
  state_[index(port)] = State::taken;
  free_.erase(std::find(free_.begin(), free_.end(), port));
  return true;
}

void PortAllocator::reserve(std::uint16_t port) {
  if (!owns(port)) return;
  const auto rtp = static_cast<std::uint16_t>(first_ + 2 * index(port));
  const State was = state_[index(port)];
  state_[index(port)] = State::reserved;
  if (was == State::free) free_.erase(std::find(free_.begin(), free_.end(), rtp));
}

}  // namespace anyrtpproxy
