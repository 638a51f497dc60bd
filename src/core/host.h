// host: what the option parser asks of the machine it runs on, as an
// interface: resolving a name, whether an address is this host's, whether a
// directory exists, a file's text. The daemon answers from the system
// (io/host.h); the unit tests answer from a fake, so parsing is tested
// without a network, a file system or this host's addresses.
#pragma once

#include <boost/asio/ip/address.hpp>

#include <optional>
#include <string>

namespace anyrtpproxy {

class HostChecks {
public:
  virtual ~HostChecks() = default;
  // A host name's first address (IPv6 only when want_v6); none: it does not resolve.
  virtual std::optional<boost::asio::ip::address> resolve(const std::string& host, bool want_v6) = 0;
  // Why a socket cannot be bound to `address` here ("is not an address of
  // this host", "cannot be bound: ..."); none: it can.
  virtual std::optional<std::string> cannot_bind(const boost::asio::ip::address& address) = 0;
  virtual bool is_directory(const std::string& path) = 0;
  // The file's text; none, with `error` set, when it cannot be read.
  virtual std::optional<std::string> read_file(const std::string& path, std::string& error) = 0;
};

}  // namespace anyrtpproxy
