// control_server: see control_server.h.
#include "io/control_server.h"

#include "io/log.h"
#include "core/text.h"
#include "core/write_queue.h"

#include <boost/asio/read_until.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/streambuf.hpp>
#include <boost/asio/write.hpp>

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>

namespace anyrtpproxy {

namespace ip = boost::asio::ip;
using boost::asio::local::stream_protocol;

namespace {

std::string guarded(Logger& log, const std::function<std::string()>& run, const std::function<std::string()>& fallback) {
  try {
    return run();
  } catch (const std::exception& e) {  // a bug or resource exhaustion: answer E90 and keep serving
    log.error(std::string("control: ") + e.what());
  }
  return fallback();
}

}  // namespace

UdpControl::UdpControl(boost::asio::io_context& io, const ip::udp::endpoint& at, Controller& controller,
                       ApplyEffects apply, Logger& log)
    : socket_(io), wildcard_(at.address().is_unspecified()), controller_(controller), apply_(std::move(apply)),
      log_(log), buffer_(65536) {
  boost::system::error_code ec;
  socket_.open(at.protocol(), ec);
  if (!ec && at.address().is_v6()) {
    const int on = 1;
    ::setsockopt(socket_.native_handle(), IPPROTO_IPV6, IPV6_V6ONLY, &on, sizeof on);
  }
  if (!ec) socket_.bind(at, ec);
  if (ec) throw std::runtime_error("cannot bind control socket " + endpoint_text(at) + ": " + ec.message());
  const int on = 1;
  if (wildcard_ && at.address().is_v4()) ::setsockopt(socket_.native_handle(), IPPROTO_IP, IP_PKTINFO, &on, sizeof on);
  if (wildcard_ && at.address().is_v6())
    ::setsockopt(socket_.native_handle(), IPPROTO_IPV6, IPV6_RECVPKTINFO, &on, sizeof on);
  socket_.non_blocking(true, ec);
}

void UdpControl::start() { arm(); }

void UdpControl::close() {
  boost::system::error_code ec;
  socket_.close(ec);
}

void UdpControl::arm() {
  socket_.async_wait(ip::udp::socket::wait_read, [this](boost::system::error_code ec) {
    if (ec || !socket_.is_open()) return;
    on_readable();
    arm();
  });
}

void UdpControl::on_readable() {
  const int fd = socket_.native_handle();
  for (int budget = 64; budget > 0; --budget) {  // then let the media path run
    ip::udp::endpoint from;
    alignas(cmsghdr) char control[256];
    iovec iov{buffer_.data(), buffer_.size()};
    msghdr msg{};
    msg.msg_name = from.data();
    msg.msg_namelen = static_cast<socklen_t>(from.capacity());
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control;
    msg.msg_controllen = sizeof control;
    const ssize_t n = ::recvmsg(fd, &msg, MSG_DONTWAIT);
    if (n < 0) {
      if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
        log_.warning(std::string("control: recvmsg: ") + std::strerror(errno));
      return;
    }
    from.resize(msg.msg_namelen);
    const std::string_view datagram(buffer_.data(), static_cast<std::size_t>(n));
    Effects effects;
    const auto now = Clock::now();
    const std::string reply = guarded(
        log_, [&] { return controller_.handle_datagram(datagram, endpoint_text(from), now, effects); },
        [&] { return controller_.error_datagram(datagram, Error::internal); });
    // The effects first: the kernel fast path follows the table before the SIP proxy hears the reply.
    if (apply_) apply_(effects);
    // Reply from the address the request reached: copy its destination back as the source.
    alignas(cmsghdr) char out_control[256];
    iovec out_iov{const_cast<char*>(reply.data()), reply.size()};
    msghdr out{};
    out.msg_name = from.data();
    out.msg_namelen = static_cast<socklen_t>(from.size());
    out.msg_iov = &out_iov;
    out.msg_iovlen = 1;
    if (wildcard_) {
      for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
        const bool v4 = c->cmsg_level == IPPROTO_IP && c->cmsg_type == IP_PKTINFO;
        const bool v6 = c->cmsg_level == IPPROTO_IPV6 && c->cmsg_type == IPV6_PKTINFO;
        if (!v4 && !v6) continue;
        const std::size_t len = v4 ? sizeof(in_pktinfo) : sizeof(in6_pktinfo);
        out.msg_control = out_control;
        out.msg_controllen = CMSG_SPACE(len);
        cmsghdr* o = CMSG_FIRSTHDR(&out);
        o->cmsg_level = c->cmsg_level;
        o->cmsg_type = c->cmsg_type;
        o->cmsg_len = CMSG_LEN(len);
        std::memcpy(CMSG_DATA(o), CMSG_DATA(c), len);
        if (v4) {
          auto* pi = reinterpret_cast<in_pktinfo*>(CMSG_DATA(o));
          pi->ipi_spec_dst = pi->ipi_addr;
          pi->ipi_ifindex = 0;
        }
        break;
      }
    }
    if (::sendmsg(fd, &out, MSG_DONTWAIT) < 0)
      log_.warning("control: cannot reply to " + endpoint_text(from) + ": " + std::strerror(errno));
  }
}

template <class Protocol>
class StreamControl<Protocol>::Connection : public std::enable_shared_from_this<Connection> {
public:
  Connection(typename Acceptor<Protocol>::Accepted accepted, StreamControl& owner)
      : socket_(std::move(accepted.socket)), timer_(socket_.get_executor()), owner_(owner),
        ticket_(std::move(accepted.ticket)), input_(max_command_bytes + 1), queue_(max_queued) {}

  void start() {
    if (owner_.mode_ == Mode::persistent) return read_line();
    timer_.expires_after(std::chrono::seconds(5));
    timer_.async_wait([self = this->shared_from_this()](boost::system::error_code ec) {
      if (!ec) self->shut();
    });
    socket_.async_read_some(input_.prepare(max_command_bytes + 1),
                            [self = this->shared_from_this()](boost::system::error_code ec, std::size_t n) {
                              if (ec) return self->shut();
                              self->input_.commit(n);
                              self->closing_ = true;
                              if (n > max_command_bytes) return self->reply(format_error(Error::syntax) + "\n");
                              self->answer(n);
                            });
  }

private:
  void read_line() {
    boost::asio::async_read_until(socket_, input_, '\n',
                                  [self = this->shared_from_this()](boost::system::error_code ec, std::size_t n) {
                                    if (ec == boost::asio::error::not_found) {  // no newline in 8 KiB
                                      self->closing_ = true;
                                      return self->reply(format_error(Error::syntax) + "\n");
                                    }
                                    if (ec) return self->shut();
                                    self->answer(n);
                                    self->read_line();
                                  });
  }

  void answer(std::size_t n) {
    std::string line(boost::asio::buffers_begin(input_.data()), boost::asio::buffers_begin(input_.data()) + n);
    input_.consume(n);
    Effects effects;
    std::string out = guarded(
        owner_.log_, [&] { return owner_.controller_.handle_text(line, Clock::now(), effects); },
        [&] { return format_error(Error::internal) + "\n"; });
    if (owner_.apply_) owner_.apply_(effects);
    reply(std::move(out));
  }

  void reply(std::string text) {
    switch (queue_.push(std::make_shared<const std::string>(std::move(text)))) {
      case WriteQueue::Push::start_writing: return write();
      case WriteQueue::Push::queued: return;
      case WriteQueue::Push::over_limit: return shut();  // it does not read its replies
    }
  }

  void write() {
    boost::asio::async_write(socket_, boost::asio::buffer(queue_.front()),
                             [self = this->shared_from_this()](boost::system::error_code ec, std::size_t) {
                               if (ec) return self->shut();
                               if (self->queue_.pop()) return self->write();
                               if (self->closing_) self->shut();
                             });
  }

  void shut() {
    boost::system::error_code ec;
    timer_.cancel();
    socket_.close(ec);
  }

  typename Protocol::socket socket_;
  boost::asio::steady_timer timer_;  // one-shot mode: cuts an idle connection
  StreamControl& owner_;
  typename Acceptor<Protocol>::Ticket ticket_;  // counted in the bounds while it lives
  boost::asio::streambuf input_;
  WriteQueue queue_;
  bool closing_ = false;
};

namespace {

AcceptRules control_rules(const std::string& name, bool tcp) {
  AcceptRules r;
  r.name = "control " + name;
  r.listener = "control socket " + name;
  r.max_total = StreamControl<ip::tcp>::max_connections;
  r.max_per_source = tcp ? StreamControl<ip::tcp>::max_per_source : 0;
  r.backlog = boost::asio::socket_base::max_listen_connections;
  return r;
}

}  // namespace

template <class Protocol>
StreamControl<Protocol>::StreamControl(boost::asio::io_context& io, const typename Protocol::endpoint& at,
                                       std::string name, Mode mode, Controller& controller, ApplyEffects apply,
                                       Logger& log)
    : name_(std::move(name)), mode_(mode), controller_(controller), apply_(std::move(apply)), log_(log),
      acceptor_(io, at, control_rules(name_, std::is_same_v<Protocol, ip::tcp>), log) {}

template <class Protocol>
StreamControl<Protocol>::~StreamControl() { close(); }

template <class Protocol>
void StreamControl<Protocol>::start() {
  acceptor_.start([this](typename Acceptor<Protocol>::Accepted accepted) {
    std::make_shared<Connection>(std::move(accepted), *this)->start();
  });
}

template <class Protocol>
void StreamControl<Protocol>::close() {
  if (!acceptor_.is_open()) return;
  acceptor_.close();
}

template class StreamControl<ip::tcp>;
template class StreamControl<stream_protocol>;

}  // namespace anyrtpproxy
