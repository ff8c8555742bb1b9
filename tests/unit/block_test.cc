#include <fcntl.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstring>
#include <filesystem>
#include <random>
#include <thread>
#include <vector>

#include "block/session.h"
#include "block/write_cache.h"
#include "util/file.h"
#include "vhd/chain.h"
#include "vhd/raw_disk.h"
#include "vhd/writer.h"

using namespace bootfleet;
namespace fs = std::filesystem;

namespace {

// A base disk of 8 MiB: byte i holds (i / 512) & 0xFF, so every sector is
// recognisable; the last 4 MiB are zeros.
struct Fixture {
  fs::path dir;
  std::string raw;
  std::shared_ptr<const vhd::Disk> base;
  Fixture() {
    char tmpl[] = "/tmp/bootfleet-block-unit-XXXXXX";
    dir = ::mkdtemp(tmpl);
    raw = (dir / "base.raw").string();
    std::vector<uint8_t> data(4u << 20, 0);
    for (size_t i = 0; i < data.size(); ++i) data[i] = static_cast<uint8_t>(i / 512 + 1);
    auto fd = util::open_file(raw, O_RDWR | O_CREAT | O_TRUNC);
    util::pwrite_full(fd.get(), data.data(), data.size(), 0, raw);
    REQUIRE(::ftruncate(fd.get(), 8 << 20) == 0);  // the last 4 MiB a hole
    base = vhd::RawDisk::open(raw);
  }
  ~Fixture() { fs::remove_all(dir); }
  std::vector<uint8_t> expect_base(uint64_t off, size_t len) {
    std::vector<uint8_t> v(len);
    base->read(off, v.data(), len);
    return v;
  }
};

std::vector<uint8_t> read(block::WriteCache& c, uint64_t off, uint32_t len) {
  std::vector<uint8_t> v(len);
  REQUIRE(c.read(off, len, v.data()) == 0);
  return v;
}

}  // namespace

TEST_CASE("write cache merges writes over the base", "[block]") {
  Fixture f;
  block::WriteCache c(f.base, f.dir.string());
  CHECK(read(c, 0, 8192) == f.expect_base(0, 8192));

  std::vector<uint8_t> a(4096, 0xAA), b(1024, 0xBB);
  REQUIRE(c.write(4096, 4096, a.data(), false) == 0);
  REQUIRE(c.write(4096 + 1536, 1024, b.data(), false) == 0);  // inside: in place
  CHECK(c.data_bytes() == 4096);
  auto got = read(c, 0, 12288);
  auto want = f.expect_base(0, 12288);
  std::fill(want.begin() + 4096, want.begin() + 8192, 0xAA);
  std::fill(want.begin() + 4096 + 1536, want.begin() + 4096 + 2560, 0xBB);
  CHECK(got == want);

  // Overlapping on the left and right of an existing run.
  std::vector<uint8_t> l(2048, 0x11), r(2048, 0x22);
  REQUIRE(c.write(3072, 2048, l.data(), false) == 0);
  REQUIRE(c.write(7168, 2048, r.data(), false) == 0);
  std::fill(want.begin() + 3072, want.begin() + 5120, 0x11);
  std::fill(want.begin() + 7168, want.begin() + 9216, 0x22);
  CHECK(read(c, 0, 12288) == want);
  CHECK(c.flush() == 0);
}

TEST_CASE("unaligned writes and zeroes complete whole sectors", "[block]") {
  Fixture f;
  block::WriteCache c(f.base, f.dir.string());
  std::vector<uint8_t> x(1000, 0x5A);
  REQUIRE(c.write(100, 1000, x.data(), true) == 0);
  auto want = f.expect_base(0, 4096);
  std::fill(want.begin() + 100, want.begin() + 1100, 0x5A);
  CHECK(read(c, 0, 4096) == want);

  uint64_t before = c.data_bytes();
  REQUIRE(c.write_zeroes(1 << 20, 1 << 20, false) == 0);  // whole sectors: recorded only
  CHECK(c.data_bytes() == before);
  CHECK(read(c, 1 << 20, 4096) == std::vector<uint8_t>(4096, 0));
  REQUIRE(c.write_zeroes(2000, 3000, false) == 0);  // ragged ends
  auto got = read(c, 0, 8192);
  auto full = f.expect_base(0, 8192);
  std::fill(full.begin() + 100, full.begin() + 1100, 0x5A);
  std::fill(full.begin() + 2000, full.begin() + 5000, 0);
  CHECK(got == full);

  std::vector<vhd::Extent> ext;
  REQUIRE(c.extents(1 << 20, 1 << 20, ext) == 0);
  REQUIRE(ext.size() == 1);
  CHECK_FALSE(ext[0].data);
}

TEST_CASE("sequential writes coalesce and extents follow the cache", "[block]") {
  Fixture f;
  block::WriteCache c(f.base, f.dir.string());
  std::vector<uint8_t> blk(65536, 7);
  for (int i = 0; i < 32; ++i) REQUIRE(c.write(uint64_t(5u << 20) + uint64_t(i) * 65536, 65536, blk.data(), false) == 0);
  CHECK(c.run_count() == 1);
  std::vector<vhd::Extent> ext;
  REQUIRE(c.extents(4u << 20, 4u << 20, ext) == 0);
  REQUIRE(ext.size() == 3);
  CHECK(ext[0] == vhd::Extent{4u << 20, 1u << 20, false});
  CHECK(ext[1] == vhd::Extent{5u << 20, 2u << 20, true});
  CHECK(ext[2] == vhd::Extent{7u << 20, 1u << 20, false});
}

TEST_CASE("a write cache written out as a differencing VHD reads the same", "[block]") {
  Fixture f;
  std::string base_vhd = (f.dir / "base.vhd").string();
  {
    vhd::WriterOptions wo;
    wo.size = f.base->size();
    vhd::Writer w(base_vhd, wo);
    std::vector<uint8_t> buf(w.block_size());
    for (uint32_t b = 0; b < w.block_count(); ++b) {
      uint32_t len = w.block_length(b);
      std::fill(buf.begin(), buf.end(), 0);
      uint64_t off = uint64_t{b} * w.block_size();
      if (off < f.base->size()) f.base->read(off, buf.data(), std::min<uint64_t>(len, f.base->size() - off));
      w.write_block(b, {buf.data(), len});
    }
    w.finish();
  }
  std::shared_ptr<const vhd::Disk> chain = vhd::Chain::open(base_vhd);
  block::WriteCache c(chain, f.dir.string(), std::make_shared<block::RamBudget>(1u << 20));
  std::mt19937 rng(1);
  std::vector<uint8_t> buf(70000);
  for (int i = 0; i < 40; ++i) {
    for (auto& x : buf) x = static_cast<uint8_t>(rng());
    uint64_t off = rng() % (chain->size() - buf.size());
    uint32_t len = 1 + rng() % 70000;
    REQUIRE(c.write(off, len, buf.data(), false) == 0);
    if (i % 7 == 0) REQUIRE(c.write_zeroes(rng() % (chain->size() - 10000), 9000, false) == 0);
  }
  CHECK(c.ram_bytes() == (1u << 20));  // the budget was used, the rest spilled to the file
  std::string out = (f.dir / "cache.vhd").string();
  c.write_vhd(base_vhd, out);
  auto written = vhd::Chain::open(out);
  REQUIRE(written->depth() == 2);
  std::vector<uint8_t> a(chain->size()), b(chain->size());
  REQUIRE(c.read(0, static_cast<uint32_t>(a.size()), a.data()) == 0);
  written->read(0, b.data(), b.size());
  CHECK(a == b);
}

TEST_CASE("concurrent readers and writers on disjoint ranges", "[block]") {
  Fixture f;
  block::WriteCache c(f.base, f.dir.string());
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&c, t] {
      std::vector<uint8_t> w(4096, static_cast<uint8_t>(t + 1)), r(4096);
      for (int i = 0; i < 200; ++i) {
        uint64_t off = (uint64_t(t) << 20) + uint64_t(i % 64) * 4096;
        c.write(off, 4096, w.data(), false);
        c.read(off, 4096, r.data());
        if (r != w) std::abort();
      }
    });
  }
  for (auto& th : threads) th.join();
  for (int t = 0; t < 4; ++t) CHECK(read(c, uint64_t(t) << 20, 4096) == std::vector<uint8_t>(4096, static_cast<uint8_t>(t + 1)));
}

TEST_CASE("sessions: named ones are shared, anonymous ones end on detach", "[block]") {
  Fixture f;
  std::string base_vhd = (f.dir / "v.vhd").string();
  {
    vhd::WriterOptions wo;
    wo.size = 4u << 20;
    vhd::Writer w(base_vhd, wo);
    w.finish();
  }
  int started = 0, ended = 0;
  block::SessionManager m({f.dir.string(), std::chrono::seconds(0)},
                          {[&](const block::Session&) { ++started; }, [&](const block::Session&) { ++ended; }});
  block::Pin pin{"lab", 1, base_vhd};
  auto a1 = m.attach("lab/pc01", [&] { return pin; });
  auto a2 = m.attach("lab/pc01", [&] { return pin; });
  auto b = m.attach("lab/pc02", [&] { return pin; });
  CHECK(a1 == a2);
  CHECK(a1 != b);
  CHECK(a1->connections() == 2);
  std::vector<uint8_t> x(512, 9), y(512);
  REQUIRE(a1->write(0, 512, x.data(), false) == 0);
  REQUIRE(b->read(0, 512, y.data()) == 0);
  CHECK(y == std::vector<uint8_t>(512, 0));
  CHECK(a1->shared_between_connections());

  auto anon = m.attach_anonymous(pin);
  CHECK_FALSE(anon->shared_between_connections());
  CHECK(started == 3);
  m.detach(anon);
  CHECK(ended == 1);

  m.detach(a1);
  m.detach(a2);
  std::this_thread::sleep_for(std::chrono::milliseconds(5));
  auto expired = m.expire_idle();  // pc01 idle, pc02 still connected
  CHECK(expired == std::vector<std::string>{"lab/pc01"});
  auto fresh = m.attach("lab/pc01", [&] { return pin; });
  CHECK(fresh->cache().data_bytes() == 0);
  CHECK(m.reset("lab/pc02"));
  CHECK_FALSE(m.reset("lab/none"));
}
