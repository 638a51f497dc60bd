// sync: see sync.h.
#include "io/sync.h"

#include "core/cluster.h"
#include "io/log.h"
#include "core/text.h"
#include "core/write_queue.h"

#include <boost/asio/connect.hpp>
#include <boost/asio/ip/v6_only.hpp>
#include <boost/asio/write.hpp>

#include <netinet/in.h>
#include <netinet/tcp.h>

#include <openssl/ssl.h>
#include <sys/socket.h>

#include <algorithm>
#include <stdexcept>

namespace anyrtpproxy {

namespace ip = boost::asio::ip;
namespace ssl = boost::asio::ssl;
using ip::tcp;

std::unique_ptr<ssl::context> make_sync_tls(const TlsFiles& files) {
  auto ctx = std::make_unique<ssl::context>(ssl::context::tls);
  SSL_CTX_set_min_proto_version(ctx->native_handle(), TLS1_3_VERSION);
  ctx->set_verify_mode(ssl::verify_peer | ssl::verify_fail_if_no_peer_cert);
  auto load = [](const std::string& option, const std::string& file, auto&& how) {
    boost::system::error_code ec;
    how(ec);
    if (ec) throw std::runtime_error("option " + option + ": cannot use " + file + ": " + ec.message());
  };
  load("--sync-tls-ca", files.ca, [&](auto& ec) { ctx->load_verify_file(files.ca, ec); });
  load("--sync-tls-cert", files.cert, [&](auto& ec) { ctx->use_certificate_chain_file(files.cert, ec); });
  load("--sync-tls-key", files.key, [&](auto& ec) { ctx->use_private_key_file(files.key, ssl::context::pem, ec); });
  if (SSL_CTX_check_private_key(ctx->native_handle()) != 1)
    throw std::runtime_error("option --sync-tls-key: " + files.key + " is not the key of " + files.cert);
  return ctx;
}

// One connection to the sync port. Pending until it said it is a peer (its
// hello line) or, from an operator's address, said nothing for
// operator_wait; then a write queue (one async_write in flight), and a read
// that only discards (the port is read-only) and notices the close.
class SyncServer::Connection : public std::enable_shared_from_this<Connection> {
public:
  Connection(tcp::socket socket, ip::address source, SyncServer& owner)
      : socket_(std::move(socket)), timer_(socket_.get_executor()), owner_(owner), source_(std::move(source)),
        queue_(max_queued_bytes), since_(Clock::now()) {
    boost::system::error_code ec;
    peer_ = endpoint_text(socket_.remote_endpoint(ec));
  }
  Role role() const { return role_; }
  unsigned version() const { return version_; }  // a peer's: what it is written in
  const ip::address& source() const { return source_; }

  void start() {
    wait(operator_wait);
    if (owner_.tls_ && owner_.is_peer(source_)) return peek();
    read();
  }

  void deliver(std::shared_ptr<const std::string> bytes) {
    if (!lowest().is_open() || role_ == Role::pending || role_ == Role::refused) return;
    const std::size_t size = bytes->size();
    if (role_ == Role::peer) {  // per peer address: bounded by the -M hosts
      auto& sent = owner_.sent_[source_];
      ++sent.messages;
      sent.bytes += size;
    }
    switch (queue_.push(std::move(bytes))) {
      case WriteQueue::Push::start_writing: return write();
      case WriteQueue::Push::queued: return;
      case WriteQueue::Push::over_limit:
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
    timer_.cancel();
    lowest().close(ec);
    owner_.forget(this);
  }

private:
  tcp::socket& lowest() { return tls_ ? tls_->next_layer() : socket_; }
  template <class Op>
  void with_stream(Op&& op) {
    if (tls_)
      op(*tls_);
    else
      op(socket_);
  }

  // From a peer's address with TLS on: a TLS handshake record first (looked
  // at, not taken) is a peer whose certificate decides; anything else is read
  // as on a plain connection (an operator's silence, a refused plain hello).
  void peek() {
    socket_.async_wait(tcp::socket::wait_read, [self = shared_from_this()](boost::system::error_code ec) {
      if (ec || !self->socket_.is_open()) return self->shut();
      unsigned char first = 0;
      const auto n = ::recv(self->socket_.native_handle(), &first, 1, MSG_PEEK);
      if (n <= 0) return self->shut();
      if (first != 0x16) return self->read();
      self->tls_ = std::make_unique<TlsStream>(std::move(self->socket_), *self->owner_.tls_);
      self->tls_->async_handshake(ssl::stream_base::server, [self](boost::system::error_code hec) {
        if (hec) {
          self->owner_.refuse(self->source_, "failed the TLS handshake: " + hec.message());
          return self->shut();
        }
        self->verified_ = true;  // the cluster's CA signed its certificate: its hello decides the rest
        self->read();
      });
    });
  }
  void wait(Clock::duration d) {
    timer_.expires_after(d);
    timer_.async_wait([self = shared_from_this()](boost::system::error_code ec) {
      if (!ec) self->waited();
    });
  }

  // Silence: an operator, if it may be one; a peer gets hello_wait to speak.
  void waited() {
    if (role_ == Role::refused) return shut();
    if (role_ != Role::pending || !lowest().is_open()) return;
    // Operators read plain text: a connection that began TLS is a peer, however long its hello takes.
    if (owner_.is_operator(source_) && !tls_) return become(Role::operator_);
    const auto left = since_ + hello_wait - Clock::now();
    if (left > Clock::duration::zero()) return wait(left);
    owner_.refuse(source_, "sent no hello within " + std::to_string(hello_wait.count()) + " s");
    shut();
  }

  void become(Role role) {
    timer_.cancel();
    if (!owner_.admit(*this, role)) return shut();
    role_ = role;
    if (role == Role::peer && version_ < sync_wire_version && owner_.told_older_.emplace(source_, version_).second)
      owner_.log_.notice("sync: " + peer_ + " speaks sync wire version " + std::to_string(version_) +
                         ": it is written in that version, and hears this instance's serving state only as "
                         "healthy or not");
    if (role == Role::peer) {
      // A peer behind a silent partition redials and gets a new connection;
      // this one, its data unacknowledged, is given up by the kernel then.
      const unsigned ms = static_cast<unsigned>(std::chrono::milliseconds(stalled_limit).count());
      ::setsockopt(lowest().native_handle(), IPPROTO_TCP, TCP_USER_TIMEOUT, &ms, sizeof ms);
    }
    deliver(owner_.snapshot(role, version_, Clock::now()));
  }

  void read() {
    with_stream([&](auto& stream) { stream.async_read_some(boost::asio::buffer(sink_), [self = shared_from_this()](boost::system::error_code ec, std::size_t n) {
      if (ec) return self->shut();
      if (self->role_ == Role::pending) {
        self->said_.append(self->sink_.data(), n);
        const auto eol = self->said_.find('\n');
        if (eol == std::string::npos && self->said_.size() <= max_hello) return self->read();
        // A peer's hello, from a peer's address; anything else ends it.
        const bool hello = eol != std::string::npos && self->said_.compare(0, 2, "P ") == 0;
        if (hello && !self->owner_.is_peer(self->source_)) {  // a peer that dialled from the wrong address
          const std::string why = "a peer's hello from " + self->source_.to_string() + ", which is none of instance " +
                                  self->owner_.hello_.instance + "'s -M hosts: a peer connects from the address "
                                  "the other's -M names (give it -I)";
          self->owner_.refuse(self->source_, why);
          return self->tell_and_shut(std::string(sync_refusal) + why + "\n");
        }
        if (!hello || !self->owner_.is_peer(self->source_)) {
          self->owner_.refuse(self->source_, "spoke, but not a peer's hello");
          return self->shut();
        }
        if (self->owner_.tls_ && !self->verified_) {
          self->owner_.refuse(self->source_, "sent a peer's hello without TLS, which this cluster requires");
          return self->shut();
        }
        std::string why;
        const auto version = hello_line_version(std::string_view(self->said_).substr(0, eol), why);
        if (!version) {
          self->owner_.refuse(self->source_, why);
          return self->tell_and_shut(std::string(sync_refusal) + why + "\n");
        }
        self->version_ = std::min(*version, sync_wire_version);
        self->become(Role::peer);
        if (!self->lowest().is_open()) return;
        self->ignored_ = self->said_.size() - eol - 1;
        return self->read();
      }
      // A client that keeps talking to a read-only port is cut off before it
      // can cost the media path any time.
      self->ignored_ += n;
      if (self->ignored_ > max_ignored_bytes) {
        self->owner_.log_.notice("sync: " + self->peer_ + " sent " + std::to_string(self->ignored_) +
                                 " bytes to the read-only sync port; closing it");
        return self->shut();
      }
      self->read();
    }); });
  }

  // One line, then closed, written or not (at most refusal_wait later).
  void tell_and_shut(std::string line) {
    said_ = std::move(line);
    wait(refusal_wait);  // a client that does not read does not keep it
    role_ = Role::refused;
    with_stream([&](auto& stream) {
      boost::asio::async_write(stream, boost::asio::buffer(said_),
                               [self = shared_from_this()](boost::system::error_code, std::size_t) { self->shut(); });
    });
  }

  void write() {
    with_stream([&](auto& stream) {
      boost::asio::async_write(stream, boost::asio::buffer(queue_.front()),
                               [self = shared_from_this()](boost::system::error_code ec, std::size_t) {
                                 if (ec || !self->lowest().is_open()) return self->shut();
                                 if (self->queue_.pop()) self->write();
                               });
    });
  }

  static constexpr std::size_t max_ignored_bytes = 64 * 1024;
  static constexpr std::size_t max_hello = 256;

  tcp::socket socket_;            // until a TLS handshake moves it into tls_
  std::unique_ptr<TlsStream> tls_;
  boost::asio::steady_timer timer_;
  SyncServer& owner_;
  std::string peer_;
  ip::address source_;
  Role role_ = Role::pending;
  bool verified_ = false;  // its TLS certificate was checked
  unsigned version_ = sync_wire_version;
  WriteQueue queue_;
  Clock::time_point since_;
  std::string said_;  // while pending: what it sent
  std::size_t ignored_ = 0;
  std::array<char, 4096> sink_{};
};

namespace {

AcceptRules sync_rules(const tcp::endpoint& at, std::function<std::optional<std::string>(const ip::address&)> admit) {
  AcceptRules r;
  r.name = "sync";
  r.listener = "sync port " + endpoint_text(at);
  r.dual_stack = true;  // the roles bound the connections (admit)
  r.admit = std::move(admit);
  return r;
}

}  // namespace

SyncServer::SyncServer(boost::asio::io_context& io, const tcp::endpoint& at, ListingTable table,
                       SyncHello hello, Access access, ssl::context* tls, Logger& log, SyncStats& stats)
    : table_(table), hello_(std::move(hello)), access_(std::move(access)), tls_(tls), log_(log), stats_(stats),
      acceptor_(io, at, sync_rules(at, [this](const ip::address& a) -> std::optional<std::string> {
                  if (is_peer(a) || is_operator(a)) return std::nullopt;
                  return std::string("neither a configured peer nor in --sync-allow");
                }), log) {
  for (auto& a : access_.peers) a = unmapped(a);
}

SyncServer::~SyncServer() { close(); }

void SyncServer::start() {
  acceptor_.start([this](TcpAcceptor::Accepted accepted) {
    auto c = std::make_shared<Connection>(std::move(accepted.socket), *accepted.source, *this);
    if (admit(*c, Role::pending)) {
      connections_.push_back(c);
      c->start();
    } else {
      c->shut();
    }
  });
}

void SyncServer::close() {
  acceptor_.close();
  auto all = connections_;
  for (auto& c : all) c->shut();
  connections_.clear();
}

bool SyncServer::is_peer(const ip::address& a) const {
  return std::find(access_.peers.begin(), access_.peers.end(), a) != access_.peers.end();
}

bool SyncServer::is_operator(const ip::address& a) const {
  return std::any_of(access_.operators.begin(), access_.operators.end(), [&](const Network& n) { return n.contains(a); });
}

bool SyncServer::has_operators() const {
  return std::any_of(connections_.begin(), connections_.end(), [](const auto& c) { return c->role() == Role::operator_; });
}

void SyncServer::refuse(const ip::address& source, const std::string& why) {
  acceptor_.refuse(source, why);
}

// Slots by role, and pending ones by whether they come from a peer's address:
// peers are capped per peer only, so that no operator and no stranger can take
// theirs (only a flood from a peer's own address can delay that peer).
bool SyncServer::admit(const Connection& c, Role role) {
  const bool from_peer = is_peer(c.source());
  std::size_t all = 0, here = 0;
  for (const auto& other : connections_) {
    if (other.get() == &c || other->role() != role) continue;
    if (role == Role::pending && is_peer(other->source()) != from_peer) continue;
    ++all;
    here += other->source() == c.source();
  }
  const char* refused = nullptr;
  if (role == Role::peer && here >= max_per_peer) refused = "too many connections from this peer";
  if (role == Role::operator_ && (all >= max_operators || here >= max_operators_per_source))
    refused = "too many operators";
  if (role == Role::pending && from_peer && here >= max_per_peer)
    refused = "too many connections from a peer's address that have not said who they are";
  if (role == Role::pending && !from_peer && (all >= max_pending || here >= max_pending_per_source))
    refused = "too many connections that have not said who they are";
  if (refused) refuse(c.source(), refused);
  return !refused;
}

std::string SyncServer::operator_snapshot(Clock::time_point now) const {
  const auto& sessions = table_.sessions();
  std::string out = "# anyrtpproxy sync: instance " + hello_.instance + ", ports " + std::to_string(hello_.port_min) +
                    "-" + std::to_string(hello_.port_max) + ", " + std::to_string(sessions.size()) +
                    " active sessions\n";
  if (describe_) out += describe_();
  for (const auto& [key, e] : sessions) out += listing_line(e.session, e.local, now, table_.ttl_left(e.session, now));
  out += "# end of listing; what follows is one line per change\n";
  return out;
}

std::string SyncServer::peer_snapshot(Clock::time_point now, unsigned version) const {
  const auto& sessions = table_.sessions();
  SyncHello h = hello_;
  h.sessions = sessions.size();
  std::string out = encode(h, version);
  for (const auto& [key, e] : sessions) out += encode(e.session, now, version);
  for (const auto& [key, b] : table_.tombstones()) out += encode(b.tomb, version);
  return out;
}

std::shared_ptr<const std::string> SyncServer::snapshot(Role role, unsigned version, Clock::time_point now) {
  Snapshot& s = role == Role::peer ? peer_snapshots_[version] : operator_snapshot_;
  if (!s.bytes || now - s.at > std::chrono::seconds(1)) {
    s.bytes = std::make_shared<const std::string>(role == Role::peer ? peer_snapshot(now, version)
                                                                     : operator_snapshot(now));
    s.at = now;
  }
  return s.bytes;
}

void SyncServer::table_changed() {
  peer_snapshots_.clear();
  operator_snapshot_.bytes.reset();
}

std::set<unsigned> SyncServer::peer_versions() const {
  std::set<unsigned> out;
  for (const auto& c : connections_)
    if (c->role() == Role::peer) out.insert(c->version());
  return out;
}

void SyncServer::deliver_peers(const std::function<std::string(unsigned)>& encode_in) {
  for (const unsigned version : peer_versions()) {
    auto bytes = std::make_shared<const std::string>(encode_in(version));
    if (version < sync_wire_version) ++stats_.frames_in_older_versions;
    auto all = connections_;  // a slow one may drop out while we deliver
    for (auto& c : all)
      if (c->role() == Role::peer && c->version() == version) c->deliver(bytes);
  }
}

void SyncServer::forget(Connection* c) {
  connections_.erase(std::remove_if(connections_.begin(), connections_.end(),
                                    [c](const auto& p) { return p.get() == c; }),
                     connections_.end());
}

void SyncServer::deliver(Role role, std::shared_ptr<const std::string> bytes) {
  auto all = connections_;  // a slow one may drop out while we deliver
  for (auto& c : all)
    if (c->role() == role) c->deliver(bytes);
}

void SyncServer::publish(const Changes& changes, Clock::time_point now) {
  if (changes.upserts.empty() && changes.removals.empty()) return;
  table_changed();
  if (connections_.empty()) return;
  deliver_peers([&](unsigned version) {
    std::string frames;
    for (const Session& s : changes.upserts) frames += encode(s, now, version);
    for (const auto& t : changes.removals) frames += encode(t, version);
    return frames;
  });
  if (!has_operators()) return;
  std::string lines;  // the same changes, readable
  for (const Session& s : changes.upserts)
    if (const auto* e = table_.at(s.key())) lines += listing_line(e->session, e->local, now, table_.ttl_left(e->session, now));
  for (const auto& t : changes.removals)
    lines += "# " + std::string(t.expired ? "expired" : "deleted") + " call-id=" + printable(t.call_id, 1000) +
             " tag=" + printable(t.from_tag) + " by " + printable(t.changed_by) + "\n";
  deliver(Role::operator_, std::make_shared<const std::string>(std::move(lines)));
}

void SyncServer::note(std::string line) {
  if (connections_.empty()) return;
  deliver(Role::operator_, std::make_shared<const std::string>(std::move(line)));
}

void SyncServer::publish(const SyncActivity& activity) {
  if (connections_.empty() || (activity.entries.empty() && !activity.capacity)) return;
  deliver_peers([&](unsigned version) { return encode(activity, version); });
}

SyncClient::SyncClient(boost::asio::io_context& io, const std::string& host, std::uint16_t port, SyncHello self,
                       std::optional<ip::address> local, ssl::context* tls, Handler handler, Logger& log,
                       SyncStats& stats)
    : socket_(io), timer_(io), watchdog_(io), local_(std::move(local)), tls_context_(tls), name_(host + ":" + std::to_string(port)),
      self_(std::move(self)), hello_line_("P " + std::to_string(sync_wire_version) + " " + self_.instance + "\n"),
      handler_(std::move(handler)), log_(log), stats_(stats) {
  tcp::resolver resolver(io);
  boost::system::error_code ec;
  for (const auto& r : resolver.resolve(host, std::to_string(port), ec)) endpoints_.push_back(r.endpoint());
  if (ec || endpoints_.empty()) throw std::runtime_error("cannot resolve sync host " + name_);
}

void SyncClient::start() {
  connect();
  watch();
}

// Every 250 ms: a connect that has no answer, or a connection on which no
// frame came for silence_limit (a partition drops packets without a word; a
// stopped peer accepts and says nothing), is given up and dialled again.
void SyncClient::watch() {
  watchdog_.expires_after(std::chrono::milliseconds(250));
  watchdog_.async_wait([this](boost::system::error_code ec) {
    if (ec || closed_) return;
    const auto now = Clock::now();
    if (dialling_ && now - since_ > connect_limit)
      fail("cannot connect: no answer within " + std::to_string(connect_limit.count()) + " ms");
    else if (!dialling_ && connected_ && now - std::max(since_, last_frame_) > silence_limit)
      fail("sent nothing for " + std::to_string(silence_limit.count() / 1000) +
           " s (a peer sends a frame every 2 s): the path or the peer is silent");
    watch();
  });
}

void SyncClient::close() {
  closed_ = true;
  boost::system::error_code ec;
  timer_.cancel();
  watchdog_.cancel();
  socket_.close(ec);
  if (tls_) tls_->lowest_layer().close(ec);
}

void SyncClient::retry(std::chrono::milliseconds delay) {
  timer_.expires_after(delay);
  timer_.async_wait([this](boost::system::error_code ec) {
    if (!ec && !closed_) connect();
  });
}

void SyncClient::fail(const std::string& why, std::chrono::milliseconds delay) {
  if (closed_) return;
  ++generation_;  // what the old connection's handlers still report is stale
  boost::system::error_code ec;
  socket_.close(ec);
  if (tls_) tls_->lowest_layer().close(ec);
  tls_.reset();  // its handlers hold it until they have run
  if (why != last_error_)
    log_.warning("sync: " + name_ + ": " + why + "; reconnecting");
  else
    log_.debug("sync: " + name_ + ": " + why + " (again)");
  last_error_ = why;
  connected_ = false;
  dialling_ = false;
  peer_instance_.clear();
  if (delay.count() == 0) {
    delay = backoff_;
    backoff_ = std::min(backoff_ * 2, max_backoff);
  }
  retry(delay);
}

void SyncClient::connect() {
  reader_ = FrameReader();
  // From -I, the address our peers know us by: the server tells peers by it.
  tcp::endpoint to = endpoints_.front();
  for (const auto& e : endpoints_)
    if (local_ && e.address().is_v6() == local_->is_v6()) to = e;
  boost::system::error_code ec;
  socket_.open(to.protocol(), ec);
  if (!ec && local_ && local_->is_v6() == to.address().is_v6()) socket_.bind(tcp::endpoint(*local_, 0), ec);
  if (ec) return fail("cannot open a socket: " + ec.message());
  dialling_ = true;
  since_ = Clock::now();
  socket_.async_connect(to, [this, gen = generation_](boost::system::error_code ec) {
    if (closed_ || gen != generation_) return;
    dialling_ = false;
    since_ = Clock::now();  // the hello must come within silence_limit
    if (ec) return fail("cannot connect: " + ec.message());
    if (!tls_context_) return on_connected();
    tls_ = std::make_shared<TlsStream>(std::move(socket_), *tls_context_);
    tls_->async_handshake(ssl::stream_base::client, [this, gen, keep = tls_](boost::system::error_code hec) {
      if (closed_ || gen != generation_) return;
      if (hec) return fail("failed the TLS handshake: " + hec.message());
      on_connected();
    });
  });
}

void SyncClient::on_connected() {
  connected_ = true;
  // A peer speaks first; the server writes nothing before it knows who we are.
  auto on_hello = [this, gen = generation_, keep = tls_](boost::system::error_code ec, std::size_t) {
    if (ec && !closed_ && gen == generation_) fail("cannot send its hello: " + ec.message());
  };
  if (tls_)
    boost::asio::async_write(*tls_, boost::asio::buffer(hello_line_), on_hello);
  else
    boost::asio::async_write(socket_, boost::asio::buffer(hello_line_), on_hello);
  read();
}

void SyncClient::read() {
  auto on_read = [this, gen = generation_, keep = tls_](boost::system::error_code ec, std::size_t n) {
    if (closed_ || gen != generation_ || ec == boost::asio::error::operation_aborted) return;
    if (ec && !reader_.refusal().empty()) return fail("refused " + reader_.refusal());
    if (ec) return fail(ec == boost::asio::error::eof ? "closed the connection" : ec.message());
    traffic_.bytes += n;
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
      ++traffic_.messages;
      last_frame_ = now;
      peer_version_ = reader_.last_version();
      if (auto* h = std::get_if<SyncHello>(&msg)) {
        if (auto refusal = refuse_hello(*h, self_)) return fail(refusal->why, refusal->retry);
        peer_instance_ = h->instance;
        backoff_ = first_backoff;  // a peer that speaks: a later failure starts the backoff again
        log_.notice(std::string("sync: connected to ") + name_ + (tls_ ? " (TLS)" : "") + ": instance " + h->instance);
      }
      handler_(msg, SyncSource{name_, peer_instance_});
      last_error_.clear();  // a healthy stream: the next failure is news again
      if (closed_ || gen != generation_ || !open()) return;
    }
    read();
  };
  if (tls_)
    tls_->async_read_some(boost::asio::buffer(buffer_), on_read);
  else
    socket_.async_read_some(boost::asio::buffer(buffer_), on_read);
}

}  // namespace anyrtpproxy
