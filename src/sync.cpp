// sync: see sync.h.
#include "sync.h"

#include "cluster.h"
#include "log.h"
#include "text.h"
#include "write_queue.h"

#include <boost/asio/connect.hpp>
#include <boost/asio/ip/v6_only.hpp>
#include <boost/asio/write.hpp>

#include <malloc.h>

#include <algorithm>
#include <stdexcept>

namespace anyrtpproxy {

namespace ip = boost::asio::ip;
using ip::tcp;

// One reader of the sync stream: a write queue (one async_write in flight), and
// a read that only discards (the port is read-only) and notices the close.
class SyncServer::Connection : public std::enable_shared_from_this<Connection> {
public:
  Connection(tcp::socket socket, SyncServer& owner)
      : socket_(std::move(socket)), owner_(owner), queue_(max_queued_bytes) {
    boost::system::error_code ec;
    peer_ = endpoint_text(socket_.remote_endpoint(ec));
  }
  // A reader dropped with up to max_queued_bytes queued leaves that much free
  // heap behind: give it back to the system (glibc keeps it otherwise).
  ~Connection() {
    if (!trim_) return;
    queue_ = WriteQueue(0);
    ::malloc_trim(0);
  }

  void start(std::shared_ptr<const std::string> first) {
    deliver(std::move(first));
    discard();
  }

  void deliver(std::shared_ptr<const std::string> bytes) {
    if (!socket_.is_open()) return;
    const std::size_t size = bytes->size();
    switch (queue_.push(std::move(bytes))) {
      case WriteQueue::Push::start_writing: return write();
      case WriteQueue::Push::queued: return;
      case WriteQueue::Push::over_limit:
        trim_ = true;
        ++owner_.stats_.slow_peers_dropped;
        owner_.log_.warning("sync: " + peer_ + " reads too slowly (" + std::to_string(queue_.bytes() + size) +
                            " bytes queued); dropping it, it gets the whole table when it reconnects");
        return shut();
    }
  }

  // Closes and leaves the server's list. The queue stays: the buffer of a write
  // still in flight lives in it until that write's handler has run.
  void shut() {
    boost::system::error_code ec;
    socket_.close(ec);
    owner_.forget(this);
  }

private:
  void write() {
    boost::asio::async_write(socket_, boost::asio::buffer(queue_.front()),
                             [self = shared_from_this()](boost::system::error_code ec, std::size_t) {
                               if (ec || !self->socket_.is_open()) return self->shut();
                               if (self->queue_.pop()) self->write();
                             });
  }
  // Reads only to notice the close; a client that keeps talking to a read-only
  // port is cut off before it can cost the media path any time.
  void discard() {
    socket_.async_read_some(boost::asio::buffer(sink_), [self = shared_from_this()](boost::system::error_code ec, std::size_t n) {
      if (ec) return self->shut();
      self->ignored_ += n;
      if (self->ignored_ > max_ignored_bytes) {
        self->owner_.log_.notice("sync: " + self->peer_ + " sent " + std::to_string(self->ignored_) +
                                 " bytes to the read-only sync port; closing it");
        return self->shut();
      }
      self->discard();
    });
  }

  static constexpr std::size_t max_ignored_bytes = 64 * 1024;

  tcp::socket socket_;
  SyncServer& owner_;
  std::string peer_;
  bool trim_ = false;  // it was dropped with a full queue
  WriteQueue queue_;
  std::size_t ignored_ = 0;
  std::array<char, 4096> sink_{};
};

SyncServer::SyncServer(boost::asio::io_context& io, const tcp::endpoint& at, const SessionTable& table,
                       SyncHello hello, Logger& log, SyncStats& stats)
    : acceptor_(io), table_(table), hello_(std::move(hello)), log_(log), stats_(stats) {
  boost::system::error_code ec;
  acceptor_.open(at.protocol(), ec);
  if (!ec && at.address().is_v6()) acceptor_.set_option(ip::v6_only(!at.address().is_unspecified()), ec);
  if (!ec) acceptor_.set_option(tcp::acceptor::reuse_address(true), ec);
  if (!ec) acceptor_.bind(at, ec);
  if (!ec) acceptor_.listen(64, ec);
  if (ec) throw std::runtime_error("cannot listen on sync port " + endpoint_text(at) + ": " + ec.message());
}

SyncServer::~SyncServer() { close(); }

void SyncServer::start() { accept(); }

void SyncServer::close() {
  boost::system::error_code ec;
  acceptor_.close(ec);
  auto all = connections_;
  for (auto& c : all) c->shut();
  connections_.clear();
}

std::string SyncServer::snapshot(Clock::time_point now) const {
  const auto& sessions = table_.sessions();
  std::string out = "# anyrtpproxy sync: instance " + hello_.instance + ", ports " + std::to_string(hello_.port_min) +
                    "-" + std::to_string(hello_.port_max) + ", " + std::to_string(sessions.size()) +
                    " active sessions\n";
  for (const auto& [key, e] : sessions) out += listing_line(e.session, e.local, now, table_.ttl_left(e.session, now));
  out += "# end of listing; what follows is the sync stream: the table as frames, then one F line per change\n";
  SyncHello h = hello_;
  h.sessions = sessions.size();
  out += encode(h);
  for (const auto& [key, e] : sessions) out += encode(e.session, now);
  for (const auto& [key, b] : table_.tombstones()) out += encode(b.tomb);
  return out;
}

void SyncServer::accept() {
  acceptor_.async_accept([this](boost::system::error_code ec, tcp::socket socket) {
    if (ec == boost::asio::error::operation_aborted || !acceptor_.is_open()) return;
    if (!ec) {
      if (connections_.size() >= max_connections) {
        ++stats_.connections_refused;
        if (stats_.connections_refused == 1 || stats_.connections_refused % 1000 == 0)
          log_.warning("sync: " + std::to_string(max_connections) + " connections open; refusing more (" +
                       std::to_string(stats_.connections_refused) + " so far)");
        boost::system::error_code ignored;
        socket.close(ignored);
      } else {
        auto c = std::make_shared<Connection>(std::move(socket), *this);
        connections_.push_back(c);
        const auto now = Clock::now();
        if (!snapshot_ || now - snapshot_at_ > std::chrono::seconds(1)) {
          snapshot_ = std::make_shared<const std::string>(snapshot(now));
          snapshot_at_ = now;
        }
        c->start(snapshot_);
      }
    }
    accept();
  });
}

void SyncServer::forget(Connection* c) {
  connections_.erase(std::remove_if(connections_.begin(), connections_.end(),
                                    [c](const auto& p) { return p.get() == c; }),
                     connections_.end());
}

void SyncServer::deliver(std::shared_ptr<const std::string> bytes) {
  auto all = connections_;  // a slow one may drop out while we deliver
  for (auto& c : all) c->deliver(bytes);
}

void SyncServer::publish(const Changes& changes, Clock::time_point now) {
  if (changes.upserts.empty() && changes.removals.empty()) return;
  table_changed();
  if (connections_.empty()) return;
  std::string out;
  for (const Session& s : changes.upserts) out += encode(s, now);
  for (const auto& t : changes.removals) out += encode(t);
  deliver(std::make_shared<const std::string>(std::move(out)));
}

void SyncServer::note(std::string line) {
  if (connections_.empty()) return;
  deliver(std::make_shared<const std::string>(std::move(line)));
}

void SyncServer::publish(const SyncActivity& activity) {
  if (connections_.empty() || activity.entries.empty()) return;
  deliver(std::make_shared<const std::string>(encode(activity)));
}

SyncClient::SyncClient(boost::asio::io_context& io, const std::string& host, std::uint16_t port, SyncHello self,
                       Handler handler, Logger& log, SyncStats& stats)
    : socket_(io), timer_(io), name_(host + ":" + std::to_string(port)), self_(std::move(self)),
      handler_(std::move(handler)), log_(log), stats_(stats) {
  tcp::resolver resolver(io);
  boost::system::error_code ec;
  for (const auto& r : resolver.resolve(host, std::to_string(port), ec)) endpoints_.push_back(r.endpoint());
  if (ec || endpoints_.empty()) throw std::runtime_error("cannot resolve sync host " + name_);
}

void SyncClient::start() { connect(); }

void SyncClient::close() {
  closed_ = true;
  boost::system::error_code ec;
  timer_.cancel();
  socket_.close(ec);
}

void SyncClient::retry(std::chrono::milliseconds delay) {
  timer_.expires_after(delay);
  timer_.async_wait([this](boost::system::error_code ec) {
    if (!ec && !closed_) connect();
  });
}

void SyncClient::fail(const std::string& why, std::chrono::milliseconds delay) {
  if (closed_) return;
  boost::system::error_code ec;
  socket_.close(ec);
  if (why != last_error_)
    log_.warning("sync: " + name_ + ": " + why + "; reconnecting");
  else
    log_.debug("sync: " + name_ + ": " + why + " (again)");
  last_error_ = why;
  connected_ = false;
  peer_instance_.clear();
  if (delay.count() == 0) {
    delay = backoff_;
    backoff_ = std::min(backoff_ * 2, std::chrono::milliseconds(1000));
  }
  retry(delay);
}

void SyncClient::connect() {
  reader_ = FrameReader();
  boost::asio::async_connect(socket_, endpoints_, [this](boost::system::error_code ec, const tcp::endpoint&) {
    if (closed_) return;
    if (ec) return fail("cannot connect: " + ec.message());
    connected_ = true;
    backoff_ = std::chrono::milliseconds(100);
    log_.notice("sync: connected to " + name_);
    read();
  });
}

void SyncClient::read() {
  socket_.async_read_some(boost::asio::buffer(buffer_), [this](boost::system::error_code ec, std::size_t n) {
    if (closed_ || ec == boost::asio::error::operation_aborted) return;
    if (ec) return fail(ec == boost::asio::error::eof ? "closed the connection" : ec.message());
    if (!reader_.feed(std::string_view(buffer_.data(), n))) {
      ++stats_.bad_streams;
      return fail("sent " + reader_.error());
    }
    const auto now = Clock::now();
    while (auto next = reader_.next(now)) {
      if (auto* e = std::get_if<SyncError>(&*next)) {
        ++stats_.bad_streams;
        return fail("sent " + e->what);
      }
      auto& msg = std::get<SyncMessage>(*next);
      ++stats_.frames_received;
      if (auto* h = std::get_if<SyncHello>(&msg)) {
        if (auto refusal = refuse_hello(*h, self_)) return fail(refusal->why, refusal->retry);
        peer_instance_ = h->instance;
      }
      handler_(msg, SyncSource{name_, peer_instance_});
      last_error_.clear();  // a healthy stream: the next failure is news again
      if (closed_ || !socket_.is_open()) return;
    }
    read();
  });
}

}  // namespace anyrtpproxy
