#include <fcntl.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <filesystem>
#include <vector>

#include "store/digests.h"
#include "store/store.h"
#include "store/version_ref.h"
#include "util/error.h"
#include "util/file.h"
#include "vhd/raw_disk.h"

using namespace bootfleet;
using namespace bootfleet::store;
namespace fs = std::filesystem;

TEST_CASE("block digests skip zero blocks and round-trip", "[store]") {
  BlockDigests d(5u << 20);  // 3 blocks, the last 1 MiB
  REQUIRE(d.block_count() == 3);
  CHECK(d.block_length(2) == (1u << 20));
  std::vector<uint8_t> zeros(2u << 20, 0), data(2u << 20, 7);
  d.set_from_data(0, zeros);
  d.set_from_data(1, data);
  CHECK_FALSE(d.get(0).has_value());
  CHECK(d.get(1).has_value());
  CHECK(d.nonzero_blocks() == 1);
  BlockDigests back = BlockDigests::decode(5u << 20, d.encode());
  CHECK(back == d);
  CHECK(back.disk_digest() == d.disk_digest());

  BlockDigests other = d;
  data[12345] = 8;
  other.set_from_data(1, data);
  CHECK(other.disk_digest() != d.disk_digest());
  CHECK(BlockDigests::changed_blocks(d, other) == std::vector<uint32_t>{1});
  other.set_from_data(2, {data.data(), 1u << 20});
  CHECK(BlockDigests::changed_blocks(d, other) == std::vector<uint32_t>{1, 2});
  other.set_from_data(1, zeros);
  CHECK(BlockDigests::changed_blocks(d, other) == std::vector<uint32_t>{1, 2});
}

TEST_CASE("block digest blobs are checked when read back", "[store]") {
  std::vector<uint8_t> bad(35);
  CHECK_THROWS_WITH(BlockDigests::decode(4u << 20, bad), Catch::Contains("36-byte"));
  std::vector<uint8_t> past(36, 0);
  past[3] = 9;  // block 9 of a 2-block disk
  CHECK_THROWS_WITH(BlockDigests::decode(4u << 20, past), Catch::Contains("past the disk"));
}

TEST_CASE("version references and image names", "[store]") {
  auto r = parse_version_ref("lab@3");
  CHECK(r.image == "lab");
  CHECK(r.number == 3);
  CHECK_FALSE(parse_version_ref("lab@active").number.has_value());
  CHECK(parse_version_ref("lab@active").explicit_active);
  CHECK_FALSE(parse_version_ref("lab").number.has_value());
  CHECK_THROWS_WITH(parse_version_ref("lab", true), Catch::Contains("column 4"));
  CHECK_THROWS_WITH(parse_version_ref("lab@x"), Catch::Contains("column 5"));
  CHECK_THROWS_WITH(parse_version_ref("lab@0"), Catch::Contains("numbered from 1"));
  CHECK_THROWS_WITH(parse_version_ref("lab@"), Catch::Contains("column 5"));
  CHECK_THROWS_WITH(validate_image_name("Lab"), Catch::Contains("column 1"));
  CHECK_THROWS_WITH(validate_image_name("a/b"), Catch::Contains("column 2"));
  CHECK_THROWS(validate_image_name("-x"));
  CHECK_THROWS(validate_image_name(std::string(65, 'a')));
  CHECK_NOTHROW(validate_image_name("lab-win10.v2_x"));
}

namespace {

struct TempStore {
  fs::path dir;
  std::unique_ptr<Store> store;
  TempStore() {
    char tmpl[] = "/tmp/bootfleet-store-unit-XXXXXX";
    dir = ::mkdtemp(tmpl);
    Store::init((dir / "s").string());
    store = Store::open((dir / "s").string());
  }
  ~TempStore() { fs::remove_all(dir); }
  // Imports a 4 MiB disk whose first sector holds `marker`.
  VersionInfo import(const std::string& image, uint8_t marker) {
    std::string raw = (dir / "d.raw").string();
    {
      auto fd = util::open_file(raw, O_RDWR | O_CREAT | O_TRUNC);
      std::vector<uint8_t> sector(512, marker);
      util::pwrite_full(fd.get(), sector.data(), sector.size(), 0, raw);
      REQUIRE(::ftruncate(fd.get(), 4 << 20) == 0);
    }
    return store->import_disk(image, *vhd::RawDisk::open(raw), {}).version;
  }
};

}  // namespace

TEST_CASE("rollback walks back through the publishes", "[store]") {
  TempStore t;
  for (uint8_t m = 1; m <= 3; ++m) CHECK(t.import("lab", m).number == m);
  CHECK_THROWS_WITH(t.store->rollback("lab", std::nullopt, "t"), Catch::Contains("no version was ever published"));
  for (int64_t v = 1; v <= 3; ++v) t.store->publish({"lab", v, false}, "t");
  CHECK(t.store->image("lab").active == 3);
  CHECK(t.store->image("lab").previous == 2);
  auto r = t.store->rollback("lab", std::nullopt, "t");
  CHECK(r.before == 3);
  CHECK(r.now == 2);
  CHECK(t.store->rollback("lab", std::nullopt, "t").now == 1);
  CHECK_THROWS_WITH(t.store->rollback("lab", std::nullopt, "t"), Catch::Contains("nothing to roll back to"));
  CHECK(t.store->rollback("lab", 3, "t").now == 3);
  CHECK_FALSE(t.store->publish({"lab", 3, false}, "t").changed);
  CHECK(t.store->history("lab").size() == 6);
}

TEST_CASE("prune keeps leased, active, rollback target and parents", "[store]") {
  TempStore t;
  for (uint8_t m = 1; m <= 4; ++m) t.import("lab", m);
  t.store->publish({"lab", 2, false}, "t");
  int64_t lease = t.store->add_lease({"lab", 1, false}, "test", "pc01");
  auto decisions = t.store->prune("lab", 1, /*apply=*/false);
  REQUIRE(decisions.size() == 4);
  // 4: newest; 2: active; 1: leased and a parent; 3: parent of 4.
  for (const auto& d : decisions) CHECK(d.keep);
  CHECK_THROWS_WITH(t.store->remove_version({"lab", 1, false}), Catch::Contains("leased by test"));
  t.store->release_lease(lease);
  CHECK(t.store->live_leases("lab").empty());
  CHECK_THROWS_WITH(t.store->remove_version({"lab", 3, false}), Catch::Contains("parent of @4"));
  t.store->remove_version({"lab", 4, false});
  CHECK(t.store->versions("lab").size() == 3);
}
