// libFuzzer harness: one control datagram, parsed and answered by a fresh
// controller (the reply must carry the cookie and end in a newline).
#include "../unit/fakes.h"
#include "core/controller.h"
#include "core/protocol.h"

#include <cstdint>
#include <string_view>

using namespace anyrtpproxy;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view datagram(reinterpret_cast<const char*>(data), size);
  (void)parse_command(split_cookie(datagram).rest);
  test::FakeBinder binder;
  SessionTable table(TableConfig{}, test::pools(30000, 30020), binder);
  ControllerConfig config;
  config.local = {boost::asio::ip::make_address("127.0.0.1"), boost::asio::ip::make_address("::1")};
  config.notify_targets = {"tcp:127.0.0.1:9999"};
  Controller controller(table, config);
  Effects effects;
  const std::string reply = controller.handle_datagram(datagram, "127.0.0.1:5060", test::t0, effects);
  if (reply.empty() || reply.back() != '\n') __builtin_trap();
  return 0;
}
