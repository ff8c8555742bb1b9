// Unit tests of lib/block: the write cache (merging, overlap, unaligned
// writes, zeroes, in-place overwrites, coalescing, extents, RAM spill, VHD
// export, threads), read-only version devices, sessions and the chain
// registry. Every read is checked against a byte model of the disk.
#include <fcntl.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <random>
#include <thread>
#include <vector>

#include "block/session.h"
#include "block/write_cache.h"
#include "util/error.h"
#include "util/file.h"
#include "util/file_send.h"
#include "util/log.h"
#include "vhd/chain.h"
#include "vhd/raw_disk.h"
#include "vhd/vhd_file.h"
#include "vhd/writer.h"

using namespace bootfleet;
namespace fs = std::filesystem;

namespace {

constexpr uint64_t MiB = 1u << 20;
constexpr uint32_t kBlock = 2u << 20;  // VHD block size the writer uses

// Byte i of a data block: differs from sector to sector and from byte to
// byte inside a sector, so a read-modify-write that shifts or mixes up
// bytes is caught.
uint8_t pattern(uint64_t i) { return static_cast<uint8_t>((i >> 9) * 31 + (i & 511) * 7 + 1); }

// A base disk in two forms with the same content: a dynamic VHD (blocks 0
// and 2 hold the pattern, 1 and 3 are not allocated, so its extents are
// known exactly) and a raw file. The VHD's size is 8 MiB rounded up to its
// CHS geometry; the raw file has the same size.
struct Fixture {
  fs::path dir;
  std::string vhd_path, raw_path;
  std::shared_ptr<const vhd::Disk> chain, raw;
  std::vector<uint8_t> content;  // what the base reads

  Fixture() {
    std::string tmpl = (fs::temp_directory_path() / "bootfleet-block-unit-XXXXXX").string();
    REQUIRE(::mkdtemp(tmpl.data()) != nullptr);
    dir = tmpl;
    vhd_path = (dir / "base.vhd").string();
    raw_path = (dir / "base.raw").string();
    {
      vhd::WriterOptions wo;
      wo.size = 8 * MiB;
      vhd::Writer w(vhd_path, wo);
      REQUIRE(w.block_size() == kBlock);
      content.assign(w.size(), 0);
      REQUIRE(w.block_count() >= 4);
      for (uint32_t b : {0u, 2u}) {
        uint64_t off = uint64_t{b} * kBlock;
        for (uint64_t i = off; i < off + w.block_length(b); ++i) content[i] = pattern(i);
        w.write_block(b, {content.data() + off, w.block_length(b)});
      }
      w.finish();
    }
    auto fd = util::open_file(raw_path, O_RDWR | O_CREAT | O_TRUNC);
    util::pwrite_full(fd.get(), content.data(), content.size(), 0, raw_path);
    chain = vhd::Chain::open(vhd_path);
    raw = vhd::RawDisk::open(raw_path);
    REQUIRE(chain->size() == content.size());
    REQUIRE(raw->size() == content.size());
  }
  ~Fixture() {
    std::error_code ec;
    fs::remove_all(dir, ec);
  }
  uint64_t size() const { return content.size(); }
};

// The disk as the cache should read it.
struct Model {
  std::vector<uint8_t> bytes;
  explicit Model(std::vector<uint8_t> base) : bytes(std::move(base)) {}
  void write(uint64_t off, const std::vector<uint8_t>& data) { std::copy(data.begin(), data.end(), bytes.begin() + off); }
  void zero(uint64_t off, uint64_t len) { std::fill_n(bytes.begin() + off, len, 0); }
  std::vector<uint8_t> slice(uint64_t off, uint64_t len) const {
    return {bytes.begin() + static_cast<long>(off), bytes.begin() + static_cast<long>(off + len)};
  }
};

std::vector<uint8_t> read(const block::WriteCache& c, uint64_t off, uint64_t len) {
  std::vector<uint8_t> v(len, 0xEE);
  REQUIRE(c.read(off, static_cast<uint32_t>(len), v.data()) == 0);
  return v;
}

// First offset where the two differ, or -1 (keeps failure output short:
// Catch would print megabytes of vector elements).
int64_t mismatch(const std::vector<uint8_t>& a, const std::vector<uint8_t>& b) {
  if (a.size() != b.size()) return -2;
  for (size_t i = 0; i < a.size(); ++i)
    if (a[i] != b[i]) return static_cast<int64_t>(i);
  return -1;
}

// The whole disk, read through the cache in pieces of odd sizes (so reads
// start and end mid-run and mid-sector), must equal the model.
int64_t whole_disk_mismatch(const block::WriteCache& c, const Model& m) {
  std::vector<uint8_t> got(m.bytes.size());
  uint64_t step = 300007;
  for (uint64_t off = 0; off < got.size(); off += step) {
    uint64_t n = std::min<uint64_t>(step, got.size() - off);
    if (c.read(off, static_cast<uint32_t>(n), got.data() + off) != 0) return -3;
  }
  return mismatch(got, m.bytes);
}

std::vector<uint8_t> filled(size_t n, uint8_t v) { return std::vector<uint8_t>(n, v); }

std::vector<vhd::Extent> extents(const block::WriteCache& c, uint64_t off, uint64_t len) {
  std::vector<vhd::Extent> out;
  REQUIRE(c.extents(off, static_cast<uint32_t>(len), out) == 0);
  return out;
}

}  // namespace

namespace Catch {
template <>
struct StringMaker<vhd::Extent> {
  static std::string convert(const vhd::Extent& e) {
    return "{" + std::to_string(e.offset) + "+" + std::to_string(e.length) + (e.data ? " data}" : " zero}");
  }
};
}  // namespace Catch

TEST_CASE("write cache: an empty cache reads the base, raw or VHD", "[block]") {
  Fixture f;
  for (auto base : {f.chain, f.raw}) {
    block::WriteCache c(base, f.dir.string());
    CHECK(c.size() == f.size());
    CHECK(c.data_bytes() == 0);
    CHECK(c.cluster_count() == 0);
    CHECK(c.file_bytes() == 0);
    CHECK(whole_disk_mismatch(c, Model(f.content)) == -1);
  }
}

TEST_CASE("write cache: reads merge cached sectors over the base", "[block]") {
  Fixture f;
  block::WriteCache c(f.raw, f.dir.string());
  Model m(f.content);
  // Separate runs with base data between and around them.
  auto a = filled(4096, 0xA1), b = filled(512, 0xB2), d = filled(8192, 0xD4);
  REQUIRE(c.write(4096, 4096, a.data(), false) == 0);
  m.write(4096, a);
  REQUIRE(c.write(12288, 512, b.data(), false) == 0);
  m.write(12288, b);
  REQUIRE(c.write(kBlock - 4096, 8192, d.data(), false) == 0);  // across a VHD block boundary
  m.write(kBlock - 4096, d);
  // Held whole 4 KiB clusters: the 512-byte write takes one.
  CHECK(c.cluster_count() == 4);
  CHECK(c.data_bytes() == 4096 + 4096 + 8192);
  // One read spanning base, run, base, run, base.
  CHECK(mismatch(read(c, 1000, 20000), m.slice(1000, 20000)) == -1);
  // Reads wholly inside a run, starting and ending mid-sector.
  CHECK(mismatch(read(c, 4097, 100), m.slice(4097, 100)) == -1);
  CHECK(mismatch(read(c, kBlock - 10, 20), m.slice(kBlock - 10, 20)) == -1);
  // Reads wholly in the base, between runs.
  CHECK(mismatch(read(c, 8192, 4096), m.slice(8192, 4096)) == -1);
  CHECK(whole_disk_mismatch(c, m) == -1);
  CHECK(c.flush() == 0);
}

TEST_CASE("write cache: overlapping writes read back right", "[block]") {
  Fixture f;
  block::WriteCache c(f.chain, f.dir.string());
  Model m(f.content);
  auto put = [&](uint64_t off, size_t len, uint8_t v) {
    auto x = filled(len, v);
    REQUIRE(c.write(off, static_cast<uint32_t>(len), x.data(), false) == 0);
    m.write(off, x);
  };
  const uint64_t base = 64 * 1024;
  put(base, 8192, 0x10);  // [64K, 72K)

  SECTION("partial overlap on the left") {
    put(base - 2048, 4096, 0x20);
    CHECK(c.data_bytes() == 8192 + 4096);
  }
  SECTION("partial overlap on the right") {
    put(base + 6144, 4096, 0x30);
    CHECK(c.data_bytes() == 8192 + 4096);
  }
  SECTION("inside an existing run") {
    put(base + 1024, 2048, 0x40);
    CHECK(c.data_bytes() == 8192);
    CHECK(c.file_bytes() == 8192);
  }
  SECTION("covering an existing run and more on both sides") {
    put(base - 512, 8192 + 1024, 0x50);
    CHECK(c.data_bytes() == 8192 + 8192);
  }
  SECTION("bridging two runs") {
    put(base + 16384, 4096, 0x60);  // a second run
    put(base + 4096, 16384, 0x70);   // overlaps the end of one, the start of the other
    CHECK(c.data_bytes() == 5 * 4096);
  }
  SECTION("the same range over and over, different values") {
    for (int i = 0; i < 10; ++i) put(base + 512 * i, 8192, static_cast<uint8_t>(0x80 + i));
    CHECK(c.data_bytes() == 4 * 4096);
    CHECK(c.file_bytes() == 4 * 4096);  // rewritten in place
  }
  CHECK(mismatch(read(c, base - 8192, 40960), m.slice(base - 8192, 40960)) == -1);
  CHECK(whole_disk_mismatch(c, m) == -1);
}

TEST_CASE("write cache: unaligned writes read-modify-write whole sectors", "[block]") {
  Fixture f;
  block::WriteCache c(f.chain, f.dir.string());
  Model m(f.content);
  std::mt19937 rng(7);
  auto put = [&](uint64_t off, size_t len) {
    std::vector<uint8_t> x(len);
    for (auto& v : x) v = static_cast<uint8_t>(rng() | 1);  // never zero: distinct from holes
    REQUIRE(c.write(off, static_cast<uint32_t>(len), x.data(), false) == 0);
    m.write(off, x);
  };
  put(10, 20);                   // inside one sector over base data
  put(500, 30);                  // across a sector boundary
  put(1000, 5000);               // several sectors, ragged both ends
  put(3 * MiB + 7, 1);           // a single byte in an unallocated block (reads zeros below)
  put(2 * MiB - 100, 200);       // across a VHD block boundary (data | unallocated)
  put(1003, 17);                 // inside what the cache already holds
  CHECK(whole_disk_mismatch(c, m) == -1);
  // The bytes around each write, in the same sectors, kept what was there.
  CHECK(mismatch(read(c, 0, 512), m.slice(0, 512)) == -1);
  CHECK(mismatch(read(c, 3 * MiB, 512), m.slice(3 * MiB, 512)) == -1);
  // Only whole clusters are held: 0..6000 is clusters 0 and 1, 3 MiB+7
  // one, 2 MiB-100 two.
  CHECK(c.data_bytes() == 5 * 4096);

  // With FUA too, and a zero-length write is a no-op.
  std::vector<uint8_t> y(777, 0x99);
  REQUIRE(c.write(5 * MiB + 3, 777, y.data(), true) == 0);
  m.write(5 * MiB + 3, y);
  uint64_t before = c.data_bytes();
  REQUIRE(c.write(123, 0, y.data(), false) == 0);
  CHECK(c.data_bytes() == before);
  CHECK(whole_disk_mismatch(c, m) == -1);
}

TEST_CASE("write cache: write_zeroes reads zeros and stores no data for whole sectors", "[block]") {
  Fixture f;
  block::WriteCache c(f.chain, f.dir.string());
  Model m(f.content);

  SECTION("aligned, over base data") {
    REQUIRE(c.write_zeroes(MiB, MiB, false) == 0);
    m.zero(MiB, MiB);
    CHECK(c.data_bytes() == 0);
    CHECK(c.cluster_count() == 256);
    CHECK(extents(c, MiB, MiB) == std::vector<vhd::Extent>{{MiB, MiB, false}});
  }
  SECTION("aligned, over cached data: the data goes") {
    auto x = filled(65536, 0x77);
    REQUIRE(c.write(4 * MiB, 65536, x.data(), false) == 0);
    REQUIRE(c.data_bytes() == 65536);
    REQUIRE(c.write_zeroes(4 * MiB + 4096, 8192, true) == 0);
    m.write(4 * MiB, x);
    m.zero(4 * MiB + 4096, 8192);
    CHECK(c.data_bytes() == 65536 - 8192);
    CHECK(c.cluster_count() == 16);
    CHECK(c.file_bytes() == 65536);  // the two freed slots wait for new clusters
    auto z = filled(8192, 0x78);
    REQUIRE(c.write(6 * MiB, 8192, z.data(), false) == 0);
    m.write(6 * MiB, z);
    CHECK(c.file_bytes() == 65536);
  }
  SECTION("unaligned ends: only the partial clusters hold data") {
    REQUIRE(c.write_zeroes(2000, 3000, false) == 0);  // clusters 0 and 1 partly
    m.zero(2000, 3000);
    CHECK(c.data_bytes() == 2 * 4096);
    CHECK(extents(c, 1536, 4096) == std::vector<vhd::Extent>{{1536, 4096, true}});
    REQUIRE(c.write_zeroes(10000, 20000, false) == 0);  // clusters 3..6 wholly, 2 and 7 partly
    m.zero(10000, 20000);
    CHECK(c.data_bytes() == 4 * 4096);
    CHECK(extents(c, 8192, 24576) ==
          std::vector<vhd::Extent>{{8192, 4096, true}, {12288, 16384, false}, {28672, 4096, true}});
  }
  SECTION("inside one sector, and across one boundary") {
    REQUIRE(c.write_zeroes(100, 50, false) == 0);
    REQUIRE(c.write_zeroes(1020, 8, false) == 0);
    m.zero(100, 50);
    m.zero(1020, 8);
    CHECK(c.data_bytes() == 4096);
  }
  SECTION("zero length is a no-op") {
    REQUIRE(c.write_zeroes(4096, 0, false) == 0);
    CHECK(c.cluster_count() == 0);
  }
  CHECK(whole_disk_mismatch(c, m) == -1);
  // Writing into zeroed sectors again brings data back.
  auto y = filled(1024, 0x3C);
  REQUIRE(c.write(MiB + 512, 1024, y.data(), false) == 0);
  m.write(MiB + 512, y);
  CHECK(whole_disk_mismatch(c, m) == -1);
}

TEST_CASE("write cache: overwriting cached sectors reuses their space", "[block]") {
  Fixture f;
  // The cache's data space is observable through the RAM budget: every
  // 1 MiB of data space the cache grows to takes a chunk while the budget
  // lasts. Overwrites in place must not grow it.
  auto ram = std::make_shared<block::RamBudget>(8 * MiB);
  block::WriteCache c(f.chain, f.dir.string(), ram);
  Model m(f.content);
  std::vector<uint8_t> x(512 * 1024);
  for (int round = 0; round < 12; ++round) {
    std::fill(x.begin(), x.end(), static_cast<uint8_t>(round + 1));
    REQUIRE(c.write(MiB, static_cast<uint32_t>(x.size()), x.data(), round % 2 == 1) == 0);
    m.write(MiB, x);
    // A smaller rewrite inside, aligned and not.
    auto y = filled(4096, static_cast<uint8_t>(0xF0 + round));
    REQUIRE(c.write(MiB + 8192, 4096, y.data(), false) == 0);
    m.write(MiB + 8192, y);
    REQUIRE(c.write(MiB + 100, 1000, y.data(), false) == 0);
    m.write(MiB + 100, std::vector<uint8_t>(y.begin(), y.begin() + 1000));
  }
  CHECK(c.data_bytes() == x.size());
  CHECK(c.file_bytes() == x.size());
  CHECK(c.ram_bytes() == MiB);  // 12 × 512 KiB appended would have taken 6 chunks
  CHECK(ram->left() == 7 * MiB);
  CHECK(whole_disk_mismatch(c, m) == -1);
}

TEST_CASE("write cache: the file is bounded by the clusters touched, not by what was written", "[block]") {
  Fixture f;
  auto persist = GENERATE(false, true);
  std::string pdir = (f.dir / "p").string();
  if (persist) fs::create_directories(pdir);
  block::WriteCache c(f.chain, f.dir.string(), nullptr, {persist ? pdir : "", true, 0, 0});
  Model m(f.content);
  std::mt19937 rng(3);
  std::vector<uint8_t> x(65536);
  auto put = [&](uint64_t off, uint32_t len) {
    for (uint32_t i = 0; i < len; ++i) x[i] = static_cast<uint8_t>(rng());
    REQUIRE(c.write(off, len, x.data(), false) == 0);
    m.write(off, std::vector<uint8_t>(x.begin(), x.begin() + len));
  };
  SECTION("alternating 8 KiB writes at 0 and 4 KiB (filled a 64 MiB cache after 8191 before)") {
    for (int i = 0; i < 20000; ++i) put(i % 2 ? 4096 : 0, 8192);
    CHECK(c.file_bytes() == 12288);
    CHECK(c.data_bytes() == 12288);
  }
  SECTION("random 4K and 64K writes over 4 MiB, 80 MiB in all (ENOSPC after 74 MiB before)") {
    uint64_t written = 0;
    while (written < 80 * MiB) {
      uint32_t len = rng() % 2 ? 4096 : 65536;
      put((rng() % ((4 * MiB - len) / 4096)) * 4096, len);
      written += len;
    }
    CHECK(c.file_bytes() <= 4 * MiB);
    CHECK(c.map_bytes() < 64 * 1024);
  }
  SECTION("zeroing frees slots that later writes reuse, with flushes between") {
    for (int round = 0; round < 50; ++round) {
      put(MiB, 65536);
      REQUIRE(c.write_zeroes(MiB, 65536, false) == 0);
      m.zero(MiB, 65536);
      put(2 * MiB + 4096 * (round % 3), 8192);
      if (round % 5 == 4) REQUIRE(c.flush() == 0);
    }
    // A persistent cache reuses a freed slot only after the commit that
    // recorded the free; a flush every 5 rounds bounds it.
    CHECK(c.file_bytes() <= (persist ? 6 : 2) * 65536);
  }
  SECTION("a client that never flushes still gets freed slots back") {
    for (int round = 0; round < 3000; ++round) {
      put(MiB, 4096);
      REQUIRE(c.write_zeroes(MiB, 4096, false) == 0);
      m.zero(MiB, 4096);
    }
    CHECK(c.file_bytes() <= 1100 * 4096);
  }
  CHECK(whole_disk_mismatch(c, m) == -1);
}

TEST_CASE("write cache: map memory per GiB touched", "[block]") {
  // A 1 GiB sparse disk. Zeroed clusters take map entries as written ones
  // do, without data, so the map is measured without writing a GiB.
  Fixture f;
  std::string big = (f.dir / "big.raw").string();
  {
    auto fd = util::open_file(big, O_RDWR | O_CREAT | O_TRUNC);
    REQUIRE(::ftruncate(fd.get(), 1 << 30) == 0);
  }
  std::shared_ptr<const vhd::Disk> disk = vhd::RawDisk::open(big);
  {
    block::WriteCache dense(disk, f.dir.string());
    for (uint64_t off = 0; off < (1u << 30); off += MiB) REQUIRE(dense.write_zeroes(off, MiB, false) == 0);
    CHECK(dense.cluster_count() == (1u << 30) / 4096);
    CHECK(dense.map_bytes() < 5 * MiB / 2);  // about 1.7 MiB per GiB
    // The same clusters again, written or zeroed, cost no more map than
    // the free list's 4 bytes per freed slot.
    uint64_t before = dense.map_bytes();
    std::vector<uint8_t> x(65536, 0x11);
    for (uint64_t off = 0; off < (1u << 30); off += 16 * MiB) REQUIRE(dense.write(off, 65536, x.data(), false) == 0);
    for (uint64_t off = 0; off < (1u << 30); off += 4 * MiB) REQUIRE(dense.write_zeroes(off, MiB, false) == 0);
    CHECK(dense.map_bytes() <= before + 64 * 4 * 16);
  }
  {
    // One 4 KiB cluster per 64 KiB, the worst case: 64 MiB touched costs
    // what 1 GiB dense does (26 MiB per GiB touched this way).
    block::WriteCache sparse(disk, f.dir.string());
    for (uint64_t off = 0; off < (1u << 30); off += 65536) REQUIRE(sparse.write_zeroes(off, 4096, false) == 0);
    CHECK(sparse.map_bytes() < 5 * MiB / 2);
  }
}

namespace {
// Runs `child` in a forked process that then kills itself (SIGKILL, like a
// crashed server: no destructor runs); returns false if it did not die so.
bool in_killed_child(const std::function<void()>& child) {
  pid_t pid = ::fork();
  if (pid == 0) {
    child();
    ::kill(::getpid(), SIGKILL);
    ::_exit(1);
  }
  int status = 0;
  ::waitpid(pid, &status, 0);
  return WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL;
}
}  // namespace

TEST_CASE("write cache: after a kill, flushed data reads back and nothing else appears", "[block]") {
  Fixture f;
  auto ram = GENERATE(uint64_t{0}, uint64_t{MiB});  // file only; RAM written back at flush
  std::string pdir = (f.dir / "p").string();
  fs::create_directories(pdir);
  Model flushed(f.content);
  std::mt19937 rng(11);
  std::vector<std::pair<uint64_t, std::vector<uint8_t>>> before, after;  // flushed, then not
  for (int i = 0; i < 200; ++i) {
    uint64_t off = (rng() % (f.size() / 4096 - 16)) * 4096;
    std::vector<uint8_t> d((1 + rng() % 16) * 4096);
    for (auto& v : d) v = static_cast<uint8_t>(rng() | 1);
    (i < 150 ? before : after).emplace_back(off, std::move(d));
  }
  for (const auto& [off, d] : before) flushed.write(off, d);
  flushed.zero(3 * MiB, 65536);
  REQUIRE(in_killed_child([&] {
    block::WriteCache c(f.chain, f.dir.string(), ram ? std::make_shared<block::RamBudget>(ram) : nullptr, {pdir, true, 0, 0});
    for (const auto& [off, d] : before)
      if (c.write(off, static_cast<uint32_t>(d.size()), d.data(), false) != 0) ::_exit(2);
    if (c.write_zeroes(3 * MiB, 65536, false) != 0 || c.flush() != 0) ::_exit(3);
    // Not flushed: overwrites of held clusters, new clusters, zeroing.
    for (const auto& [off, d] : after)
      if (c.write(off, static_cast<uint32_t>(d.size()), d.data(), false) != 0) ::_exit(4);
    if (c.write_zeroes(0, 65536, false) != 0) ::_exit(5);
  }));
  block::WriteCache c(f.chain, f.dir.string(), nullptr, {pdir, false, 0, 0});
  // Every 4 KiB cluster reads as its flushed content or as one of the
  // unflushed writes that covered it; nothing else.
  std::vector<uint8_t> got(4096);
  int differing = 0;
  for (uint64_t off = 0; off + 4096 <= f.size(); off += 4096) {
    REQUIRE(c.read(off, 4096, got.data()) == 0);
    if (std::equal(got.begin(), got.end(), flushed.bytes.begin() + static_cast<long>(off))) continue;
    bool later = off < 65536 && std::all_of(got.begin(), got.end(), [](uint8_t v) { return v == 0; });
    for (const auto& [o, d] : after)
      if (off >= o && off < o + d.size()) later = later || std::equal(got.begin(), got.end(), d.begin() + static_cast<long>(off - o));
    CHECK(later);
    ++differing;
  }
  INFO("clusters holding unflushed writes: " << differing);
  // And the reopened cache carries on: writes, flushes, reopens again.
  auto y = filled(8192, 0x6B);
  REQUIRE(c.write(5 * MiB, 8192, y.data(), false) == 0);
  REQUIRE(c.flush() == 0);
}

TEST_CASE("write cache: a torn map tail is cut, a damaged map refused", "[block]") {
  Fixture f;
  std::string pdir = (f.dir / "p").string();
  fs::create_directories(pdir);
  auto x = filled(4096, 0x42);
  {
    block::WriteCache c(f.chain, f.dir.string(), nullptr, {pdir, true, 0, 0});
    REQUIRE(c.write(0, 4096, x.data(), false) == 0);
    REQUIRE(c.flush() == 0);
  }
  std::string map = pdir + "/map";
  uint64_t good = fs::file_size(map);
  {
    // Half a record and a garbage one after it: a crash mid-append.
    auto fd = util::open_file(map, O_WRONLY | O_APPEND);
    std::vector<uint8_t> junk(24, 0xA5);
    REQUIRE(::write(fd.get(), junk.data(), junk.size()) == 24);
  }
  {
    block::WriteCache c(f.chain, f.dir.string(), nullptr, {pdir, false, 0, 0});
    CHECK(mismatch(read(c, 0, 4096), x) == -1);
    CHECK(fs::file_size(map) == good);
  }
  {
    auto fd = util::open_file(map, O_WRONLY);
    uint8_t bad = 0;
    util::pwrite_full(fd.get(), &bad, 1, 3, map);
  }
  CHECK_THROWS_WITH(block::WriteCache(f.chain, f.dir.string(), nullptr, {pdir, false, 0, 0}),
                    Catch::Contains("/map") && Catch::Contains("not a write cache map"));
  // Another disk under it: refused, naming both sizes.
  fs::remove_all(pdir);
  fs::create_directories(pdir);
  { block::WriteCache c(f.chain, f.dir.string(), nullptr, {pdir, true, 0, 0}); }
  std::string small = (f.dir / "small.raw").string();
  {
    auto fd = util::open_file(small, O_RDWR | O_CREAT | O_TRUNC);
    REQUIRE(::ftruncate(fd.get(), MiB) == 0);
  }
  CHECK_THROWS_WITH(block::WriteCache(vhd::RawDisk::open(small), f.dir.string(), nullptr, {pdir, false, 0, 0}),
                    Catch::Contains("made for a disk of"));
}

TEST_CASE("write cache: a quota stops new clusters, not overwrites", "[block]") {
  Fixture f;
  block::WriteCache c(f.chain, f.dir.string(), nullptr, {"", true, 64 * 1024, 0});
  auto x = filled(65536, 1);
  REQUIRE(c.write(0, 65536, x.data(), false) == 0);
  CHECK(c.write(MiB, 4096, x.data(), false) == ENOSPC);
  CHECK(c.write(4096, 8192, x.data(), false) == 0);  // held already
  REQUIRE(c.write_zeroes(0, 8192, false) == 0);      // frees two
  CHECK(c.write(MiB, 8192, x.data(), false) == 0);
  CHECK(c.write(2 * MiB, 4096, x.data(), false) == ENOSPC);
  CHECK(c.file_bytes() == 65536);
}

TEST_CASE("write cache: sequential writes and zeroing count whole clusters", "[block]") {
  Fixture f;
  block::WriteCache c(f.chain, f.dir.string());
  Model m(f.content);
  std::vector<uint8_t> blk(4096);
  for (int i = 0; i < 256; ++i) {
    std::fill(blk.begin(), blk.end(), static_cast<uint8_t>(i));
    REQUIRE(c.write(3 * MiB + uint64_t(i) * 4096, 4096, blk.data(), false) == 0);
    m.write(3 * MiB + uint64_t(i) * 4096, blk);
  }
  CHECK(c.cluster_count() == 256);
  CHECK(c.data_bytes() == MiB);
  for (int i = 0; i < 64; ++i) REQUIRE(c.write_zeroes(5 * MiB + uint64_t(i) * 8192, 8192, false) == 0);
  m.zero(5 * MiB, 64 * 8192);
  CHECK(c.cluster_count() == 256 + 128);
  CHECK(c.data_bytes() == MiB);
  REQUIRE(c.write(0, 4096, blk.data(), false) == 0);
  m.write(0, blk);
  CHECK(c.cluster_count() == 256 + 128 + 1);
  CHECK(whole_disk_mismatch(c, m) == -1);
}

TEST_CASE("write cache: extents are the cache's where it holds sectors, the base's elsewhere", "[block]") {
  Fixture f;
  const uint64_t S = f.size();
  // The base VHD: blocks 0 and 2 allocated, 1 and 3 not.
  REQUIRE(f.chain->extents(0, S) ==
          std::vector<vhd::Extent>{{0, 2 * MiB, true}, {2 * MiB, 2 * MiB, false}, {4 * MiB, 2 * MiB, true},
                                   {6 * MiB, S - 6 * MiB, false}});
  block::WriteCache c(f.chain, f.dir.string());
  CHECK(extents(c, 0, S) == f.chain->extents(0, S));

  auto x = filled(8192, 1);
  REQUIRE(c.write(2 * MiB + 4096, 4096, x.data(), false) == 0);  // data in an unallocated block
  REQUIRE(c.write_zeroes(512 * 1024, 512 * 1024, false) == 0);   // zeros in an allocated one
  REQUIRE(c.write(6 * MiB - 4096, 8192, x.data(), false) == 0);  // data continuing base data
  REQUIRE(c.write_zeroes(6 * MiB + 4096, 4096, false) == 0);     // zeros inside base zeros
  CHECK(extents(c, 0, S) == std::vector<vhd::Extent>{{0, 512 * 1024, true},
                                                     {512 * 1024, 512 * 1024, false},
                                                     {MiB, MiB, true},
                                                     {2 * MiB, 4096, false},
                                                     {2 * MiB + 4096, 4096, true},
                                                     {2 * MiB + 8192, 2 * MiB - 8192, false},
                                                     {4 * MiB, 2 * MiB + 4096, true},
                                                     {6 * MiB + 4096, S - 6 * MiB - 4096, false}});
  // A window starting and ending inside runs is clipped to the window.
  CHECK(extents(c, 600 * 1024, 100 * 1024) == std::vector<vhd::Extent>{{600 * 1024, 100 * 1024, false}});
  CHECK(extents(c, 2 * MiB + 5000, 10000) ==
        std::vector<vhd::Extent>{{2 * MiB + 5000, 3192, true}, {2 * MiB + 8192, 6808, false}});
  // Extents agree with what reads return: every zero extent reads zeros.
  for (const auto& e : extents(c, 0, S)) {
    if (e.data) continue;
    auto z = read(c, e.offset, e.length);
    CHECK(std::all_of(z.begin(), z.end(), [](uint8_t v) { return v == 0; }));
  }
}

TEST_CASE("write cache: RAM budget holds data first, then the file", "[block]") {
  Fixture f;
  auto ram = std::make_shared<block::RamBudget>(2 * MiB);
  Model m(f.content);
  {
    block::WriteCache c(f.chain, f.dir.string(), ram);
    std::vector<uint8_t> x(3 * MiB + 512);
    for (size_t i = 0; i < x.size(); ++i) x[i] = static_cast<uint8_t>(i * 13 + 5);
    REQUIRE(c.write(4096, static_cast<uint32_t>(x.size()), x.data(), true) == 0);  // spans RAM and file
    m.write(4096, x);
    CHECK(c.ram_bytes() == 2 * MiB);
    CHECK(ram->left() == 0);
    CHECK(c.flush() == 0);
    CHECK(whole_disk_mismatch(c, m) == -1);
    // A second cache finds the budget spent and works from its file.
    block::WriteCache d(f.chain, f.dir.string(), ram);
    REQUIRE(d.write(0, 4096, x.data(), false) == 0);
    CHECK(d.ram_bytes() == 0);
    CHECK(mismatch(read(d, 0, 4096), std::vector<uint8_t>(x.begin(), x.begin() + 4096)) == -1);
  }
  CHECK(ram->left() == 2 * MiB);  // given back when the caches went
  block::RamBudget small(MiB);
  CHECK(small.take(MiB));
  CHECK_FALSE(small.take(1));
  small.give_back(MiB);
  CHECK(small.left() == MiB);
}

TEST_CASE("write cache: written out as a differencing VHD, the chain reads what the cache reads", "[block]") {
  Fixture f;
  // Some data in RAM, the rest in the file: both must reach the VHD.
  block::WriteCache c(f.chain, f.dir.string(), std::make_shared<block::RamBudget>(MiB));
  Model m(f.content);
  std::mt19937 rng(1);
  for (int i = 0; i < 40; ++i) {
    uint32_t len = 1 + rng() % 70000;
    uint64_t off = rng() % (f.size() - len);
    std::vector<uint8_t> x(len);
    for (auto& v : x) v = static_cast<uint8_t>(rng());
    REQUIRE(c.write(off, len, x.data(), false) == 0);
    m.write(off, x);
    if (i % 7 == 0) {
      uint64_t z = rng() % (f.size() - 9000);
      REQUIRE(c.write_zeroes(z, 9000, false) == 0);
      m.zero(z, 9000);
    }
  }
  // More than the RAM budget in one write: part of it goes to the file.
  std::vector<uint8_t> big(MiB + MiB / 2);
  for (size_t i = 0; i < big.size(); ++i) big[i] = static_cast<uint8_t>(i * 3 + 11);
  REQUIRE(c.write(5 * MiB + 1000, static_cast<uint32_t>(big.size()), big.data(), false) == 0);
  m.write(5 * MiB + 1000, big);
  // Zeros over the parent's data must hide it in the child.
  REQUIRE(c.write_zeroes(4 * MiB + 4096, 64 * 1024, false) == 0);
  m.zero(4 * MiB + 4096, 64 * 1024);
  // The last sectors of the disk.
  auto tail = filled(1536, 0xCD);
  REQUIRE(c.write(f.size() - 1536, 1536, tail.data(), false) == 0);
  m.write(f.size() - 1536, tail);
  CHECK(c.ram_bytes() == MiB);
  REQUIRE(whole_disk_mismatch(c, m) == -1);

  std::string out = (f.dir / "cache.vhd").string();
  c.write_vhd(f.vhd_path, out);
  auto written = vhd::Chain::open(out);
  REQUIRE(written->depth() == 2);
  CHECK(written->layers()[0]->type() == vhd::DiskType::kDifferencing);
  REQUIRE(written->size() == f.size());
  std::vector<uint8_t> b(f.size());
  written->read(0, b.data(), b.size());
  CHECK(mismatch(b, m.bytes) == -1);

  // A parent of another size is refused, naming it.
  std::string other = (f.dir / "other.vhd").string();
  {
    vhd::WriterOptions wo;
    wo.size = 16 * MiB;
    vhd::Writer w(other, wo);
    w.finish();
  }
  CHECK_THROWS_WITH(c.write_vhd(other, (f.dir / "bad.vhd").string()), Catch::Contains("other.vhd"));
}

TEST_CASE("write cache: an empty cache writes an empty differencing VHD", "[block]") {
  Fixture f;
  block::WriteCache c(f.chain, f.dir.string());
  std::string out = (f.dir / "empty.vhd").string();
  c.write_vhd(f.vhd_path, out);
  auto written = vhd::Chain::open(out);
  std::vector<uint8_t> b(f.size());
  written->read(0, b.data(), b.size());
  CHECK(mismatch(b, f.content) == -1);
  CHECK(written->extents(0, f.size()) == f.chain->extents(0, f.size()));
}

TEST_CASE("write cache: concurrent writers and readers on disjoint ranges", "[block]") {
  auto ram_size = GENERATE(uint64_t{0}, uint64_t{MiB});  // file only; RAM then file
  Fixture f;
  block::WriteCache c(f.chain, f.dir.string(), ram_size ? std::make_shared<block::RamBudget>(ram_size) : nullptr);
  constexpr int kThreads = 6;
  constexpr uint64_t kSpan = MiB;  // thread t owns [t MiB, (t+1) MiB)
  std::atomic<int> failures{0};
  std::vector<std::vector<uint8_t>> models(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    models[t].assign(f.content.begin() + static_cast<long>(t * kSpan),
                     f.content.begin() + static_cast<long>((t + 1) * kSpan));
    threads.emplace_back([&, t] {
      std::mt19937 rng(100 + t);
      auto& mine = models[t];
      const uint64_t base = uint64_t(t) * kSpan;
      std::vector<uint8_t> buf(20000), got(20000);
      for (int i = 0; i < 300; ++i) {
        uint32_t len = 1 + rng() % 16384;
        uint64_t off = rng() % (kSpan - len);
        switch (rng() % 4) {
          case 0:  // aligned write
            len = (1 + rng() % 32) * 512;
            off = (rng() % (kSpan / 512 - 32)) * 512;
            [[fallthrough]];
          case 1:  // unaligned write
            for (uint32_t k = 0; k < len; ++k) buf[k] = static_cast<uint8_t>(rng());
            if (c.write(base + off, len, buf.data(), i % 50 == 0) != 0) ++failures;
            std::copy(buf.begin(), buf.begin() + len, mine.begin() + static_cast<long>(off));
            break;
          case 2:
            if (c.write_zeroes(base + off, len, false) != 0) ++failures;
            std::fill_n(mine.begin() + static_cast<long>(off), len, 0);
            break;
          default:
            break;
        }
        // Read back a range around it.
        uint64_t roff = off >= 1000 ? off - 1000 : 0;
        uint32_t rlen = static_cast<uint32_t>(std::min<uint64_t>(len + 2000, kSpan - roff));
        if (c.read(base + roff, rlen, got.data()) != 0 ||
            !std::equal(got.begin(), got.begin() + rlen, mine.begin() + static_cast<long>(roff)))
          ++failures;
      }
    });
  }
  // A reader of the untouched rest of the disk, all the while.
  threads.emplace_back([&] {
    std::vector<uint8_t> got(65536);
    for (int i = 0; i < 200; ++i) {
      uint64_t off = kThreads * kSpan + (i * 65536) % (f.size() - kThreads * kSpan - 65536);
      if (c.read(off, 65536, got.data()) != 0 ||
          !std::equal(got.begin(), got.end(), f.content.begin() + static_cast<long>(off)))
        ++failures;
    }
  });
  for (auto& th : threads) th.join();
  CHECK(failures == 0);
  Model m(f.content);
  for (int t = 0; t < kThreads; ++t) m.write(uint64_t(t) * kSpan, models[t]);
  CHECK(whole_disk_mismatch(c, m) == -1);
  CHECK(c.flush() == 0);
}

TEST_CASE("version device: reads the chain, refuses writes", "[block]") {
  Fixture f;
  block::ChainRegistry chains;
  block::VersionDevice d({"lab", 1, f.vhd_path, ""}, chains.open(f.vhd_path));
  CHECK(d.read_only());
  CHECK(d.shared_between_connections());
  CHECK(d.size() == f.size());
  std::vector<uint8_t> got(10000);
  REQUIRE(d.read(MiB + 3, 10000, got.data()) == 0);
  CHECK(mismatch(got, std::vector<uint8_t>(f.content.begin() + MiB + 3, f.content.begin() + MiB + 10003)) == -1);
  CHECK(d.write(0, 512, got.data(), false) == EPERM);
  CHECK(d.trim(0, 512, false) == EPERM);
  CHECK(d.write_zeroes(0, 512, false) == EPERM);
  CHECK(d.flush() == 0);
  std::vector<vhd::Extent> e;
  REQUIRE(d.extents(MiB, 2 * MiB, e) == 0);
  CHECK(e == std::vector<vhd::Extent>{{MiB, MiB, true}, {2 * MiB, MiB, false}});
}

TEST_CASE("version device: a failed read is EIO for the client and one log line naming file and offset", "[block]") {
  Fixture f;
  block::ChainRegistry chains;
  block::VersionDevice d({"lab", 1, f.vhd_path, ""}, chains.open(f.vhd_path));
  // The file loses its data blocks under the open chain (a disk gone bad).
  REQUIRE(::truncate(f.vhd_path.c_str(), 64 * 1024) == 0);
  std::vector<std::string> lines;
  util::set_log_sink([&](const std::string& line) { lines.push_back(line); });
  std::vector<uint8_t> got(4096);
  int rc = d.read(MiB + 512, 4096, got.data());
  int try_rc = d.try_read(MiB + 512, 4096, got.data());
  util::set_log_sink(nullptr);
  CHECK(rc == EIO);
  CHECK((try_rc == EIO || try_rc == EAGAIN));
  REQUIRE(lines.size() == (try_rc == EIO ? 2u : 1u));
  CHECK_THAT(lines[0], Catch::Contains("lab@1 (" + f.vhd_path + "): read of 4096 bytes at offset " +
                                       std::to_string(MiB + 512) + " failed: ") &&
                           Catch::Contains("the client gets EIO"));
}

TEST_CASE("chain registry: one open chain per path while it is in use", "[block]") {
  Fixture f;
  std::string second = (f.dir / "second.vhd").string();
  fs::copy_file(f.vhd_path, second);
  block::ChainRegistry chains;
  auto a = chains.open(f.vhd_path);
  auto b = chains.open(f.vhd_path);
  auto c = chains.open(second);
  CHECK(a.get() == b.get());
  CHECK(a.get() != c.get());
  CHECK(chains.open_count() == 2);
  a.reset();
  b.reset();
  CHECK(chains.open_count() == 1);  // forgotten once nobody holds it
  auto again = chains.open(f.vhd_path);
  CHECK(again->size() == f.size());
  CHECK(chains.open_count() == 2);
  CHECK_THROWS_AS(chains.open((f.dir / "missing.vhd").string()), util::Error);
  CHECK(chains.open_count() == 2);
}

namespace {
block::SessionManager::Options opts(const std::string& dir, std::chrono::seconds idle, bool persist = true) {
  block::SessionManager::Options o;
  o.cache_dir = dir;
  o.idle_timeout = idle;
  o.persist = persist;
  return o;
}

struct SessionFixture : Fixture {
  int started = 0, ended = 0, pins = 0;
  std::vector<std::string> ended_names;
  block::Pin pin{"lab", 1, "", ""};
  std::unique_ptr<block::SessionManager> m;
  SessionFixture() {
    pin.path = vhd_path;
    m = std::make_unique<block::SessionManager>(
        opts(dir.string(), std::chrono::seconds(0)),
        block::SessionManager::Hooks{[this](const block::Session&) { ++started; },
                                     [this](const block::Session& s) {
                                       ++ended;
                                       ended_names.push_back(s.name());
                                     },
                                     nullptr});
  }
  std::shared_ptr<block::Session> attach(const std::string& name) {
    return m->attach(name, [this] {
      ++pins;
      return pin;
    });
  }
  size_t count() { return m->sessions().size(); }
};
}  // namespace

TEST_CASE("sessions: attaching the same name returns the same session", "[block]") {
  SessionFixture s;
  auto a1 = s.attach("lab/pc01");
  auto a2 = s.attach("lab/pc01");
  CHECK(a1 == a2);
  CHECK(a1->connections() == 2);
  CHECK(s.started == 1);
  CHECK(s.pins == 1);  // the version is looked up only when the session starts
  CHECK(a1->named());
  CHECK(a1->name() == "lab/pc01");
  CHECK(a1->pin().version == 1);
  CHECK(a1->shared_between_connections());
  CHECK_FALSE(a1->read_only());
  // What one connection writes, the other reads.
  auto x = filled(512, 9);
  REQUIRE(a1->write(512, 512, x.data(), false) == 0);
  std::vector<uint8_t> y(512);
  REQUIRE(a2->read(512, 512, y.data()) == 0);
  CHECK(y == x);
  s.m->detach(a1);
  CHECK(a2->connections() == 1);
  CHECK(s.ended == 0);
  s.m->detach(a2);
  CHECK(s.ended == 0);  // a named session outlives its connections
  CHECK(s.count() == 1);
  // A reconnect finds the data.
  auto a3 = s.attach("lab/pc01");
  CHECK(a3 == a1);
  REQUIRE(a3->read(512, 512, y.data()) == 0);
  CHECK(y == x);
  CHECK(s.started == 1);
}

TEST_CASE("sessions: different names are isolated", "[block]") {
  SessionFixture s;
  auto a = s.attach("lab/pc01");
  auto b = s.attach("lab/pc02");
  CHECK(a != b);
  CHECK(s.started == 2);
  auto x = filled(4096, 0x42);
  REQUIRE(a->write(0, 4096, x.data(), false) == 0);
  REQUIRE(b->trim(8192, 4096, false) == 0);
  std::vector<uint8_t> y(4096);
  REQUIRE(b->read(0, 4096, y.data()) == 0);
  CHECK(mismatch(y, std::vector<uint8_t>(s.content.begin(), s.content.begin() + 4096)) == -1);
  REQUIRE(a->read(8192, 4096, y.data()) == 0);
  CHECK(mismatch(y, std::vector<uint8_t>(s.content.begin() + 8192, s.content.begin() + 12288)) == -1);
  REQUIRE(b->read(8192, 4096, y.data()) == 0);
  CHECK(y == std::vector<uint8_t>(4096, 0));
  CHECK(a->cache().data_bytes() == 4096);
  CHECK(b->cache().data_bytes() == 0);
}

TEST_CASE("sessions: anonymous sessions are per connection and end on detach", "[block]") {
  SessionFixture s;
  auto a = s.m->attach_anonymous(s.pin);
  auto b = s.m->attach_anonymous(s.pin);
  CHECK(a != b);
  CHECK(a->name() != b->name());
  CHECK_FALSE(a->named());
  CHECK_FALSE(a->shared_between_connections());
  CHECK(a->connections() == 1);
  CHECK(s.started == 2);
  CHECK(s.count() == 2);
  auto x = filled(512, 1);
  REQUIRE(a->write(0, 512, x.data(), false) == 0);
  std::vector<uint8_t> y(512);
  REQUIRE(b->read(0, 512, y.data()) == 0);
  CHECK(y != x);
  s.m->detach(a);
  CHECK(s.ended == 1);
  CHECK(s.ended_names == std::vector<std::string>{a->name()});
  CHECK(s.count() == 1);
  s.m->detach(b);
  CHECK(s.ended == 2);
  CHECK(s.count() == 0);
  CHECK(s.m->expire_idle().empty());  // anonymous sessions are not the idle expiry's
}

TEST_CASE("sessions: reset ends a session; its next attach is refused until a boot starts one", "[block]") {
  SessionFixture s;
  auto old = s.attach("lab/pc01");
  auto x = filled(4096, 0x5A);
  REQUIRE(old->write(0, 4096, x.data(), false) == 0);
  CHECK(s.m->reset("lab/pc01"));
  CHECK(s.ended == 1);
  CHECK(s.count() == 0);
  CHECK_FALSE(s.m->reset("lab/pc01"));  // already gone
  CHECK_FALSE(s.m->reset("lab/nobody"));
  CHECK(s.ended == 1);
  // The connection still attached keeps its cache until it closes.
  std::vector<uint8_t> y(4096);
  REQUIRE(old->read(0, 4096, y.data()) == 0);
  CHECK(y == x);
  // A reconnect must not find a new, empty disk under its filesystem.
  CHECK_THROWS_AS(s.attach("lab/pc01"), block::SessionGone);
  CHECK_THROWS_WITH(s.attach("lab/pc01"), Catch::Contains("lab/pc01") && Catch::Contains("reset") &&
                                              Catch::Contains("boots again"));
  CHECK(s.m->ended_reason("lab/pc01") == "reset");
  CHECK(s.started == 1);
  // A boot starts it again; then connections attach to that.
  s.m->start("lab/pc01", s.pin);
  CHECK_FALSE(s.m->ended_reason("lab/pc01"));
  auto fresh = s.attach("lab/pc01");
  CHECK(fresh != old);
  CHECK(s.started == 2);
  CHECK(fresh->cache().data_bytes() == 0);
  REQUIRE(fresh->read(0, 4096, y.data()) == 0);
  CHECK(mismatch(y, std::vector<uint8_t>(s.content.begin(), s.content.begin() + 4096)) == -1);
  s.m->detach(old);  // the old one's detach does not touch the new one
  CHECK(fresh->connections() == 1);
  CHECK(s.ended == 1);
  CHECK(s.count() == 1);
}

TEST_CASE("sessions: expire_idle ends idle named sessions, not connected ones", "[block]") {
  SessionFixture s;
  auto idle = s.attach("lab/pc01");
  auto busy = s.attach("lab/pc02");
  auto twice = s.attach("lab/pc03");
  s.attach("lab/pc03");
  s.m->detach(idle);
  s.m->detach(twice);  // one of its two connections left
  std::this_thread::sleep_for(std::chrono::milliseconds(5));
  CHECK(s.m->expire_idle() == std::vector<std::string>{"lab/pc01"});
  CHECK(s.ended == 1);
  CHECK(s.ended_names == std::vector<std::string>{"lab/pc01"});
  CHECK(s.count() == 2);
  CHECK(s.m->expire_idle().empty());
  // The expired name is refused until a boot starts it over.
  CHECK_THROWS_AS(s.attach("lab/pc01"), block::SessionGone);
  s.m->start("lab/pc01", s.pin);
  auto again = s.attach("lab/pc01");
  CHECK(again != idle);
  CHECK(s.started == 4);
  (void)busy;

  SECTION("a long timeout keeps idle sessions") {
    s.m->set_idle_timeout(std::chrono::hours(1));
    s.m->detach(again);
    CHECK(s.m->expire_idle().empty());
    CHECK(s.count() == 3);
  }
}

TEST_CASE("sessions: a failing version lookup leaves no session behind", "[block]") {
  SessionFixture s;
  CHECK_THROWS_WITH(s.m->attach("lab/pc01", []() -> block::Pin { throw util::Error("no active version"); }),
                    "no active version");
  CHECK(s.count() == 0);
  CHECK(s.started == 0);
  block::Pin missing{"lab", 2, (s.dir / "missing.vhd").string(), ""};
  CHECK_THROWS_AS(s.m->attach("lab/pc01", [&] { return missing; }), util::Error);
  CHECK(s.count() == 0);
  auto ok = s.attach("lab/pc01");
  CHECK(ok->connections() == 1);
  CHECK(s.started == 1);
}

TEST_CASE("sessions: sessions on one version share one open chain", "[block]") {
  SessionFixture s;
  auto a = s.attach("lab/pc01");
  auto b = s.m->attach_anonymous(s.pin);
  auto chain = s.m->open_chain(s.vhd_path);
  CHECK(chain.get() == s.m->open_chain(s.vhd_path).get());
  // Ending every session and dropping our reference closes the chain; the
  // next open gives a working one again.
  s.m->detach(b);
  s.m->detach(a);
  CHECK(s.m->reset("lab/pc01"));
  a.reset();
  b.reset();
  chain.reset();
  auto reopened = s.m->open_chain(s.vhd_path);
  CHECK(reopened->size() == s.size());
}

TEST_CASE("sessions: a manager that goes keeps named sessions for the next one, unless not persistent", "[block]") {
  SessionFixture s;
  auto a = s.attach("lab/pc01");
  s.attach("lab/pc02");
  a.reset();
  s.m.reset();
  CHECK(s.ended == 0);
  fs::create_directories(s.dir / "v");
  {
    block::SessionManager m2(opts((s.dir / "v").string(), std::chrono::seconds(0), false),
                             {nullptr, [&](const block::Session&) { ++s.ended; }, nullptr});
    m2.attach("lab/pc01", [&] { return s.pin; });
  }
  CHECK(s.ended == 1);
  CHECK_FALSE(fs::exists(s.dir / "v" / "sessions"));
}

TEST_CASE("sessions: start pins a named session before any connection and replaces an unconnected one", "[block]") {
  SessionFixture s;
  auto old = s.attach("lab/pc01");
  auto x = filled(512, 7);
  REQUIRE(old->write(0, 512, x.data(), false) == 0);
  block::Pin pinned = s.pin;
  pinned.version = 7;
  // A boot script fetched while the PC's connection is open (anyone may
  // fetch it) changes nothing: the running session is returned.
  CHECK(s.m->start("lab/pc01", pinned) == old);
  CHECK(old->pin().version == 1);
  CHECK(s.ended == 0);
  // A PC that really rebooted has dropped its connection: the old session
  // ends (its hook first), a fresh one starts on the pin given.
  s.m->detach(old);
  auto fresh = s.m->start("lab/pc01", pinned);
  CHECK(fresh != old);
  CHECK(s.ended == 1);
  CHECK(s.started == 2);
  CHECK(fresh->pin().version == 7);
  CHECK(fresh->connections() == 0);
  CHECK(fresh->cache().data_bytes() == 0);
  // The next attach finds the started session, without looking up a version.
  int pins_before = s.pins;
  auto attached = s.attach("lab/pc01");
  CHECK(attached == fresh);
  CHECK(s.pins == pins_before);
  CHECK(attached->pin().version == 7);
  s.m->detach(attached);
  // The old connection still has its own cache until it closes.
  std::vector<uint8_t> y(512);
  REQUIRE(old->read(0, 512, y.data()) == 0);
  CHECK(y == x);
  CHECK(s.ended == 1);
  // A started session counts as idle from its start, not from the epoch.
  s.m->set_idle_timeout(std::chrono::hours(1));
  auto unattached = s.m->start("lab/pc02", s.pin);
  CHECK(s.m->expire_idle().empty());
  s.m->set_idle_timeout(std::chrono::seconds(0));
  std::this_thread::sleep_for(std::chrono::milliseconds(5));
  auto expired = s.m->expire_idle();
  CHECK(expired.size() == 2);
}

TEST_CASE("sessions: a new manager reopens named sessions with their pins, data and tombstones", "[block]") {
  SessionFixture s;
  auto x = filled(8192, 0x31), y = filled(4096, 0x32);
  block::Pin v7 = s.pin;
  v7.version = 7;
  {
    auto a = s.m->start("lab/pc01", v7);  // a boot pinned version 7
    a = s.attach("lab/pc01");
    REQUIRE(a->write(MiB, 8192, x.data(), false) == 0);
    REQUIRE(a->flush() == 0);
    REQUIRE(a->write(2 * MiB, 4096, y.data(), false) == 0);  // kept by a graceful stop too
    auto b = s.attach("lab/pc02");
    REQUIRE(s.m->reset("lab/pc02"));
    s.attach("lab/pc03");
    s.m->detach(b);
  }
  s.m.reset();
  REQUIRE(s.ended == 1);  // pc02's reset only
  std::vector<block::Pin> checked;
  std::vector<std::string> reopened;
  s.pins = 0;
  s.m = std::make_unique<block::SessionManager>(
      opts(s.dir.string(), std::chrono::hours(1)),
      block::SessionManager::Hooks{nullptr, nullptr, [&](const block::Session& r) { reopened.push_back(r.name()); }});
  auto report = s.m->recover([&](const block::Pin& p) {
    checked.push_back(p);
    if (p.version == 1) throw util::Error("lab@1 was pruned");  // pc03's
    return p;
  });
  CHECK(reopened == std::vector<std::string>{"lab/pc01"});
  REQUIRE(report.size() == 2);
  CHECK_THAT(report[0], Catch::Contains("lab/pc01 reopened on lab@7"));
  CHECK_THAT(report[1], Catch::Contains("lab/pc03") && Catch::Contains("pruned"));
  CHECK(checked.size() == 2);
  auto a = s.attach("lab/pc01");
  CHECK(a->recovered());
  CHECK(a->pin().version == 7);
  CHECK(s.pins == 0);  // no new version was looked up
  CHECK(mismatch(read(a->cache(), MiB, 8192), x) == -1);
  CHECK(mismatch(read(a->cache(), 2 * MiB, 4096), y) == -1);
  // Ended sessions stay ended across the restart; a version gone is an end too.
  CHECK_THROWS_WITH(s.attach("lab/pc02"), Catch::Contains("reset"));
  CHECK_THROWS_WITH(s.attach("lab/pc03"), Catch::Contains("pruned"));
  // A second server on the same cache directory is refused.
  block::SessionManager second(opts(s.dir.string(), std::chrono::hours(1)));
  CHECK_THROWS_WITH(second.recover([](const block::Pin& p) { return p; }), Catch::Contains("another bootsrv"));
}

TEST_CASE("sessions: a half-made session directory is removed at recovery", "[block]") {
  SessionFixture s;
  fs::create_directories(s.dir / "sessions" / "lab%2Fpc09~1");
  std::ofstream(s.dir / "sessions" / "lab%2Fpc09~1" / "data") << "x";
  s.m.reset();
  s.m = std::make_unique<block::SessionManager>(opts(s.dir.string(), std::chrono::hours(1)));
  auto report = s.m->recover([](const block::Pin& p) { return p; });
  REQUIRE(report.size() == 1);
  CHECK_THAT(report[0], Catch::Contains("cut short"));
  CHECK_FALSE(fs::exists(s.dir / "sessions" / "lab%2Fpc09~1"));
  CHECK(s.count() == 0);
}

TEST_CASE("sessions: one session past its quota, another keeps reading and writing", "[block]") {
  SessionFixture s;
  s.m.reset();
  auto o = opts(s.dir.string(), std::chrono::hours(1));
  o.quota = [](const std::string& name) { return name == "lab/pc01" ? uint64_t{256 * 1024} : uint64_t{0}; };
  o.reserve = MiB;
  s.m = std::make_unique<block::SessionManager>(o);
  auto full = s.m->attach("lab/pc01", [&] { return s.pin; });
  auto other = s.m->attach("lab/pc02", [&] { return s.pin; });
  CHECK(full->cache().quota() == 256 * 1024);
  CHECK(other->cache().quota() == 0);
  // The reserve is allocated on disk at the start (not past the quota).
  struct stat st {};
  REQUIRE(::stat((full->cache().persist_dir() + "/data").c_str(), &st) == 0);
  CHECK(st.st_size == 0);
  CHECK(uint64_t(st.st_blocks) * 512 >= 256 * 1024);
  REQUIRE(::stat((other->cache().persist_dir() + "/data").c_str(), &st) == 0);
  CHECK(uint64_t(st.st_blocks) * 512 >= MiB);
  Model m(s.content);
  auto x = filled(65536, 0x21), y = filled(65536, 0x43);
  int enospc = 0;
  for (int i = 0; i < 16; ++i) {
    int rc = full->write(uint64_t(i) * 65536, 65536, x.data(), false);
    if (rc == ENOSPC) ++enospc;
    else REQUIRE(rc == 0);
    // The other session, meanwhile: every write and read works.
    REQUIRE(other->write(4 * MiB + uint64_t(i) * 65536, 65536, y.data(), i % 4 == 3) == 0);
    m.write(4 * MiB + uint64_t(i) * 65536, y);
    CHECK(mismatch(read(other->cache(), 4 * MiB, MiB), m.slice(4 * MiB, MiB)) == -1);
  }
  CHECK(enospc == 12);
  CHECK(full->write(0, 4096, y.data(), true) == 0);  // rewrites of what it holds
  CHECK(full->cache().file_bytes() == 256 * 1024);
}

namespace {

// What send_spans puts on a socket: `head` and the spans, received by a
// second thread (the socket holds less than a large read).
std::vector<uint8_t> sent_through_socket(const std::string& head, const std::vector<util::FileSpan>& spans) {
  int sv[2];
  REQUIRE(::socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0);
  std::vector<uint8_t> got;
  std::thread reader([&] {
    uint8_t buf[65536];
    ssize_t n;
    while ((n = ::recv(sv[1], buf, sizeof buf, 0)) > 0) got.insert(got.end(), buf, buf + n);
  });
  bool ok = util::send_spans(sv[0], head.data(), head.size(), spans);
  ::shutdown(sv[0], SHUT_WR);
  reader.join();
  ::close(sv[0]);
  ::close(sv[1]);
  REQUIRE(ok);
  return got;
}

}  // namespace

TEST_CASE("mapped reads: what is sent from the files is what read() returns", "[block]") {
  Fixture f;
  block::ChainRegistry chains;
  auto chain = chains.open(f.vhd_path);
  block::WriteCache cache(chain, f.dir.string());
  Model m(f.content);
  // A written cluster in block 0, zeroed clusters in block 2.
  auto data = filled(4096, 0x5A);
  REQUIRE(cache.write(64 * 1024, 4096, data.data(), false) == 0);
  m.write(64 * 1024, data);
  REQUIRE(cache.write_zeroes(2 * kBlock + 8192, 3 * 4096, false) == 0);
  m.zero(2 * kBlock + 8192, 3 * 4096);

  SECTION("ranges below or zeroed map, and send exactly the disk's bytes after the header") {
    std::mt19937_64 rng(7);
    int mapped = 0;
    for (int i = 0; i < 200; ++i) {
      uint64_t off = rng() % f.size();
      uint64_t len = 1 + rng() % std::min<uint64_t>(3 * MiB, f.size() - off);
      std::vector<util::FileSpan> spans;
      const bool touches_slot = off < 68 * 1024 && off + len > 64 * 1024;
      int rc = cache.map_read(off, static_cast<uint32_t>(len), spans);
      if (touches_slot) {
        CHECK(rc == ENOTSUP);
        continue;
      }
      REQUIRE(rc == 0);
      ++mapped;
      uint64_t total = 0;
      for (const auto& s : spans) total += s.length;
      REQUIRE(total == len);
      auto got = sent_through_socket("HEAD", spans);
      REQUIRE(got.size() == 4 + len);
      CHECK(std::string(got.begin(), got.begin() + 4) == "HEAD");
      CHECK(mismatch(std::vector<uint8_t>(got.begin() + 4, got.end()), m.slice(off, len)) == -1);
    }
    CHECK(mapped > 100);
  }

  SECTION("a version device maps every range; unallocated blocks are zero spans with no file") {
    block::VersionDevice d({"lab", 1, f.vhd_path, ""}, chain);
    std::vector<util::FileSpan> spans;
    REQUIRE(d.map_read(kBlock - 4096, kBlock, spans) == 0);
    REQUIRE(spans.size() == 2);
    CHECK(spans[0].fd >= 0);
    CHECK(spans[0].length == 4096);
    CHECK(spans[1].fd < 0);
    CHECK(spans[1].length == kBlock - 4096);
    CHECK(util::spans_cached(spans));  // just written: in the page cache
  }

  SECTION("slices of spans are the bytes at their offsets") {
    std::vector<util::FileSpan> spans, part;
    REQUIRE(cache.map_read(kBlock - 100000, 300000, spans) == 0);
    util::slice_spans(spans, 99000, 2000, part);
    auto got = sent_through_socket("", part);
    CHECK(mismatch(got, m.slice(kBlock - 100000 + 99000, 2000)) == -1);
  }
}
