// The metrics registry (util/metrics.h) and the status page's access rule
// (bootsrv/status_page.h): what needs no server. The live page, /metrics
// under promtool and a real browser are in tests/integration/status/.
#include <catch2/catch.hpp>
#include <thread>

#include "status_page.h"
#include "support/store_exports_fixture.h"
#include "tokens.h"
#include "util/error.h"
#include "util/metrics.h"

using namespace bootfleet;
using util::metrics::Registry;

namespace {

// A store with image lab (@1 active) and client pc01 (52:54:00:00:00:01),
// and the exports bootsrv serves from it.
struct StatusFixture : test::StoreExportsFixture {
  StatusFixture() {
    add_version("lab", false);
    exports->with_store([&](store::Store& s) { s.add_client("52:54:00:00:00:01", "pc01", "lab", std::nullopt); });
  }
};

serve::BootEvent http_event(serve::BootEvent::Kind kind, const std::string& path, const std::string& peer) {
  return {kind, path, peer, ""};
}

}  // namespace

TEST_CASE("metrics: counters, gauges and histograms in the text format", "[metrics]") {
  Registry r;
  r.counter("t_requests_total", "Requests", {{"code", "2xx"}}).add(3);
  r.counter("t_requests_total", "ignored", {{"code", "4xx"}}).add();
  r.gauge("t_open", "Open now\nsecond line").set(2.5);
  auto& h = r.histogram("t_seconds", "Durations", {0.5, 1}, {{"stage", "root"}});
  h.observe(0.2);
  h.observe(0.7);
  h.observe(5);
  std::string text;
  r.render(text);
  CHECK(text.find("# HELP t_requests_total Requests\n# TYPE t_requests_total counter\n"
                  "t_requests_total{code=\"2xx\"} 3\nt_requests_total{code=\"4xx\"} 1\n") != std::string::npos);
  CHECK(text.find("# HELP t_open Open now\\nsecond line\n# TYPE t_open gauge\nt_open 2.5\n") != std::string::npos);
  CHECK(text.find("t_seconds_bucket{stage=\"root\",le=\"0.5\"} 1\n"
                  "t_seconds_bucket{stage=\"root\",le=\"1\"} 2\n"
                  "t_seconds_bucket{stage=\"root\",le=\"+Inf\"} 3\n"
                  "t_seconds_sum{stage=\"root\"} 5.9\n"
                  "t_seconds_count{stage=\"root\"} 3\n") != std::string::npos);
  CHECK(r.value("t_requests_total", {{"code", "2xx"}}) == 3);
  CHECK(r.value("t_requests_total", {{"code", "5xx"}}) == 0);
  CHECK(r.value("no_such_total") == 0);
}

TEST_CASE("metrics: label values are escaped, names checked, misuse refused", "[metrics]") {
  Registry r;
  r.counter("t_total", "x", {{"export", "a\"b\\c\nd"}}).add();
  std::string text;
  r.render(text);
  CHECK(text.find("t_total{export=\"a\\\"b\\\\c\\nd\"} 1") != std::string::npos);
  CHECK_THROWS_AS(r.counter("bad-name", "x"), util::Error);
  CHECK_THROWS_AS(r.counter("t2_total", "x", {{"le", "1"}}), util::Error);
  CHECK_THROWS_AS(r.counter("t3_total", "x", {{"__x", "1"}}), util::Error);
  CHECK_THROWS_AS(r.gauge("t_total", "x", {{"export", "y"}}), util::Error);    // another type
  CHECK_THROWS_AS(r.counter("t_total", "x", {{"client", "y"}}), util::Error);  // other label names
  CHECK_THROWS_AS(r.counter("t_total", "x"), util::Error);                     // fewer labels
}

TEST_CASE("metrics: a family's series are capped, the rest share the _other series", "[metrics]") {
  Registry r;
  for (int i = 0; i < 10; ++i) r.counter("t_total", "x", {{"export", "pc" + std::to_string(i)}}, 4).add();
  auto series = r.series("t_total");
  CHECK(series.size() == 5);  // four named and the overflow
  CHECK(r.value("t_total", {{"export", "_other"}}) == 6);
  CHECK(r.value("t_total", {{"export", "pc3"}}) == 1);
  // A series that exists keeps counting on its own.
  r.counter("t_total", "x", {{"export", "pc0"}}, 4).add(5);
  CHECK(r.value("t_total", {{"export", "pc0"}}) == 6);
}

TEST_CASE("metrics: counting from threads loses nothing", "[metrics]") {
  Registry r;
  auto& c = r.counter("t_total", "x");
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) threads.emplace_back([&] { for (int i = 0; i < 10000; ++i) c.add(); });
  for (auto& t : threads) t.join();
  CHECK(c.value() == 40000);
}

TEST_CASE("metrics: sample values", "[metrics]") {
  using util::metrics::format_value;
  CHECK(format_value(0) == "0");
  CHECK(format_value(1234567890123.0) == "1234567890123");
  CHECK(format_value(0.25) == "0.25");
  CHECK(format_value(-1) == "-1");
  CHECK(format_value(1.0 / 0.0) == "+Inf");
}

TEST_CASE("status access: loopback, transport, status and API tokens", "[status]") {
  using bootsrv::check_status_access;
  using bootsrv::TokenSet;
  TokenSet status = TokenSet::parse("grafana status-token-0123456789\n", "status-tokens");
  TokenSet api = TokenSet::parse("ci api-token-0123456789abc\n", "api-tokens");
  http::Connection loopback{"127.0.0.1:5000", "127.0.0.1", "127.0.0.1", 8080, false};
  http::Connection remote{"10.0.0.9:5000", "10.0.0.9", "10.0.0.1", 8080, false};
  http::Connection remote_tls = remote;
  remote_tls.secure = true;
  auto request = [](const std::string& auth) {
    http::Request r;
    r.method = "GET";
    r.target = "/metrics";
    if (!auth.empty()) r.headers.emplace_back("authorization", auth);
    return r;
  };
  // Loopback needs nothing, not even configured tokens.
  CHECK(check_status_access(request(""), loopback, nullptr, nullptr, false).status == 0);
  CHECK(check_status_access(request(""), loopback, nullptr, nullptr, false).who == "loopback");
  // A remote peer over plain HTTP: refused unless api_plain_http, token or not.
  auto a = check_status_access(request("Bearer status-token-0123456789"), remote, &status, &api, false);
  CHECK(a.status == 403);
  CHECK(a.message.find("api_plain_http") != std::string::npos);
  CHECK(check_status_access(request("Bearer status-token-0123456789"), remote, &status, &api, true).who == "grafana");
  // Over TLS: a status token or an API token, nothing else.
  CHECK(check_status_access(request("Bearer status-token-0123456789"), remote_tls, &status, &api, false).who == "grafana");
  CHECK(check_status_access(request("bearer api-token-0123456789abc"), remote_tls, &status, &api, false).who == "ci");
  CHECK(check_status_access(request("Bearer api-token-0123456789abc"), remote_tls, &status, nullptr, false).status == 403);
  CHECK(check_status_access(request(""), remote_tls, &status, &api, false).status == 401);
  CHECK(check_status_access(request("Basic abc"), remote_tls, &status, &api, false).status == 401);
  CHECK(check_status_access(request("Bearer wrong-token-0123456789"), remote_tls, &status, &api, false).status == 403);
  auto none = check_status_access(request("Bearer status-token-0123456789"), remote_tls, nullptr, nullptr, false);
  CHECK(none.status == 403);
  CHECK(none.message.find("status_tokens") != std::string::npos);
}

TEST_CASE("status: which log lines are the page's recent errors", "[status]") {
  using bootsrv::BootEvents;
  CHECK(BootEvents::is_error_line("boot 52:54:00:00:00:99: unknown MAC, not booted (no default_image)"));
  CHECK(BootEvents::is_error_line("127.0.0.1:4000: unknown export 'x': no image 'x'"));
  CHECK(BootEvents::is_error_line("lease heartbeat failed: database is locked"));
  CHECK(BootEvents::is_error_line("boot aa:bb:cc:dd:ee:ff (pc01): cannot boot: lab@3 has no artifact 'vmlinuz'"));
  CHECK_FALSE(BootEvents::is_error_line("session lab/pc01 started on lab@1"));
  CHECK_FALSE(BootEvents::is_error_line("boot 52:54:00:00:00:01 as pc01: lab@1, session lab/pc01, linux"));
}

TEST_CASE("status routes: what the page owns", "[status]") {
  using bootsrv::StatusPage;
  CHECK(StatusPage::owns("/metrics"));
  CHECK(StatusPage::owns("/status"));
  CHECK(StatusPage::owns("/status/data?x=1"));
  CHECK(StatusPage::owns("/status/app.js"));
  CHECK_FALSE(StatusPage::owns("/statusx"));
  CHECK_FALSE(StatusPage::owns("/metrics/x"));
  CHECK_FALSE(StatusPage::owns("/boot/aa-bb-cc-dd-ee-ff.ipxe"));
}

TEST_CASE("boot events: a linux boot's stages, followed by address and session", "[status]") {
  using Kind = serve::BootEvent::Kind;
  StatusFixture f;
  bootsrv::BootEvents events(*f.exports, "");
  events.on_tftp("undionly.kpxe", "10.0.0.5");
  events.on_tftp("undionly.kpxe", "10.0.0.5");  // a retry: the boot still starts at the first
  events.on_event(http_event(Kind::kChainScript, "/boot.ipxe", "10.0.0.5"));
  events.on_event(http_event(Kind::kBootScript, "/boot/52-54-00-00-00-01.ipxe", "10.0.0.5"));
  CHECK(events.booting("lab/pc01"));
  events.on_event(http_event(Kind::kKernel, "/artifacts/lab@1/vmlinuz", "10.0.0.5"));
  events.on_event(http_event(Kind::kKernel, "/artifacts/lab@1/vmlinuz", "10.0.0.6"));  // another PC's
  events.on_event(http_event(Kind::kInitrd, "/artifacts/lab@1/initrd.img", "10.0.0.5"));
  auto boot = events.boots()["lab/pc01"];
  CHECK_FALSE(boot["complete"].get<bool>());
  CHECK(boot["stages"].size() == 4);  // loader, script, kernel, initrd
  CHECK(boot["mac"] == "52-54-00-00-00-01");
  events.on_event({Kind::kRootAttached, "lab/pc01", "", "nbd"});
  boot = events.boots()["lab/pc01"];
  CHECK(boot["complete"].get<bool>());
  for (const char* stage : {"loader", "script", "kernel", "initrd", "root", "total"}) {
    INFO(stage);
    REQUIRE(boot["stages"].contains(stage));
    CHECK(boot["stages"][stage].get<double>() >= 0);
    CHECK(boot["stages"][stage].get<double>() <= boot["stages"]["total"].get<double>());
  }
  CHECK_FALSE(events.booting("lab/pc01"));
  // A reconnect is not another boot; a kernel fetched later from that address is no stage.
  events.on_event({Kind::kRootAttached, "lab/pc01", "", "nbd"});
  events.on_event(http_event(Kind::kKernel, "/artifacts/lab@1/vmlinuz", "10.0.0.5"));
  CHECK(events.boots()["lab/pc01"] == boot);
  auto recent = events.recent_events();
  REQUIRE(recent.size() == 10);
  CHECK(recent[0]["kind"] == "kernel");
  CHECK(recent[0]["session"] == nullptr);
  CHECK(recent[1]["kind"] == "root");
  CHECK(recent[1]["protocol"] == "nbd");
  CHECK(recent[7]["kind"] == "chain");
  CHECK(recent[7]["peer"] == "10.0.0.5");
  CHECK(recent[9]["kind"] == "tftp");
  CHECK(recent[9]["detail"] == "undionly.kpxe");
}

TEST_CASE("boot events: chain script over TFTP, a new boot after a chain, a boot without chain", "[status]") {
  using Kind = serve::BootEvent::Kind;
  StatusFixture f;
  bootsrv::BootEvents events(*f.exports, "");
  events.on_tftp("undionly.kpxe", "10.0.0.5");
  events.on_tftp("boot.ipxe", "10.0.0.5");  // the chain script, over TFTP
  events.on_tftp("undionly.kpxe", "10.0.0.5");  // rebooted before its script: a new boot
  events.on_tftp("boot.ipxe", "10.0.0.5");
  events.on_event(http_event(Kind::kBootScript, "/boot/52-54-00-00-00-01.ipxe", "10.0.0.5"));
  auto boot = events.boots()["lab/pc01"];
  CHECK(boot["stages"].contains("loader"));
  CHECK(boot["stages"].contains("script"));
  CHECK(events.recent_events()[1]["kind"] == "chain");
  CHECK(events.recent_events()[1]["protocol"] == "tftp");
  // A boot script alone (DHCP hands out /boot/MAC.ipxe): no loader, no script stage.
  events.on_event(http_event(Kind::kBootScript, "/boot/52-54-00-00-00-01.ipxe", "10.0.0.7"));
  CHECK(events.boots()["lab/pc01"]["stages"].empty());
}

TEST_CASE("boot events: unknown MACs, the default image, bounded rings", "[status]") {
  using Kind = serve::BootEvent::Kind;
  StatusFixture f;
  bootsrv::BootEvents plain(*f.exports, "");
  plain.on_event(http_event(Kind::kBootScript, "/boot/52-54-00-00-00-09.ipxe", "10.0.0.9"));
  plain.on_event(http_event(Kind::kBootScript, "/boot/not-a-mac.ipxe", "10.0.0.9"));
  CHECK(plain.boots().empty());  // told to register: no boot
  CHECK(plain.recent_events().size() == 2);
  bootsrv::BootEvents with_default(*f.exports, "lab");
  with_default.on_event(http_event(Kind::kBootScript, "/boot/52-54-00-00-00-09.ipxe", "10.0.0.9"));
  CHECK(with_default.booting("lab/52-54-00-00-00-09"));
  for (int i = 0; i < 250; ++i) with_default.on_event(http_event(Kind::kChainScript, "/boot.ipxe", "10.0.1.1"));
  CHECK(with_default.recent_events().size() == bootsrv::BootEvents::kMaxEvents);
  for (int i = 0; i < 250; ++i) with_default.on_log_line("boot 52:54:00:00:00:09: unknown MAC, not booted");
  with_default.on_log_line("http 127.0.0.1:5000 \"GET /nope\" 404 10 failed");
  with_default.on_log_line("session lab/pc01 started on lab@1");
  auto errors = with_default.recent_errors();
  CHECK(errors.size() == bootsrv::BootEvents::kMaxEvents);
  CHECK(errors[0]["message"] == "boot 52:54:00:00:00:09: unknown MAC, not booted");
}

TEST_CASE("status page: data and metrics from a store and its sessions", "[status]") {
  using Kind = serve::BootEvent::Kind;
  StatusFixture f;
  bootsrv::BootEvents events(*f.exports, "");
  bootsrv::StatusOptions o;
  o.version = "9.9.9";
  o.store_dir = (f.dir / "s").string();
  o.cache_dir = (f.dir / "cache").string();
  bootsrv::StatusPage page(*f.exports, events, o);
  auto data = page.data();
  REQUIRE(data["clients"].size() == 1);
  CHECK(data["clients"][0]["state"] == "off");
  CHECK(data["clients"][0]["version"] == nullptr);
  CHECK(data["images"][0]["active"] == 1);
  CHECK(data["health"]["cache_disk_free_bytes"].get<uint64_t>() > 0);
  // A boot script starts pc01's session: booting, on lab@1.
  f.exports->start_session("lab", "pc01", 1);
  events.on_event(http_event(Kind::kBootScript, "/boot/52-54-00-00-00-01.ipxe", "10.0.0.5"));
  data = page.data();
  CHECK(data["clients"][0]["state"] == "booting");
  CHECK(data["clients"][0]["version"] == 1);
  // Its root attached (a connection): up.
  auto opened = f.exports->open("lab/pc01");
  data = page.data();
  CHECK(data["clients"][0]["state"] == "up");
  CHECK(data["clients"][0]["connections"] == 1);
  // Another named session, of a name the client table does not know.
  auto other = f.exports->open("lab/adhoc");
  data = page.data();
  REQUIRE(data["clients"].size() == 2);
  CHECK(data["clients"][1]["name"] == "adhoc");
  CHECK(data["clients"][1]["mac"] == nullptr);
  std::string text = page.metrics_text();
  CHECK(text.find("bootfleet_build_info{version=\"9.9.9\"} 1\n") != std::string::npos);
  CHECK(text.find("bootfleet_clients{state=\"up\"} 2\n") != std::string::npos);
  CHECK(text.find("bootfleet_sessions{kind=\"named\"} 2\n") != std::string::npos);
  CHECK(text.find("bootfleet_image_active_version{image=\"lab\"} 1\n") != std::string::npos);
  CHECK(text.find("bootfleet_activations_total{action=\"publish\"} 1\n") != std::string::npos);
  opened.release();
  other.release();
}
