// What channels cost (docs/channels.md): the resolution a boot script does
// for each PC (client pin -> group pin -> group channel -> production, then
// the boot mode and the version row), and publish on a channel, promote and
// rollback per channel, each its own transaction with fsync as in production
// (DESIGN §7: publish/rollback < 100 ms). A store with 3 versions, 20
// groups, 1000 clients (half in groups, one in ten pinned) and a history of
// 1000 publishes, so that what grows with a site is in the timings. Prints
// median, p99 and max. Usage: bench_channels [CALLS]
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
  std::printf("%-10s calls=%zu median=%.3f ms p99=%.3f ms max=%.3f ms\n", what, ms.size(), percentile(ms, 0.5),
              percentile(ms, 0.99), *std::max_element(ms.begin(), ms.end()));
}

template <class Fn>
double time_ms(Fn&& fn) {
  auto t0 = std::chrono::steady_clock::now();
  fn();
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
}

}  // namespace

int main(int argc, char** argv) {
  int calls = argc > 1 ? std::atoi(argv[1]) : 1000;
  char tmpl[] = "/tmp/bootfleet-bench-channels-XXXXXX";
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
    s->import_disk("bench", *vhd::RawDisk::open(raw), {});
  }
  for (int i = 0; i < 1000; ++i) s->publish({"bench", 1 + (i % 3), false}, "bench");
  s->publish_channel({"bench", 3, false}, store::kTestChannel, "bench");
  for (int g = 0; g < 20; ++g) {
    s->add_group("g" + std::to_string(g), "bench", g % 2 ? store::kTestChannel : store::kProductionChannel,
                 g % 5 == 0 ? std::optional<int64_t>(2) : std::nullopt);
  }
  std::vector<std::string> names;
  for (int c = 0; c < 1000; ++c) {
    char mac[32];
    std::snprintf(mac, sizeof mac, "52:54:00:00:%02x:%02x", c / 256, c % 256);
    std::string name = "pc" + std::to_string(c);
    s->add_client(mac, name, "bench", std::nullopt);
    if (c % 2) s->set_client_group(name, "g" + std::to_string(c % 20));
    if (c % 10 == 0) s->set_client_pin(name, 1);
    names.push_back(name);
  }
  std::vector<double> resolve_ms, publish_ms, promote_ms, rollback_ms;
  for (int i = 0; i < calls; ++i) {
    const std::string& name = names[static_cast<size_t>(i) * 7 % names.size()];
    resolve_ms.push_back(time_ms([&] {
      // What BootHttp::boot_script asks the store for one PC.
      auto c = s->find_client(name);
      auto r = s->resolve_boot(*c);
      (void)s->effective_boot_mode(*c);
      (void)s->version({r.image, r.version, false});
    }));
  }
  for (int i = 0; i < calls / 10; ++i) {
    publish_ms.push_back(time_ms([&] { s->publish_channel({"bench", 1 + (i % 2), false}, store::kTestChannel, "bench"); }));
    promote_ms.push_back(time_ms([&] { s->promote("bench", store::kTestChannel, store::kProductionChannel, "bench"); }));
    rollback_ms.push_back(time_ms([&] { s->rollback_channel("bench", store::kTestChannel, std::nullopt, "bench"); }));
  }
  report("resolve", resolve_ms);
  report("publish", publish_ms);
  report("promote", promote_ms);
  report("rollback", rollback_ms);
  fs::remove_all(dir);
  bool ok = percentile(publish_ms, 0.99) < 100 && percentile(promote_ms, 0.99) < 100 &&
            percentile(rollback_ms, 0.99) < 100;
  std::printf("target p99 < 100 ms (publish, promote, rollback on a channel): %s\n", ok ? "met" : "MISSED");
  return 0;
}
