// text: see text.h.
#include "core/text.h"

namespace anyrtpproxy {

std::string one_line(std::string_view s, std::size_t max) {
  std::string out(s.substr(0, max));
  for (char& c : out)
    if (is_control(c)) c = '?';
  if (s.size() > max) out += "...";
  return out;
}

std::string printable(std::string_view s, std::size_t max) { return s.empty() ? "-" : one_line(s, max); }

std::string endpoint_text(const boost::asio::ip::address& address, unsigned short port) {
  const std::string a = address.to_string();
  return (address.is_v6() ? "[" + a + "]" : a) + ":" + std::to_string(port);
}

}  // namespace anyrtpproxy
