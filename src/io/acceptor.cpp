// acceptor: see acceptor.h.
#include "io/acceptor.h"

#include "core/addresses.h"
#include "core/text.h"
#include "io/log.h"

#include <sys/stat.h>
#include <unistd.h>

#include <stdexcept>
#include <type_traits>

namespace anyrtpproxy {

namespace ip = boost::asio::ip;
using boost::asio::local::stream_protocol;

namespace {

std::string endpoint_name(const ip::tcp::endpoint& at) { return endpoint_text(at); }
std::string endpoint_name(const stream_protocol::endpoint& at) { return at.path(); }

}  // namespace

template <class Protocol>
Acceptor<Protocol>::Acceptor(boost::asio::io_context& io, const Endpoint& at, AcceptRules rules, Logger& log)
    : acceptor_(io), retry_(io), rules_(std::move(rules)), log_(log), open_(std::make_shared<Occupancy>()) {
  boost::system::error_code ec;
  if constexpr (std::is_same_v<Protocol, stream_protocol>) {
    struct stat st {};
    if (::lstat(at.path().c_str(), &st) == 0 && !S_ISSOCK(st.st_mode))
      throw std::runtime_error("cannot listen on " + (rules_.listener.empty() ? at.path() : rules_.listener) +
                               ": it exists and is not a socket");
    ::unlink(at.path().c_str());  // a stale socket of an earlier run
  }
  acceptor_.open(at.protocol(), ec);
  if constexpr (std::is_same_v<Protocol, ip::tcp>) {
    if (!ec && at.address().is_v6())
      acceptor_.set_option(ip::v6_only(!(rules_.dual_stack && at.address().is_unspecified())), ec);
    if (!ec) acceptor_.set_option(ip::tcp::acceptor::reuse_address(true), ec);
  }
  if (!ec) acceptor_.bind(at, ec);
  if (!ec) acceptor_.listen(rules_.backlog, ec);
  if (ec)
    throw std::runtime_error("cannot listen on " + (rules_.listener.empty() ? endpoint_name(at) : rules_.listener) +
                             ": " + ec.message());
  if constexpr (std::is_same_v<Protocol, stream_protocol>) {
    ::chmod(at.path().c_str(), 0660);
    file_ = RemoveAtExit(at.path());
  }
}

template <class Protocol>
Acceptor<Protocol>::~Acceptor() { close(); }

template <class Protocol>
void Acceptor<Protocol>::start(Serve serve) {
  serve_ = std::move(serve);
  accept();
}

template <class Protocol>
void Acceptor<Protocol>::close() {
  boost::system::error_code ec;
  acceptor_.close(ec);
  retry_.cancel();
  file_.remove();
}

template <class Protocol>
typename Acceptor<Protocol>::Endpoint Acceptor<Protocol>::local_endpoint() const {
  boost::system::error_code ec;
  return acceptor_.local_endpoint(ec);
}

template <class Protocol>
void Acceptor<Protocol>::refuse(const std::optional<ip::address>& source, const std::string& why) {
  ++refused_;
  const std::string who = source ? source->to_string() : std::string();
  const Event e(Level::warning,
                rules_.name + ": refused a connection" + (source ? " from " + who : std::string()) + ": " + why + " (" +
                    std::to_string(refused_) + " refused so far)",
                "refused " + who);
  if (auto line = refusals_.admit(e, LogLimiter::Clock::now())) log_.warning(*line);
}

template <class Protocol>
std::optional<std::string> Acceptor<Protocol>::check(const std::optional<ip::address>& source) const {
  if (source && rules_.admit)
    if (auto why = rules_.admit(*source)) return why;
  if (rules_.max_total && open_->total >= rules_.max_total)
    return std::to_string(rules_.max_total) + " connections open";
  if (source && rules_.max_per_source) {
    const auto it = open_->by_source.find(*source);
    if (it != open_->by_source.end() && it->second >= rules_.max_per_source)
      return std::to_string(rules_.max_per_source) + " connections open from this address";
  }
  return std::nullopt;
}

template <class Protocol>
typename Acceptor<Protocol>::Ticket Acceptor<Protocol>::take(const std::optional<ip::address>& source) {
  std::shared_ptr<Occupancy> open = open_;
  ++open->total;
  if (source) ++open->by_source[*source];
  return Ticket(static_cast<void*>(open.get()), [open, source](void*) {
    --open->total;
    if (source && --open->by_source[*source] == 0) open->by_source.erase(*source);
  });
}

template <class Protocol>
void Acceptor<Protocol>::accept() {
  acceptor_.async_accept([this](boost::system::error_code ec, Socket socket) {
    if (ec == boost::asio::error::operation_aborted || !acceptor_.is_open()) return;
    if (ec) {  // out of descriptors, say: the connection stays queued, so wait before the next try
      const Event e(Level::warning, rules_.name + ": cannot accept a connection: " + ec.message(), "accept");
      if (auto line = refusals_.admit(e, LogLimiter::Clock::now())) log_.warning(*line);
      retry_.expires_after(std::chrono::milliseconds(100));
      retry_.async_wait([this](boost::system::error_code wec) {
        if (!wec && acceptor_.is_open()) accept();
      });
      return;
    }
    std::optional<ip::address> source;
    bool gone = false;  // reset before it was accepted: nothing to serve, nothing to report
    if constexpr (std::is_same_v<Protocol, ip::tcp>) {
      boost::system::error_code pec;
      const auto remote = socket.remote_endpoint(pec);
      gone = static_cast<bool>(pec);
      if (!gone) source = unmapped(remote.address());
    }
    if (!gone) {
      if (auto why = check(source)) {
        refuse(source, *why);
      } else {
        Ticket ticket = take(source);
        serve_(Accepted{std::move(socket), source, std::move(ticket)});
      }
    }
    accept();
  });
}

template class Acceptor<ip::tcp>;
template class Acceptor<stream_protocol>;

}  // namespace anyrtpproxy
