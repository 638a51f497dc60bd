// recording: see recording.h.
#include "core/recording.h"

#include <netinet/in.h>
#include <sys/socket.h>

#include <cstring>

namespace anyrtpproxy {

namespace {

void put16(unsigned char* p, std::uint32_t v) {  // network byte order
  p[0] = static_cast<unsigned char>(v >> 8);
  p[1] = static_cast<unsigned char>(v);
}

template <class T>
void put_native(unsigned char* p, T v) {  // this host's byte order, as pcap and rtpproxy write it
  std::memcpy(p, &v, sizeof v);
}

// The Internet checksum's running sum over bytes (RFC 1071).
std::uint32_t sum(std::uint32_t acc, const unsigned char* p, std::size_t n) {
  for (; n > 1; p += 2, n -= 2) acc += static_cast<std::uint32_t>(p[0] << 8 | p[1]);
  if (n) acc += static_cast<std::uint32_t>(p[0] << 8);
  return acc;
}

std::uint16_t fold(std::uint32_t acc) {
  while (acc >> 16) acc = (acc & 0xffff) + (acc >> 16);
  return static_cast<std::uint16_t>(~acc & 0xffff);
}

}  // namespace

std::string recording_base(const std::string& call_id, const std::string& from_tag) {
  const auto semi = from_tag.rfind(';');
  std::string name = call_id + "=" + (semi == std::string::npos ? from_tag : from_tag.substr(0, semi));
  if (name.size() > 200) name.resize(200);
  for (char& c : name)
    if (c == '/' || static_cast<unsigned char>(c) < 0x20 || c == 0x7f) c = '_';
  if (name[0] == '.') name[0] = '_';
  return name;
}

std::string adhoc_suffix(int leg, Kind kind) {
  return std::string(leg == 1 ? ".o" : ".a") + (kind == Kind::rtp ? ".rtp" : ".rtcp");
}

std::array<unsigned char, pcap_file_header_size> pcap_file_header() {
  std::array<unsigned char, pcap_file_header_size> h{};
  put_native<std::uint32_t>(&h[0], 0xa1b2c3d4);  // microsecond timestamps
  put_native<std::uint16_t>(&h[4], 2);
  put_native<std::uint16_t>(&h[6], 4);
  put_native<std::uint32_t>(&h[16], 65535);  // snaplen
  put_native<std::uint32_t>(&h[20], 101);    // LINKTYPE_RAW: an IPv4 or IPv6 header first
  return h;
}

std::size_t pcap_record_header(unsigned char* out, const udp::endpoint& from, const udp::endpoint& to,
                               const unsigned char* payload, std::size_t size, std::size_t kept,
                               std::chrono::system_clock::time_point when) {
  const bool v6 = from.address().is_v6();
  const std::size_t ip_size = v6 ? 40 : 20, udp_size = 8 + size;
  const auto since = when.time_since_epoch();
  const auto secs = std::chrono::duration_cast<std::chrono::seconds>(since);
  const auto usecs = std::chrono::duration_cast<std::chrono::microseconds>(since - secs);
  unsigned char* ip = out + 16;
  unsigned char* udp_header = ip + ip_size;
  put_native<std::uint32_t>(out, static_cast<std::uint32_t>(secs.count()));
  put_native<std::uint32_t>(out + 4, static_cast<std::uint32_t>(usecs.count()));
  put_native<std::uint32_t>(out + 8, static_cast<std::uint32_t>(ip_size + 8 + kept));
  put_native<std::uint32_t>(out + 12, static_cast<std::uint32_t>(ip_size + udp_size));
  std::uint32_t pseudo = 0;  // the UDP checksum's pseudo-header
  if (v6) {
    const auto src = from.address().to_v6().to_bytes(), dst = to.address().to_v6().to_bytes();
    std::memset(ip, 0, 40);
    ip[0] = 0x60;
    put16(ip + 4, static_cast<std::uint32_t>(udp_size));
    ip[6] = IPPROTO_UDP;
    ip[7] = 64;  // hop limit
    std::memcpy(ip + 8, src.data(), 16);
    std::memcpy(ip + 24, dst.data(), 16);
    pseudo = sum(sum(0, src.data(), 16), dst.data(), 16);
  } else {
    const auto src = from.address().to_v4().to_bytes(), dst = to.address().to_v4().to_bytes();
    std::memset(ip, 0, 20);
    ip[0] = 0x45;
    put16(ip + 2, static_cast<std::uint32_t>(20 + udp_size));
    ip[6] = 0x40;  // don't fragment
    ip[8] = 64;    // TTL
    ip[9] = IPPROTO_UDP;
    std::memcpy(ip + 12, src.data(), 4);
    std::memcpy(ip + 16, dst.data(), 4);
    put16(ip + 10, fold(sum(0, ip, 20)));
    pseudo = sum(sum(0, src.data(), 4), dst.data(), 4);
  }
  put16(udp_header, from.port());
  put16(udp_header + 2, to.port());
  put16(udp_header + 4, static_cast<std::uint32_t>(udp_size));
  put16(udp_header + 6, 0);
  if (kept == size) {  // a cut payload cannot be summed: its checksum stays 0 ("none")
    std::uint32_t acc = pseudo + IPPROTO_UDP + static_cast<std::uint32_t>(udp_size);
    acc = sum(sum(acc, udp_header, 8), payload, size);
    std::uint16_t c = fold(acc);
    put16(udp_header + 6, c == 0 ? 0xffff : c);
  }
  return 16 + ip_size + 8;
}

std::size_t adhoc_record_header(unsigned char* out, const udp::endpoint& from, std::size_t size,
                                std::chrono::system_clock::time_point when) {
  std::memset(out, 0, adhoc_header_size);
  const bool v6 = from.address().is_v6();
  put_native<sa_family_t>(out, v6 ? AF_INET6 : AF_INET);
  put16(out + 2, from.port());
  if (v6) {
    const auto a = from.address().to_v6().to_bytes();
    std::memcpy(out + 4, a.data(), 16);
  } else {
    const auto a = from.address().to_v4().to_bytes();
    std::memcpy(out + 4, a.data(), 4);
  }
  put_native<double>(out + 20, std::chrono::duration<double>(when.time_since_epoch()).count());
  put_native<std::uint16_t>(out + 28, static_cast<std::uint16_t>(size));
  return adhoc_header_size;
}

}  // namespace anyrtpproxy
