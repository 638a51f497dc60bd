// metrics_server: see metrics_server.h.
#include "io/metrics_server.h"

#include "io/log.h"
#include "core/text.h"

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
  Connection(TcpAcceptor::Accepted accepted, MetricsServer& owner)
      : socket_(std::move(accepted.socket)), timer_(socket_.get_executor()), buffer_(max_header), owner_(&owner),
        ticket_(std::move(accepted.ticket)) {
    parser_.header_limit(max_header);
    parser_.body_limit(0);
  }

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
  TcpAcceptor::Ticket ticket_;  // counted in the bounds while it lives
};

namespace {

AcceptRules metrics_rules(const tcp::endpoint& at, std::function<std::optional<std::string>(const ip::address&)> admit) {
  AcceptRules r;
  r.name = "metrics";
  r.listener = "metrics address " + endpoint_text(at);
  r.max_total = MetricsServer::max_connections;
  r.dual_stack = true;
  r.admit = std::move(admit);
  return r;
}

}  // namespace

MetricsServer::MetricsServer(boost::asio::io_context& io, const tcp::endpoint& at, std::vector<Network> allow,
                             Render render, Logger& log)
    : allow_(std::move(allow)), render_(std::move(render)), log_(log),
      acceptor_(io, at, metrics_rules(at, [this](const ip::address& a) -> std::optional<std::string> {
                  if (allowed(a)) return std::nullopt;
                  return std::string("not in --metrics-allow");
                }), log) {}

MetricsServer::~MetricsServer() { close(); }

void MetricsServer::start() {
  log_.notice("serving Prometheus metrics on http://" + endpoint_text(acceptor_.local_endpoint()) + "/metrics");
  acceptor_.start([this](TcpAcceptor::Accepted accepted) {
    std::make_shared<Connection>(std::move(accepted), *this)->start();
  });
}

void MetricsServer::close() { acceptor_.close(); }

bool MetricsServer::allowed(const ip::address& a) const {
  return std::any_of(allow_.begin(), allow_.end(), [&](const Network& n) { return n.contains(a); });
}

}  // namespace anyrtpproxy
