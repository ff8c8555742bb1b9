// The store: block digests, version references and image names, and the
// Store API on a temporary directory (import, the publish/rollback stack,
// leases against prune, publish and rollback as single transactions).
#include <fcntl.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <thread>
#include <vector>

#include "store/digests.h"
#include "store/sqlite.h"
#include "store/store.h"
#include "store/version_ref.h"
#include "util/bytes.h"
#include "util/error.h"
#include "util/file.h"
#include "util/lock.h"
#include "util/sha256.h"
#include "vhd/format.h"
#include "vhd/raw_disk.h"

using namespace bootfleet;
using namespace bootfleet::store;
namespace fs = std::filesystem;

namespace {

constexpr uint32_t kBlock = kDigestBlockSize;

std::vector<uint8_t> filled(size_t n, uint8_t value) { return std::vector<uint8_t>(n, value); }

// A blob entry as the catalog stores it: u32 big-endian block, 32-byte digest.
void append_entry(std::vector<uint8_t>& blob, uint32_t block, uint8_t digest_byte) {
  uint8_t be[4];
  util::store_be32(be, block);
  blob.insert(blob.end(), be, be + 4);
  blob.insert(blob.end(), 32, digest_byte);
}

}  // namespace

TEST_CASE("set_from_data records all-zero blocks as absent", "[store]") {
  BlockDigests d(5u << 20);  // 3 blocks, the last one 1 MiB
  REQUIRE(d.block_count() == 3);
  CHECK(d.block_length(0) == kBlock);
  CHECK(d.block_length(2) == (1u << 20));
  auto zeros = filled(kBlock, 0), data = filled(kBlock, 7);
  d.set_from_data(0, zeros);
  d.set_from_data(1, data);
  CHECK_FALSE(d.get(0).has_value());
  REQUIRE(d.get(1).has_value());
  CHECK(*d.get(1) == util::sha256(data));
  CHECK(d.nonzero_blocks() == 1);
  // Zeros written over a block with data make it absent again.
  d.set_from_data(1, zeros);
  CHECK_FALSE(d.get(1).has_value());
  CHECK(d.nonzero_blocks() == 0);
  CHECK(d == BlockDigests(5u << 20));
  // One non-zero byte anywhere is data.
  zeros[kBlock - 1] = 1;
  d.set_from_data(0, zeros);
  CHECK(d.get(0).has_value());
}

TEST_CASE("block digests encode and decode to the same digests", "[store]") {
  BlockDigests d(9u << 20);  // 5 blocks
  d.set_from_data(4, filled(1u << 20, 3));
  d.set_from_data(0, filled(kBlock, 1));
  d.set_from_data(2, filled(kBlock, 2));
  auto blob = d.encode();
  REQUIRE(blob.size() == 3 * 36);
  // Ascending blocks, big-endian.
  CHECK(util::load_be32(&blob[0]) == 0);
  CHECK(util::load_be32(&blob[36]) == 2);
  CHECK(util::load_be32(&blob[72]) == 4);
  BlockDigests back = BlockDigests::decode(9u << 20, blob);
  CHECK(back == d);
  CHECK(back.disk_digest() == d.disk_digest());
  CHECK(back.encode() == blob);
  // An all-zero disk encodes as nothing and comes back equal.
  BlockDigests empty(9u << 20);
  CHECK(empty.encode().empty());
  CHECK(BlockDigests::decode(9u << 20, {}) == empty);
}

TEST_CASE("decoding rejects blobs that cannot be a digest list", "[store]") {
  const uint64_t size = 4u << 20;  // 2 blocks
  CHECK_THROWS_WITH(BlockDigests::decode(size, std::vector<uint8_t>(35)),
                    Catch::Contains("35 bytes is not a whole number of 36-byte entries"));
  CHECK_THROWS_WITH(BlockDigests::decode(size, std::vector<uint8_t>(37)), Catch::Contains("36-byte"));
  std::vector<uint8_t> past;
  append_entry(past, 2, 0xAA);  // block 2 of a 2-block disk
  CHECK_THROWS_WITH(BlockDigests::decode(size, past), Catch::Contains("block 2 past the disk's 2 blocks"));
  std::vector<uint8_t> descending;
  append_entry(descending, 1, 0xAA);
  append_entry(descending, 0, 0xBB);
  CHECK_THROWS_WITH(BlockDigests::decode(size, descending), Catch::Contains("not sorted"));
  std::vector<uint8_t> twice;
  append_entry(twice, 1, 0xAA);
  append_entry(twice, 1, 0xBB);
  CHECK_THROWS_WITH(BlockDigests::decode(size, twice), Catch::Contains("not sorted"));
  std::vector<uint8_t> fine;
  append_entry(fine, 0, 0xAA);
  append_entry(fine, 1, 0xBB);
  CHECK(BlockDigests::decode(size, fine).nonzero_blocks() == 2);
}

TEST_CASE("changed_blocks lists exactly the blocks that differ", "[store]") {
  BlockDigests a(10u << 20), b(10u << 20);  // 5 blocks
  CHECK(BlockDigests::changed_blocks(a, b).empty());
  auto one = filled(kBlock, 1), two = filled(kBlock, 2);
  for (uint32_t blk : {0u, 1u, 3u}) {
    a.set_from_data(blk, one);
    b.set_from_data(blk, one);
  }
  CHECK(BlockDigests::changed_blocks(a, b).empty());
  b.set_from_data(1, two);    // modified
  b.set_from_data(3, filled(kBlock, 0));  // zeroed
  b.set_from_data(4, two);    // added
  CHECK(BlockDigests::changed_blocks(a, b) == std::vector<uint32_t>{1, 3, 4});
  CHECK(BlockDigests::changed_blocks(b, a) == std::vector<uint32_t>{1, 3, 4});
  // Disks of different sizes: the shorter reads as zeros past its end.
  BlockDigests longer(14u << 20);  // 7 blocks
  longer.set_from_data(0, one);
  longer.set_from_data(1, one);
  longer.set_from_data(3, one);
  longer.set_from_data(6, two);
  CHECK(BlockDigests::changed_blocks(a, longer) == std::vector<uint32_t>{6});
}

TEST_CASE("the disk digest is stable and follows every block", "[store]") {
  auto build = [](std::vector<std::pair<uint32_t, uint8_t>> blocks) {
    BlockDigests d(7u << 20);  // 4 blocks, the last 1 MiB
    for (auto [blk, v] : blocks) d.set_from_data(blk, filled(d.block_length(blk), v));
    return d;
  };
  auto d = build({{0, 1}, {2, 2}, {3, 3}});
  // The same content, recorded in another order, or with a zero block
  // recorded explicitly, gives the same digest; computing it twice too.
  CHECK(d.disk_digest() == d.disk_digest());
  CHECK(build({{3, 3}, {0, 1}, {2, 2}}).disk_digest() == d.disk_digest());
  CHECK(build({{0, 1}, {1, 0}, {2, 2}, {3, 3}}).disk_digest() == d.disk_digest());
  // It is the SHA-256 of the block digests, zero blocks included.
  util::Sha256 h;
  h.update(util::sha256(filled(kBlock, 1)));
  h.update(util::sha256(filled(kBlock, 0)));
  h.update(util::sha256(filled(kBlock, 2)));
  h.update(util::sha256(filled(1u << 20, 3)));
  CHECK(d.disk_digest() == h.finish());
  // One block changed, added or removed changes it.
  CHECK(build({{0, 1}, {2, 2}, {3, 4}}).disk_digest() != d.disk_digest());
  CHECK(build({{0, 1}, {1, 9}, {2, 2}, {3, 3}}).disk_digest() != d.disk_digest());
  CHECK(build({{0, 1}, {2, 2}}).disk_digest() != d.disk_digest());
  auto block = filled(kBlock, 1);
  block[kBlock / 2] ^= 1;
  auto flipped = build({{2, 2}, {3, 3}});
  flipped.set_from_data(0, block);
  CHECK(flipped.disk_digest() != d.disk_digest());
  // All-zero disks of different sizes differ.
  CHECK(BlockDigests(4u << 20).disk_digest() != BlockDigests(6u << 20).disk_digest());
}

TEST_CASE("version references: IMAGE, IMAGE@N, IMAGE@active", "[store]") {
  auto r = parse_version_ref("lab@3");
  CHECK(r.image == "lab");
  CHECK(r.number == 3);
  CHECK_FALSE(r.explicit_active);
  CHECK(r.text() == "lab@3");
  auto active = parse_version_ref("lab-win10@active");
  CHECK(active.image == "lab-win10");
  CHECK_FALSE(active.number.has_value());
  CHECK(active.explicit_active);
  CHECK(active.text() == "lab-win10@active");
  auto bare = parse_version_ref("lab");
  CHECK_FALSE(bare.number.has_value());
  CHECK_FALSE(bare.explicit_active);
  CHECK(parse_version_ref("lab@123456789").number == 123456789);
  CHECK(parse_version_ref("lab@007").number == 7);
}

TEST_CASE("version reference mistakes name the column", "[store]") {
  CHECK_THROWS_WITH(parse_version_ref("lab", true), Catch::Contains("lab: column 4: expected '@N' or '@active'"));
  CHECK_THROWS_WITH(parse_version_ref("lab@"), Catch::Contains("lab@: column 5: expected a version number"));
  CHECK_THROWS_WITH(parse_version_ref("lab@x"), Catch::Contains("column 5") && Catch::Contains("found 'x'"));
  CHECK_THROWS_WITH(parse_version_ref("lab@12x"), Catch::Contains("column 7") && Catch::Contains("found 'x'"));
  CHECK_THROWS_WITH(parse_version_ref("lab@-1"), Catch::Contains("column 5") && Catch::Contains("found '-'"));
  CHECK_THROWS_WITH(parse_version_ref("lab@1@2"), Catch::Contains("column 6") && Catch::Contains("found '@'"));
  CHECK_THROWS_WITH(parse_version_ref("lab@Active"), Catch::Contains("column 5"));
  CHECK_THROWS_WITH(parse_version_ref("lab@0"), Catch::Contains("column 5: versions are numbered from 1"));
  CHECK_THROWS_WITH(parse_version_ref("lab@1234567890"), Catch::Contains("column 5: version number too large"));
  CHECK_THROWS_WITH(parse_version_ref("Lab@1"), Catch::Contains("Lab@1: ") && Catch::Contains("column 1"));
  CHECK_THROWS_WITH(parse_version_ref("a/b@1"), Catch::Contains("column 2") && Catch::Contains("'/'"));
  CHECK_THROWS_WITH(parse_version_ref("@1"), Catch::Contains("image name is empty"));
}

TEST_CASE("image names: a-z, 0-9, '.', '_', '-', from a letter or digit, 1-64 long", "[store]") {
  for (const char* good : {"a", "0", "lab", "lab-win10.v2_x", "9lives", "a.b_c-d"}) {
    CAPTURE(good);
    CHECK_NOTHROW(validate_image_name(good));
  }
  CHECK_NOTHROW(validate_image_name(std::string(64, 'a')));
  CHECK_THROWS_WITH(validate_image_name(std::string(65, 'a')), Catch::Contains("longer than 64 characters"));
  CHECK_THROWS_WITH(validate_image_name(""), Catch::Contains("empty"));
  CHECK_THROWS_WITH(validate_image_name("Lab"), Catch::Contains("column 1: 'L' is not allowed"));
  CHECK_THROWS_WITH(validate_image_name("lab/x"), Catch::Contains("column 4: '/' is not allowed"));
  CHECK_THROWS_WITH(validate_image_name("la b"), Catch::Contains("column 3: ' '"));
  CHECK_THROWS_WITH(validate_image_name("lab@1"), Catch::Contains("column 4: '@'"));
  CHECK_THROWS_WITH(validate_image_name("labé"), Catch::Contains("column 4"));
  for (const char* bad_start : {"-x", ".x", "_x"}) {
    CAPTURE(bad_start);
    CHECK_THROWS_WITH(validate_image_name(bad_start),
                      Catch::Contains("column 1") && Catch::Contains("starting with a letter or digit"));
  }
  CHECK_THROWS_WITH(validate_image_name(".."), Catch::Contains("column 1"));
}

namespace {

struct TempStore {
  fs::path dir;
  std::string path;
  std::unique_ptr<Store> store;
  TempStore() {
    char tmpl[] = "/tmp/bootfleet-store-unit-XXXXXX";
    REQUIRE(::mkdtemp(tmpl) != nullptr);
    dir = tmpl;
    path = (dir / "s").string();
    Store::init(path);
    store = Store::open(path);
  }
  ~TempStore() {
    store.reset();
    fs::remove_all(dir);
  }
  // Writes a 6 MiB raw disk: `marker` over its first 4 KiB and over 4 KiB at
  // 5 MiB (block 2), the rest sparse zeros.
  std::string raw(uint8_t marker, uint64_t size = 6u << 20) {
    std::string file = (dir / ("d" + std::to_string(marker) + ".raw")).string();
    auto fd = util::open_file(file, O_RDWR | O_CREAT | O_TRUNC);
    auto data = filled(4096, marker);
    util::pwrite_full(fd.get(), data.data(), data.size(), 0, file);
    util::pwrite_full(fd.get(), data.data(), data.size(), 5u << 20, file);
    REQUIRE(::ftruncate(fd.get(), static_cast<off_t>(size)) == 0);
    return file;
  }
  ImportResult import(const std::string& image, uint8_t marker, const ImportOptions& o = {}) {
    return store->import_disk(image, *vhd::RawDisk::open(raw(marker)), o);
  }
  std::vector<int64_t> numbers(const std::string& image) {
    std::vector<int64_t> out;
    for (const auto& v : store->versions(image)) out.push_back(v.number);
    return out;
  }
};

uint8_t first_byte(const Store& s, const VersionInfo& v, uint64_t offset = 0) {
  uint8_t b = 0xEE;
  s.open_version(v)->read(offset, &b, 1);
  return b;
}

}  // namespace

TEST_CASE("import stores a base, then differencing versions holding what changed", "[store]") {
  TempStore t;
  CHECK(t.store->images().empty());
  ImportOptions o;
  o.message = "one";
  o.created_by = "tester";
  auto first = t.import("lab", 1, o);
  CHECK(first.new_base);
  CHECK(first.changed_blocks == 2);
  const VersionInfo& v1 = first.version;
  CHECK(v1.number == 1);
  CHECK_FALSE(v1.parent.has_value());
  CHECK(v1.depth == 1);
  CHECK(v1.size == vhd::round_up_to_geometry(6u << 20));
  CHECK(v1.file == "images/lab/0001.vhd");
  CHECK(v1.message == "one");
  CHECK(v1.created_by == "tester");
  CHECK(fs::exists(t.store->path_of(v1)));
  // The recorded digests are those of the data.
  BlockDigests want(v1.size);
  auto block = filled(kBlock, 0);
  std::fill(block.begin(), block.begin() + 4096, 1);
  want.set_from_data(0, block);
  std::fill(block.begin(), block.begin() + 4096, 0);
  std::fill(block.begin() + (1u << 20), block.begin() + (1u << 20) + 4096, 1);
  want.set_from_data(2, {block.data(), want.block_length(2)});
  CHECK(t.store->digests(v1) == want);
  CHECK(v1.disk_digest == util::digest_hex(want.disk_digest()));

  // Version 2 differs in its first 4 KiB and at 5 MiB: 2 blocks, 8 KiB.
  auto second = t.import("lab", 2);
  const VersionInfo& v2 = second.version;
  CHECK_FALSE(second.new_base);
  CHECK(second.changed_blocks == 2);
  CHECK(v2.number == 2);
  CHECK(v2.parent == 1);
  CHECK(v2.depth == 2);
  CHECK(v2.size == v1.size);
  CHECK(v2.stored_bytes == 8192);
  CHECK(first_byte(*t.store, v2) == 2);
  CHECK(first_byte(*t.store, v2, 5u << 20) == 2);
  CHECK(first_byte(*t.store, v1) == 1);
  CHECK(BlockDigests::changed_blocks(t.store->digests(v1), t.store->digests(v2)) == std::vector<uint32_t>{0, 2});
  // The same disk again: a version that changed nothing and stores nothing.
  auto same = t.import("lab", 2);
  CHECK(same.changed_blocks == 0);
  CHECK(same.version.stored_bytes == 0);
  CHECK(same.version.disk_digest == v2.disk_digest);
  CHECK(t.numbers("lab") == std::vector<int64_t>{1, 2, 3});
  auto report = t.store->verify(std::nullopt);
  CHECK(report.problems.empty());
  CHECK(report.checked == std::vector<std::string>{"lab@1", "lab@2", "lab@3"});
  auto diff = t.store->diff({"lab", 1, false}, {"lab", 2, false}, /*read_data=*/true);
  REQUIRE(diff.ranges.size() == 2);
  CHECK(diff.ranges[0].offset == 0);
  CHECK(diff.ranges[0].length == 4096);
  CHECK(diff.ranges[1].offset == (5u << 20));
  CHECK(diff.ranges[1].length == 4096);
  CHECK(diff.verified);
}

TEST_CASE("import refuses a disk of another size than the image, naming both sizes, unless resize", "[store]") {
  TempStore t;
  auto v1 = t.import("lab", 1).version;
  std::string big = t.raw(9, 64u << 20);
  CHECK_THROWS_WITH(t.store->import_disk("lab", *vhd::RawDisk::open(big), {}),
                    Catch::Contains("the disk is " + std::to_string(64u << 20) + " bytes (64 MiB) but lab@1 is " +
                                    std::to_string(v1.size) + " bytes") &&
                        Catch::Contains("--resize"));
  CHECK(t.numbers("lab") == std::vector<int64_t>{1});
  CHECK(fs::is_empty(t.path + "/tmp"));
  CHECK_THROWS_WITH(t.store->import_disk("Lab", *vhd::RawDisk::open(big), {}), Catch::Contains("column 1"));
  // A smaller disk is usually the wrong file: refused the same way.
  std::string small = t.raw(3, 2u << 20);
  CHECK_THROWS_WITH(t.store->import_disk("lab", *vhd::RawDisk::open(small), {}),
                    Catch::Contains("the disk is " + std::to_string(2u << 20) + " bytes"));
  CHECK(t.numbers("lab") == std::vector<int64_t>{1});
  // Said explicitly: a new base of the new size.
  ImportOptions resize;
  resize.resize = true;
  auto r2 = t.store->import_disk("lab", *vhd::RawDisk::open(small), resize);
  CHECK(r2.new_base);
  CHECK(!r2.version.parent);
  CHECK(r2.version.size == vhd::round_up_to_geometry(2u << 20));
  CHECK(first_byte(*t.store, r2.version, 0) == 3);
  // The raw file of the nominal size is the image's size (CHS rounding).
  std::string same = t.raw(4, 2u << 20);
  auto r3 = t.store->import_disk("lab", *vhd::RawDisk::open(same), {});
  CHECK(r3.version.parent == std::optional<int64_t>(2));
}

TEST_CASE("import refuses an empty input: 0 bytes is never a disk", "[store]") {
  TempStore t;
  std::string empty = t.path + "/empty.raw";
  { std::ofstream(empty).flush(); }
  ImportOptions o;
  o.source = "empty.raw";
  CHECK_THROWS_WITH(t.store->import_disk("lab", *vhd::RawDisk::open(empty), o),
                    Catch::StartsWith("empty.raw: 0 bytes: an empty file is not a disk"));
  t.import("lab", 1);
  o.resize = true;
  CHECK_THROWS_WITH(t.store->import_disk("lab", *vhd::RawDisk::open(empty), o), Catch::Contains("0 bytes"));
  CHECK(t.numbers("lab") == std::vector<int64_t>{1});
}

TEST_CASE("unknown images and versions: the error lists what exists", "[store]") {
  TempStore t;
  CHECK_THROWS_WITH(t.store->image("lab"), Catch::Contains("no image 'lab'") && Catch::Contains("the store is empty"));
  t.import("lab", 1);
  t.import("lab", 2);
  t.import("other", 1);
  CHECK_THROWS_WITH(t.store->versions("nope"), Catch::Contains("no image 'nope'") && Catch::Contains("images: lab, other"));
  CHECK_THROWS_WITH(t.store->version({"lab", 5, false}), Catch::Contains("lab@5: no such version; versions: 1, 2"));
  CHECK_THROWS_WITH(t.store->version({"lab", std::nullopt, true}), Catch::Contains("has no active version"));
}

// The control API answers NotFound 404 and any other refusal 409: the type,
// not the words, tells them apart.
TEST_CASE("a thing the catalog does not have is NotFound; other refusals are not", "[store]") {
  TempStore t;
  t.import("lab", 1);
  CHECK_THROWS_AS(t.store->image("nope"), NotFound);
  CHECK_THROWS_AS(t.store->version({"lab", 7, false}), NotFound);
  CHECK_THROWS_AS(t.store->channel("lab", "beta"), NotFound);
  CHECK_THROWS_AS(t.store->group("room9"), NotFound);
  CHECK_THROWS_AS(t.store->client("52:54:00:00:00:99"), NotFound);
  CHECK_THROWS_AS(t.store->cancel_schedule(42, "test"), NotFound);
  CHECK_THROWS_AS(t.store->maintenance("lab"), NotFound);
  // Refusals of a present thing in its present state are plain errors.
  try {
    t.store->version({"lab", std::nullopt, true});
    FAIL("an image with nothing published has no active version");
  } catch (const NotFound&) {
    FAIL("no active version is a state, not a missing thing");
  } catch (const util::Error&) {
  }
}

TEST_CASE("publish and rollback: a stack of what was active", "[store]") {
  TempStore t;
  for (uint8_t m = 1; m <= 3; ++m) CHECK(t.import("lab", m).version.number == m);
  CHECK_THROWS_WITH(t.store->rollback("lab", std::nullopt, "t"), Catch::Contains("no version was ever published"));
  CHECK_THROWS_WITH(t.store->publish({"lab", 4, false}, "t"), Catch::Contains("lab@4: no such version; versions: 1, 2, 3"));
  CHECK_THROWS_WITH(t.store->publish({"lab", std::nullopt, false}, "t"), Catch::Contains("name the version"));
  CHECK(t.store->history("lab").empty());

  auto p1 = t.store->publish({"lab", 1, false}, "t");
  CHECK_FALSE(p1.before.has_value());
  CHECK(p1.now == 1);
  CHECK(t.store->publish({"lab", 2, false}, "t").before == 1);
  CHECK(t.store->publish({"lab", 3, false}, "t").before == 2);
  auto info = t.store->image("lab");
  CHECK(info.active == 3);
  CHECK(info.previous == 2);
  CHECK(t.store->version({"lab", std::nullopt, true}).number == 3);

  auto r = t.store->rollback("lab", std::nullopt, "t");
  CHECK(r.before == 3);
  CHECK(r.now == 2);
  CHECK(t.store->image("lab").previous == 1);
  r = t.store->rollback("lab", std::nullopt, "t");
  CHECK(r.before == 2);
  CHECK(r.now == 1);
  CHECK_FALSE(t.store->image("lab").previous.has_value());
  CHECK_THROWS_WITH(t.store->rollback("lab", std::nullopt, "t"),
                    Catch::Contains("nothing to roll back to: no version was active before @1"));
  CHECK(t.store->image("lab").active == 1);

  // --to pushes its target; publishing the active version changes nothing.
  r = t.store->rollback("lab", 3, "t");
  CHECK(r.now == 3);
  CHECK(r.changed);
  CHECK_FALSE(t.store->rollback("lab", 3, "t").changed);
  CHECK_FALSE(t.store->publish({"lab", 3, false}, "t").changed);
  CHECK(t.store->rollback("lab", std::nullopt, "t").now == 1);

  auto h = t.store->history("lab");
  REQUIRE(h.size() == 7);
  std::vector<std::string> actions;
  std::vector<int64_t> versions;
  for (const auto& a : h) {
    actions.push_back(a.action);
    versions.push_back(a.version);
  }
  CHECK(actions == std::vector<std::string>{"publish", "publish", "publish", "rollback", "rollback", "rollback", "rollback"});
  CHECK(versions == std::vector<int64_t>{1, 2, 3, 2, 1, 3, 1});
  for (size_t i = 1; i < h.size(); ++i) CHECK(h[i].previous == h[i - 1].version);
  CHECK(h[0].by == "t");
}

TEST_CASE("leases protect versions from prune until released or expired", "[store]") {
  TempStore t;
  t.import("lab", 1);
  t.import("lab", 2);
  auto squashed = t.store->squash({"lab", 2, false}, {});  // @3, a new base
  CHECK(squashed.new_base);
  CHECK_FALSE(squashed.version.parent.has_value());
  CHECK(squashed.version.depth == 1);
  CHECK(squashed.version.disk_digest == t.store->version({"lab", 2, false}).disk_digest);
  t.import("lab", 4);  // @4 on @3
  t.store->publish({"lab", 4, false}, "t");

  int64_t lease = t.store->add_lease({"lab", 2, false}, "bootsrv-1", "pc01");
  auto live = t.store->live_leases("lab");
  REQUIRE(live.size() == 1);
  CHECK(live[0].version == 2);
  CHECK(live[0].holder == "bootsrv-1");
  CHECK_THROWS_WITH(t.store->remove_version({"lab", 2, false}),
                    Catch::Contains("lab@2 is leased by bootsrv-1 (session pc01)"));

  auto decisions = t.store->prune("lab", 1, /*apply=*/true);
  REQUIRE(decisions.size() == 4);
  auto reasons = [&](int64_t n) { return decisions[static_cast<size_t>(n - 1)].reasons; };
  CHECK(reasons(1) == std::vector<std::string>{"parent of @2"});
  CHECK(reasons(2) == std::vector<std::string>{"leased by bootsrv-1 (session pc01)"});
  CHECK(reasons(3) == std::vector<std::string>{"parent of @4"});
  CHECK(reasons(4) == std::vector<std::string>{"among the newest 1", "active"});
  for (const auto& d : decisions) CHECK(d.keep);
  CHECK(t.numbers("lab") == std::vector<int64_t>{1, 2, 3, 4});

  // An expired lease (no heartbeat for longer than the TTL) protects nothing.
  {
    Database db(t.path + "/catalog.db", false);
    db.prepare("UPDATE leases SET heartbeat_at = heartbeat_at - ?").bind(1, Store::kLeaseTtlSeconds + 5).run();
  }
  CHECK(t.store->live_leases("lab").empty());
  decisions = t.store->prune("lab", 1, /*apply=*/false);
  CHECK_FALSE(decisions[0].keep);
  CHECK_FALSE(decisions[1].keep);
  // A heartbeat renews it.
  t.store->heartbeat("bootsrv-1");
  CHECK(t.store->live_leases("lab").size() == 1);
  CHECK(t.store->prune("lab", 1, false)[1].keep);

  t.store->release_lease(lease);
  CHECK(t.store->live_leases("lab").empty());
  std::string file1 = t.store->path_of(t.store->version({"lab", 1, false}));
  std::string file2 = t.store->path_of(t.store->version({"lab", 2, false}));
  decisions = t.store->prune("lab", 1, /*apply=*/true);
  CHECK_FALSE(decisions[0].keep);
  CHECK_FALSE(decisions[1].keep);
  CHECK(t.numbers("lab") == std::vector<int64_t>{3, 4});
  CHECK_FALSE(fs::exists(file1));
  CHECK_FALSE(fs::exists(file2));
  CHECK(t.store->verify(std::nullopt).problems.empty());
  CHECK(t.store->gc(false).removed.empty());
}

TEST_CASE("remove_version refuses the active version, the rollback target and parents", "[store]") {
  TempStore t;
  for (uint8_t m = 1; m <= 3; ++m) t.import("lab", m);
  t.store->publish({"lab", 1, false}, "t");
  t.store->publish({"lab", 2, false}, "t");
  CHECK_THROWS_WITH(t.store->remove_version({"lab", 2, false}), Catch::Contains("lab@2 is the active version"));
  CHECK_THROWS_WITH(t.store->remove_version({"lab", 1, false}), Catch::Contains("lab@1 is the rollback target"));
  t.store->publish({"lab", 3, false}, "t");
  CHECK_THROWS_WITH(t.store->remove_version({"lab", 2, false}), Catch::Contains("lab@2 is the rollback target"));
  t.store->rollback("lab", 3, "t");
  CHECK_THROWS_WITH(t.store->remove_version({"lab", 1, false}), Catch::Contains("lab@1 is the parent of @2"));
  CHECK(t.numbers("lab") == std::vector<int64_t>{1, 2, 3});
}

TEST_CASE("publish and rollback are each one transaction", "[store]") {
  TempStore t;
  for (uint8_t m = 1; m <= 3; ++m) t.import("lab", m);
  t.store->publish({"lab", 1, false}, "t");
  t.store->publish({"lab", 2, false}, "t");
  Database db(t.path + "/catalog.db", false);
  auto state = [&] {
    auto info = t.store->image("lab");
    return std::make_tuple(info.active, info.previous, t.store->history("lab").size());
  };
  const auto before = state();
  REQUIRE(std::get<0>(before) == 2);

  // The history row fails after the active version was updated: the update
  // must be undone with it.
  db.exec("CREATE TRIGGER no_history BEFORE INSERT ON activations BEGIN SELECT RAISE(ABORT, 'injected failure'); END");
  CHECK_THROWS_WITH(t.store->publish({"lab", 3, false}, "t"), Catch::Contains("injected failure"));
  CHECK(state() == before);
  CHECK_THROWS_WITH(t.store->rollback("lab", std::nullopt, "t"), Catch::Contains("injected failure"));
  CHECK(state() == before);
  CHECK_THROWS_WITH(t.store->rollback("lab", 3, "t"), Catch::Contains("injected failure"));
  CHECK(state() == before);
  db.exec("DROP TRIGGER no_history");

  // The other way round: the update of the active version fails.
  db.exec("CREATE TRIGGER no_switch BEFORE UPDATE OF active_version ON images BEGIN SELECT RAISE(ABORT, 'injected failure'); END");
  CHECK_THROWS_WITH(t.store->publish({"lab", 3, false}, "t"), Catch::Contains("injected failure"));
  CHECK(state() == before);
  CHECK_THROWS_WITH(t.store->rollback("lab", std::nullopt, "t"), Catch::Contains("injected failure"));
  CHECK(state() == before);
  db.exec("DROP TRIGGER no_switch");

  // And without failures both work, the catalog intact.
  CHECK(t.store->publish({"lab", 3, false}, "t").now == 3);
  CHECK(t.store->rollback("lab", std::nullopt, "t").now == 2);
  auto check = db.prepare("PRAGMA integrity_check");
  REQUIRE(check.step());
  CHECK(check.text(0) == "ok");
}

TEST_CASE("publish waits for another writer of the catalog instead of failing", "[store]") {
  TempStore t;
  t.import("lab", 1);
  Database other(t.path + "/catalog.db", false);
  other.exec("BEGIN IMMEDIATE");  // holds the catalog's write lock
  auto start = std::chrono::steady_clock::now();
  std::thread release([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    other.exec("COMMIT");
  });
  ActivationResult r;
  CHECK_NOTHROW(r = t.store->publish({"lab", 1, false}, "t"));
  release.join();
  CHECK(std::chrono::steady_clock::now() - start >= std::chrono::milliseconds(250));
  CHECK(r.now == 1);
  CHECK(t.store->image("lab").active == 1);
}

TEST_CASE("opening a store removes what crashed writers left", "[store]") {
  TempStore t;
  auto v1 = t.import("lab", 1).version;
  // A file in tmp/ of a dead writer, the converter's own temporary, a version
  // file no row refers to, and a file that is not ours.
  for (const char* name : {"tmp/lab@2.vhd", "tmp/.lab@2.vhd.tmp-99999", "images/lab/0002.vhd", "tmp/README"}) {
    fs::copy_file(t.store->path_of(v1), t.path + "/" + name);
  }
  t.store.reset();
  t.store = Store::open(t.path);
  auto report = t.store->cleanup_report();
  REQUIRE(report.size() == 3);
  CHECK_THAT(report[0], Catch::Contains("removed tmp/.lab@2.vhd.tmp-99999"));
  CHECK_THAT(report[1], Catch::Contains("removed tmp/lab@2.vhd"));
  CHECK_THAT(report[2], Catch::Contains("removed images/lab/0002.vhd"));
  CHECK(fs::exists(t.path + "/tmp/README"));
  CHECK_FALSE(fs::exists(t.path + "/images/lab/0002.vhd"));
  CHECK(fs::exists(t.store->path_of(v1)));

  // While a writer holds the image's lock its files are not leftovers.
  {
    auto writer = util::FileLock::acquire(t.path + "/locks/lab.lock");
    fs::copy_file(t.store->path_of(v1), t.path + "/tmp/lab@2.vhd");
    fs::copy_file(t.store->path_of(v1), t.path + "/images/lab/0002.vhd");
    t.store.reset();
    t.store = Store::open(t.path);
    CHECK(t.store->cleanup_report().empty());
    CHECK(fs::exists(t.path + "/tmp/lab@2.vhd"));
    CHECK(fs::exists(t.path + "/images/lab/0002.vhd"));
    CHECK(t.store->gc(false).removed.empty());
  }
  t.store.reset();
  t.store = Store::open(t.path);
  CHECK(t.store->cleanup_report().size() == 2);
  CHECK(t.import("lab", 2).version.number == 2);
}

// Another process changing the catalog between a command's checks and its
// write: `other` holds the write lock while the command checks, then makes
// its change and commits; the command must decide on what is there when it
// writes. (What `imgtool publish` and `imgtool prune` racing each other do.)
namespace {

template <typename Change>
std::thread change_after(Database& other, Change change) {
  other.exec("BEGIN IMMEDIATE");
  return std::thread([&other, change] {
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    change(other);
    other.exec("COMMIT");
  });
}

void publish_behind_its_back(Database& db, int64_t version) {
  db.prepare("UPDATE images SET active_version = ? WHERE name = 'lab'").bind(1, version).run();
  db.prepare("INSERT INTO activations (image_id, version, previous, action, at_ms, by) "
             "SELECT id, ?, NULL, 'publish', 0, 'other' FROM images WHERE name = 'lab'")
      .bind(1, version)
      .run();
}

}  // namespace

TEST_CASE("publish never makes a version active that was removed meanwhile", "[store]") {
  TempStore t;
  for (uint8_t m = 1; m <= 3; ++m) t.import("lab", m);
  Database other(t.path + "/catalog.db", false);
  auto remover = change_after(other, [](Database& db) {
    db.exec("DELETE FROM versions WHERE number = 3");  // what `prune lab@3` commits
  });
  CHECK_THROWS_WITH(t.store->publish({"lab", 3, false}, "t"), Catch::Contains("lab@3: no such version"));
  remover.join();
  auto info = t.store->image("lab");
  CHECK_FALSE(info.active.has_value());
  CHECK(t.store->history("lab").empty());
}

TEST_CASE("removing a version never removes one published meanwhile", "[store]") {
  TempStore t;
  for (uint8_t m = 1; m <= 3; ++m) t.import("lab", m);
  t.store->squash({"lab", 3, false}, {});  // @4: @1..@3 are needed by nothing
  t.store->publish({"lab", 4, false}, "t");
  Database other(t.path + "/catalog.db", false);

  SECTION("prune IMAGE@N") {
    auto publisher = change_after(other, [](Database& db) { publish_behind_its_back(db, 3); });
    CHECK_THROWS_WITH(t.store->remove_version({"lab", 3, false}), Catch::Contains("lab@3 is the active version"));
    publisher.join();
  }
  SECTION("prune --keep") {
    auto publisher = change_after(other, [](Database& db) { publish_behind_its_back(db, 3); });
    auto decisions = t.store->prune("lab", 1, /*apply=*/true);
    publisher.join();
    REQUIRE(decisions.size() == 4);
    CHECK(decisions[2].keep);
  }
  SECTION("a lease taken meanwhile") {
    auto leaser = change_after(other, [](Database& db) {
      db.exec("INSERT INTO leases (image_id, version, holder, session, acquired_at, heartbeat_at) "
              "SELECT id, 3, 'bootsrv', 'pc01', strftime('%s', 'now'), strftime('%s', 'now') FROM images WHERE name = 'lab'");
    });
    auto decisions = t.store->prune("lab", 1, /*apply=*/true);
    leaser.join();
    REQUIRE(decisions.size() == 4);
    CHECK(decisions[2].keep);
  }
  // Whatever is active or leased still has its row and its file.
  auto active = t.store->image("lab").active;
  REQUIRE(active.has_value());
  CHECK_NOTHROW(t.store->version({"lab", *active, false}));
  for (const auto& l : t.store->live_leases("lab")) {
    VersionInfo v;
    CHECK_NOTHROW(v = t.store->version({"lab", l.version, false}));
    CHECK(fs::exists(t.store->path_of(v)));
  }
}

TEST_CASE("clients: add, find by any MAC form or name, list, set, remove", "[store][clients]") {
  TempStore t;
  t.import("lab", 1);
  t.import("kiosk", 2);
  auto a = t.store->add_client("52-54-00-AA-BB-01", std::nullopt, "lab", std::nullopt);
  CHECK(a.mac == "52:54:00:aa:bb:01");
  CHECK(a.name == "52-54-00-aa-bb-01");  // the default name is the MAC with '-'
  CHECK_FALSE(a.cmdline.has_value());
  auto b = t.store->add_client("5254.00aa.bb02", std::string("pc02"), "lab", std::string("quiet loglevel=3"));
  CHECK(b.name == "pc02");
  CHECK(b.cmdline == "quiet loglevel=3");

  CHECK(t.store->find_client("525400aabb02")->name == "pc02");
  CHECK(t.store->find_client("52:54:00:AA:BB:02")->name == "pc02");
  CHECK(t.store->find_client("pc02")->mac == "52:54:00:aa:bb:02");
  CHECK(t.store->find_client("52-54-00-aa-bb-01")->mac == "52:54:00:aa:bb:01");
  CHECK_FALSE(t.store->find_client("pc03").has_value());
  auto all = t.store->clients();
  REQUIRE(all.size() == 2);
  CHECK(all[0].name == "52-54-00-aa-bb-01");
  CHECK(all[1].name == "pc02");

  ClientChange change;
  change.name = "front-desk";
  change.image = "kiosk";
  change.cmdline = "";
  auto changed = t.store->set_client("pc02", change);
  CHECK(changed.name == "front-desk");
  CHECK(changed.image == "kiosk");
  CHECK_FALSE(changed.cmdline.has_value());
  CHECK(t.store->client("52:54:00:aa:bb:02").image == "kiosk");
  CHECK_FALSE(changed.cache_quota.has_value());
  // A client's own write cache quota: set, read back, 0 removes it.
  ClientChange quota;
  quota.cache_quota = uint64_t{20} << 30;
  CHECK(t.store->set_client("front-desk", quota).cache_quota == uint64_t{20} << 30);
  CHECK(t.store->find_client("front-desk")->cache_quota == uint64_t{20} << 30);
  CHECK(t.store->find_client("front-desk")->image == "kiosk");  // nothing else changed
  quota.cache_quota = 0;
  CHECK_FALSE(t.store->set_client("front-desk", quota).cache_quota.has_value());
  CHECK_FALSE(t.store->clients()[1].cache_quota.has_value());

  t.store->remove_client("front-desk");
  CHECK_FALSE(t.store->find_client("52:54:00:aa:bb:02").has_value());
  CHECK(t.store->clients().size() == 1);
}

TEST_CASE("client mistakes name the MAC, name or image that is wrong", "[store][clients]") {
  TempStore t;
  t.import("lab", 1);
  t.store->add_client("52:54:00:00:00:01", std::string("pc01"), "lab", std::nullopt);
  CHECK_THROWS_WITH(t.store->add_client("52:54:00:00:00:zz", std::nullopt, "lab", std::nullopt),
                    Catch::Contains("'52:54:00:00:00:zz' is not a MAC address"));
  CHECK_THROWS_WITH(t.store->add_client("52:54:00:00:00:02", std::nullopt, "nope", std::nullopt),
                    Catch::Contains("client 52:54:00:00:00:02: no image 'nope'") && Catch::Contains("images: lab"));
  CHECK_THROWS_WITH(t.store->add_client("525400000001", std::nullopt, "lab", std::nullopt),
                    Catch::Contains("client 52:54:00:00:00:01 already exists (named 'pc01')"));
  CHECK_THROWS_WITH(t.store->add_client("52:54:00:00:00:02", std::string("pc01"), "lab", std::nullopt),
                    Catch::Contains("the name 'pc01' is taken by 52:54:00:00:00:01"));
  CHECK_THROWS_WITH(t.store->add_client("52:54:00:00:00:02", std::string("pc/2"), "lab", std::nullopt),
                    Catch::Contains("client name 'pc/2': '/' is not allowed"));
  CHECK_THROWS_WITH(t.store->add_client("52:54:00:00:00:02", std::string("52:54:00:00:00:03"), "lab", std::nullopt),
                    Catch::Contains("':' is not allowed"));
  CHECK_THROWS_WITH(t.store->add_client("52:54:00:00:00:02", std::string("525400000003"), "lab", std::nullopt),
                    Catch::Contains("reads as the MAC address 52:54:00:00:00:03"));
  CHECK_THROWS_WITH(t.store->add_client("52:54:00:00:00:02", std::nullopt, "lab", std::string("a\nchain evil")),
                    Catch::Contains("kernel command line"));
  CHECK_THROWS_WITH(t.store->client("pc09"), Catch::Contains("no client 'pc09'") && Catch::Contains("pc01 (52:54:00:00:00:01)"));
  ClientChange to_nowhere;
  to_nowhere.image = "gone";
  CHECK_THROWS_WITH(t.store->set_client("pc01", to_nowhere), Catch::Contains("no image 'gone'"));
  CHECK(t.store->client("pc01").image == "lab");  // nothing changed
  CHECK_THROWS_WITH(t.store->remove_client("pc09"), Catch::Contains("no client 'pc09'"));
}

TEST_CASE("a store made before clients existed upgrades on open", "[store][clients]") {
  TempStore t;
  t.import("lab", 1);
  t.store.reset();
  {
    // Back to schema 1, as an older imgtool left it.
    Database db(t.path + "/catalog.db", false);
    db.exec("DROP TABLE clients");
    db.exec("ALTER TABLE images DROP COLUMN boot_mode");  // schema 3's
    db.exec("DROP TABLE channels; DROP TABLE groups; DROP TABLE schedules");  // schema 5's
    db.exec("PRAGMA user_version = 1");
  }
  t.store = Store::open(t.path);
  auto c = t.store->add_client("52:54:00:00:00:01", std::nullopt, "lab", std::nullopt);
  CHECK(c.name == "52-54-00-00-00-01");
  Database db(t.path + "/catalog.db", false);
  auto st = db.prepare("PRAGMA user_version");
  st.step();
  CHECK(st.int64(0) == 6);  // and on through every later migration
  CHECK(t.store->versions("lab").size() == 1);  // what was there is still there
  CHECK_FALSE(c.cache_quota.has_value());
}
