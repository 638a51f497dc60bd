// libFuzzer harness: a sequence of commands (one per line) through one
// controller, so that state accumulates: sessions, ports, the reply cache,
// expiry. A line starting with '+' advances the clock by its length in
// seconds and expires; one starting with '!' routes a packet to a port.
// After every step the table's ports must match the sockets it opened.
#include "../unit/fakes.h"
#include "core/controller.h"

#include <cstdint>
#include <string_view>

using namespace anyrtpproxy;

namespace {
void check(const SessionTable& table, const test::FakeBinder& binder) {
  std::size_t bound = 0;
  for (const auto& [key, e] : table.sessions())
    for (int side = 0; side < 2; ++side)
      if (e.local.legs[side].bound) {
        ++bound;
        if (!binder.open_ports.count({e.session.legs[side].slot, e.session.legs[side].port})) __builtin_trap();
      }
  if (bound != binder.open_ports.size()) __builtin_trap();
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  test::FakeBinder binder;
  SessionTable table(TableConfig{std::chrono::seconds(60), std::chrono::seconds(30)}, test::pools(30000, 30039),
                     binder);
  ControllerConfig config;
  // IPv4 bridged (internal/external) and IPv6: every way of choosing a slot is reachable.
  config.local = {boost::asio::ip::make_address("127.0.0.1"), boost::asio::ip::make_address("::1"),
                  boost::asio::ip::make_address("127.0.0.2"), std::nullopt};
  config.notify_targets = {"tcp:127.0.0.1:9999", "unix:/run/n.sock"};
  config.reply_cache_entries = 8;
  Controller controller(table, config);
  auto now = test::t0;
  std::string_view rest(reinterpret_cast<const char*>(data), size);
  for (int steps = 0; !rest.empty() && steps < 200; ++steps) {
    const auto eol = rest.find('\n');
    const std::string_view line = rest.substr(0, eol);
    rest = eol == std::string_view::npos ? std::string_view() : rest.substr(eol + 1);
    Effects effects;
    if (!line.empty() && line[0] == '+') {
      now += std::chrono::seconds(line.size());
      table.expire(now);
    } else if (!line.empty() && line[0] == '!' && line.size() >= 3) {
      const auto port = static_cast<std::uint16_t>(30000 + static_cast<unsigned char>(line[1]) % 40);
      const auto slot = static_cast<Slot>(static_cast<unsigned char>(line[1]) / 40 % 3);
      const auto payload = line.substr(2);
      const auto r = table.route(slot, port, test::ep(slot == 1 ? "2001:db8::1" : "192.0.2.1", 4000),
                                 reinterpret_cast<const unsigned char*>(payload.data()), payload.size(), now);
      if (r.forward && r.out_port == 0) __builtin_trap();
    } else if (!line.empty() && line[0] == '#') {
      controller.handle_datagram(line.substr(1), "127.0.0.1:5060", now, effects);
    } else {
      const std::string reply = controller.handle_text(line, now, effects);
      if (reply.empty() || reply.back() != '\n') __builtin_trap();
    }
    (void)table.take_changes();
    check(table, binder);
  }
  return 0;
}
