// offload: the kernel fast path (man page: KERNEL FAST PATH). Loads the eBPF program the
// binary carries (src/io/bpf/offload.bpf.c), attaches it at tc ingress (a tcx
// link, so it goes with the process: a killed daemon leaves nothing behind;
// on kernels before 6.6 a classic tc filter, which forwards nothing once its
// daemon stops writing its owner map and which the next start replaces)
// of every interface media may arrive on, and keeps its map of streams in
// step with the session table: offload_plan.h decides which streams the
// kernel forwards; this module installs, replaces and removes their entries
// and reads back their counters into the table (received, relayed, the
// session's activity, the latched source's last packet), so timeouts, Q, I,
// metrics and the peers' activity reports see the offloaded packets.
//
// Built without libbpf (configure), or when the kernel refuses (no BPF
// permission), open() says why and the daemon relays in userspace.
#pragma once

#include "core/offload_plan.h"
#include "core/session_table.h"

#include <boost/asio/ip/address.hpp>

#include <array>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

namespace anyrtpproxy {

struct OffloadConfig {
  std::vector<std::string> interfaces;  // empty: every interface but lo
  std::array<std::optional<boost::asio::ip::address>, slot_count> local;  // the relay address of each slot
  std::size_t max_streams = 262144;  // the map's size: beyond it, streams stay in userspace
};

struct OffloadStats {
  std::uint64_t streams = 0;        // entries installed now
  std::uint64_t packets = 0;        // forwarded by the kernel (read so far)
  std::uint64_t bytes = 0;
  std::uint64_t installs = 0;       // entries written (new or changed)
  std::uint64_t removals = 0;
  std::uint64_t failures = 0;       // entries the kernel refused (a full map) or no route
  std::size_t interfaces = 0;
};

class Offload {
public:
  // The fast path, attached; nothing (and `why`) when it cannot be had here.
  static std::unique_ptr<Offload> open(const OffloadConfig& config, std::string& why);
  ~Offload();  // detaches (closing the links) and frees the map
  Offload(const Offload&) = delete;
  Offload& operator=(const Offload&) = delete;

  // Brings the entries of the sessions the table changed up to date (before a reply goes out).
  void follow(OffloadTable table, Clock::time_point now);
  // Every session (once a second: re-offer windows that closed, missed changes).
  void follow_all(OffloadTable table, Clock::time_point now);
  // Reads what the kernel forwarded into the table.
  void harvest(OffloadTable table);
  const OffloadStats& stats() const { return stats_; }
  std::vector<std::string> interface_names() const;
  bool tc_filters() const;  // attached as classic tc filters (no tcx links here)

private:
  struct Impl;
  explicit Offload(std::unique_ptr<Impl> impl);
  void follow_one(OffloadTable table, const SessionKey& key, Clock::time_point now);
  std::unique_ptr<Impl> impl_;
  OffloadStats stats_;
};

}  // namespace anyrtpproxy
