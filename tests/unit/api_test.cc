// bootsrv's control API pieces that need no server: the token file, the
// constant-time comparison, the offset rules of uploads, the upload
// declaration's checks, and the configuration keys of the API.
#include <unistd.h>

#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "api_error.h"
#include "config.h"
#include "json_body.h"
#include "tokens.h"
#include "uploads.h"

using namespace bootfleet::bootsrv;

namespace {
std::string error_of(const std::function<void()>& fn) {
  try {
    fn();
  } catch (const std::exception& e) {
    return e.what();
  }
  return "";
}
int status_of(const std::function<void()>& fn) {
  try {
    fn();
  } catch (const ApiError& e) {
    return e.status();
  }
  return 0;
}
}  // namespace

TEST_CASE("token files: NAME TOKEN lines, comments, errors with file:line", "[api]") {
  TokenSet set = TokenSet::parse("# the CI\n\nci 0123456789abcdef0123\n  admin\tsecret-secret-secret  # a comment\n", "t");
  CHECK(set.size() == 2);
  CHECK(set.match("0123456789abcdef0123") == "ci");
  CHECK(set.match("secret-secret-secret") == "admin");
  CHECK_FALSE(set.match("0123456789abcdef012"));
  CHECK_FALSE(set.match(""));
  CHECK(TokenSet::parse("", "t").size() == 0);
  CHECK(error_of([] { TokenSet::parse("ci\n", "t"); }) == "t:1: 'ci' has no token; lines are 'NAME TOKEN'");
  CHECK(error_of([] { TokenSet::parse("# x\nci short\n", "t") ; }).rfind("t:2: the token of 'ci' is 5 characters", 0) == 0);
  CHECK(error_of([] { TokenSet::parse("c/i 0123456789abcdef\n", "t"); }).rfind("t:1: the name 'c/i' holds '/'", 0) == 0);
  CHECK(error_of([] { TokenSet::parse("ci 0123456789abcdef x\n", "t"); }).rfind("t:1: more than two fields", 0) == 0);
  CHECK(error_of([] { TokenSet::parse("a 0123456789abcdef\na 0123456789abcdeX\n", "t"); })
            .rfind("t:2: the name 'a' appears twice", 0) == 0);
  CHECK(error_of([] { TokenSet::parse("a 0123456789abcdef\nb 0123456789abcdef\n", "t"); })
            .rfind("t:2: 'b' has the same token as 'a'", 0) == 0);
  CHECK(error_of([] { TokenSet::load("/nonexistent/tokens"); }).rfind("/nonexistent/tokens: cannot read", 0) == 0);
}

TEST_CASE("constant-time comparison", "[api]") {
  CHECK(constant_time_equal("abc", "abc"));
  CHECK(constant_time_equal("", ""));
  CHECK_FALSE(constant_time_equal("abc", "abd"));
  CHECK_FALSE(constant_time_equal("abc", "abcd"));
  CHECK_FALSE(constant_time_equal("", "a"));
  std::string a(1000, 'x'), b = a;
  b[999] = 'y';
  CHECK_FALSE(constant_time_equal(a, b));
}

TEST_CASE("upload offsets: from what was received on (a gap is zeros), never back, never past file_size", "[api]") {
  CHECK(status_of([] { check_append("u", 0, 100, 0, 100); }) == 0);
  CHECK(status_of([] { check_append("u", 40, 100, 40, 60); }) == 0);
  CHECK(status_of([] { check_append("u", 40, 100, 40, 0); }) == 0);
  CHECK(status_of([] { check_append("u", 40, 100, 0, 10); }) == 409);
  CHECK(status_of([] { check_append("u", 40, 100, 50, 10); }) == 0);
  CHECK(status_of([] { check_append("u", 40, 100, 100, 0); }) == 0);
  CHECK(status_of([] { check_append("u", 40, 100, 101, 0); }) == 400);
  CHECK(status_of([] { check_append("u", 40, 100, 95, 6); }) == 400);
  CHECK(status_of([] { check_append("u", 40, 100, 40, 61); }) == 400);
  CHECK(status_of([] { check_append("u", 100, 100, 100, 1); }) == 400);
  try {
    check_append("u", 40, 100, 7, 1);
  } catch (const ApiError& e) {
    CHECK(e.extra()["received"] == 40);
    CHECK(std::string(e.what()).find("offset=40") != std::string::npos);
  }
}

TEST_CASE("upload declarations: every field checked, each error names it", "[api]") {
  std::string digest(64, 'a');
  nlohmann::json good = {{"version", 2},          {"parent", 1},           {"parent_digest", digest},
                         {"size", 16 << 20},      {"file_size", 4 << 20},  {"disk_digest", digest},
                         {"block_digests", {{0, digest}, {7, digest}}},    {"artifacts", {{{"name", "vmlinuz"}, {"size", 3}, {"sha256", digest}}}},
                         {"message", "m"}};
  UploadDeclaration d = UploadDeclaration::from_json("lab", good);
  CHECK(d.version == 2);
  CHECK(d.block_digests.size() == 2);
  CHECK(d.artifacts.at(0).name == "vmlinuz");
  CHECK(UploadDeclaration::from_json("lab", d.to_json()).to_json() == d.to_json());
  auto with = [&](const char* key, nlohmann::json value) {
    nlohmann::json j = good;
    if (value.is_discarded()) j.erase(key);
    else j[key] = value;
    return error_of([&] { UploadDeclaration::from_json("lab", j); });
  };
  CHECK(with("version", 0).find("'version'") != std::string::npos);
  CHECK(with("version", nlohmann::json::value_t::discarded).find("'version' is missing") != std::string::npos);
  CHECK(with("parent", 5).find("\"parent\": 1") != std::string::npos);
  CHECK(with("parent_digest", "ABC").find("parent_digest") != std::string::npos);
  CHECK(with("disk_digest", std::string(64, 'A')).find("disk_digest") != std::string::npos);
  CHECK(with("block_digests", {{8, digest}}).find("block 8 is outside the disk") != std::string::npos);
  CHECK(with("block_digests", {{3, digest}, {3, digest}}).find("out of order or repeated") != std::string::npos);
  CHECK(with("artifacts", {{{"name", "../x"}, {"size", 1}, {"sha256", digest}}}).find("an artifact name (4 bytes) is not allowed") !=
        std::string::npos);
  nlohmann::json v1 = good;
  v1["version"] = 1;
  CHECK(error_of([&] { UploadDeclaration::from_json("lab", v1); }).find("has no parent") != std::string::npos);
}

// `text` written to DIR/c.yaml and loaded as bootsrv's configuration.
static Config load_config_text(const std::filesystem::path& dir, const std::string& text) {
  std::string path = (dir / "c.yaml").string();
  std::ofstream(path) << text;
  Config c;
  load_config_file(path, c);
  return c;
}

TEST_CASE("configuration: the API's keys, TLS both or neither", "[api]") {
  auto dir = std::filesystem::temp_directory_path() / ("bootfleet-api-config-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  auto load = [&](const std::string& text) { return load_config_text(dir, text); };
  Config c = load("api_tokens: /etc/t\ntls_cert: c.pem\ntls_key: k.pem\nhttps_listen: :8443\napi_plain_http: true\n"
                  "upload_dir: /u\nupload_ttl: 2m\nmax_uploads: 2\n");
  CHECK(c.api_tokens == "/etc/t");
  CHECK(c.https_listen == ":8443");
  CHECK(c.api_plain_http);
  CHECK(c.upload_dir == "/u");
  CHECK(c.upload_ttl == std::chrono::seconds(120));
  CHECK(c.max_uploads == 2);
  CHECK(error_of([&] { load("store: /s\ntls_key: k.pem\n"); }).find("c.yaml:2:1: key 'tls_key': needs 'tls_cert' too") !=
        std::string::npos);
  CHECK(error_of([&] { load("https_listen: :8443\n"); }).find("c.yaml:1:1: key 'https_listen': needs 'tls_cert'") !=
        std::string::npos);
  CHECK(error_of([&] { load("api_plain_http: maybe\n"); }).find("c.yaml:1:17: key 'api_plain_http': expected true or false") !=
        std::string::npos);
  CHECK(error_of([&] { load("max_uploads: 0\n"); }).find("key 'max_uploads'") != std::string::npos);
  std::filesystem::remove_all(dir);
}

TEST_CASE("configuration: every unknown key with 'did you mean', ports checked at FILE:LINE, tabs, unreadable files", "[config]") {
  auto dir = std::filesystem::temp_directory_path() / ("bootfleet-config-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  std::string path = (dir / "c.yaml").string();
  auto load = [&](const std::string& text) {
    std::ofstream(path) << text;
    Config c;
    load_config_file(path, c);
    return c;
  };
  std::string e = error_of([&] { load("store: /s\nlistn: :1\ncache_rma: 1G\ntftp:\n  rot: /x\nfrobnicate: 1\n"); });
  CHECK(e.find(path + ":2:1: key 'listn': unknown (did you mean 'listen'?)") != std::string::npos);
  CHECK(e.find(path + ":3:1: key 'cache_rma': unknown (did you mean 'cache_ram'?)") != std::string::npos);
  CHECK(e.find(path + ":5:3: key 'tftp.rot': unknown (did you mean 'root'?)") != std::string::npos);
  CHECK(e.find(path + ":6:1: key 'frobnicate': unknown; known keys are store, listen,") != std::string::npos);

  // Ports outside 1-65535 in every listen key, at the value's place.
  CHECK(error_of([&] { load("listen: 127.0.0.1:99999\n"); }) ==
        path + ":1:9: key 'listen': '127.0.0.1:99999': port 99999 is outside 0-65535 (0: any free port)");
  CHECK(error_of([&] { load("listen: [127.0.0.1:10809, ':65536']\n"); }).find(":1:27: key 'listen': ':65536': port 65536") !=
        std::string::npos);
  CHECK(error_of([&] { load("http:\n  listen: :165536\n"); }).find(":2:11: key 'http.listen': ':165536'") != std::string::npos);
  CHECK(error_of([&] { load("tftp:\n  listen: :70000\n"); }).find(":2:11: key 'tftp.listen': ':70000'") != std::string::npos);
  CHECK(error_of([&] { load("tftp.listen: :70000\n"); }).find("key 'tftp.listen'") != std::string::npos);
  CHECK(error_of([&] { load("https_listen: :99999\ntls_cert: c\ntls_key: k\n"); }).find("key 'https_listen': ':99999'") !=
        std::string::npos);
  CHECK(load("listen: [unix:/run/b.sock, '127.0.0.1:0']\n").listen.size() == 2);

  // A tab in the indentation: yaml-cpp's words, and what they mean.
  e = error_of([&] { load("tftp:\n\tlisten: :69\n"); });
  CHECK(e.find(path + ":") == 0);
  CHECK(e.find("YAML forbids tabs for indentation and line 2 is indented with one") != std::string::npos);

  // A file that cannot be read says why.
  CHECK(error_of([&] {
          Config c;
          load_config_file((dir / "missing.yaml").string(), c);
        }) == (dir / "missing.yaml").string() + ": cannot read the configuration file: No such file or directory");
  std::filesystem::remove_all(dir);
}

TEST_CASE("JSON bodies: nesting and size refused before parsing, nothing echoed", "[api]") {
  CHECK(parse_json_body_text("").is_object());
  CHECK(parse_json_body_text("{\"version\": 3}")["version"] == 3);
  CHECK(json_depth("{\"a\": [[1]], \"b\": \"[[[[[[\"}") == 3);  // brackets in strings do not count
  CHECK(json_depth("\"\\\"[[[\"") == 0);                       // nor after an escaped quote
  std::string deep = "{\"version\": " + std::string(100000, '[') + std::string(100000, ']') + "}";
  try {
    parse_json_body_text(deep);
    FAIL("100 000 levels parsed");
  } catch (const ApiError& e) {
    CHECK(e.status() == 400);
    CHECK_THAT(e.what(), Catch::Contains("more than 16 deep"));
    CHECK(std::string(e.what()).find("[[") == std::string::npos);
  }
  CHECK_NOTHROW(parse_json_body_text(std::string(16, '[') + std::string(16, ']')));
  CHECK_THROWS(parse_json_body_text(std::string(17, '[') + std::string(17, ']')));
  try {
    parse_json_body_text("{\"version\": <secret-value>}");
    FAIL("not JSON parsed");
  } catch (const ApiError& e) {
    CHECK(e.status() == 400);
    CHECK(std::string(e.what()).find("secret") == std::string::npos);
  }
  try {
    parse_json_body_text(std::string((1 << 20) + 1, ' '));
    FAIL("a body over 1 MiB parsed");
  } catch (const ApiError& e) {
    CHECK(e.status() == 413);
  }
  CHECK(json_kind(nlohmann::json::parse("\"x\"")) == "a string");
  CHECK(json_kind(nlohmann::json::parse("[1]")) == "an array");
  CHECK(json_kind(nlohmann::json::parse("-4")) == "a negative number");
  CHECK(json_kind(nlohmann::json::parse("1.5")) == "a number with a fraction or exponent");
}

TEST_CASE("configuration: limits:, each key checked and named with its place", "[api]") {
  auto dir = std::filesystem::temp_directory_path() / ("bootfleet-limits-config-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  auto load = [&](const std::string& text) { return load_config_text(dir, text); };
  Config d = load("store: /s\n");
  CHECK(d.limits.nbd_per_peer == 16);
  CHECK(d.limits.http_request_timeout == std::chrono::seconds(10));
  CHECK(d.limits.tftp_max_timeout == 5);
  Config i = load("limits:\n  iscsi_connections: 20\n  iscsi_per_peer: 3\n  iscsi_login_timeout: 5s\n");
  CHECK(i.limits.iscsi_connections == 20);
  CHECK(i.limits.iscsi_per_peer == 3);
  CHECK(i.limits.iscsi_login_timeout == std::chrono::seconds(5));
  CHECK(d.limits.iscsi_per_peer == 8);
  Config c = load("limits:\n  nbd_connections: 100\n  nbd_per_peer: 4\n  nbd_handshake_timeout: 30s\n"
                  "  http_connections: 50\n  http_per_peer: 5\n  http_request_timeout: 1m\n"
                  "  tftp_transfers: 10\n  tftp_per_peer: 2\n  tftp_max_timeout: 3\n  tftp_give_up: 20\n");
  CHECK(c.limits.nbd_connections == 100);
  CHECK(c.limits.nbd_per_peer == 4);
  CHECK(c.limits.nbd_handshake_timeout == std::chrono::seconds(30));
  CHECK(c.limits.http_connections == 50);
  CHECK(c.limits.http_per_peer == 5);
  CHECK(c.limits.http_request_timeout == std::chrono::seconds(60));
  CHECK(c.limits.tftp_transfers == 10);
  CHECK(c.limits.tftp_per_peer == 2);
  CHECK(c.limits.tftp_max_timeout == 3);
  CHECK(c.limits.tftp_give_up == std::chrono::seconds(20));
  CHECK(error_of([&] { load("limits:\n  nbd_per_peer: 0\n"); }).find("c.yaml:2:17: key 'limits.nbd_per_peer': expected a number from 1 to 100000") !=
        std::string::npos);
  CHECK(error_of([&] { load("limits:\n  tftp_max_timeout: 256\n"); }).find("expected a number from 1 to 255") !=
        std::string::npos);
  CHECK(error_of([&] { load("limits:\n  http_request_timeout: soon\n"); }).find("key 'limits.http_request_timeout'") !=
        std::string::npos);
  CHECK(error_of([&] { load("limits:\n  nbd_handshake: 10s\n"); }).find("c.yaml:2:3: key 'limits.nbd_handshake': unknown; known keys are") !=
        std::string::npos);
  CHECK(error_of([&] { load("limits: 5\n"); }).find("key 'limits': expected a mapping") != std::string::npos);
  std::filesystem::remove_all(dir);
}
