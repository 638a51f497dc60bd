// libFuzzer harness: a sync stream as a peer would send it, fed to the frame
// reader in chunks, every decoded message applied to a table as the daemon
// does (cluster.h's apply_sync). The first byte picks the chunk size.
#include "../unit/fakes.h"
#include "core/cluster.h"
#include "core/sync_codec.h"

#include <cstdint>
#include <string_view>

using namespace anyrtpproxy;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const std::size_t chunk = 1 + data[0] * 64u;
  std::string_view stream(reinterpret_cast<const char*>(data + 1), size - 1);
  test::FakeBinder binder;
  SessionTable table(TableConfig{std::chrono::seconds(60), std::chrono::seconds(60), LatchPolicy::once, "me:30000", 64},
                     test::pools(30000, 30039), binder);
  FrameReader reader;
  const auto now = test::t0;
  // as the daemon: the client checks a hello first, then the peer's messages are checked and applied
  ClusterView view{"me:30000", PortRange{30000, 30039}, {"tcp:127.0.0.1:9999"}, {}};
  const SyncHello ours{"me:30000", 30000, 30039, 0};
  SyncSource from{"fuzz", ""};
  while (!stream.empty()) {
    const auto piece = stream.substr(0, chunk);
    stream.remove_prefix(piece.size());
    if (!reader.feed(piece)) break;
    while (auto next = reader.next(now)) {
      auto* msg = std::get_if<SyncMessage>(&*next);
      if (!msg) return 0;  // an error ends the stream, as the client does
      if (auto* h = std::get_if<SyncHello>(msg)) {
        if (refuse_hello(*h, ours)) return 0;  // the client drops the connection
        from.instance = h->instance;
      }
      (void)apply_sync(table, view, *msg, from, now, true);
      (void)table.take_changes();
    }
  }
  if (table.sessions().size() > 64) __builtin_trap();
  return 0;
}
