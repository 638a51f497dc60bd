// host: HostChecks answered by this machine: the resolver, a probe socket,
// stat() and the file system.
#pragma once

#include "core/host.h"

namespace anyrtpproxy {

class SystemHost : public HostChecks {
public:
  static constexpr std::size_t max_file_bytes = 1024 * 1024;  // a configuration file, at most

  std::optional<boost::asio::ip::address> resolve(const std::string& host, bool want_v6) override;
  std::optional<std::string> cannot_bind(const boost::asio::ip::address& address) override;
  bool is_directory(const std::string& path) override;
  std::optional<std::string> read_file(const std::string& path, std::string& error) override;
};

}  // namespace anyrtpproxy
