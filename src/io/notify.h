// notify: timeout notifications (doc/protocol.md, Timeout notifications). When a session
// that carries a notify target expires, "<tag>\n" is written to that target
// over a new stream connection (tcp: or unix:). Bounded: at most
// max_pending notifications in flight, each cut after a few seconds.
#pragma once

#include "core/addresses.h"

#include <boost/asio/io_context.hpp>

#include <memory>
#include <string>
#include <vector>

namespace anyrtpproxy {

class Logger;

class Notifier {
public:
  Notifier(boost::asio::io_context& io, std::vector<NotifyTarget> targets, Logger& log);
  void send(const std::string& target, const std::string& tag);
  void set_targets(std::vector<NotifyTarget> targets) { targets_ = std::move(targets); }  // SIGHUP

  static constexpr std::size_t max_pending = 256;

private:
  template <class Protocol>
  void deliver(const typename Protocol::endpoint& to, const std::string& what, std::string message);

  boost::asio::io_context& io_;
  std::vector<NotifyTarget> targets_;
  Logger& log_;
  std::shared_ptr<std::size_t> pending_;
};

}  // namespace anyrtpproxy
