#include "io/offload.h"

#include <algorithm>

#if ANYRTPPROXY_BPF
#include "io/daemon.h"
#include "io/fd.h"
#include "core/text.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include <arpa/inet.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <net/if.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>

extern "C" const unsigned char anyrtpproxy_offload_object[];
extern "C" const unsigned char anyrtpproxy_offload_object_end[];
#endif

namespace anyrtpproxy {

#if ANYRTPPROXY_BPF
namespace {

// Keep in step with struct stream_key/stream_value in src/io/bpf/offload.bpf.c.
struct OffloadKey {
  std::uint32_t src[4];
  std::uint32_t dst[4];
  std::uint16_t sport, dport;  // network order
  std::uint32_t family;
};
struct OffloadValue {
  std::uint32_t src[4];
  std::uint32_t dst[4];
  std::uint16_t sport, dport;
  std::uint32_t ifindex;
  std::uint64_t packets, bytes, last_ns;
  std::uint32_t ssrc;
  std::uint16_t seq, pad;
};
// Keep in step with struct owner in src/io/bpf/offload.bpf.c.
struct Owner {
  std::uint64_t alive_ns;  // CLOCK_MONOTONIC; 0: gone
  std::uint32_t pid, pad;
};
static_assert(sizeof(OffloadKey) == 40 && sizeof(OffloadValue) == 72 && sizeof(Owner) == 16,
              "the eBPF program's layout");
constexpr std::uint64_t owner_timeout_ns = 10'000'000'000ULL;  // OWNER_TIMEOUT_NS

std::uint64_t monotonic_ns() {
  timespec t{};
  ::clock_gettime(CLOCK_MONOTONIC, &t);
  return static_cast<std::uint64_t>(t.tv_sec) * 1'000'000'000ULL + static_cast<std::uint64_t>(t.tv_nsec);
}

// A tc filter is found by its place: this handle and priority on an
// interface's ingress hook are anyrtpproxy's (0x41525050: "ARPP").
constexpr std::uint32_t tc_handle = 0x41525050;
constexpr std::uint32_t tc_priority = 0xa7e;

// Whether the program of the filter at our place still has its daemon: the
// owner map it carries names a live anyrtpproxy that wrote it lately.
bool owned_elsewhere(std::uint32_t prog_id, std::uint32_t& pid) {
  const Fd prog(bpf_prog_get_fd_by_id(prog_id));
  if (!prog) return false;
  std::uint32_t maps[16] = {};
  bpf_prog_info info{};
  info.nr_map_ids = 16;
  info.map_ids = reinterpret_cast<std::uint64_t>(maps);
  std::uint32_t len = sizeof(info);
  if (bpf_obj_get_info_by_fd(prog.get(), &info, &len) != 0) return false;
  for (std::uint32_t i = 0; i < std::min<std::uint32_t>(info.nr_map_ids, 16); ++i) {
    const Fd map(bpf_map_get_fd_by_id(maps[i]));
    if (!map) continue;
    bpf_map_info m{};
    std::uint32_t mlen = sizeof(m);
    if (bpf_obj_get_info_by_fd(map.get(), &m, &mlen) != 0 || std::strcmp(m.name, "owner") != 0 ||
        m.value_size != sizeof(Owner))
      continue;
    const std::uint32_t zero = 0;
    Owner o{};
    if (bpf_map_lookup_elem(map.get(), &zero, &o) != 0) return false;
    pid = o.pid;
    return o.alive_ns != 0 && monotonic_ns() - o.alive_ns <= owner_timeout_ns &&
           static_cast<pid_t>(o.pid) != ::getpid() && running_anyrtpproxy(o.pid);
  }
  return false;
}

// The program at tc ingress of `ifindex` as a classic filter (kernels before
// 6.6, which have no tcx links): on our place, replacing a filter a killed
// instance left there, never one whose daemon still runs.
bool attach_tc(int prog_fd, int ifindex, const std::string& name, std::string& why) {
  LIBBPF_OPTS(bpf_tc_hook, hook, .ifindex = ifindex, .attach_point = BPF_TC_INGRESS);
  if (const int err = bpf_tc_hook_create(&hook); err != 0 && err != -EEXIST) {
    why = "cannot add the clsact qdisc to " + name + ": " + std::strerror(-err);
    return false;
  }
  LIBBPF_OPTS(bpf_tc_opts, query, .handle = tc_handle, .priority = tc_priority);
  if (bpf_tc_query(&hook, &query) == 0) {
    std::uint32_t pid = 0;
    if (owned_elsewhere(query.prog_id, pid)) {
      why = "the tc filter on " + name + " belongs to the running anyrtpproxy " + std::to_string(pid) +
            " (one instance per interface on kernels without tcx)";
      return false;
    }
  }
  LIBBPF_OPTS(bpf_tc_opts, opts, .prog_fd = prog_fd, .flags = BPF_TC_F_REPLACE, .handle = tc_handle,
              .priority = tc_priority);
  if (const int err = bpf_tc_attach(&hook, &opts); err != 0) {
    why = "cannot attach to " + name + " (tc filter): " + std::strerror(-err);
    return false;
  }
  return true;
}

void detach_tc(int ifindex) {
  LIBBPF_OPTS(bpf_tc_hook, hook, .ifindex = ifindex, .attach_point = BPF_TC_INGRESS);
  LIBBPF_OPTS(bpf_tc_opts, opts, .handle = tc_handle, .priority = tc_priority);
  bpf_tc_detach(&hook, &opts);  // without CAP_NET_ADMIN (dropped) it stays, inert, until the next start
}

constexpr int tcx_ingress = 46;  // BPF_TCX_INGRESS (Linux 6.6); this libbpf's headers predate it

void put(std::uint32_t (&out)[4], const boost::asio::ip::address& a) {
  std::memset(out, 0, sizeof(out));
  if (a.is_v4()) {
    const auto b = a.to_v4().to_bytes();
    std::memcpy(out, b.data(), 4);
  } else {
    const auto b = a.to_v6().to_bytes();
    std::memcpy(out, b.data(), 16);
  }
}

// The interface the kernel routes `to` through (from `from`), by an
// RTM_GETROUTE request on the rtnetlink socket `nl` (its answer told by
// `seq`); 0 when there is no route or it is local.
unsigned route_ifindex(int nl, std::uint32_t seq, const boost::asio::ip::address& to,
                       const boost::asio::ip::address& from) {
  struct {
    nlmsghdr h;
    rtmsg r;
    char attrs[64];
  } req{};
  const bool v4 = to.is_v4();
  const std::size_t len = v4 ? 4 : 16;
  req.h.nlmsg_len = NLMSG_LENGTH(sizeof(rtmsg));
  req.h.nlmsg_type = RTM_GETROUTE;
  req.h.nlmsg_flags = NLM_F_REQUEST;
  req.h.nlmsg_seq = seq;
  req.r.rtm_family = v4 ? AF_INET : AF_INET6;
  auto add = [&](unsigned short type, const boost::asio::ip::address& a) {
    auto* rta = reinterpret_cast<rtattr*>(reinterpret_cast<char*>(&req) + NLMSG_ALIGN(req.h.nlmsg_len));
    rta->rta_type = type;
    rta->rta_len = static_cast<unsigned short>(RTA_LENGTH(len));
    std::uint32_t bytes[4];
    put(bytes, a);
    std::memcpy(RTA_DATA(rta), bytes, len);
    req.h.nlmsg_len = NLMSG_ALIGN(req.h.nlmsg_len) + RTA_ALIGN(rta->rta_len);
  };
  add(RTA_DST, to);
  req.r.rtm_dst_len = static_cast<unsigned char>(len * 8);
  if (!from.is_unspecified() && from.is_v4() == v4) add(RTA_SRC, from), req.r.rtm_src_len = static_cast<unsigned char>(len * 8);
  if (::send(nl, &req, req.h.nlmsg_len, 0) < 0) return 0;
  alignas(nlmsghdr) char buf[4096];
  nlmsghdr* h = nullptr;
  for (int late = 0; late < 8; ++late) {  // an answer to an earlier request that timed out is skipped
    const ssize_t n = ::recv(nl, buf, sizeof(buf), 0);
    if (n <= 0) return 0;
    h = reinterpret_cast<nlmsghdr*>(buf);
    if (!NLMSG_OK(h, static_cast<unsigned>(n))) return 0;
    if (h->nlmsg_seq == seq) break;
    h = nullptr;
  }
  if (!h || h->nlmsg_type != RTM_NEWROUTE) return 0;
  auto* r = static_cast<rtmsg*>(NLMSG_DATA(h));
  if (r->rtm_type != RTN_UNICAST) return 0;  // local, unreachable, blackhole: the daemon's business
  int attr_len = static_cast<int>(RTM_PAYLOAD(h));
  for (auto* a = RTM_RTA(r); RTA_OK(a, attr_len); a = RTA_NEXT(a, attr_len))
    if (a->rta_type == RTA_OIF) return *static_cast<unsigned*>(RTA_DATA(a));
  return 0;
}

}  // namespace

struct Offload::Impl {
  OffloadConfig config;
  bpf_object* object = nullptr;
  int map = -1;
  Fd netlink;               // rtnetlink, for where a stream's destination is routed
  std::uint32_t route_seq = 0;
  int owner = -1;
  struct Attachment {
    std::string name;
    Fd link;          // a tcx link: detached when closed
    int tc_ifindex;   // or a tc filter on this interface (0: none)
  };
  std::vector<Attachment> attached;

  void beat(std::uint64_t ns) {  // the program forwards while this is recent
    const std::uint32_t zero = 0;
    const Owner o{ns, static_cast<std::uint32_t>(::getpid()), 0};
    bpf_map_update_elem(owner, &zero, &o, BPF_ANY);
  }
  struct Installed {
    StreamForward forward;
    OffloadKey key;
    std::uint64_t packets = 0, bytes = 0;  // what was read of the entry so far
    // false: the kernel could not take it (no route out, a full map); tried
    // again when the stream changes or at `retry`, not at every sweep
    bool in_kernel = true;
    Clock::time_point retry{};
  };
  static constexpr std::chrono::seconds retry_after{30};
  std::map<SessionKey, std::array<std::optional<Installed>, streams_per_session>> installed;

  ~Impl() {
    if (owner >= 0) beat(0);  // a filter left behind forwards nothing from now on
    for (const auto& a : attached)
      if (a.tc_ifindex) detach_tc(a.tc_ifindex);
    attached.clear();  // detaches: the links go with their descriptors
    if (object) bpf_object__close(object);
  }
};

namespace {
int quiet(enum libbpf_print_level, const char*, va_list) { return 0; }  // open() says what failed
}  // namespace

std::unique_ptr<Offload> Offload::open(const OffloadConfig& config, std::string& why) {
  libbpf_set_print(quiet);
  // A tcx link where the kernel has them (6.6); a classic tc filter before.
  // ANYRTPPROXY_OFFLOAD_ATTACH=tc asks for the filter (the tests' way to run it on a newer kernel).
  const char* attach = std::getenv("ANYRTPPROXY_OFFLOAD_ATTACH");
  if (attach && *attach && std::string(attach) != "tc") {
    why = "ANYRTPPROXY_OFFLOAD_ATTACH: '" + printable(attach, 64) + "' is not tc";
    return nullptr;
  }
  bool tc = attach && *attach;
  auto impl = std::make_unique<Impl>();
  impl->config = config;
  const std::size_t size = static_cast<std::size_t>(anyrtpproxy_offload_object_end - anyrtpproxy_offload_object);
  LIBBPF_OPTS(bpf_object_open_opts, opts, .object_name = "anyrtpproxy");
  impl->object = bpf_object__open_mem(anyrtpproxy_offload_object, size, &opts);
  if (!impl->object) {
    why = std::string("cannot open the eBPF object: ") + std::strerror(errno);
    impl->object = nullptr;
    return nullptr;
  }
  bpf_map* map = bpf_object__find_map_by_name(impl->object, "streams");
  if (!map || bpf_map__set_max_entries(map, static_cast<std::uint32_t>(config.max_streams)) != 0) {
    why = "the eBPF object has no streams map";
    return nullptr;
  }
  if (const int err = bpf_object__load(impl->object)) {
    why = std::string("the kernel refused the eBPF program: ") + std::strerror(-err) +
          (err == -EPERM ? " (loading it needs root, or CAP_BPF and CAP_NET_ADMIN)" : "");
    return nullptr;
  }
  impl->map = bpf_map__fd(map);
  impl->owner = bpf_object__find_map_fd_by_name(impl->object, "owner");
  if (impl->owner < 0) {
    why = "the eBPF object has no owner map";
    return nullptr;
  }
  impl->beat(monotonic_ns());
  impl->netlink = Fd(::socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE));
  if (!impl->netlink) {
    why = std::string("cannot open an rtnetlink socket: ") + std::strerror(errno);
    return nullptr;
  }
  const timeval wait{1, 0};
  ::setsockopt(impl->netlink.get(), SOL_SOCKET, SO_RCVTIMEO, &wait, sizeof(wait));
  bpf_program* prog = bpf_object__find_program_by_name(impl->object, "anyrtpproxy_ingress");
  if (!prog) {
    why = "the eBPF object has no program";
    return nullptr;
  }
  std::vector<std::string> names = config.interfaces;
  if (names.empty()) {  // every interface but loopback (media reaches an anycast address on lo through the uplinks)
    if (struct if_nameindex* all = ::if_nameindex()) {
      for (auto* i = all; i->if_index != 0; ++i)
        if (std::string(i->if_name) != "lo") names.push_back(i->if_name);
      ::if_freenameindex(all);
    }
  }
  for (const auto& name : names) {
    const unsigned index = ::if_nametoindex(name.c_str());
    if (index == 0) {
      why = "--offload-interfaces: no interface '" + name + "'";
      return nullptr;
    }
    if (!tc) {
      const int link = bpf_link_create(bpf_program__fd(prog), static_cast<int>(index),
                                       static_cast<bpf_attach_type>(tcx_ingress), nullptr);
      if (link >= 0) {
        impl->attached.push_back({name, Fd(link), 0});
        continue;
      }
      if (errno != EINVAL || !impl->attached.empty()) {  // EINVAL: no tcx here
        why = "cannot attach to " + name + " (tcx): " + std::strerror(errno);
        return nullptr;
      }
      tc = true;
    }
    if (!attach_tc(bpf_program__fd(prog), static_cast<int>(index), name, why)) return nullptr;
    impl->attached.push_back({name, Fd(), static_cast<int>(index)});
  }
  if (impl->attached.empty()) {
    why = "no interface to attach to";
    return nullptr;
  }
  auto self = std::unique_ptr<Offload>(new Offload(std::move(impl)));
  self->stats_.interfaces = self->impl_->attached.size();
  return self;
}

Offload::Offload(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Offload::~Offload() = default;

std::vector<std::string> Offload::interface_names() const {
  std::vector<std::string> out;
  for (const auto& a : impl_->attached) out.push_back(a.name);
  return out;
}

bool Offload::tc_filters() const {
  return std::any_of(impl_->attached.begin(), impl_->attached.end(), [](const auto& a) { return a.tc_ifindex != 0; });
}

void Offload::follow(OffloadTable table, Clock::time_point now) {
  for (const auto& key : table.take_touched()) follow_one(table, key, now);
}

void Offload::follow_all(OffloadTable table, Clock::time_point now) {
  table.take_touched();
  std::vector<SessionKey> gone;
  for (const auto& [key, streams] : impl_->installed)
    if (!table.sessions().count(key)) gone.push_back(key);
  for (const auto& key : gone) follow_one(table, key, now);
  for (const auto& [key, entry] : table.sessions()) follow_one(table, key, now);
}

// Reads one installed entry's counters into the table.
static void read_back(int map, OffloadTable table, const SessionKey& key, int index, OffloadStats& stats,
                      std::uint64_t& seen_packets, std::uint64_t& seen_bytes, const void* map_key) {
  OffloadValue v{};
  if (bpf_map_lookup_elem(map, map_key, &v) != 0 || v.packets <= seen_packets) return;
  const std::uint64_t packets = v.packets - seen_packets;
  const std::uint64_t bytes = v.bytes >= seen_bytes ? v.bytes - seen_bytes : 0;
  seen_packets = v.packets;
  seen_bytes = v.bytes;
  stats.packets += packets;
  stats.bytes += bytes;
  const Clock::time_point last{std::chrono::duration_cast<Clock::duration>(std::chrono::nanoseconds(v.last_ns))};
  table.offloaded(key, index / 2, static_cast<Kind>(index % 2), packets, bytes, last, v.ssrc, v.seq);
}

void Offload::harvest(OffloadTable table) {
  impl_->beat(monotonic_ns());
  for (auto& [key, streams] : impl_->installed)
    for (int i = 0; i < streams_per_session; ++i)
      if (auto& in = streams[i]; in && in->in_kernel)
        read_back(impl_->map, table, key, i, stats_, in->packets, in->bytes, &in->key);
}

void Offload::follow_one(OffloadTable table, const SessionKey& key, Clock::time_point now) {
  const auto it = table.sessions().find(key);
  auto slot = impl_->installed.find(key);
  for (int i = 0; i < streams_per_session; ++i) {
    std::optional<StreamForward> want;
    if (it != table.sessions().end())
      want = forward_of(it->second.session, it->second.local, i / 2, static_cast<Kind>(i % 2), now);
    const auto specific = [&](Slot slot) {  // a wildcard -i is not a packet's address
      const auto& a = impl_->config.local[slot];
      return a && !a->is_unspecified();
    };
    if (want && !(specific(want->in_slot) && specific(want->out_slot))) want.reset();
    std::optional<Impl::Installed>* have = slot != impl_->installed.end() ? &slot->second[i] : nullptr;
    if (have && *have && want && (*have)->forward == *want && ((*have)->in_kernel || now < (*have)->retry))
      continue;  // as it is
    if (have && *have && (*have)->in_kernel) {  // changed or gone: what it forwarded is counted, then it goes
      read_back(impl_->map, table, key, i, stats_, (*have)->packets, (*have)->bytes, &(*have)->key);
      bpf_map_delete_elem(impl_->map, &(*have)->key);
      --stats_.streams;
      ++stats_.removals;
    }
    if (have) have->reset();
    if (!want) continue;
    const auto& in_addr = *impl_->config.local[want->in_slot];
    const auto& out_addr = *impl_->config.local[want->out_slot];
    if (slot == impl_->installed.end()) slot = impl_->installed.emplace(key, decltype(slot->second){}).first;
    Impl::Installed e;
    e.forward = *want;
    const unsigned ifindex = route_ifindex(impl_->netlink.get(), ++impl_->route_seq, want->dest.address(), out_addr);
    std::memset(&e.key, 0, sizeof(e.key));
    put(e.key.src, want->from.address());
    put(e.key.dst, in_addr);
    e.key.sport = htons(want->from.port());
    e.key.dport = htons(want->in_port);
    e.key.family = want->from.address().is_v4() ? 4 : 6;
    OffloadValue v{};
    put(v.src, out_addr);
    put(v.dst, want->dest.address());
    v.sport = htons(want->out_port);
    v.dport = htons(want->dest.port());
    v.ifindex = ifindex;
    // No route out (or a local destination), or a full map: the daemon relays it.
    if (ifindex == 0 || bpf_map_update_elem(impl_->map, &e.key, &v, BPF_ANY) != 0) {
      ++stats_.failures;
      e.in_kernel = false;
      e.retry = now + Impl::retry_after;
    } else {
      ++stats_.streams;
      ++stats_.installs;
    }
    slot->second[i] = e;
  }
  if (slot != impl_->installed.end() &&
      std::none_of(slot->second.begin(), slot->second.end(), [](const auto& s) { return s.has_value(); }))
    impl_->installed.erase(slot);
}

#else  // built without libbpf

struct Offload::Impl {};

std::unique_ptr<Offload> Offload::open(const OffloadConfig&, std::string& why) {
  why = "this anyrtpproxy was built without the kernel fast path (configure found no clang, libbpf or bpftool)";
  return nullptr;
}
Offload::Offload(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Offload::~Offload() = default;
std::vector<std::string> Offload::interface_names() const { return {}; }
bool Offload::tc_filters() const { return false; }
void Offload::follow(OffloadTable table, Clock::time_point) { table.take_touched(); }
void Offload::follow_all(OffloadTable table, Clock::time_point) { table.take_touched(); }
void Offload::harvest(OffloadTable) {}
void Offload::follow_one(OffloadTable, const SessionKey&, Clock::time_point) {}

#endif

}  // namespace anyrtpproxy
