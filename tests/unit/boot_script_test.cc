// Boot scripts as iPXE gets them (serve::BootHttp::handle, no sockets): the
// linux path and the sanboot path, the pinned version and session, the
// client's and the image's boot modes, and the refusals that turn into a
// wait-and-retry script.
#include <fcntl.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>

#include "serve/boot_http.h"
#include "serve/iscsi_targets.h"
#include "support/store_exports_fixture.h"
#include "store/store.h"
#include "util/file.h"
#include "vhd/raw_disk.h"

using namespace bootfleet;
namespace fs = std::filesystem;

namespace {

struct BootFixture : test::StoreExportsFixture {
  std::string get(serve::BootHttp& http, const std::string& path, const std::string& method = "GET") {
    http::Request r;
    r.method = method;
    r.target = path;
    r.headers.emplace_back("host", "10.0.2.2:8080");
    http::Connection c;
    c.local_host = "10.0.2.2";
    c.local_port = 8080;
    auto response = http.handle(r, c);
    CHECK(response.status == 200);
    return response.body;
  }
  std::optional<int64_t> session_version(const std::string& name) {
    for (const auto& s : exports->sessions().sessions()) {
      if (s->name() == name) return s->pin().version;
    }
    return std::nullopt;
  }
};

serve::BootOptions iscsi_options() {
  serve::BootOptions o;
  o.nbd_port = 10809;
  o.iscsi_port = 3260;
  o.iqn_prefix = "iqn.2026-11.org.bootfleet";
  return o;
}

}  // namespace

TEST_CASE("boot modes: the image's, a client's own, and following the image again", "[store][boot]") {
  BootFixture f;
  f.add_version("lab", false);
  auto& s = *f.store;
  CHECK(s.image("lab").boot_mode == store::BootMode::kLinux);  // the default
  auto c = s.add_client("52:54:00:00:00:01", std::string("pc01"), "lab", std::nullopt);
  CHECK_FALSE(c.boot_mode.has_value());
  CHECK(s.effective_boot_mode(c) == store::BootMode::kLinux);
  s.set_image_boot_mode("lab", store::BootMode::kSanboot);
  CHECK(s.image("lab").boot_mode == store::BootMode::kSanboot);
  CHECK(s.effective_boot_mode(s.client("pc01")) == store::BootMode::kSanboot);
  store::ClientChange own;
  own.boot_mode = store::BootMode::kLinux;
  CHECK(s.set_client("pc01", own).boot_mode == store::BootMode::kLinux);
  CHECK(s.effective_boot_mode(s.client("pc01")) == store::BootMode::kLinux);
  store::ClientChange follow;
  follow.boot_mode = std::optional<store::BootMode>();
  CHECK_FALSE(s.set_client("pc01", follow).boot_mode.has_value());
  CHECK(s.effective_boot_mode(s.client("pc01")) == store::BootMode::kSanboot);
  auto d = s.add_client("52:54:00:00:00:02", std::nullopt, "lab", std::nullopt, store::BootMode::kLinux);
  CHECK(s.client(d.mac).boot_mode == store::BootMode::kLinux);

  CHECK_THROWS_WITH(store::parse_boot_mode("pxe", "--boot-mode"),
                    Catch::Contains("--boot-mode: 'pxe' is not a boot mode") && Catch::Contains("'sanboot'"));
  CHECK_THROWS_WITH(s.set_image_boot_mode("nope", store::BootMode::kLinux), Catch::Contains("no image 'nope'"));
  CHECK(store::parse_boot_mode("sanboot", "x") == store::BootMode::kSanboot);
}

TEST_CASE("a store of schema 2 gains boot modes on open; clients keep theirs", "[store][boot]") {
  BootFixture f;
  f.add_version("lab", false);
  f.store->add_client("52:54:00:00:00:01", std::string("pc01"), "lab", std::string("quiet"));
  f.exports.reset();
  f.store.reset();
  std::string path = (f.dir / "s").string();
  {
    // Back to schema 2, as the imgtool before boot modes left it.
    store::Database db(path + "/catalog.db", false);
    db.exec("ALTER TABLE images DROP COLUMN boot_mode");
    db.exec("ALTER TABLE clients DROP COLUMN boot_mode");
    db.exec("ALTER TABLE clients DROP COLUMN cache_quota");
    // and schema 5's (channels): its activations table migrates again as it is
    db.exec("DROP TABLE channels; DROP TABLE groups; DROP TABLE schedules;"
            "ALTER TABLE clients DROP COLUMN group_name; ALTER TABLE clients DROP COLUMN pin");
    db.exec("PRAGMA user_version = 2");
  }
  f.store = store::Store::open(path);
  CHECK(f.store->image("lab").boot_mode == store::BootMode::kLinux);
  auto c = f.store->client("pc01");
  CHECK(c.cmdline == "quiet");
  CHECK_FALSE(c.boot_mode.has_value());
  store::Database db(path + "/catalog.db", false);
  auto st = db.prepare("PRAGMA user_version");
  st.step();
  CHECK(st.int64(0) == 6);
  // The column refuses what is not a mode, whoever writes it.
  CHECK_THROWS(db.exec("UPDATE images SET boot_mode = 'pxe'"));
}

TEST_CASE("sanboot script: initiator name, the client's session target on the iSCSI port, the pinned version",
          "[serve][boot]") {
  BootFixture f;
  f.add_version("lab", false);  // no kernel: a sanboot disk brings its own loader
  f.store->add_client("52:54:00:00:00:01", std::string("PC_01"), "lab", std::nullopt, store::BootMode::kSanboot);
  serve::BootHttp http(*f.exports, iscsi_options());
  std::string script = f.get(http, "/boot/52-54-00-00-00-01.ipxe");
  CHECK(script ==
        "#!ipxe\n"
        "echo bootfleet: booting lab@1 as PC_01 by sanboot\n"
        "set initiator-iqn iqn.2026-11.org.bootfleet:initiator:pc-01\n"
        "sanboot iscsi:10.0.2.2::3260:0:iqn.2026-11.org.bootfleet:lab:pc-01 || goto failed\n"
        ":failed\n"
        "echo bootfleet: the iSCSI disk iqn.2026-11.org.bootfleet:lab:pc-01 did not boot\n"
        "echo bootfleet: trying again in 30 seconds\n"
        "sleep 30 || prompt --timeout 30000 Press any key to try again now || echo\n"
        "chain http://10.0.2.2:8080/boot.ipxe\n");
  CHECK(script.find("--no-describe") == std::string::npos);  // the OS needs the iBFT
  CHECK(f.session_version("lab/PC_01") == 1);

  // A publish after the script does not move the session; the next boot does.
  f.add_version("lab", false);
  CHECK(f.session_version("lab/PC_01") == 1);
  script = f.get(http, "/boot/52-54-00-00-00-01.ipxe");
  CHECK(script.find("booting lab@2 as PC_01 by sanboot") != std::string::npos);
  CHECK(f.session_version("lab/PC_01") == 2);

  // HEAD shows the script and starts nothing.
  f.store->add_client("52:54:00:00:00:02", std::string("pc02"), "lab", std::nullopt, store::BootMode::kSanboot);
  f.get(http, "/boot/52-54-00-00-00-02.ipxe", "HEAD");
  CHECK_FALSE(f.session_version("lab/pc02").has_value());
}

TEST_CASE("boot modes pick the script: the image's mode, a client's own, linux needs the kernel", "[serve][boot]") {
  BootFixture f;
  f.add_version("lab", true);
  f.store->add_client("52:54:00:00:00:01", std::string("pc01"), "lab", std::nullopt);
  f.store->add_client("52:54:00:00:00:02", std::string("pc02"), "lab", std::nullopt, store::BootMode::kLinux);
  serve::BootHttp http(*f.exports, iscsi_options());
  CHECK(f.get(http, "/boot/52-54-00-00-00-01.ipxe").find("nbdroot=10.0.2.2:10809/lab/pc01") != std::string::npos);
  f.store->set_image_boot_mode("lab", store::BootMode::kSanboot);
  CHECK(f.get(http, "/boot/52-54-00-00-00-01.ipxe").find("sanboot iscsi:10.0.2.2::3260:0:") != std::string::npos);
  // pc02 keeps the linux mode it set for itself.
  std::string pc02 = f.get(http, "/boot/52-54-00-00-00-02.ipxe");
  CHECK(pc02.find("kernel http://10.0.2.2:8080/artifacts/lab@1/vmlinuz ") != std::string::npos);
  CHECK(pc02.find("sanboot") == std::string::npos);

  // An unregistered MAC under default_image boots by the image's mode.
  serve::BootOptions with_default = iscsi_options();
  with_default.default_image = "lab";
  serve::BootHttp http_default(*f.exports, with_default);
  CHECK(f.get(http_default, "/boot/52-54-00-00-00-99.ipxe").find(":lab:52-54-00-00-00-99 || goto failed") !=
        std::string::npos);

  // A pinned boot (boot-test) takes its mode from the pin.
  serve::BootOptions pinned = iscsi_options();
  pinned.pinned = serve::PinnedBoot{"lab", 1, "boot-test-7", store::BootMode::kSanboot};
  serve::BootHttp http_pinned(*f.exports, pinned);
  CHECK(f.get(http_pinned, "/boot/52-54-00-00-00-42.ipxe").find(":lab:boot-test-7 || goto failed") !=
        std::string::npos);
}

TEST_CASE("sanboot refusals wait and retry, naming what is wrong", "[serve][boot]") {
  BootFixture f;
  f.add_version("lab", false);
  f.store->add_client("52:54:00:00:00:01", std::string("pc01"), "lab", std::nullopt, store::BootMode::kSanboot);
  f.store->add_client("52:54:00:00:00:02", std::string("pc02"), "lab", std::nullopt, store::BootMode::kLinux);
  serve::BootOptions no_iscsi = iscsi_options();
  no_iscsi.iscsi_port = 0;
  serve::BootHttp http(*f.exports, no_iscsi);
  std::string script = f.get(http, "/boot/52-54-00-00-00-01.ipxe");
  CHECK(script.find("bootsrv serves no iSCSI (start it with --iscsi-listen") != std::string::npos);
  CHECK(script.find("sleep 30") != std::string::npos);
  CHECK(script.find("sanboot iscsi") == std::string::npos);
  CHECK_FALSE(f.session_version("lab/pc01").has_value());
  // linux mode on a version without a kernel: the same wait, naming the artifact.
  script = f.get(http, "/boot/52-54-00-00-00-02.ipxe");
  CHECK(script.find("has no artifact 'vmlinuz'") != std::string::npos);
  CHECK_FALSE(f.session_version("lab/pc02").has_value());
}

TEST_CASE("maintenance: a sanboot client's script pins its base, says so, and its iSCSI target is the kept session",
          "[serve][boot][maintenance]") {
  BootFixture f;
  f.add_version("lab", false);
  f.add_version("lab", false);  // lab@2 active
  f.store->add_client("52:54:00:00:00:01", std::string("PC_01"), "lab", std::nullopt, store::BootMode::kSanboot);
  auto m = f.store->start_maintenance("lab", "PC_01", 1, "t");
  serve::BootHttp http(*f.exports, iscsi_options());
  std::string script = f.get(http, "/boot/52-54-00-00-00-01.ipxe");
  CHECK(script.find("booting lab@1 as PC_01 by sanboot\necho bootfleet: MAINTENANCE") != std::string::npos);
  CHECK(script.find("sanboot iscsi:10.0.2.2::3260:0:iqn.2026-11.org.bootfleet:lab:pc-01 ") != std::string::npos);
  auto session = f.exports->sessions().find("lab/PC_01");
  REQUIRE(session);
  CHECK(session->pin().version == 1);
  CHECK(session->pin().keep == m.token);
  // The login the script leads to lands on that session, as NBD's would.
  serve::IscsiTargets targets(*f.exports, *f.exports, "iqn.2026-11.org.bootfleet");
  CHECK(targets.export_for("iqn.2026-11.org.bootfleet:lab:pc-01") == "lab/PC_01");
  auto opened = f.exports->open("lab/PC_01");
  CHECK(opened.device == session);
  opened.release();
  // A reboot keeps it (same cache), on lab@1 although lab@2 is active.
  f.get(http, "/boot/52-54-00-00-00-01.ipxe");
  CHECK(f.exports->sessions().find("lab/PC_01") == session);
}
