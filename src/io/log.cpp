// log: see log.h.
#include "io/log.h"

#include "core/text.h"

#include <algorithm>
#include <array>
#include <string>
#include <cstdio>
#include <syslog.h>

namespace anyrtpproxy {

namespace {
constexpr std::array<std::pair<std::string_view, Level>, 5> levels = {{
    {"error", Level::error}, {"warning", Level::warning}, {"notice", Level::notice},
    {"info", Level::info}, {"debug", Level::debug}}};
}  // namespace

bool parse_level(std::string_view name, Level& out) {
  for (const auto& [n, l] : levels)
    if (n == name) {
      out = l;
      return true;
    }
  return false;
}

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
  std::string_view name = "info";
  for (const auto& [n, lv] : levels)
    if (lv == l) name = n;
  std::fprintf(stderr, "anyrtpproxy: %.*s: %.*s\n", static_cast<int>(name.size()), name.data(), len,
               clean.data());
}

}  // namespace anyrtpproxy
