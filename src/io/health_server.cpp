// health_server: see health_server.h.
#include "io/health_server.h"

#include "io/log.h"

#include <boost/asio/write.hpp>

#include <grp.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>
#include <stdexcept>

namespace anyrtpproxy {

using boost::asio::local::stream_protocol;

class HealthServer::Client : public std::enable_shared_from_this<Client> {
public:
  explicit Client(UnixAcceptor::Accepted accepted)
      : socket_(std::move(accepted.socket)), ticket_(std::move(accepted.ticket)) {}

  void start() {  // reads only to notice the close
    socket_.async_read_some(boost::asio::buffer(sink_), [self = shared_from_this()](boost::system::error_code ec,
                                                                                    std::size_t) {
      if (ec) return self->shut();
      self->start();
    });
  }

  // False: gone, or it has not read its lines for max_missed ticks (cut off now).
  bool send(const std::string& line) {
    if (!socket_.is_open()) return false;
    if (writing_) {
      if (++missed_ < max_missed) return true;
      shut();
      return false;
    }
    missed_ = 0;
    writing_ = true;
    out_ = line;
    boost::asio::async_write(socket_, boost::asio::buffer(out_),
                             [self = shared_from_this()](boost::system::error_code ec, std::size_t) {
                               self->writing_ = false;
                               if (ec) self->shut();
                             });
    return true;
  }

  void shut() {
    boost::system::error_code ec;
    socket_.close(ec);
  }

private:
  stream_protocol::socket socket_;
  UnixAcceptor::Ticket ticket_;
  std::array<char, 256> sink_{};
  std::string out_;
  bool writing_ = false;
  unsigned missed_ = 0;
};

namespace {

AcceptRules health_rules(const std::string& path) {
  AcceptRules r;
  r.name = "health";
  r.listener = "health socket " + path;
  r.max_total = HealthServer::max_clients;
  r.backlog = boost::asio::socket_base::max_listen_connections;  // a flood waits to be refused, not refused by the kernel
  return r;
}

}  // namespace

HealthServer::HealthServer(boost::asio::io_context& io, const std::string& path, const std::string& group, Logger& log)
    : acceptor_(io, stream_protocol::endpoint(path), health_rules(path), log), timer_(io) {
  if (group.empty()) return;
  const struct group* g = ::getgrnam(group.c_str());
  if (!g) throw std::runtime_error("--health-group: there is no group '" + group + "'");
  if (::chown(path.c_str(), static_cast<uid_t>(-1), g->gr_gid) != 0)
    throw std::runtime_error("--health-group: cannot give " + path + " to group '" + group + "': " +
                             std::strerror(errno) + " (the daemon must be a member of it)");
}

HealthServer::~HealthServer() { close(); }

void HealthServer::start() {
  acceptor_.start([this](UnixAcceptor::Accepted accepted) {
    auto c = std::make_shared<Client>(std::move(accepted));
    c->start();
    if (c->send(line_)) clients_.push_back(std::move(c));  // the first line at once
  });
  tick();
}

void HealthServer::close() {
  if (!acceptor_.is_open()) return;
  acceptor_.close();
  timer_.cancel();
  for (auto& c : clients_) c->shut();
  clients_.clear();
}

void HealthServer::set(std::string line) {
  line += "\n";
  const bool news = line.substr(0, line.find(' ')) != line_.substr(0, line_.find(' '));
  line_ = std::move(line);
  if (news) send_all();  // another state (draining, unhealthy): told now, not at the next tick
}

void HealthServer::send_all() {
  clients_.erase(std::remove_if(clients_.begin(), clients_.end(), [this](const auto& c) { return !c->send(line_); }),
                 clients_.end());
}

void HealthServer::tick() {
  send_all();
  timer_.expires_after(period);
  timer_.async_wait([this](boost::system::error_code ec) {
    if (!ec) tick();
  });
}

}  // namespace anyrtpproxy
