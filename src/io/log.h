// log: the daemon's one Logger, made in main and passed by reference.
// Writes to stderr in the foreground and to syslog (facility daemon, ident
// anyrtpproxy) once detached. Session events are logged, packets never are.
#pragma once

#include "core/event.h"

#include <string>
#include <string_view>
#include <vector>

namespace anyrtpproxy {

// "error", "warning", "notice", "info", "debug"; false if unknown.

class Logger {
public:
  explicit Logger(Level threshold) : threshold_(threshold) {}
  ~Logger();
  Logger(const Logger&) = delete;
  Logger& operator=(const Logger&) = delete;

  void to_syslog();  // from now on (after detaching)
  void reopen();     // SIGHUP: reconnect to syslog (not inside a chroot: /dev/log is outside)
  void chrooted() { chrooted_ = true; }
  void set_level(Level threshold) { threshold_ = threshold; }  // SIGHUP
  Level level() const { return threshold_; }
  bool enabled(Level l) const { return static_cast<int>(l) <= static_cast<int>(threshold_); }
  void log(Level l, std::string_view message);
  void error(std::string_view m) { log(Level::error, m); }
  void warning(std::string_view m) { log(Level::warning, m); }
  void notice(std::string_view m) { log(Level::notice, m); }
  void info(std::string_view m) { log(Level::info, m); }
  void debug(std::string_view m) { log(Level::debug, m); }

private:
  Level threshold_;
  bool syslog_ = false;
  bool chrooted_ = false;
};

}  // namespace anyrtpproxy
