// port_allocator: hands out even RTP ports (RTCP = port + 1) from a range.
//
// The free list is shuffled once (ports are hard to guess) and used as a FIFO,
// so a freed port waits behind every other free port before it is handed out
// again and late packets of an old call do not reach a new one. It never binds
// a socket: callers report a port they could not bind with give_back().
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <optional>
#include <vector>

namespace anyrtpproxy {

class PortAllocator {
public:
  // Pairs p, p+1 with p even and first <= p, p + 1 < last: the end port is
  // never allocated, so ranges that share an end ("-p 20000 25000" and
  // "-p 25000 30000", as the original manual's cluster example has them) are
  // disjoint.
  PortAllocator(std::uint16_t first, std::uint16_t last, std::uint32_t seed);

  static std::size_t pairs_in(std::uint16_t first, std::uint16_t last);

  std::optional<std::uint16_t> take();
  void give_back(std::uint16_t port);  // to the tail; ignored if not ours or already free
  void reserve(std::uint16_t port);    // never hand out the pair holding this port
  bool claim(std::uint16_t port);      // take this free RTP port out of the pool (an adopted session)
  bool owns(std::uint16_t port) const;  // inside the range (RTP or RTCP), the end port excluded
  std::size_t available() const { return free_.size(); }
  std::size_t capacity() const { return state_.size(); }

private:
  std::size_t index(std::uint16_t port) const { return (port - first_) / 2; }
  std::uint16_t first_;
  std::uint16_t last_;
  std::deque<std::uint16_t> free_;
  enum class State : std::uint8_t { free, taken, reserved };
  std::vector<State> state_;  // by pair index
};

}  // namespace anyrtpproxy
