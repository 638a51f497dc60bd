// addresses: the address values the daemon is configured with, shared by
// the option parser and the servers that check them: networks for allow
// lists, notification targets, sync peers and their TLS files. Values only; nothing is resolved
// or bound here.
#pragma once

#include <boost/asio/ip/address.hpp>
#include <boost/asio/ip/udp.hpp>

#include <cstdint>
#include <string>

namespace anyrtpproxy {

// An address block, "192.0.2.0/24", "2001:db8::/32" or one address.
struct Network {
  boost::asio::ip::address address;
  unsigned prefix = 32;
  bool contains(const boost::asio::ip::address& a) const;
  std::string text() const { return address.to_string() + "/" + std::to_string(prefix); }
};

// v4-mapped IPv6 (what a dual-stack socket reports for IPv4) as plain IPv4.
boost::asio::ip::address unmapped(const boost::asio::ip::address& a);

// A --notify target: where timeout notifications may go.
struct NotifyTarget {
  std::string text;  // as configured; U's notify_socket must equal it
  enum class Kind { tcp, unix_stream } kind = Kind::tcp;
  std::string path;
  boost::asio::ip::udp::endpoint endpoint;  // tcp: address and port (protocol is irrelevant)
};

// A -M entry: resolved when the sync client connects, so a peer's DNS name may change.
struct SyncPeer {
  std::string host;
  std::uint16_t port = 0;
};

// The PEM files of sync TLS: this instance's certificate, its key, the cluster's CA.
struct TlsFiles {
  std::string cert, key, ca;
};

}  // namespace anyrtpproxy
