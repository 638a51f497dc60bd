// recorder: see recorder.h.
#include "io/recorder.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <thread>

namespace anyrtpproxy {

struct Recorder::Slot {
  enum class Type : std::uint8_t { open, packet, close } type = Type::packet;
  Id id = 0;
  std::uint8_t leg = 0;
  Kind kind = Kind::rtp;
  udp::endpoint from, to;
  std::uint16_t size = 0, kept = 0;
  std::chrono::system_clock::time_point when{};
  unsigned char data[slot_bytes];
};

// One recording on the writer's side: one pcap, or rtpproxy's four
// per-direction files (opened at their first packet).
struct Recorder::File {
  Id id = 0;
  std::string base;
  bool failed = false;
  struct Out {
    std::FILE* f = nullptr;
    std::string spooled, final_path;
  };
  std::array<Out, 4> outs;  // pcap: [0]; adhoc: by leg * 2 + kind
};

Recorder::Recorder(RecorderConfig config) : config_(std::move(config)) {}

Recorder::~Recorder() {
  stop_ = true;
  if (writer_.joinable()) writer_.join();
}

Recorder::Slot* Recorder::claim() {
  const std::size_t head = head_.load(std::memory_order_relaxed);
  if (head - tail_.load(std::memory_order_acquire) >= config_.slots) return nullptr;
  return &ring_[head % config_.slots];
}

void Recorder::publish() { head_.store(head_.load(std::memory_order_relaxed) + 1, std::memory_order_release); }

Recorder::Id Recorder::open(const std::string& base) {
  if (!enabled()) return 0;
  if (!ring_) {  // the first recording: the ring and the writer, once
    ring_ = std::make_unique<Slot[]>(config_.slots);
    writer_ = boost::thread([this] { run(); });
  }
  Slot* s = claim();
  if (!s) {
    ++dropped_;
    return 0;
  }
  const Id id = next_id_++;
  if (next_id_ == 0) next_id_ = 1;
  s->type = Slot::Type::open;
  s->id = id;
  s->size = static_cast<std::uint16_t>(std::min(base.size(), sizeof s->data));
  std::memcpy(s->data, base.data(), s->size);
  publish();
  ++opened_;
  return id;
}

void Recorder::packet(Id id, int leg, Kind kind, const udp::endpoint& from, const udp::endpoint& to,
                      const unsigned char* data, std::size_t size) {
  if (id == 0 || !ring_) return;
  Slot* s = claim();
  if (!s) {
    dropped_.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  s->type = Slot::Type::packet;
  s->id = id;
  s->leg = static_cast<std::uint8_t>(leg);
  s->kind = kind;
  s->from = from;
  s->to = to;
  s->size = static_cast<std::uint16_t>(std::min<std::size_t>(size, 65535));
  s->kept = static_cast<std::uint16_t>(std::min<std::size_t>(s->size, slot_bytes));
  s->when = std::chrono::system_clock::now();
  std::memcpy(s->data, data, s->kept);
  publish();
}

void Recorder::close(Id id) {
  if (id == 0 || !ring_) return;
  pending_closes_.push_back(id);
  retry_closes();
}

// A close must not be lost, nor wait: with the ring full it stays pending
// (at most one per recording) and goes in at the next call (each sweep).
void Recorder::retry_closes() {
  while (!pending_closes_.empty()) {
    Slot* s = claim();
    if (!s) return;
    s->type = Slot::Type::close;
    s->id = pending_closes_.front();
    pending_closes_.erase(pending_closes_.begin());
    publish();
  }
}

std::vector<std::string> Recorder::take_problems() {
  std::lock_guard<std::mutex> lock(problems_mutex_);
  return std::exchange(problems_, {});
}

RecorderStats Recorder::stats() const {
  return RecorderStats{packets_.load(), dropped_.load(), failed_.load(), opened_.load()};
}

void Recorder::problem(std::string text) {
  std::lock_guard<std::mutex> lock(problems_mutex_);
  if (problems_.size() < 64) problems_.push_back(std::move(text));
}

namespace {

// Creates `dir/name` (or name.2, name.3, ... if it exists); nullptr and errno on failure.
std::FILE* create(const std::string& dir, const std::string& name, std::string& path) {
  for (int n = 1; n <= 100; ++n) {
    path = dir + "/" + name + (n == 1 ? "" : "." + std::to_string(n));
    const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0640);
    if (fd >= 0) {
      std::FILE* f = ::fdopen(fd, "wb");
      if (!f) ::close(fd);
      return f;
    }
    if (errno != EEXIST) return nullptr;
  }
  errno = EEXIST;
  return nullptr;
}

}  // namespace

void Recorder::handle(Slot& s, std::vector<std::unique_ptr<File>>& files) {
  const auto found = std::find_if(files.begin(), files.end(), [&](const auto& f) { return f->id == s.id; });
  if (s.type == Slot::Type::open) {
    auto file = std::make_unique<File>();
    file->id = s.id;
    file->base = std::string(reinterpret_cast<const char*>(s.data), s.size);
    files.push_back(std::move(file));
    return;
  }
  if (found == files.end()) return;
  File& file = **found;
  auto finish = [&](File::Out& out, bool keep) {
    if (!out.f) return;
    const bool flushed = std::fclose(out.f) == 0;
    out.f = nullptr;
    if (!flushed && !file.failed) {
      file.failed = true;
      ++failed_;
      problem("recording " + out.spooled + ": cannot write it: " + std::strerror(errno) + "; recording stopped");
    }
    if (keep && out.final_path != out.spooled && std::rename(out.spooled.c_str(), out.final_path.c_str()) != 0)
      problem("recording " + out.spooled + ": cannot move it to " + config_.dir + ": " + std::strerror(errno));
  };
  if (s.type == Slot::Type::close) {
    for (auto& out : file.outs) finish(out, true);
    files.erase(found);
    return;
  }
  if (file.failed) return;
  const std::size_t which = config_.pcap ? 0 : static_cast<std::size_t>(s.leg * 2 + (s.kind == Kind::rtcp ? 1 : 0));
  File::Out& out = file.outs[which];
  if (!out.f) {
    const std::string name = file.base + (config_.pcap ? ".pcap" : adhoc_suffix(s.leg, s.kind));
    const std::string& dir = config_.spool.empty() ? config_.dir : config_.spool;
    out.f = create(dir, name, out.spooled);
    if (!out.f) {
      file.failed = true;
      ++failed_;
      problem("recording " + dir + "/" + name + ": cannot create it: " + std::strerror(errno) + "; recording stopped");
      return;
    }
    out.final_path = config_.spool.empty() ? out.spooled : config_.dir + out.spooled.substr(dir.size());
    std::setvbuf(out.f, nullptr, _IOFBF, 64 * 1024);
    if (config_.pcap) {
      const auto h = pcap_file_header();
      std::fwrite(h.data(), 1, h.size(), out.f);
    }
  }
  unsigned char header[max_record_header];
  const std::size_t n = config_.pcap ? pcap_record_header(header, s.from, s.to, s.data, s.size, s.kept, s.when)
                                     : adhoc_record_header(header, s.from, s.kept, s.when);
  if (std::fwrite(header, 1, n, out.f) != n || std::fwrite(s.data, 1, s.kept, out.f) != s.kept) {
    file.failed = true;
    ++failed_;
    problem("recording " + out.spooled + ": cannot write it: " + std::strerror(errno) + "; recording stopped");
    for (auto& o : file.outs) finish(o, true);
    return;
  }
  packets_.fetch_add(1, std::memory_order_relaxed);
}

void Recorder::run() {
  std::vector<std::unique_ptr<File>> files;
  for (;;) {
    const std::size_t head = head_.load(std::memory_order_acquire);
    std::size_t tail = tail_.load(std::memory_order_relaxed);
    if (tail == head) {
      if (stop_) break;
      for (auto& f : files)  // idle: what is buffered reaches the disk
        for (auto& o : f->outs)
          if (o.f) std::fflush(o.f);
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
      continue;
    }
    for (; tail != head; ++tail) {
      handle(ring_[tail % config_.slots], files);
      tail_.store(tail + 1, std::memory_order_release);
    }
  }
  for (auto& f : files) {  // stopping: close and move what is still open
    Slot close_slot;
    close_slot.type = Slot::Type::close;
    close_slot.id = f->id;
    std::vector<std::unique_ptr<File>> one;
    one.push_back(std::move(f));
    handle(close_slot, one);
  }
}

}  // namespace anyrtpproxy
