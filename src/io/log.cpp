// log: see log.h.
#include "io/log.h"

#include "core/text.h"

#include <algorithm>
#include <array>
#include <string>
#include <cstdio>
#include <syslog.h>

namespace anyrtpproxy {

Logger::~Logger() {
  if (syslog_) ::closelog();
}

void Logger::to_syslog() {
  ::openlog("anyrtpproxy", LOG_PID | LOG_NDELAY, LOG_DAEMON);
  syslog_ = true;
}

void Logger::reopen() {
  if (!syslog_ || chrooted_) return;
  ::closelog();
  ::openlog("anyrtpproxy", LOG_PID | LOG_NDELAY, LOG_DAEMON);
}

void Logger::log(Level l, std::string_view message) {
  if (!enabled(l)) return;
  // Call-ids and tags come from the network: no control characters reach a terminal or syslog.
  const std::string clean = one_line(message, 4096);
  const int len = static_cast<int>(clean.size());
  if (syslog_) {
    ::syslog(static_cast<int>(l), "%.*s", len, clean.data());
    return;
  }
  const std::string_view name = level_name(l);
  std::fprintf(stderr, "anyrtpproxy: %.*s: %.*s\n", static_cast<int>(name.size()), name.data(), len,
               clean.data());
}

}  // namespace anyrtpproxy
