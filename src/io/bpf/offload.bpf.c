// SPDX-License-Identifier: GPL-3.0-or-later
// The kernel fast path (man page: KERNEL FAST PATH): a tc ingress program that forwards the
// packets of latched media streams without waking the daemon.
//
// The daemon (src/io/offload.cpp) fills `streams` with one entry per offloaded
// stream: the exact 4-tuple a packet must have (the latched remote -> the
// relay's address and port) and what to make of it (the relay's address and
// port of the other leg -> that leg's remote, out of interface `ifindex`).
// A packet that matches is rewritten (addresses, ports, TTL; IP and UDP
// checksums fixed), counted, and redirected out; everything else, and every
// packet this program cannot handle (IP options, fragments, extension
// headers), goes up the stack unchanged to the daemon's sockets.
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/pkt_cls.h>
#include <linux/udp.h>

#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

// Keep in step with struct OffloadKey/OffloadValue in src/io/offload.cpp.
struct stream_key {
  __u32 src[4];   // the latched remote (IPv4: src[0]), network order
  __u32 dst[4];   // the relay address the stream arrives on
  __u16 sport;    // network order
  __u16 dport;
  __u32 family;   // 4 or 6
};

struct stream_value {
  __u32 src[4];   // the relay address of the other leg
  __u32 dst[4];   // the other leg's remote
  __u16 sport;    // network order
  __u16 dport;
  __u32 ifindex;  // where the other leg's remote is reached
  __u64 packets;  // counted here, read by the daemon
  __u64 bytes;
  __u64 last_ns;  // bpf_ktime_get_ns() of the last packet (CLOCK_MONOTONIC)
  __u32 ssrc;     // of the last packet that had an RTP header's length (host order)
  __u16 seq;      // its sequence number (host order)
  __u16 pad;
};

struct {
  __uint(type, BPF_MAP_TYPE_HASH);
  __uint(max_entries, 262144);  // the daemon also bounds what it installs (--kernel-offload)
  __type(key, struct stream_key);
  __type(value, struct stream_value);
} streams SEC(".maps");

// The daemon that owns this program: it writes bpf_ktime_get_ns()'s clock
// (CLOCK_MONOTONIC) here every second, and 0 when it exits. A program its
// daemon no longer keeps (a tc filter, which unlike a tcx link outlives a
// killed process) forwards nothing: its packets go up the stack.
struct owner {
  __u64 alive_ns;
  __u32 pid;
  __u32 pad;
};

struct {
  __uint(type, BPF_MAP_TYPE_ARRAY);
  __uint(max_entries, 1);
  __type(key, __u32);
  __type(value, struct owner);
} owner SEC(".maps");

#define OWNER_TIMEOUT_NS (10ULL * 1000 * 1000 * 1000)

// Asked only of a packet that matched a stream: the rest pay nothing for it.
static __always_inline int owned(void) {
  const __u32 zero = 0;
  const struct owner* o = bpf_map_lookup_elem(&owner, &zero);
  return o && bpf_ktime_get_ns() - o->alive_ns <= OWNER_TIMEOUT_NS;
}

#define IP_CSUM_OFF (ETH_HLEN + __builtin_offsetof(struct iphdr, check))
#define IP_SRC_OFF (ETH_HLEN + __builtin_offsetof(struct iphdr, saddr))
#define IP_TTL_OFF (ETH_HLEN + __builtin_offsetof(struct iphdr, ttl))
#define UDP4_OFF (ETH_HLEN + sizeof(struct iphdr))
#define UDP6_OFF (ETH_HLEN + sizeof(struct ipv6hdr))
#define IP6_SRC_OFF (ETH_HLEN + __builtin_offsetof(struct ipv6hdr, saddr))
#define IP6_HOP_OFF (ETH_HLEN + __builtin_offsetof(struct ipv6hdr, hop_limit))

// Counts the packet (`headers`: the bytes before its UDP payload); `rtp` is that payload (SSRC and sequence number,
// which the daemon's NAT-rebinding rule compares).
static __always_inline void count(struct stream_value* v, struct __sk_buff* skb, __u32 headers, __u8* rtp, void* end) {
  __sync_fetch_and_add(&v->packets, 1);
  __sync_fetch_and_add(&v->bytes, skb->len - headers);  // the UDP payload, as the daemon counts
  v->last_ns = bpf_ktime_get_ns();
  if ((void*)(rtp + 12) <= end) {
    v->seq = ((__u16)rtp[2] << 8) | rtp[3];
    v->ssrc = ((__u32)rtp[8] << 24) | ((__u32)rtp[9] << 16) | ((__u32)rtp[10] << 8) | rtp[11];
  }
}

static __always_inline int forward4(struct __sk_buff* skb) {
  void* data = (void*)(long)skb->data;
  void* end = (void*)(long)skb->data_end;
  struct iphdr* ip = data + ETH_HLEN;
  if ((void*)(ip + 1) > end) return TC_ACT_OK;
  if (ip->ihl != 5 || ip->protocol != IPPROTO_UDP || (ip->frag_off & bpf_htons(0x3fff))) return TC_ACT_OK;
  struct udphdr* udp = (void*)(ip + 1);
  if ((void*)(udp + 1) > end) return TC_ACT_OK;
  struct stream_key k = {};
  k.src[0] = ip->saddr;
  k.dst[0] = ip->daddr;
  k.sport = udp->source;
  k.dport = udp->dest;
  k.family = 4;
  struct stream_value* v = bpf_map_lookup_elem(&streams, &k);
  if (!v || !v->ifindex || !owned()) return TC_ACT_OK;
  const __u32 old_src = ip->saddr, old_dst = ip->daddr, new_src = v->src[0], new_dst = v->dst[0];
  const __u16 old_sport = udp->source, old_dport = udp->dest, new_sport = v->sport, new_dport = v->dport;
  const __u16 old_ttl = bpf_htons((__u16)ip->ttl << 8), new_ttl = bpf_htons(64 << 8);
  const __u32 ifindex = v->ifindex;
  count(v, skb, UDP4_OFF + sizeof(struct udphdr), (__u8*)(udp + 1), end);
  // UDP checksum: the pseudo-header's addresses and the ports (0 stays 0: none)
  const int udp_csum = UDP4_OFF + __builtin_offsetof(struct udphdr, check);
  bpf_l4_csum_replace(skb, udp_csum, old_src, new_src, BPF_F_PSEUDO_HDR | BPF_F_MARK_MANGLED_0 | 4);
  bpf_l4_csum_replace(skb, udp_csum, old_dst, new_dst, BPF_F_PSEUDO_HDR | BPF_F_MARK_MANGLED_0 | 4);
  bpf_l4_csum_replace(skb, udp_csum, old_sport, new_sport, BPF_F_MARK_MANGLED_0 | 2);
  bpf_l4_csum_replace(skb, udp_csum, old_dport, new_dport, BPF_F_MARK_MANGLED_0 | 2);
  // IP header checksum: addresses and TTL
  bpf_l3_csum_replace(skb, IP_CSUM_OFF, old_src, new_src, 4);
  bpf_l3_csum_replace(skb, IP_CSUM_OFF, old_dst, new_dst, 4);
  bpf_l3_csum_replace(skb, IP_CSUM_OFF, old_ttl, new_ttl, 2);
  __u32 addrs[2] = {new_src, new_dst};
  bpf_skb_store_bytes(skb, IP_SRC_OFF, addrs, sizeof(addrs), 0);
  __u16 ports[2] = {new_sport, new_dport};
  bpf_skb_store_bytes(skb, UDP4_OFF, ports, sizeof(ports), 0);
  __u8 ttl = 64;
  bpf_skb_store_bytes(skb, IP_TTL_OFF, &ttl, 1, 0);
  return bpf_redirect_neigh(ifindex, 0, 0, 0);
}

static __always_inline int forward6(struct __sk_buff* skb) {
  void* data = (void*)(long)skb->data;
  void* end = (void*)(long)skb->data_end;
  struct ipv6hdr* ip = data + ETH_HLEN;
  if ((void*)(ip + 1) > end) return TC_ACT_OK;
  if (ip->nexthdr != IPPROTO_UDP) return TC_ACT_OK;  // extension headers: the daemon
  struct udphdr* udp = (void*)(ip + 1);
  if ((void*)(udp + 1) > end) return TC_ACT_OK;
  struct stream_key k = {};
  __builtin_memcpy(k.src, &ip->saddr, 16);
  __builtin_memcpy(k.dst, &ip->daddr, 16);
  k.sport = udp->source;
  k.dport = udp->dest;
  k.family = 6;
  struct stream_value* v = bpf_map_lookup_elem(&streams, &k);
  if (!v || !v->ifindex || !owned()) return TC_ACT_OK;
  struct stream_key old = k;  // the old addresses and ports, for the checksum
  __u32 new_addrs[8];
  __builtin_memcpy(new_addrs, v->src, 16);
  __builtin_memcpy(new_addrs + 4, v->dst, 16);
  const __u16 new_sport = v->sport, new_dport = v->dport;
  const __u32 ifindex = v->ifindex;
  count(v, skb, UDP6_OFF + sizeof(struct udphdr), (__u8*)(udp + 1), end);
  // The UDP checksum covers the pseudo-header: the difference of the 32 address bytes.
  const __s64 diff = bpf_csum_diff(old.src, 32, new_addrs, 32, 0);
  const int udp_csum = UDP6_OFF + __builtin_offsetof(struct udphdr, check);
  bpf_l4_csum_replace(skb, udp_csum, 0, diff, BPF_F_PSEUDO_HDR | BPF_F_MARK_MANGLED_0);
  bpf_l4_csum_replace(skb, udp_csum, old.sport, new_sport, BPF_F_MARK_MANGLED_0 | 2);
  bpf_l4_csum_replace(skb, udp_csum, old.dport, new_dport, BPF_F_MARK_MANGLED_0 | 2);
  bpf_skb_store_bytes(skb, IP6_SRC_OFF, new_addrs, sizeof(new_addrs), 0);
  __u16 ports[2] = {new_sport, new_dport};
  bpf_skb_store_bytes(skb, UDP6_OFF, ports, sizeof(ports), 0);
  __u8 hops = 64;
  bpf_skb_store_bytes(skb, IP6_HOP_OFF, &hops, 1, 0);
  return bpf_redirect_neigh(ifindex, 0, 0, 0);
}

SEC("tc")
int anyrtpproxy_ingress(struct __sk_buff* skb) {
  void* data = (void*)(long)skb->data;
  void* end = (void*)(long)skb->data_end;
  struct ethhdr* eth = data;
  if ((void*)(eth + 1) > end) return TC_ACT_OK;
  if (eth->h_proto == bpf_htons(ETH_P_IP)) return forward4(skb);
  if (eth->h_proto == bpf_htons(ETH_P_IPV6)) return forward6(skb);
  return TC_ACT_OK;
}

char LICENSE[] SEC("license") = "GPL";
