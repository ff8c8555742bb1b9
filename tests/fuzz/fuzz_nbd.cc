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
#include "util/error.h"
#include "util/log.h"

using namespace bootfleet;

namespace {

class MemoryDevice : public block::Device {
 public:
  explicit MemoryDevice(bool read_only) : data_(1u << 20, 0), read_only_(read_only) {}
  uint64_t size() const override { return data_.size(); }
  bool read_only() const override { return read_only_; }
  bool shared_between_connections() const override { return true; }
  int read(uint64_t offset, uint32_t length, uint8_t* buf) override {
    std::memcpy(buf, data_.data() + offset, length);
    return 0;
  }
  int write(uint64_t offset, uint32_t length, const uint8_t* buf, bool) override {
    std::memcpy(data_.data() + offset, buf, length);
    return 0;
  }
  int flush() override { return 0; }
  int trim(uint64_t offset, uint32_t length, bool) override { return write_zeroes(offset, length, false); }
  int write_zeroes(uint64_t offset, uint32_t length, bool) override {
    std::memset(data_.data() + offset, 0, length);
    return 0;
  }
  int extents(uint64_t offset, uint32_t length, std::vector<vhd::Extent>& out) override {
    // Alternate data and zero every 64 KiB so block status has work to do.
    for (uint64_t at = offset; at < offset + length;) {
      uint64_t end = std::min<uint64_t>(offset + length, (at / 65536 + 1) * 65536);
      vhd::append_extent(out, {at, end - at, (at / 65536) % 2 == 0});
      at = end;
    }
    return 0;
  }

 private:
  std::vector<uint8_t> data_;
  bool read_only_;
};

class Resolver : public nbd::ExportResolver {
 public:
  nbd::OpenedExport open(const std::string& name) override {
    if (name == "mem" || name.empty()) return {std::make_shared<MemoryDevice>(false), "memory", nullptr};
    if (name == "ro") return {std::make_shared<MemoryDevice>(true), "memory, read-only", nullptr};
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
