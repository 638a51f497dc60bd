// host: see host.h.
#include "io/host.h"

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/udp.hpp>

#include <sys/stat.h>

#include <cerrno>
#include <cstring>
#include <fstream>

namespace anyrtpproxy {

namespace ip = boost::asio::ip;

std::optional<ip::address> SystemHost::resolve(const std::string& host, bool want_v6) {
  boost::asio::io_context io;
  ip::udp::resolver resolver(io);
  boost::system::error_code ec;
  auto results = resolver.resolve(want_v6 ? ip::udp::v6() : ip::udp::v4(), host, "", ec);
  if (ec || results.empty()) return std::nullopt;
  return results.begin()->endpoint().address();
}

std::optional<std::string> SystemHost::cannot_bind(const ip::address& address) {
  boost::asio::io_context io;
  ip::udp::socket probe(io);
  boost::system::error_code ec;
  probe.open(address.is_v6() ? ip::udp::v6() : ip::udp::v4(), ec);
  if (!ec) probe.bind(ip::udp::endpoint(address, 0), ec);
  if (ec == boost::system::errc::address_not_available) return std::string("is not an address of this host");
  if (ec) return "cannot be bound: " + ec.message();
  return std::nullopt;
}

bool SystemHost::is_directory(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

std::optional<std::string> SystemHost::read_file(const std::string& path, std::string& error) {
  std::ifstream in(path);
  if (!in) {
    error = std::strerror(errno);
    return std::nullopt;
  }
  std::string text(max_file_bytes + 1, '\0');
  in.read(text.data(), static_cast<std::streamsize>(text.size()));
  text.resize(static_cast<std::size_t>(in.gcount()));
  if (text.size() > max_file_bytes) {
    error = "larger than " + std::to_string(max_file_bytes / 1024) + " KiB";
    return std::nullopt;
  }
  return text;
}

}  // namespace anyrtpproxy
