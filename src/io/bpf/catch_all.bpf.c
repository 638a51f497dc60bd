// SPDX-License-Identifier: GPL-3.0-or-later
// The catch-all receive path (man page: MIRRORED LEGS): an sk_lookup program that hands the
// packets of parked legs to one socket of the daemon.
//
// A parked leg is one a peer allocated and this instance mirrors without
// binding its sockets. The daemon (src/io/catch_all.cpp) puts its relay address
// and RTP port into `parked`, and its catch-all sockets (one per address
// family) into `sockets`. A UDP packet whose destination is a parked leg's
// RTP or RTCP port goes to the catch-all socket of its family, which reads
// the original destination with IP_RECVORIGDSTADDR, binds the leg's sockets
// (adoption) and takes the leg out of `parked`: the next packet finds the
// leg's own socket by the normal lookup. Everything else passes untouched to
// the normal lookup (and to the programs of other instances in this network
// namespace). The program is attached by a link that lives as long as the
// daemon's descriptor: a killed daemon leaves nothing behind.
#include <linux/bpf.h>
#include <linux/in.h>

#include <bpf/bpf_helpers.h>

// Keep in step with struct ParkedKey in src/io/catch_all.cpp.
struct parked_key {
  __u32 addr[4];  // the relay address (IPv4: addr[0]), network order; all zero: any address
  __u32 port;     // the RTP port (even), host order
  __u32 family;   // 4 or 6
};

struct {
  __uint(type, BPF_MAP_TYPE_HASH);
  __uint(max_entries, 262144);  // the daemon bounds what it parks (its table's size)
  __uint(map_flags, BPF_F_NO_PREALLOC);
  __type(key, struct parked_key);
  __type(value, __u32);  // unused
} parked SEC(".maps");

// One bit per even (RTP) port: set while a leg is parked on that port at any
// of the daemon's addresses. Every UDP packet of the namespace runs this
// program, so the common case (no parked leg there) costs one array read.
struct {
  __uint(type, BPF_MAP_TYPE_ARRAY);
  __uint(max_entries, 512);  // 32,768 even ports / 64
  __type(key, __u32);
  __type(value, __u64);
} ports SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_SOCKMAP);
  __uint(max_entries, 2);  // 0: IPv4, 1: IPv6
  __type(key, __u32);
  __type(value, __u64);
} sockets SEC(".maps");

SEC("sk_lookup")
int catch_all(struct bpf_sk_lookup* ctx) {
  if (ctx->protocol != IPPROTO_UDP) return SK_PASS;
  const __u32 pair = (ctx->local_port & 0xffff) >> 1;  // the RTP port's index among even ports
  const __u32 word = pair >> 6;
  const __u64* bits = bpf_map_lookup_elem(&ports, &word);
  if (!bits || !(*bits & (1ULL << (pair & 63)))) return SK_PASS;
  struct parked_key key = {};
  __u32 index = 0;
  if (ctx->family == 2 /* AF_INET */) {
    key.addr[0] = ctx->local_ip4;
    key.family = 4;
  } else if (ctx->family == 10 /* AF_INET6 */) {
    key.addr[0] = ctx->local_ip6[0];
    key.addr[1] = ctx->local_ip6[1];
    key.addr[2] = ctx->local_ip6[2];
    key.addr[3] = ctx->local_ip6[3];
    key.family = 6;
    index = 1;
  } else {
    return SK_PASS;
  }
  key.port = ctx->local_port & ~1u;
  if (!bpf_map_lookup_elem(&parked, &key)) {
    key.addr[0] = key.addr[1] = key.addr[2] = key.addr[3] = 0;  // a leg on the wildcard address
    if (!bpf_map_lookup_elem(&parked, &key)) return SK_PASS;
  }
  struct bpf_sock* sk = bpf_map_lookup_elem(&sockets, &index);
  if (!sk) return SK_PASS;
  bpf_sk_assign(ctx, sk, 0);  // fails only if another program already chose: then that one wins
  bpf_sk_release(sk);
  return SK_PASS;
}

char LICENSE[] SEC("license") = "GPL";
