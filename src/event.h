// event: a line the daemon should log, as a value. The core returns these
// (what a command or a peer's frame did) and the I/O layer writes them.
#pragma once

#include <string>

namespace anyrtpproxy {

enum class Level : int { error = 3, warning = 4, notice = 5, info = 6, debug = 7 };  // the priorities of RFC 5424

struct Event {
  Level level = Level::info;
  std::string text;
};

}  // namespace anyrtpproxy
