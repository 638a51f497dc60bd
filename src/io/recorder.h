// recorder: R's files, written by a thread of their own (Boost.Thread) so
// that disk I/O never blocks the relay.
//
// The relay thread hands every step to the writer through one bounded ring
// of fixed slots, allocated once (at the first recording): "open a
// recording", a packet, "close it". A packet costs a copy into a slot and no
// system call; the writer polls the ring (it sleeps 10 ms when it is empty).
// When the ring is full the packet is dropped from the recording and counted;
// the relayed packet is never touched. A recording whose file cannot be
// opened or written (unwritable directory, full disk) stops there: the writer
// closes it and reports one line, which the relay thread logs.
//
// Files are written into --spool-dir when given and moved into --record-dir
// when the recording closes; a name that exists already gets ".2", ".3"...
// (an instance that takes a call over after a failover writes a file of its
// own next to the first one's).
#pragma once

#include "core/recording.h"

#include <boost/thread/thread.hpp>

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace anyrtpproxy {

struct RecorderConfig {
  std::string dir;    // --record-dir; empty: recording is off
  std::string spool;  // --spool-dir; empty: write into dir
  bool pcap = false;  // --record-pcap: one pcap per session; else rtpproxy's per-direction files
  std::size_t slots = 8192;  // packets the ring holds (about 14 MiB, allocated at the first recording)
};

struct RecorderStats {
  std::uint64_t packets = 0;   // written
  std::uint64_t dropped = 0;   // the ring was full: the disk is too slow
  std::uint64_t failed = 0;    // recordings stopped by an error (open or write)
  std::uint64_t opened = 0;    // recordings begun
};

class Recorder {
public:
  using Id = std::uint32_t;  // 0: none
  explicit Recorder(RecorderConfig config);
  ~Recorder();  // closes every recording (moving it out of the spool) and joins the writer
  Recorder(const Recorder&) = delete;
  Recorder& operator=(const Recorder&) = delete;

  bool enabled() const { return !config_.dir.empty(); }
  // Starts a recording named after `base` (recording.h); 0 when the ring is full.
  Id open(const std::string& base);
  // A packet that arrived on `leg` of the recording, from `from` to the relay's `to`.
  void packet(Id id, int leg, Kind kind, const udp::endpoint& from, const udp::endpoint& to,
              const unsigned char* data, std::size_t size);
  void close(Id id);
  void retry_closes();  // closes the ring had no room for (the relay thread, every second)
  // What the writer reports (a file it could not open or write), to log.
  std::vector<std::string> take_problems();
  RecorderStats stats() const;

  static constexpr std::size_t slot_bytes = 1600;  // a longer packet is recorded cut (pcap says so)

private:
  struct Slot;
  struct File;
  Slot* claim();  // the next free slot, or none (the ring is full)
  void publish();
  void run();
  void handle(Slot& s, std::vector<std::unique_ptr<File>>& files);
  void problem(std::string text);

  RecorderConfig config_;
  std::unique_ptr<Slot[]> ring_;
  std::atomic<std::size_t> head_{0}, tail_{0};  // head: written by the relay thread; tail: by the writer
  std::atomic<bool> stop_{false};
  Id next_id_ = 1;
  std::vector<Id> pending_closes_;  // relay thread only
  std::atomic<std::uint64_t> packets_{0}, dropped_{0}, failed_{0}, opened_{0};
  std::mutex problems_mutex_;
  std::vector<std::string> problems_;  // at most 64 waiting
  boost::thread writer_;
};

}  // namespace anyrtpproxy
