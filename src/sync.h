// sync: session synchronisation between the instances of an anycast cluster.
//
// SyncServer (-S) writes, to everyone who connects, the readable listing of
// every session, then the whole table as frames (hello, one upsert per
// session, one remove per tombstone), then every change as it happens. It
// never acts on what a client sends; it caps its connections and the bytes
// queued per connection. SyncClient (one per -M peer) connects, reconnects
// with a short backoff, splits the stream into frames (FrameReader) and hands
// each message to the proxy. Wire format: sync_codec.h.
#pragma once

#include "cluster.h"
#include "session_table.h"
#include "stats.h"
#include "sync_codec.h"

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>

#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace anyrtpproxy {

class Logger;

class SyncServer {
public:
  // Binds now; throws std::runtime_error naming the address on failure.
  SyncServer(boost::asio::io_context& io, const boost::asio::ip::tcp::endpoint& at, const SessionTable& table,
             SyncHello hello, Logger& log, SyncStats& stats);
  ~SyncServer();
  void start();
  void close();
  void publish(const Changes& changes, Clock::time_point now);
  void publish(const SyncActivity& activity);
  // A line for the people watching (peers skip it): a change that came from a peer.
  void note(std::string line);
  // The table changed without a publish (a peer's change): the next connection
  // must not get the shared snapshot taken before.
  void table_changed() { snapshot_.reset(); }
  std::size_t connections() const { return connections_.size(); }

  static constexpr std::size_t max_connections = 64;
  static constexpr std::size_t max_queued_bytes = 64 * 1024 * 1024;  // a full table is about 30 MiB

private:
  class Connection;
  void accept();
  void forget(Connection* c);
  void deliver(std::shared_ptr<const std::string> bytes);
  std::string snapshot(Clock::time_point now) const;

  boost::asio::ip::tcp::acceptor acceptor_;
  const SessionTable& table_;
  SyncHello hello_;
  Logger& log_;
  SyncStats& stats_;
  std::vector<std::shared_ptr<Connection>> connections_;
  // The snapshot new connections start with, shared while the table is unchanged
  // (at most a second, for the listing's ages): a connection flood costs one copy.
  std::shared_ptr<const std::string> snapshot_;
  Clock::time_point snapshot_at_{};
};

class SyncClient {
public:
  using Handler = std::function<void(SyncMessage&, const SyncSource& from)>;
  // Resolves the peer now (before any chroot); throws if it cannot.
  SyncClient(boost::asio::io_context& io, const std::string& host, std::uint16_t port, SyncHello self,
             Handler handler, Logger& log, SyncStats& stats);
  void start();
  void close();
  bool connected() const { return connected_; }
  // The instance at the other end, once its hello arrived on the current connection.
  const std::string& peer_instance() const { return peer_instance_; }

private:
  void connect();
  void retry(std::chrono::milliseconds delay);
  void read();
  void fail(const std::string& why, std::chrono::milliseconds delay = std::chrono::milliseconds(0));

  boost::asio::ip::tcp::socket socket_;
  boost::asio::steady_timer timer_;
  std::vector<boost::asio::ip::tcp::endpoint> endpoints_;
  std::string name_;
  SyncHello self_;
  Handler handler_;
  Logger& log_;
  SyncStats& stats_;
  FrameReader reader_;
  std::array<char, 65536> buffer_{};
  std::chrono::milliseconds backoff_{100};
  bool connected_ = false;
  bool closed_ = false;
  // One log line per kind of failure: an outage, or a peer that keeps sending the
  // same bad frame, is logged once, until a healthy frame arrives.
  std::string last_error_;
  std::string peer_instance_;
};

}  // namespace anyrtpproxy
