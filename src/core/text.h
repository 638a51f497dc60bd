// text: network strings made safe to show, and endpoints as text.
//
// Pure and at the bottom of the core: call-ids, tags and notify tags come from
// the network, and every place that shows one (the log, the sync listing, a
// notification) uses these, so that no control character reaches a terminal,
// a system log record or a line-based peer.
#pragma once

#include <boost/asio/ip/address.hpp>

#include <cstddef>
#include <string>
#include <string_view>

namespace anyrtpproxy {

// A character that could break a line or drive a terminal.
constexpr bool is_control(char c) { return static_cast<unsigned char>(c) < 0x20 || c == 0x7f; }

// One line: control characters become '?', and a string longer than max is cut
// there with "..." after it.
std::string one_line(std::string_view s, std::size_t max);

// one_line for the listing, where an empty field shows as "-".
std::string printable(std::string_view s, std::size_t max = 200);

// "192.0.2.1:5004" or "[2001:db8::1]:5004".
std::string endpoint_text(const boost::asio::ip::address& address, unsigned short port);
template <class Endpoint>
std::string endpoint_text(const Endpoint& ep) {
  return endpoint_text(ep.address(), ep.port());
}

}  // namespace anyrtpproxy
