// Channels, groups, pins and scheduled publishes (store/channels.h): the
// resolution order client pin -> group pin -> group channel -> production,
// per-channel publish/promote/rollback, pins and schedules keeping versions
// from prune, pins to pruned versions refused, a schedule applied once, the
// migration of a schema-4 store, and the errors that name what exists.
#include <fcntl.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <filesystem>

#include "store/sqlite.h"
#include "store/store.h"
#include "util/error.h"
#include "util/file.h"
#include "vhd/raw_disk.h"

using namespace bootfleet;
using namespace bootfleet::store;
namespace fs = std::filesystem;

namespace {

int64_t now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// A store with image "lab" at versions 1..count (1 published), each a 4 MiB
// disk whose first sector is its number, and clients pc01 (production) and
// pc02 (group "testers", channel test).
struct ChannelStore {
  fs::path dir;
  std::unique_ptr<Store> store;
  explicit ChannelStore(int count = 3) {
    char tmpl[] = "/tmp/bootfleet-channels-unit-XXXXXX";
    REQUIRE(::mkdtemp(tmpl) != nullptr);
    dir = tmpl;
    Store::init((dir / "s").string());
    store = Store::open((dir / "s").string());
    for (int n = 1; n <= count; ++n) {
      std::string raw = (dir / "d.raw").string();
      auto fd = util::open_file(raw, O_RDWR | O_CREAT | O_TRUNC);
      uint8_t sector[512];
      std::fill(std::begin(sector), std::end(sector), static_cast<uint8_t>(n));
      util::pwrite_full(fd.get(), sector, sizeof sector, 0, raw);
      REQUIRE(::ftruncate(fd.get(), 4 << 20) == 0);
      ImportOptions o;
      o.publish = n == 1;
      store->import_disk("lab", *vhd::RawDisk::open(raw), o);
    }
    store->add_client("52:54:00:00:00:01", std::string("pc01"), "lab", std::nullopt);
    store->add_client("52:54:00:00:00:02", std::string("pc02"), "lab", std::nullopt);
    store->add_group("testers", "lab", kTestChannel, std::nullopt);
    store->set_client_group("pc02", std::string("testers"));
  }
  ~ChannelStore() {
    store.reset();
    fs::remove_all(dir);
  }
  BootResolution boots(const std::string& client) { return store->resolve_boot(store->client(client)); }
};

std::string error_of(const std::function<void()>& fn) {
  try {
    fn();
  } catch (const util::Error& e) {
    return e.what();
  }
  return "(no error)";
}

}  // namespace

TEST_CASE("resolution: client pin, then group pin, then group channel, then production", "[store][channels]") {
  ChannelStore t;
  // A fresh test channel follows production.
  CHECK(t.boots("pc02").version == 1);
  CHECK(t.boots("pc02").source == "production");
  t.store->publish_channel({"lab", 2, false}, kTestChannel, "me");
  auto r = t.boots("pc02");
  CHECK(r.version == 2);
  CHECK(r.source == "channel");
  CHECK(r.channel == "test");
  CHECK(r.describe() == "lab@2 (channel test of group testers)");
  CHECK(t.boots("pc01").version == 1);  // production's client does not move
  t.store->set_group("testers", GroupChange{std::nullopt, std::nullopt, std::optional<int64_t>(3)});
  CHECK(t.boots("pc02").version == 3);
  CHECK(t.boots("pc02").source == "group pin");
  t.store->set_client_pin("pc02", 1);
  CHECK(t.boots("pc02").version == 1);
  CHECK(t.boots("pc02").source == "client pin");
  t.store->set_client_pin("pc02", std::nullopt);
  CHECK(t.boots("pc02").source == "group pin");
  // A client with no group: its pin, else production.
  t.store->set_client_pin("pc01", 3);
  CHECK(t.boots("pc01").version == 3);
  t.store->set_client_pin("pc01", std::nullopt);
  CHECK(t.boots("pc01").version == 1);
  // Leaving the group: production again.
  t.store->set_client_group("pc02", std::nullopt);
  CHECK(t.boots("pc02").version == 1);
  CHECK(t.boots("pc02").source == "production");
}

TEST_CASE("publish on a channel, promote, and rollback per channel", "[store][channels]") {
  ChannelStore t;
  auto r = t.store->publish_channel({"lab", 2, false}, kTestChannel, "me");
  CHECK(r.changed);
  CHECK_FALSE(r.before.has_value());
  CHECK(t.store->image("lab").active == 1);  // production untouched
  CHECK_FALSE(t.store->publish_channel({"lab", 2, false}, kTestChannel, "me").changed);
  t.store->publish_channel({"lab", 3, false}, kTestChannel, "me");
  auto p = t.store->promote("lab", kTestChannel, kProductionChannel, "boss");
  CHECK(p.before == 1);
  CHECK(p.now == 3);
  CHECK(t.store->image("lab").active == 3);
  CHECK(t.boots("pc01").version == 3);
  // Rolling back test leaves production alone, and the reverse.
  auto rb = t.store->rollback_channel("lab", kTestChannel, std::nullopt, "me");
  CHECK(rb.now == 2);
  CHECK(t.store->image("lab").active == 3);
  CHECK(t.store->rollback_channel("lab", kProductionChannel, std::nullopt, "me").now == 1);
  CHECK(t.store->channel("lab", kTestChannel).version == 2);
  // History: every change with its channel and who.
  auto h = t.store->history("lab");
  REQUIRE(h.size() == 6);
  CHECK(h[3].action == "promote");
  CHECK(h[3].channel == "production");
  CHECK(h[3].by == "boss");
  CHECK(h[4].channel == "test");
  CHECK(h[4].action == "rollback");
}

TEST_CASE("unknown channels and groups: the error names those that exist", "[store][channels]") {
  ChannelStore t;
  CHECK(error_of([&] { t.store->publish_channel({"lab", 2, false}, "beta", "me"); }) ==
        "lab: no channel 'beta'; channels: production, test (publish with --channel beta --new-channel to make it)");
  t.store->publish_channel({"lab", 2, false}, "beta", "me", /*create=*/true);
  CHECK(error_of([&] { t.store->promote("lab", "gamma", kProductionChannel, "me"); })
            .find("channels: production, test, beta") != std::string::npos);
  CHECK(error_of([&] { t.store->add_group("g", "lab", "gamma", std::nullopt); })
            .find("no channel 'gamma'; channels: production, test, beta") != std::string::npos);
  CHECK(error_of([&] { t.store->set_client_group("pc01", std::string("nope")); }) == "no group 'nope'; groups: testers");
  CHECK(error_of([&] { t.store->promote("lab", "test", "test", "me"); }).find("to itself") != std::string::npos);
  // An empty channel cannot be promoted.
  t.store->add_group("other", "lab", kProductionChannel, std::nullopt);
  CHECK(error_of([&] { t.store->rollback_channel("lab", kTestChannel, std::nullopt, "me"); })
            .find("nothing was ever published to it") != std::string::npos);
  CHECK(error_of([&] { t.store->promote("lab", kTestChannel, kProductionChannel, "me"); })
            .find("channel 'test' has no version yet") != std::string::npos);
  CHECK_THROWS_AS(validate_channel_name("a b"), util::Error);
  CHECK_THROWS_AS(validate_group_name("none"), util::Error);
  // A group with clients is not removed; the error names them.
  CHECK(error_of([&] { t.store->remove_group("testers"); }).find("still has clients: pc02") != std::string::npos);
  t.store->remove_group("other");
  CHECK(t.store->groups().size() == 1);
}

TEST_CASE("pins, channels and schedules keep their versions from prune; a pin to a pruned version is refused",
          "[store][channels]") {
  ChannelStore t(5);
  t.store->publish({"lab", 5, false}, "me");  // production @5, rollback target @1
  t.store->publish_channel({"lab", 4, false}, kTestChannel, "me");
  t.store->set_client_pin("pc01", 2);
  auto kept = t.store->kept_versions("lab");
  CHECK(kept[4] == std::vector<std::string>{"channel test"});
  CHECK(kept[2] == std::vector<std::string>{"pinned by client pc01"});
  CHECK(error_of([&] { t.store->remove_version({"lab", 2, false}); }).find("pinned by client pc01") !=
        std::string::npos);
  t.store->set_client_pin("pc01", std::nullopt);
  t.store->add_schedule({"lab", 3, false}, kProductionChannel, now_ms() + 3600000, "me");
  auto decisions = t.store->prune("lab", 0, /*apply=*/true);
  // Everything is a parent of @5 in one chain; the reasons still show.
  for (const auto& d : decisions) {
    CHECK(d.keep);
    if (d.number == 3) CHECK(d.reasons.front().find("scheduled for production") != std::string::npos);
  }
  auto dry = t.store->prune("lab", 0, false);
  CHECK(dry[3].reasons.front() == "channel test");  // @4
  // Versions that do not exist cannot be pinned; the error lists those that do.
  CHECK(error_of([&] { t.store->set_client_pin("pc01", 9); }).find("lab@9: no such version; versions: 1, 2, 3, 4, 5") !=
        std::string::npos);
  CHECK(error_of([&] { t.store->add_group("g9", "lab", kProductionChannel, 9); }).find("versions: 1, 2, 3, 4, 5") !=
        std::string::npos);
}

TEST_CASE("a pin to a version pruned away is refused, naming the versions there are", "[store][channels]") {
  ChannelStore t(3);
  // @3 is a leaf nobody needs: remove it, then try to pin it.
  t.store->remove_version({"lab", 3, false});
  CHECK(error_of([&] { t.store->set_client_pin("pc01", 3); }) ==
        "client pc01: cannot pin: lab@3: no such version; versions: 1, 2");
  CHECK(error_of([&] { t.store->set_group("testers", GroupChange{std::nullopt, std::nullopt, std::optional<int64_t>(3)}); })
            .find("lab@3: no such version") != std::string::npos);
}

TEST_CASE("a scheduled publish is applied once, at its time; cancelled ones never", "[store][channels]") {
  ChannelStore t;
  int64_t now = now_ms();
  auto s1 = t.store->add_schedule({"lab", 2, false}, kTestChannel, now + 60000, "api:ci");
  auto s2 = t.store->add_schedule({"lab", 3, false}, kProductionChannel, now + 120000, "me");
  CHECK(t.store->schedules(std::nullopt, false).size() == 2);
  CHECK(t.store->apply_due_schedules(now).empty());  // not yet
  auto done = t.store->apply_due_schedules(now + 61000);
  REQUIRE(done.size() == 1);
  CHECK(done[0].id == s1.id);
  CHECK(done[0].state == "done");
  CHECK(t.store->channel("lab", kTestChannel).version == 2);
  CHECK(t.store->apply_due_schedules(now + 62000).empty());  // once
  t.store->cancel_schedule(s2.id, "me");
  CHECK(t.store->apply_due_schedules(now + 200000).empty());
  CHECK(t.store->image("lab").active == 1);
  CHECK(error_of([&] { t.store->cancel_schedule(s2.id, "me"); }).find("is cancelled") != std::string::npos);
  CHECK(error_of([&] { t.store->cancel_schedule(99, "me"); }) == "no schedule #99; nothing is scheduled");
  CHECK(error_of([&] { t.store->add_schedule({"lab", 2, false}, kProductionChannel, now - 1000, "me"); })
            .find("is not in the future") != std::string::npos);
  auto h = t.store->history("lab");
  CHECK(h.back().by == "schedule #" + std::to_string(s1.id) + " of api:ci");
  CHECK(h.back().channel == "test");
  CHECK(t.store->schedules("lab", true).size() == 2);
}

TEST_CASE("schedule times: absolute UTC, relative, Unix; mistakes name the forms", "[store][channels]") {
  CHECK(parse_schedule_time("2026-11-26T19:00:00Z", 0, "--at") == 1795719600000);
  CHECK(parse_schedule_time("2026-11-26 19:00", 0, "--at") == 1795719600000);
  CHECK(parse_schedule_time("+15m", 1000, "--at") == 1000 + 900000);
  CHECK(parse_schedule_time("+90", 0, "--at") == 90000);
  CHECK(parse_schedule_time("@1795719600", 0, "--at") == 1795719600000);
  CHECK(error_of([] { parse_schedule_time("tomorrow", 0, "--at"); }).find("use 2026-11-26T19:00:00Z") != std::string::npos);
  CHECK(error_of([] { parse_schedule_time("+5w", 0, "--at"); }).find("unknown unit 'w'") != std::string::npos);
  CHECK(error_of([] { parse_schedule_time("2026-11-26T19:00+02:00", 0, "--at"); }).find("times are UTC") != std::string::npos);
  CHECK(error_of([] { parse_schedule_time("2026-13-01T00:00Z", 0, "--at"); }).find("not a valid date") != std::string::npos);
}

TEST_CASE("a schema-4 store migrates: its active version becomes production's, its history production's",
          "[store][channels]") {
  ChannelStore t(2);
  t.store->publish({"lab", 2, false}, "me");
  t.store.reset();
  {
    // Back to schema 4 as the imgtool before channels left it.
    Database db((t.dir / "s" / "catalog.db").string(), false);
    db.exec("DROP TABLE channels; DROP TABLE groups; DROP TABLE schedules;"
            "ALTER TABLE clients DROP COLUMN group_name; ALTER TABLE clients DROP COLUMN pin;"
            "CREATE TABLE a4 (id INTEGER PRIMARY KEY, image_id INTEGER NOT NULL REFERENCES images(id) ON DELETE CASCADE,"
            " version INTEGER NOT NULL, previous INTEGER, action TEXT NOT NULL CHECK (action IN ('publish', 'rollback')),"
            " at_ms INTEGER NOT NULL, by TEXT NOT NULL);"
            "INSERT INTO a4 SELECT id, image_id, version, previous, action, at_ms, by FROM activations;"
            "DROP TABLE activations; ALTER TABLE a4 RENAME TO activations;"
            "PRAGMA user_version = 4");
  }
  t.store = Store::open((t.dir / "s").string());
  CHECK(t.store->channel("lab", kProductionChannel).version == 2);
  CHECK(t.store->channel("lab", kProductionChannel).previous == 1);
  CHECK_FALSE(t.store->channel("lab", kTestChannel).version.has_value());
  auto h = t.store->history("lab");
  REQUIRE(h.size() == 2);
  CHECK(h[1].channel == "production");
  CHECK(t.store->rollback("lab", std::nullopt, "me").now == 1);
  CHECK_FALSE(t.store->client("pc02").group.has_value());  // the column came back empty
}
