// anyrtpproxy-health: follows the daemon's --health socket and turns what it
// says into route changes for a routing daemon. As an ExaBGP API process
// (--exabgp ROUTE) it prints "announce route ROUTE next-hop self" and
// "withdraw route ROUTE next-hop self" on standard output; with --on-up and
// --on-down it runs those commands (BIRD's birdc, FRR's vtysh) through
// /bin/sh. The rules (core/route_decider.h): withdraw at end of file, after
// --silence ms without a line, and on any line but "healthy"; announce after
// --steady ms of healthy lines. It reconnects every 100 ms while the socket
// is not there, so it may start before the daemon. As an ExaBGP process it
// reads and drops what ExaBGP writes to it, and ends when ExaBGP closes its
// input. It needs no privilege: write access to the socket (its group) is
// enough to connect.
#include "core/route_decider.h"
#include "core/version.h"

#include <boost/program_options.hpp>

#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <iostream>
#include <string>

namespace {

using anyrtpproxy::RouteDecider;
namespace po = boost::program_options;

struct Settings {
  std::string socket, exabgp, on_up, on_down;
  RouteDecider::Config rules;
};

int connect_to(const std::string& path) {
  const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  sockaddr_un at{};
  at.sun_family = AF_UNIX;
  std::memcpy(at.sun_path, path.c_str(), path.size() + 1);
  if (::connect(fd, reinterpret_cast<const sockaddr*>(&at), sizeof at) != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

void act(const Settings& s, RouteDecider::Action a) {
  if (a == RouteDecider::Action::none) return;
  const bool up = a == RouteDecider::Action::announce;
  if (!s.exabgp.empty()) {
    std::printf("%s route %s next-hop self\n", up ? "announce" : "withdraw", s.exabgp.c_str());
    std::fflush(stdout);
  }
  const std::string& cmd = up ? s.on_up : s.on_down;
  if (!cmd.empty()) {
    const int status = std::system(cmd.c_str());
    if (status != 0) std::fprintf(stderr, "anyrtpproxy-health: '%s' exited with %d\n", cmd.c_str(), status);
  }
  std::fprintf(stderr, "anyrtpproxy-health: route %s\n", up ? "announced" : "withdrawn");
}

// As an ExaBGP process: reads what ExaBGP writes back (its "done" after
// each command) so that the pipe never fills; false at end of file, when
// ExaBGP is gone and this process should go too.
bool drain_input() {
  char buf[512];
  const ssize_t n = ::read(STDIN_FILENO, buf, sizeof buf);
  return n > 0 || (n < 0 && (errno == EINTR || errno == EAGAIN));
}

// Follows the socket until a signal stops it, or (as an ExaBGP process) until
// ExaBGP closes its standard input.
void follow(const Settings& s) {
  RouteDecider decider(s.rules);
  std::string pending;
  int fd = -1;
  const bool exabgp = !s.exabgp.empty();
  for (;;) {
    const auto now = RouteDecider::Clock::now();
    if (fd < 0) {
      fd = connect_to(s.socket);
      if (fd < 0) {
        act(s, decider.lost(now));
      } else {
        pending.clear();
        act(s, decider.connected(now));
      }
    }
    // The daemon's lines (or, without it, 100 ms before trying again) and ExaBGP's.
    pollfd p[2] = {{fd, POLLIN, 0}, {exabgp ? STDIN_FILENO : -1, POLLIN, 0}};
    const int ready = ::poll(p, 2, fd < 0 ? 100 : 50);
    if (ready > 0 && (p[1].revents & (POLLIN | POLLHUP | POLLERR)) && !drain_input()) return;
    if (ready > 0 && fd >= 0 && (p[0].revents & (POLLIN | POLLHUP | POLLERR))) {
      char buf[4096];
      const ssize_t n = ::read(fd, buf, sizeof buf);
      if (n <= 0) {  // end of file: the daemon died or stopped
        ::close(fd);
        fd = -1;
        act(s, decider.lost(RouteDecider::Clock::now()));
        continue;
      }
      pending.append(buf, static_cast<std::size_t>(n));
      for (std::size_t eol; (eol = pending.find('\n')) != std::string::npos;) {
        act(s, decider.line(std::string_view(pending.data(), eol), RouteDecider::Clock::now()));
        pending.erase(0, eol + 1);
      }
      if (pending.size() > 1024) pending.clear();  // not this daemon's lines: bounded all the same
    }
    act(s, decider.tick(RouteDecider::Clock::now()));
  }
}

}  // namespace

int main(int argc, char* argv[]) {
  Settings s;
  po::options_description d("usage: anyrtpproxy-health --socket PATH (--exabgp ROUTE | --on-up CMD --on-down CMD)");
  long silence = 300, steady = 1000;
  // clang-format off
  d.add_options()
    ("help,h", "print this help and exit")
    ("version,V", "print the version and exit")
    ("socket", po::value(&s.socket)->value_name("PATH"), "the daemon's --health socket")
    ("exabgp", po::value(&s.exabgp)->value_name("ROUTE"), "print ExaBGP API announce/withdraw lines for ROUTE (a prefix)")
    ("on-up", po::value(&s.on_up)->value_name("CMD"), "run CMD (/bin/sh -c) when the route should be announced")
    ("on-down", po::value(&s.on_down)->value_name("CMD"), "run CMD when the route should be withdrawn")
    ("silence", po::value(&silence)->value_name("MS"), "withdraw after this long without a line (default 300)")
    ("steady", po::value(&steady)->value_name("MS"), "announce after this long of healthy lines (default 1000)");
  // clang-format on
  po::variables_map vm;
  try {
    po::store(po::parse_command_line(argc, argv, d), vm);
    po::notify(vm);
  } catch (const po::error& e) {
    std::fprintf(stderr, "anyrtpproxy-health: %s (see --help)\n", e.what());
    return 2;
  }
  if (vm.count("help")) {
    std::cout << d;
    return 0;
  }
  if (vm.count("version")) {
    std::puts("anyrtpproxy-health " ANYRTPPROXY_VERSION);
    return 0;
  }
  const auto refuse = [](const char* option, const std::string& why) {
    std::fprintf(stderr, "anyrtpproxy-health: option %s: %s\n", option, why.c_str());
    return 2;
  };
  if (s.socket.empty() || s.socket[0] != '/') return refuse("--socket", "needs an absolute path");
  if (s.socket.size() >= sizeof(sockaddr_un::sun_path)) return refuse("--socket", "the path is too long");
  if (s.exabgp.empty() && s.on_up.empty() && s.on_down.empty())
    return refuse("--exabgp", "give --exabgp ROUTE, or --on-up and --on-down");
  if (!s.exabgp.empty() && s.exabgp.find_first_of(" \t\n") != std::string::npos)
    return refuse("--exabgp", "'" + s.exabgp + "' is not a prefix");
  if (silence < 100 || silence > 60000) return refuse("--silence", "takes 100 to 60000 ms");
  if (steady < 0 || steady > 600000) return refuse("--steady", "takes 0 to 600000 ms");
  s.rules.silence = std::chrono::milliseconds(silence);
  s.rules.steady = std::chrono::milliseconds(steady);
  std::signal(SIGPIPE, SIG_IGN);
  follow(s);
  return 0;  // ExaBGP closed our input: it is gone
}
