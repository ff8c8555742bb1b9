// libFuzzer target for the NBD server side: the input is everything a
// client sends (handshake, options, requests, payloads), fed through a
// socketpair to serve_connection with a 1 MiB in-memory export. The server
// must never crash, hang or read out of bounds, whatever arrives.
#include <sys/socket.h>
#include <unistd.h>

#include <cstdint>
#include <cstring>
#include <thread>
#include <vector>

#include "block/device.h"
#include "nbd/connection.h"
#include "support/feed_server.h"
#include "support/memory_device.h"
#include "util/error.h"
#include "util/log.h"

using namespace bootfleet;

namespace {

class Resolver : public nbd::ExportResolver {
 public:
  nbd::OpenedExport open(const std::string& name) override {
    if (name == "mem" || name.empty()) return {std::make_shared<test::MemoryDevice>(1u << 20, false, true), "memory", nullptr};
    if (name == "ro") return {std::make_shared<test::MemoryDevice>(1u << 20, true, true), "memory, read-only", nullptr};
    throw util::Error("no export '" + name + "'");
  }
  std::vector<std::pair<std::string, std::string>> list() override { return {{"mem", "memory"}, {"ro", "read-only"}}; }
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  // The server logs every connection; keep the fuzzer's output readable.
  util::set_log_enabled(false);
  Resolver resolver;
  test::feed_server(data, size, [&](int fd) { nbd::serve_connection(fd, resolver, "fuzz"); });
  return 0;
}
