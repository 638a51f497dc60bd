// write_queue: the outgoing bytes of one stream connection, bounded in bytes,
// with at most one write in flight (the Asio rule for async_write). The
// connection asks push() whether to start writing, writes front(), and calls
// pop() when that write completed. A buffer stays here until its write's
// handler has run, even if the connection was closed meanwhile.
#pragma once

#include <cstddef>
#include <deque>
#include <memory>
#include <string>

namespace anyrtpproxy {

class WriteQueue {
public:
  explicit WriteQueue(std::size_t max_bytes) : max_bytes_(max_bytes) {}

  enum class Push { start_writing, queued, over_limit };
  // over_limit: queuing these bytes would pass the bound; nothing was queued
  // (a reader that falls that far behind is cut off by the caller).
  Push push(std::shared_ptr<const std::string> bytes) {
    if (bytes_ + bytes->size() > max_bytes_) return Push::over_limit;
    bytes_ += bytes->size();
    queue_.push_back(std::move(bytes));
    return queue_.size() == 1 ? Push::start_writing : Push::queued;
  }
  const std::string& front() const { return *queue_.front(); }
  // The front buffer was written; true: another one waits.
  bool pop() {
    bytes_ -= queue_.front()->size();
    queue_.pop_front();
    return !queue_.empty();
  }
  std::size_t bytes() const { return bytes_; }

private:
  std::size_t max_bytes_;
  std::size_t bytes_ = 0;
  std::deque<std::shared_ptr<const std::string>> queue_;
};

}  // namespace anyrtpproxy
