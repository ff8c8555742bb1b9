// Maintenance sessions (store/maintenance.h, serve/maintenance.h): the
// catalog record and its refusals, prune and remove_version keeping the
// base, the record ending in the version's own transaction, kept sessions
// in the session manager (boots continue them, idling does not end them,
// the mark survives a restart, a frozen one refuses attaches), and a whole
// commit in-process: written and zeroed sectors become the next version.
#include <fcntl.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <filesystem>

#include "block/session.h"
#include "serve/maintenance.h"
#include "store/store.h"
#include "util/error.h"
#include "util/file.h"
#include "vhd/raw_disk.h"

using namespace bootfleet;
namespace fs = std::filesystem;

namespace {

constexpr uint64_t MiB = 1u << 20;

// A store with lab@1 (published) and lab@2 (a leaf), 8 MiB each with a
// marker byte over the first 64 KiB, and clients pc01, pc02.
struct Lab {
  fs::path dir;
  std::unique_ptr<store::Store> s;
  Lab() {
    char tmpl[] = "/tmp/bootfleet-maint-unit-XXXXXX";
    REQUIRE(::mkdtemp(tmpl) != nullptr);
    dir = tmpl;
    store::Store::init((dir / "s").string());
    s = store::Store::open((dir / "s").string());
    for (uint8_t marker : {0x11, 0x22}) {
      std::string file = (dir / "d.raw").string();
      auto fd = util::open_file(file, O_RDWR | O_CREAT | O_TRUNC);
      std::vector<uint8_t> data(65536, marker);
      util::pwrite_full(fd.get(), data.data(), data.size(), 0, file);
      REQUIRE(::ftruncate(fd.get(), 8 * MiB) == 0);
      s->import_disk("lab", *vhd::RawDisk::open(file), {});
    }
    s->publish({"lab", 1, false}, "t");
    s->add_client("52:54:00:00:00:01", "pc01", "lab", std::nullopt);
    s->add_client("52:54:00:00:00:02", "pc02", "lab", std::nullopt);
  }
  ~Lab() {
    s.reset();
    fs::remove_all(dir);
  }
  block::Pin pin(int64_t n, const std::string& keep) {
    auto v = s->version({"lab", n, false});
    return {"lab", n, s->path_of(v), keep};
  }
  block::SessionManager::Options options() {
    block::SessionManager::Options o;
    o.cache_dir = (dir / "cache").string();
    fs::create_directories(o.cache_dir);
    o.idle_timeout = std::chrono::seconds(0);
    return o;
  }
};

}  // namespace

TEST_CASE("maintenance: one per image and per client; unknown names are refused naming what exists", "[store][maintenance]") {
  Lab t;
  CHECK_THROWS_WITH(t.s->maintenance("lab"), Catch::Contains("lab has no maintenance session (no image has one)"));
  CHECK_THROWS_WITH(t.s->start_maintenance("nope", "pc01", std::nullopt, "t"), Catch::Contains("images: lab"));
  CHECK_THROWS_WITH(t.s->start_maintenance("lab", "pc09", std::nullopt, "t"),
                    Catch::Contains("no client 'pc09'") && Catch::Contains("pc01 (52:54:00:00:00:01)"));
  CHECK_THROWS_WITH(t.s->start_maintenance("lab", "pc01", 5, "t"), Catch::Contains("versions: 1, 2"));
  auto m = t.s->start_maintenance("lab", "52-54-00-00-00-01", std::nullopt, "admin");
  CHECK(m.client == "pc01");  // by MAC, recorded by name
  CHECK(m.base == 1);         // the active version
  CHECK(m.token.size() == 36);
  CHECK_THROWS_WITH(t.s->start_maintenance("lab", "pc02", 2, "t"),
                    Catch::Contains("lab already has a maintenance session (pc01 on lab@1"));
  CHECK(t.s->maintenance_of_client("pc01")->token == m.token);
  store::ClientChange rename;
  rename.name = "pc09";
  CHECK_THROWS_WITH(t.s->set_client("pc01", rename), Catch::Contains("commit or discard it before renaming"));
  CHECK_THROWS_WITH(t.s->remove_client("pc01"), Catch::Contains("before removing the client"));
  CHECK_FALSE(t.s->maintenance_of_client("pc02"));
  CHECK_FALSE(t.s->end_maintenance("lab", "not-the-token"));
  CHECK(t.s->end_maintenance("lab", m.token));
  CHECK(t.s->maintenance_sessions().empty());
}

TEST_CASE("maintenance: its base is never pruned or removed", "[store][maintenance]") {
  Lab t;
  auto m = t.s->start_maintenance("lab", "pc02", 2, "t");
  bool kept = false;
  for (const auto& d : t.s->prune("lab", 0, /*apply=*/true)) {
    if (d.number != 2) continue;
    kept = d.keep;
    CHECK_THAT(d.reasons.front(), Catch::Contains("base of pc02's maintenance session"));
  }
  CHECK(kept);
  CHECK_THROWS_WITH(t.s->remove_version({"lab", 2, false}), Catch::Contains("base of pc02's maintenance session"));
  REQUIRE(t.s->end_maintenance("lab", m.token));
  t.s->remove_version({"lab", 2, false});  // no longer protected
  CHECK(t.s->versions("lab").size() == 1);
}

TEST_CASE("maintenance: the record ends in the version's transaction, or nothing is stored", "[store][maintenance]") {
  Lab t;
  auto m = t.s->start_maintenance("lab", "pc01", std::nullopt, "t");
  store::ImportOptions o;
  o.ends_maintenance = "stale-token";
  auto disk = t.s->open_version(t.s->version({"lab", 1, false}));
  CHECK_THROWS_WITH(t.s->import_disk("lab", *disk, o), Catch::Contains("maintenance session ended"));
  CHECK(t.s->versions("lab").size() == 2);
  CHECK(t.s->find_maintenance("lab"));
  o.ends_maintenance = m.token;
  auto r = t.s->import_disk("lab", *disk, o);
  CHECK(r.version.number == 3);
  CHECK_FALSE(t.s->find_maintenance("lab"));
}

TEST_CASE("sessions: a kept session continues across boots and restarts and does not idle out", "[block][maintenance]") {
  Lab t;
  std::vector<uint8_t> x(4096, 0x5a);
  bool still_kept = true;
  auto o = t.options();
  o.kept = [&](const block::Pin&) { return still_kept; };
  {
    block::SessionManager m(o);
    m.recover([](const block::Pin& p) { return p; });
    auto a = m.start("lab/pc01", t.pin(1, "tok-1"));
    REQUIRE(a->write(MiB, 4096, x.data(), false) == 0);
    REQUIRE(a->flush() == 0);
    CHECK(m.start("lab/pc01", t.pin(1, "tok-1")) == a);  // a reboot continues it
    CHECK(m.expire_idle().empty());                     // idle timeout 0, but kept
    still_kept = false;
    CHECK(m.expire_idle() == std::vector<std::string>{"lab/pc01"});
    a = m.start("lab/pc01", t.pin(1, "tok-2"));
    REQUIRE(a->write(MiB, 4096, x.data(), false) == 0);
    REQUIRE(a->flush() == 0);
    still_kept = true;
  }
  block::SessionManager m(o);
  m.recover([](const block::Pin& p) { return p; });
  auto a = m.find("lab/pc01");
  REQUIRE(a);
  CHECK(a->pin().keep == "tok-2");  // the mark is persisted
  CHECK(m.start("lab/pc01", t.pin(1, "tok-2")) == a);
  // Another mark (a new maintenance session) or none: a fresh session.
  auto b = m.start("lab/pc01", t.pin(1, "tok-3"));
  CHECK(b != a);
  CHECK(b->cache().cluster_count() == 0);
  // Frozen (being committed): attaches are refused, boots leave it alone.
  REQUIRE(m.freeze("lab/pc01") == b);
  CHECK_FALSE(m.freeze("lab/pc01"));
  CHECK_THROWS_AS(m.attach("lab/pc01", [&] { return t.pin(1, ""); }), block::SessionGone);
  CHECK(m.start("lab/pc01", t.pin(1, "")) == b);
  m.thaw(b);
  auto c = m.attach("lab/pc01", [&] { return t.pin(1, ""); });
  CHECK(c == b);
  m.detach(c);
}

TEST_CASE("maintenance commit: written and zeroed sectors become the next version", "[serve][maintenance]") {
  Lab t;
  auto m = t.s->start_maintenance("lab", "pc01", std::nullopt, "admin");
  block::SessionManager sessions(t.options());
  sessions.recover([](const block::Pin& p) { return p; });
  serve::MaintenanceCommit c{"installed", "admin@host", false, false};
  CHECK_THROWS_WITH(serve::commit_maintenance(*t.s, sessions, "lab", c), Catch::Contains("pc01 has not booted"));
  auto a = sessions.start("lab/pc01", t.pin(1, m.token));
  CHECK_THROWS_WITH(serve::commit_maintenance(*t.s, sessions, "lab", c), Catch::Contains("written nothing"));
  std::vector<uint8_t> x(8192, 0x77);
  auto conn = sessions.attach("lab/pc01", [&] { return t.pin(1, ""); });
  REQUIRE(conn == a);
  REQUIRE(a->write(4 * MiB, 8192, x.data(), false) == 0);
  REQUIRE(a->trim(0, 4096, false) == 0);  // over lab@1's 0x11
  CHECK_THROWS_AS(serve::commit_maintenance(*t.s, sessions, "lab", c), serve::MaintenanceBusy);
  sessions.detach(conn);
  auto r = serve::commit_maintenance(*t.s, sessions, "lab", c);
  CHECK(r.import.version.number == 3);  // lab@2 existed: the next number
  CHECK(r.import.version.source == "maintenance on pc01 from lab@1");
  CHECK(r.import.version.created_by == "admin@host");
  CHECK_FALSE(t.s->find_maintenance("lab"));
  auto v3 = t.s->open_version(r.import.version);
  std::vector<uint8_t> got(65536);
  v3->read(0, got.data(), got.size());
  CHECK(std::all_of(got.begin(), got.begin() + 4096, [](uint8_t b) { return b == 0; }));  // trimmed: zeros
  CHECK(std::all_of(got.begin() + 4096, got.end(), [](uint8_t b) { return b == 0x11; }));  // lab@1's, not lab@2's
  v3->read(4 * MiB, got.data(), 8192);
  CHECK(std::all_of(got.begin(), got.begin() + 8192, [](uint8_t b) { return b == 0x77; }));
  // The session ended; a reconnect without a boot is refused, naming the commit.
  CHECK_FALSE(sessions.find("lab/pc01"));
  CHECK_THROWS_WITH(sessions.attach("lab/pc01", [&] { return t.pin(1, ""); }), Catch::Contains("committed as lab@3"));
}
