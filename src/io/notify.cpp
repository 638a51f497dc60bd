// notify: see notify.h.
#include "io/notify.h"

#include "io/log.h"

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/write.hpp>

namespace anyrtpproxy {

Notifier::Notifier(boost::asio::io_context& io, std::vector<NotifyTarget> targets, Logger& log)
    : io_(io), targets_(std::move(targets)), log_(log), pending_(std::make_shared<std::size_t>(0)) {}

template <class Protocol>
void Notifier::deliver(const typename Protocol::endpoint& to, const std::string& what, std::string message) {
  struct Job {
    typename Protocol::socket socket;
    boost::asio::steady_timer timer;
    std::string message;
    std::shared_ptr<std::size_t> pending;
    Job(boost::asio::io_context& io, std::string m, std::shared_ptr<std::size_t> p)
        : socket(io), timer(io), message(std::move(m)), pending(std::move(p)) { ++*pending; }
    ~Job() { --*pending; }
  };
  auto job = std::make_shared<Job>(io_, std::move(message), pending_);
  job->timer.expires_after(std::chrono::seconds(3));
  job->timer.async_wait([job](boost::system::error_code ec) {
    if (!ec) job->socket.close(ec);
  });
  job->socket.async_connect(to, [job, what, &log = log_](boost::system::error_code ec) {
    if (ec) {
      log.warning("notify " + what + ": " + ec.message());
      job->timer.cancel();
      return;
    }
    boost::asio::async_write(job->socket, boost::asio::buffer(job->message),
                             [job, what, &log](boost::system::error_code wec, std::size_t) {
                               if (wec) log.warning("notify " + what + ": " + wec.message());
                               job->timer.cancel();
                               job->socket.close(wec);
                             });
  });
}

void Notifier::send(const std::string& target, const std::string& tag) {
  auto it = std::find_if(targets_.begin(), targets_.end(), [&](const auto& t) { return t.text == target; });
  if (it == targets_.end()) return;
  if (*pending_ >= max_pending) {
    log_.warning("notify " + target + ": " + std::to_string(max_pending) + " notifications pending; dropped one");
    return;
  }
  if (it->kind == NotifyTarget::Kind::unix_stream)
    deliver<boost::asio::local::stream_protocol>(boost::asio::local::stream_protocol::endpoint(it->path), target,
                                                 tag + "\n");
  else
    deliver<boost::asio::ip::tcp>(boost::asio::ip::tcp::endpoint(it->endpoint.address(), it->endpoint.port()),
                                  target, tag + "\n");
}

}  // namespace anyrtpproxy
