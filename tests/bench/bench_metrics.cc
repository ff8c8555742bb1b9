// What counting costs on the hot path: 4 KiB reads and writes from a
// MemoryDevice, directly and through serve::MeteredDevice (per-export and
// per-protocol counters, relaxed atomics), from 1 and 2 threads on one
// export (the worst case: every thread adds to the same counters). Prints
// ns per request for each and the difference. The device does a memcpy,
// far less than a real request (a syscall or two, a page-cache read), so
// the difference here is an upper bound of the share metering takes.
// Medians of 9 rounds, each timing both in turn; the difference column is
// the median of the rounds' differences.
// Usage: bench_metrics [REQUESTS_PER_THREAD]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <thread>
#include <vector>

#include "serve/metered_device.h"
#include "support/memory_device.h"

using namespace bootfleet;

namespace {

// ns per request of one run: `threads` threads each doing `n`
// alternating 4 KiB reads and writes.
double ns_per_request(block::Device& device, int threads, long n) {
  auto start = std::chrono::steady_clock::now();
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t) {
    pool.emplace_back([&device, n, t] {
      std::vector<uint8_t> buf(4096);
      for (long i = 0; i < n; ++i) {
        uint64_t offset = (uint64_t(i * 7919 + t * 104729) % 4096) * 4096;
        int rc = (i & 1) ? device.write(offset, 4096, buf.data(), false) : device.read(offset, 4096, buf.data());
        if (rc != 0) std::abort();
      }
    });
  }
  for (auto& th : pool) th.join();
  double ns = std::chrono::duration<double, std::nano>(std::chrono::steady_clock::now() - start).count();
  return ns / double(n * threads);
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
  long n = argc > 1 ? std::atol(argv[1]) : 500000;
  auto inner = std::make_shared<test::MemoryDevice>(uint64_t{16} << 20, false, true);
  serve::MeteredDevice metered(inner, "bench/pc01", "nbd");
  std::printf("| threads | direct (ns/request) | metered (ns/request) | difference |\n| --- | --- | --- | --- |\n");
  for (int threads : {1, 2}) {
    // Taken in turns, 9 rounds: other work on the machine weighs on both alike.
    std::vector<double> direct, counted, difference;
    for (int round = 0; round < 9; ++round) {
      direct.push_back(ns_per_request(*inner, threads, n));
      counted.push_back(ns_per_request(metered, threads, n));
      difference.push_back(counted.back() - direct.back());
    }
    std::printf("| %d | %.0f | %.0f | %+.0f ns |\n", threads, median(direct), median(counted), median(difference));
  }
  return 0;
}
