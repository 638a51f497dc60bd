// write_queue: the outgoing bytes of one stream connection, bounded in bytes,
// with at most one write in flight (Asio allows one write at a time on a stream). The
// connection asks push() whether to start writing, writes front(), and calls
// pop() when that write completed. A buffer stays here until its write's
// handler has run, even if the connection was closed meanwhile.
//
// What waits behind the write in flight (a reader that falls behind) is
// copied into chunks of its own of at least backlog_chunk bytes: glibc maps
// such blocks separately (main.cpp pins its threshold), so when a slow
// reader is dropped its backlog goes back to the system at once, instead of
// pinning heap pages that small long-lived allocations are interleaved with.
// A reader that keeps up writes the shared buffer itself, without a copy.
#pragma once

#include <algorithm>
#include <cstddef>
#include <deque>
#include <memory>
#include <string>

namespace anyrtpproxy {

class WriteQueue {
public:
  static constexpr std::size_t backlog_chunk = 1 << 20;

  explicit WriteQueue(std::size_t max_bytes) : max_bytes_(max_bytes) {}

  enum class Push { start_writing, queued, over_limit };
  // over_limit: queuing these bytes would pass the bound; nothing was queued
  // (a reader that falls that far behind is cut off by the caller).
  Push push(std::shared_ptr<const std::string> bytes) {
    if (bytes_ + bytes->size() > max_bytes_) return Push::over_limit;
    bytes_ += bytes->size();
    if (queue_.empty()) {
      queue_.push_back(Piece{std::move(bytes), {}});
      return Push::start_writing;
    }
    // Behind the front (being written, never touched): into the last chunk if it has room.
    if (queue_.size() == 1 || queue_.back().shared || queue_.back().owned.size() + bytes->size() > backlog_chunk) {
      queue_.push_back(Piece{nullptr, {}});
      queue_.back().owned.reserve(std::max(backlog_chunk, bytes->size()));
    }
    queue_.back().owned += *bytes;
    return Push::queued;
  }
  const std::string& front() const { return queue_.front().shared ? *queue_.front().shared : queue_.front().owned; }
  // The front buffer was written; true: another one waits.
  bool pop() {
    bytes_ -= front().size();
    queue_.pop_front();
    return !queue_.empty();
  }
  std::size_t bytes() const { return bytes_; }

private:
  struct Piece {
    std::shared_ptr<const std::string> shared;  // the caller's buffer, written as it is
    std::string owned;                          // a backlog chunk
  };
  std::size_t max_bytes_;
  std::size_t bytes_ = 0;
  std::deque<Piece> queue_;
};

}  // namespace anyrtpproxy
