// Publish and rollback latency through the library (DESIGN §7: < 100 ms).
// Makes a store with three small versions in a temporary directory, then
// times 1000 publishes and 1000 rollbacks, each its own transaction with
// fsync as in production (WAL, synchronous=FULL), and prints median, p99
// and max. Usage: bench_publish [CALLS]
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <vector>

#include "store/store.h"
#include "util/file.h"
#include "vhd/raw_disk.h"

using namespace bootfleet;
namespace fs = std::filesystem;

namespace {

double percentile(std::vector<double> v, double p) {
  std::sort(v.begin(), v.end());
  size_t i = static_cast<size_t>(p * static_cast<double>(v.size() - 1) + 0.5);
  return v[std::min(i, v.size() - 1)];
}

void report(const char* what, const std::vector<double>& ms) {
  std::printf("%-9s calls=%zu median=%.3f ms p99=%.3f ms max=%.3f ms\n", what, ms.size(), percentile(ms, 0.5),
              percentile(ms, 0.99), *std::max_element(ms.begin(), ms.end()));
}

}  // namespace

int main(int argc, char** argv) {
  int calls = argc > 1 ? std::atoi(argv[1]) : 1000;
  char tmpl[] = "/tmp/bootfleet-bench-publish-XXXXXX";
  fs::path dir = ::mkdtemp(tmpl);
  std::string store_dir = (dir / "store").string();
  store::Store::init(store_dir);
  auto s = store::Store::open(store_dir);
  std::string raw = (dir / "disk.raw").string();
  for (int v = 1; v <= 3; ++v) {
    {
      auto fd = util::open_file(raw, O_RDWR | O_CREAT, 0644);
      std::vector<uint8_t> data(4096, static_cast<uint8_t>(v));
      util::pwrite_full(fd.get(), data.data(), data.size(), static_cast<uint64_t>(v) << 20, raw);
      if (::ftruncate(fd.get(), 16 << 20) != 0) return 1;
    }
    auto disk = vhd::RawDisk::open(raw);
    s->import_disk("bench", *disk, {});
  }
  std::vector<double> publish_ms, rollback_ms;
  s->publish({"bench", 1, false}, "bench");
  for (int i = 0; i < calls; ++i) {
    auto t0 = std::chrono::steady_clock::now();
    s->publish({"bench", 2 + (i % 2), false}, "bench");
    auto t1 = std::chrono::steady_clock::now();
    s->rollback("bench", std::nullopt, "bench");
    auto t2 = std::chrono::steady_clock::now();
    publish_ms.push_back(std::chrono::duration<double, std::milli>(t1 - t0).count());
    rollback_ms.push_back(std::chrono::duration<double, std::milli>(t2 - t1).count());
  }
  report("publish", publish_ms);
  report("rollback", rollback_ms);
  fs::remove_all(dir);
  bool ok = percentile(publish_ms, 0.99) < 100 && percentile(rollback_ms, 0.99) < 100;
  std::printf("target p99 < 100 ms: %s\n", ok ? "met" : "MISSED");
  return 0;
}
