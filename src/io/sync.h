// sync: session synchronisation between the instances of an anycast cluster.
//
// SyncServer (-S) tells apart, before it writes a byte, who connects:
// - a peer: a connection from the address of a configured -M host that
//   starts with a peer hello line ("P <wire-version> <instance>"); it gets the
//   machine stream: its hello frame, the whole table as frames, then every
//   change and the activity reports, never a listing line;
// - an operator: a connection from an address in --sync-allow that says
//   nothing for operator_wait (telnet, nc); it gets the readable listing of
//   every session, then a readable line per change, never a frame;
// - anyone else: closed at once, counted, logged once per address a minute.
// Peers have slots of their own, so neither operators nor strangers can lock
// a peer out; pending and operator connections are capped per address and in
// all. The server never acts on what a client sends. SyncClient (one per -M
// peer) connects from -I, sends its hello line, dials again with a capped
// exponential backoff, redials a connection on which nothing came for 3 s
// (the activity frames come every 2 s), splits the stream into frames
// (FrameReader) and hands each message to the proxy. Wire format: sync_codec.h.
#pragma once

#include "core/cluster.h"
#include "core/event.h"
#include "core/addresses.h"
#include "io/acceptor.h"
#include "core/session_table.h"
#include "core/stats.h"
#include "core/sync_codec.h"

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/ssl/stream.hpp>
#include <boost/asio/steady_timer.hpp>

#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

namespace anyrtpproxy {

class Logger;

// Mutual TLS for the sync connections: TLS 1.3 only, our certificate and key,
// and the cluster's CA, which must have signed the other side's certificate.
// Reads the files now (before any chroot); throws naming the file that fails.
std::unique_ptr<boost::asio::ssl::context> make_sync_tls(const TlsFiles& files);

using TlsStream = boost::asio::ssl::stream<boost::asio::ip::tcp::socket>;

// Bytes and messages (frames, or batches of frames) on one peer's connections.
struct SyncTraffic {
  std::uint64_t messages = 0, bytes = 0;
};

class SyncServer {
public:
  struct Access {
    std::vector<boost::asio::ip::address> peers;  // the -M hosts' addresses
    std::vector<Network> operators;               // --sync-allow
  };
  // Binds now; throws std::runtime_error naming the address on failure.
  // `tls`: peers must speak TLS with a certificate the cluster's CA signed
  // (the context outlives the server); none: peers are told by address alone.
  SyncServer(boost::asio::io_context& io, const boost::asio::ip::tcp::endpoint& at, ListingTable table,
             SyncHello hello, Access access, boost::asio::ssl::context* tls, Logger& log, SyncStats& stats);
  ~SyncServer();
  void start();
  void close();
  void publish(const Changes& changes, Clock::time_point now);
  void publish(const SyncActivity& activity);
  // A line for the operators: a change that came from a peer.
  void note(std::string line);
  // The table changed without a publish (a peer's change): the next connection
  // must not get a snapshot taken before.
  void table_changed();
  std::size_t connections() const { return connections_.size(); }
  bool has_operators() const;
  std::uint64_t refused() const { return acceptor_.refused(); }  // connections closed at once
  void set_operators(std::vector<Network> operators) { access_.operators = std::move(operators); }  // SIGHUP
  // Comment lines ("# ...\n") an operator's listing starts with after the
  // instance line: every instance's capacity (core/capacity.h).
  void describe_cluster(std::function<std::string()> describe) { describe_ = std::move(describe); }
  // What went to each peer address (the machine stream), across its reconnects.
  const std::map<boost::asio::ip::address, SyncTraffic>& sent() const { return sent_; }

  static constexpr std::size_t max_pending = 64, max_pending_per_source = 8;
  static constexpr std::size_t max_operators = 32, max_operators_per_source = 4;
  static constexpr std::size_t max_per_peer = 4;  // a peer's reconnects may overlap its old connection
  static constexpr std::chrono::milliseconds operator_wait{300};
  static constexpr std::chrono::seconds hello_wait{5};
  static constexpr std::chrono::seconds refusal_wait{1};  // to write a refused peer why
  static constexpr std::size_t max_queued_bytes = 64 * 1024 * 1024;  // a full table is about 30 MiB
  static constexpr std::chrono::seconds stalled_limit{10};  // a peer's connection whose data nobody acknowledges

private:
  class Connection;
  enum class Role { pending, peer, operator_, refused };  // refused: told why, closing
  void refuse(const boost::asio::ip::address& source, const std::string& why);
  bool admit(const Connection& c, Role role);
  void forget(Connection* c);
  void deliver(Role role, std::shared_ptr<const std::string> bytes);
  bool is_peer(const boost::asio::ip::address& a) const;
  bool is_operator(const boost::asio::ip::address& a) const;
  std::shared_ptr<const std::string> snapshot(Role role, unsigned version, Clock::time_point now);
  std::string peer_snapshot(Clock::time_point now, unsigned version) const;
  // Each wire version the connected peers speak, once: encoded in it, delivered to them.
  std::set<unsigned> peer_versions() const;
  void deliver_peers(const std::function<std::string(unsigned)>& encode_in);
  std::string operator_snapshot(Clock::time_point now) const;
  std::function<std::string()> describe_;

  ListingTable table_;
  SyncHello hello_;
  Access access_;
  boost::asio::ssl::context* tls_;
  Logger& log_;
  SyncStats& stats_;
  TcpAcceptor acceptor_;  // after access_, which its rule reads
  std::vector<std::shared_ptr<Connection>> connections_;
  // The snapshots new connections start with, shared while the table is
  // unchanged (at most a second, for the listing's ages): a flood costs one copy.
  struct Snapshot {
    std::shared_ptr<const std::string> bytes;
    Clock::time_point at{};
  };
  std::map<unsigned, Snapshot> peer_snapshots_;  // by the wire version they are written in
  Snapshot operator_snapshot_;
  std::map<boost::asio::ip::address, SyncTraffic> sent_;
  std::set<std::pair<boost::asio::ip::address, unsigned>> told_older_;  // peers logged as speaking an older version
};

class SyncClient {
public:
  using Handler = std::function<void(SyncMessage&, const SyncSource& from)>;
  // Resolves the peer now (before any chroot); throws if it cannot. `local`:
  // the address to connect from (-I), the one the peer knows us by.
  SyncClient(boost::asio::io_context& io, const std::string& host, std::uint16_t port, SyncHello self,
             std::optional<boost::asio::ip::address> local, boost::asio::ssl::context* tls, Handler handler,
             Logger& log, SyncStats& stats);
  void start();
  void close();
  bool connected() const { return connected_; }
  // The instance at the other end, once its hello arrived on the current connection.
  const std::string& peer_instance() const { return peer_instance_; }
  const std::vector<boost::asio::ip::tcp::endpoint>& endpoints() const { return endpoints_; }
  const std::string& name() const { return name_; }  // "host:port" as -M gave it
  const SyncTraffic& received() const { return traffic_; }
  // A connect without an answer this long is given up; a connection without
  // a frame this long (a peer sends one every 2 s) is dialled again; between
  // attempts the wait doubles from first_backoff to max_backoff, and starts
  // again once a peer's hello came. After a partition of any length the
  // link is back within about connect_limit of its end.
  static constexpr std::chrono::milliseconds connect_limit{1200};
  static constexpr std::chrono::milliseconds silence_limit{3000};
  static constexpr std::chrono::milliseconds first_backoff{100}, max_backoff{1000};
  // When the last frame arrived; none yet: the epoch.
  Clock::time_point last_frame() const { return last_frame_; }
  // The wire version the peer writes to us on the current connection; 0: no frame yet.
  unsigned peer_version() const { return connected_ ? peer_version_ : 0; }
  // Why the link is down (the last failure: refused, silent, no answer); empty while it is up.
  const std::string& last_error() const { return last_error_; }

private:
  void connect();
  void watch();
  void on_connected();
  void retry(std::chrono::milliseconds delay);
  void read();
  bool open() const { return tls_ ? tls_->lowest_layer().is_open() : socket_.is_open(); }
  void fail(const std::string& why, std::chrono::milliseconds delay = std::chrono::milliseconds(0));

  boost::asio::ip::tcp::socket socket_;
  boost::asio::steady_timer timer_;
  boost::asio::steady_timer watchdog_;
  std::vector<boost::asio::ip::tcp::endpoint> endpoints_;
  std::optional<boost::asio::ip::address> local_;
  boost::asio::ssl::context* tls_context_;
  std::shared_ptr<TlsStream> tls_;  // this connection's, when TLS is on; handlers hold it too
  std::string name_;
  SyncHello self_;
  std::string hello_line_;  // what it says first: "P <wire-version> <instance>"
  Handler handler_;
  Logger& log_;
  SyncStats& stats_;
  FrameReader reader_;
  std::array<char, 65536> buffer_{};
  std::chrono::milliseconds backoff_ = first_backoff;
  bool dialling_ = false;   // a connect is under way, since since_
  Clock::time_point since_{};  // of the connect, or of the connection (before its first frame)
  bool connected_ = false;
  bool closed_ = false;
  std::uint64_t generation_ = 0;  // of the current connection; handlers of an older one are stale
  // One log line per kind of failure: an outage, or a peer that keeps sending the
  // same bad frame, is logged once, until a healthy frame arrives.
  std::string last_error_;
  std::string peer_instance_;
  SyncTraffic traffic_;
  Clock::time_point last_frame_{};
  unsigned peer_version_ = 0;
};

}  // namespace anyrtpproxy
