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
  int fds[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) != 0) return 0;
  Resolver resolver;
  std::thread server([&] { nbd::serve_connection(fds[1], resolver, "fuzz"); ::shutdown(fds[1], SHUT_RDWR); });
  // The input is small (libFuzzer's -max_len), so it fits the socket buffer;
  // replies are drained afterwards until the server closes its end.
  size_t sent = 0;
  while (sent < size) {
    ssize_t n = ::send(fds[0], data + sent, size - sent, MSG_NOSIGNAL);
    if (n <= 0) break;
    sent += static_cast<size_t>(n);
  }
  ::shutdown(fds[0], SHUT_WR);
  uint8_t sink[65536];
  while (::recv(fds[0], sink, sizeof sink, 0) > 0) {
  }
  server.join();
  ::close(fds[0]);
  ::close(fds[1]);
  return 0;
}
