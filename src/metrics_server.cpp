// metrics_server: see metrics_server.h.
#include "metrics_server.h"

#include "log.h"
#include "text.h"

#include <algorithm>

// g++ 12 with -fsanitize=address reports a boost::optional inside Beast's
// parser (basic_parser.hpp, content_length) as maybe uninitialized: a known
// false positive of that compiler, not ours, silenced for Beast's headers only.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/empty_body.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/write.hpp>
#pragma GCC diagnostic pop

namespace anyrtpproxy {

namespace ip = boost::asio::ip;
namespace http = boost::beast::http;
using ip::tcp;

class MetricsServer::Connection : public std::enable_shared_from_this<Connection> {
public:
  Connection(tcp::socket socket, MetricsServer& owner)
      : socket_(std::move(socket)), timer_(socket_.get_executor()), buffer_(max_header), owner_(&owner),
        open_(owner.open_) {
    ++*open_;
    parser_.header_limit(max_header);
    parser_.body_limit(0);
  }
  ~Connection() { --*open_; }

  void start() {
    timer_.expires_after(request_timeout);
    timer_.async_wait([self = shared_from_this()](boost::system::error_code ec) {
      if (!ec) self->shut();  // too slow: a client that trickles its request loses its slot
    });
    http::async_read(socket_, buffer_, parser_, [self = shared_from_this()](boost::system::error_code ec, std::size_t) {
      if (ec) return self->fail(ec);
      self->answer();
    });
  }

private:
  void fail(const boost::system::error_code& ec) {
    if (ec == boost::asio::error::operation_aborted || !socket_.is_open()) return shut();
    // A malformed or oversized request: say so, then close.
    reply(http::status::bad_request, "bad request: " + ec.message() + "\n", false);
  }

  void answer() {
    const auto& req = parser_.get();
    if (req.method() != http::verb::get && req.method() != http::verb::head)
      return reply(http::status::method_not_allowed, "only GET and HEAD\n", false);
    const std::string_view target(req.target().data(), req.target().size());
    if (target != "/metrics" && target.rfind("/metrics?", 0) != 0)
      return reply(http::status::not_found, "the metrics are at /metrics\n", false);
    ++owner_->requests_;
    reply(http::status::ok, owner_->render_(), req.method() == http::verb::head);
  }

  void reply(http::status status, std::string body, bool head) {
    response_.result(status);
    response_.version(11);
    response_.set(http::field::server, "anyrtpproxy");
    response_.set(http::field::content_type, status == http::status::ok ? "text/plain; version=0.0.4; charset=utf-8"
                                                                         : "text/plain; charset=utf-8");
    if (status == http::status::method_not_allowed) response_.set(http::field::allow, "GET, HEAD");
    response_.keep_alive(false);
    response_.body() = std::move(body);
    response_.prepare_payload();
    if (head) response_.body().clear();  // the length stays that of the GET
    http::async_write(socket_, response_, [self = shared_from_this()](boost::system::error_code, std::size_t) {
      self->shut();
    });
  }

  void shut() {
    boost::system::error_code ec;
    timer_.cancel();
    socket_.shutdown(tcp::socket::shutdown_both, ec);
    socket_.close(ec);
  }

  tcp::socket socket_;
  boost::asio::steady_timer timer_;
  boost::beast::flat_buffer buffer_;
  http::request_parser<http::empty_body> parser_;
  http::response<http::string_body> response_;
  MetricsServer* owner_;
  std::shared_ptr<std::size_t> open_;
};

MetricsServer::MetricsServer(boost::asio::io_context& io, const tcp::endpoint& at, std::vector<Network> allow,
                             Render render, Logger& log)
    : acceptor_(io), accept_retry_(io), allow_(std::move(allow)), render_(std::move(render)), log_(log),
      open_(std::make_shared<std::size_t>(0)) {
  boost::system::error_code ec;
  acceptor_.open(at.protocol(), ec);
  if (!ec) acceptor_.set_option(tcp::acceptor::reuse_address(true), ec);
  if (!ec) acceptor_.bind(at, ec);
  if (!ec) acceptor_.listen(64, ec);
  if (ec) throw std::runtime_error("cannot listen on metrics address " + endpoint_text(at) + ": " + ec.message());
}

MetricsServer::~MetricsServer() { close(); }

void MetricsServer::start() {
  log_.notice("serving Prometheus metrics on http://" + endpoint_text(acceptor_.local_endpoint()) + "/metrics");
  accept();
}

void MetricsServer::close() {
  boost::system::error_code ec;
  acceptor_.close(ec);
  accept_retry_.cancel();
}

bool MetricsServer::allowed(const ip::address& a) const {
  return std::any_of(allow_.begin(), allow_.end(), [&](const Network& n) { return n.contains(a); });
}

void MetricsServer::accept() {
  acceptor_.async_accept([this](boost::system::error_code ec, tcp::socket socket) {
    if (ec == boost::asio::error::operation_aborted || !acceptor_.is_open()) return;
    if (ec) {  // out of descriptors, say: wait before the next try
      const Event e(Level::warning, "metrics: cannot accept: " + ec.message(), "accept");
      if (auto line = refusals_.admit(e, Clock::now())) log_.warning(*line);
      accept_retry_.expires_after(std::chrono::milliseconds(100));
      accept_retry_.async_wait([this](boost::system::error_code wec) {
        if (!wec && acceptor_.is_open()) accept();
      });
      return;
    }
    boost::system::error_code pec;
    const auto source = unmapped(socket.remote_endpoint(pec).address());
    std::string why;
    if (pec)
      why.clear();  // gone already: nothing to serve, nothing to report
    else if (!allowed(source))
      why = "not in --metrics-allow";
    else if (*open_ >= max_connections)
      why = std::to_string(max_connections) + " connections open";
    if (!pec && why.empty()) {
      std::make_shared<Connection>(std::move(socket), *this)->start();
    } else if (!pec) {
      ++refused_;
      const Event e(Level::warning, "metrics: refused " + source.to_string() + ": " + why, source.to_string());
      if (auto line = refusals_.admit(e, Clock::now())) log_.warning(*line);
    }
    accept();
  });
}

}  // namespace anyrtpproxy
