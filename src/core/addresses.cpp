// addresses: see addresses.h.
#include "core/addresses.h"

#include <array>

namespace anyrtpproxy {

namespace ip = boost::asio::ip;

ip::address unmapped(const ip::address& a) {
  if (a.is_v6() && a.to_v6().is_v4_mapped()) return ip::make_address_v4(ip::v4_mapped, a.to_v6());
  return a;
}

bool Network::contains(const ip::address& a) const {
  const ip::address x = unmapped(a);
  if (x.is_v6() != address.is_v6()) return false;
  const auto bytes = [](const ip::address& v) {
    std::array<unsigned char, 16> b{};
    if (v.is_v4()) {
      const auto v4 = v.to_v4().to_bytes();
      std::copy(v4.begin(), v4.end(), b.begin());
    } else {
      b = v.to_v6().to_bytes();
    }
    return b;
  };
  const auto want = bytes(address), have = bytes(x);
  for (unsigned bit = 0; bit < prefix; ++bit) {
    const unsigned char mask = static_cast<unsigned char>(0x80 >> (bit % 8));
    if ((want[bit / 8] & mask) != (have[bit / 8] & mask)) return false;
  }
  return true;
}

}  // namespace anyrtpproxy
