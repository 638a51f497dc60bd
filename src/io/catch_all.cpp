// catch_all: see catch_all.h.
#include "io/catch_all.h"

#include <boost/asio/ip/udp.hpp>

#include <cerrno>
#include <cstring>
#include <vector>

#if ANYRTPPROXY_BPF
#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>

extern "C" const unsigned char anyrtpproxy_catch_all_object[];
extern "C" const unsigned char anyrtpproxy_catch_all_object_end[];
#endif

namespace anyrtpproxy {

#if ANYRTPPROXY_BPF
namespace {

// Keep in step with struct parked_key in src/io/bpf/catch_all.bpf.c.
struct ParkedKey {
  std::uint32_t addr[4];
  std::uint32_t port;
  std::uint32_t family;
};
static_assert(sizeof(ParkedKey) == 24, "the eBPF program's layout");

ParkedKey key_of(const boost::asio::ip::address& a, std::uint16_t port) {
  ParkedKey k{};
  if (a.is_v4()) {
    const auto b = a.to_v4().to_bytes();
    std::memcpy(k.addr, b.data(), 4);
    k.family = 4;
  } else {
    const auto b = a.to_v6().to_bytes();
    std::memcpy(k.addr, b.data(), 16);
    k.family = 6;
  }
  k.port = port & ~1u;
  return k;
}

// A socket at `at`, `port` that reports each datagram's original destination.
Fd catch_socket(const boost::asio::ip::address& at, std::uint16_t port, std::string& why) {
  const bool v6 = at.is_v6();
  Fd fd(::socket(v6 ? AF_INET6 : AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  const int on = 1;
  const boost::asio::ip::udp::endpoint ep(at, port);
  if (!fd || (v6 && ::setsockopt(fd.get(), IPPROTO_IPV6, IPV6_V6ONLY, &on, sizeof on) != 0) ||
      ::setsockopt(fd.get(), v6 ? IPPROTO_IPV6 : IPPROTO_IP, v6 ? IPV6_RECVORIGDSTADDR : IP_RECVORIGDSTADDR, &on,
                   sizeof on) != 0 ||
      ::bind(fd.get(), ep.data(), static_cast<socklen_t>(ep.size())) != 0) {
    why = "cannot open its socket on " + boost::asio::ip::udp::endpoint(at, port).address().to_string() + " port " +
          std::to_string(port) + ": " + std::strerror(errno);
    return Fd();
  }
  return fd;
}

int quiet(enum libbpf_print_level, const char*, va_list) { return 0; }  // open() says what failed

}  // namespace

struct CatchAll::Impl {
  bpf_object* object = nullptr;
  int parked = -1;
  int ports = -1;  // the program's bitmap of even ports with a parked leg
  std::vector<std::uint32_t> legs = std::vector<std::uint32_t>(32768);  // parked legs per even port (every address)
  std::vector<std::uint64_t> words = std::vector<std::uint64_t>(512);   // what the bitmap holds
  bool flip(std::uint16_t rtp_port, bool on) {  // the port's bit; false: the kernel refused
    const std::uint32_t pair = rtp_port >> 1, word = pair >> 6;
    const std::uint64_t bit = 1ULL << (pair & 63);
    std::uint64_t next = on ? words[word] | bit : words[word] & ~bit;
    if (bpf_map_update_elem(ports, &word, &next, BPF_ANY) != 0) return false;
    words[word] = next;
    return true;
  }
  Fd link;
  ~Impl() {
    link.reset();  // detach before the program goes
    if (object) bpf_object__close(object);
  }
};

std::unique_ptr<CatchAll> CatchAll::open(const std::array<std::optional<boost::asio::ip::address>, slot_count>& local,
                                         std::string& why) {
  const auto is_relay = [&](const boost::asio::ip::address& a) {
    for (const auto& l : local)
      if (l && *l == a) return true;
    return false;
  };
  std::array<Fd, 2> sockets;
  for (Slot slot = 0; slot < slot_count; ++slot) {
    const int index = family_of(slot) == Family::v6 ? 1 : 0;
    if (!local[slot] || sockets[index]) continue;
    const auto loopback = index == 1 ? boost::asio::ip::address(boost::asio::ip::address_v6::loopback())
                                     : boost::asio::ip::address(boost::asio::ip::make_address_v4("127.255.255.254"));
    std::string unused;
    if (!is_relay(loopback)) sockets[index] = catch_socket(loopback, 0, unused);
    if (!sockets[index] && !(sockets[index] = catch_socket(*local[slot], 0, why))) return nullptr;
  }
  libbpf_set_print(quiet);
  auto impl = std::make_unique<Impl>();
  const auto size = static_cast<std::size_t>(anyrtpproxy_catch_all_object_end - anyrtpproxy_catch_all_object);
  LIBBPF_OPTS(bpf_object_open_opts, opts, .object_name = "anyrtpproxy_catch_all");
  impl->object = bpf_object__open_mem(anyrtpproxy_catch_all_object, size, &opts);
  if (!impl->object) {
    why = std::string("cannot open the eBPF object: ") + std::strerror(errno);
    return nullptr;
  }
  if (const int err = bpf_object__load(impl->object)) {
    why = std::string("cannot load the sk_lookup program: ") + std::strerror(-err) +
          (err == -EPERM ? " (loading it needs root, or CAP_BPF and CAP_NET_ADMIN)" : "");
    return nullptr;
  }
  impl->parked = bpf_object__find_map_fd_by_name(impl->object, "parked");
  impl->ports = bpf_object__find_map_fd_by_name(impl->object, "ports");
  const int sockmap = bpf_object__find_map_fd_by_name(impl->object, "sockets");
  bpf_program* prog = bpf_object__find_program_by_name(impl->object, "catch_all");
  if (impl->parked < 0 || impl->ports < 0 || sockmap < 0 || !prog) {
    why = "the eBPF object lacks its program or maps";
    return nullptr;
  }
  for (std::uint32_t index = 0; index < 2; ++index) {
    if (!sockets[index]) continue;
    const std::uint64_t fd = static_cast<std::uint64_t>(sockets[index].get());
    if (bpf_map_update_elem(sockmap, &index, &fd, BPF_ANY) != 0) {
      why = std::string("cannot put its socket into the socket map: ") + std::strerror(errno);
      return nullptr;
    }
  }
  const Fd netns(::open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC));
  if (!netns) {
    why = std::string("cannot open /proc/self/ns/net: ") + std::strerror(errno);
    return nullptr;
  }
  impl->link = Fd(bpf_link_create(bpf_program__fd(prog), netns.get(), BPF_SK_LOOKUP, nullptr));
  if (!impl->link) {
    why = std::string("cannot attach the sk_lookup program to the network namespace: ") + std::strerror(errno);
    return nullptr;
  }
  return std::unique_ptr<CatchAll>(new CatchAll(std::move(impl), std::move(sockets)));
}

bool CatchAll::park(const boost::asio::ip::address& local, std::uint16_t rtp_port) {
  const ParkedKey k = key_of(local, rtp_port);
  const std::uint32_t v = 1;
  auto& legs = impl_->legs[k.port >> 1];
  if (bpf_map_update_elem(impl_->parked, &k, &v, BPF_NOEXIST) != 0) {
    ++refused_;  // full, or parked already (the table never parks a leg twice)
    return false;
  }
  if (legs == 0 && !impl_->flip(static_cast<std::uint16_t>(k.port), true)) {
    bpf_map_delete_elem(impl_->parked, &k);
    ++refused_;
    return false;
  }
  ++legs;
  return true;
}

void CatchAll::unpark(const boost::asio::ip::address& local, std::uint16_t rtp_port) {
  const ParkedKey k = key_of(local, rtp_port);
  if (bpf_map_delete_elem(impl_->parked, &k) != 0) return;  // not parked
  auto& legs = impl_->legs[k.port >> 1];
  if (legs > 0 && --legs == 0) impl_->flip(static_cast<std::uint16_t>(k.port), false);
}

#else

struct CatchAll::Impl {};

std::unique_ptr<CatchAll> CatchAll::open(const std::array<std::optional<boost::asio::ip::address>, slot_count>&,
                                         std::string& why) {
  why = "built without libbpf (configure found no clang -target bpf, libbpf or bpftool)";
  return nullptr;
}
bool CatchAll::park(const boost::asio::ip::address&, std::uint16_t) { return false; }
void CatchAll::unpark(const boost::asio::ip::address&, std::uint16_t) {}

#endif

CatchAll::CatchAll(std::unique_ptr<Impl> impl, std::array<Fd, 2> sockets)
    : impl_(std::move(impl)), sockets_(std::move(sockets)) {}
CatchAll::~CatchAll() = default;

}  // namespace anyrtpproxy
