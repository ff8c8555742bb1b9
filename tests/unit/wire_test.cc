// The control API's wire format (lib/api): the paths imgtool builds are the
// ones bootsrv's route table matches, values that would name another route
// are refused, and the upload state survives a round trip.
#include <algorithm>
#include <catch2/catch.hpp>
#include <cctype>
#include <fstream>
#include <sstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "api/error.h"
#include "api/fields.h"
#include "api/paths.h"
#include "api/upload.h"
#include "api.h"
#include "util/error.h"

using namespace bootfleet;

namespace {

std::vector<std::string> segments_after_prefix(const std::string& path) {
  REQUIRE(path.rfind("/api/v1/", 0) == 0);
  std::vector<std::string> out;
  std::string rest = path.substr(8);
  size_t at = 0;
  while (true) {
    size_t slash = rest.find('/', at);
    out.push_back(rest.substr(at, slash == std::string::npos ? std::string::npos : slash - at));
    if (slash == std::string::npos) return out;
    at = slash + 1;
  }
}

// What `fn` throws (api::ApiError is a util::Error), or "" when it does not.
template <class Fn>
std::string message(Fn&& fn) {
  try {
    fn();
  } catch (const util::Error& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST_CASE("api paths: built from a pattern, matched back by the same pattern", "[api]") {
  CHECK(api::path(api::route::kImages) == "/api/v1/images");
  CHECK(api::path(api::route::kVersion, {"lab", "7"}) == "/api/v1/images/lab/versions/7");
  CHECK(api::path(api::route::kUploadArtifact, {"0123abcd", "vmlinuz"}) == "/api/v1/uploads/0123abcd/artifacts/vmlinuz");
  CHECK(api::path(api::route::kClient, {"52:54:00:00:00:01"}) == "/api/v1/clients/52:54:00:00:00:01");

  auto values = api::match(api::route::kVersion, segments_after_prefix(api::path(api::route::kVersion, {"lab", "7"})));
  REQUIRE(values);
  CHECK(*values == std::vector<std::string>{"lab", "7"});
  CHECK(api::match(api::route::kImages, {"images"}) == std::vector<std::string>{});
  // Another route, one segment more or less, an empty field: no match.
  CHECK_FALSE(api::match(api::route::kVersion, {"images", "lab", "history"}));
  CHECK_FALSE(api::match(api::route::kVersions, {"images", "lab", "versions", "7"}));
  CHECK_FALSE(api::match(api::route::kVersions, {"images", "", "versions"}));
  CHECK_FALSE(api::match(api::route::kMaintenanceCommit, {"images", "lab", "maintenance"}));
}

TEST_CASE("api paths: a value that would name another route, or a wrong count, is refused", "[api]") {
  CHECK(message([] { api::path(api::route::kVersions, {"lab/../x"}); }).find("{image} must be one non-empty path segment") !=
        std::string::npos);
  CHECK(message([] { api::path(api::route::kVersions, {""}); }).find("{image}") != std::string::npos);
  CHECK(message([] { api::path(api::route::kGroup, {"a?b"}); }).find("{name}") != std::string::npos);
  CHECK(message([] { api::path(api::route::kVersion, {"lab"}); }).find("no value for {version}") != std::string::npos);
  CHECK(message([] { api::path(api::route::kImages, {"lab"}); }).find("1 values for fewer fields") != std::string::npos);
}

TEST_CASE("api upload state: what bootsrv writes is what imgtool push reads", "[api]") {
  api::UploadState s;
  s.upload = "00ff";
  s.image = "lab";
  s.version = 3;
  s.received = 1 << 20;
  s.file_size = 4 << 20;
  s.artifacts_received = {"initrd.img", "vmlinuz"};
  s.expires_at = 1790000000;
  api::UploadState back = api::UploadState::from_json(s.to_json());
  CHECK(back.to_json() == s.to_json());
  // The answer of a PUT of the disk holds less; what push needs is there.
  auto put_answer = api::UploadState::from_json({{"upload", "00ff"}, {"received", 5}, {"file_size", 9}});
  CHECK(put_answer.received == 5);
  CHECK(put_answer.artifacts_received.empty());
  try {
    api::UploadState::from_json({{"upload", "00ff"}, {"received", "lots"}});
    FAIL("a string for 'received' was taken");
  } catch (const api::ApiError& e) {
    CHECK(e.status() == 400);
    CHECK(std::string(e.what()) == "the field 'received' must be a number of bytes, not a string");
  }
  CHECK_THROWS_AS(api::UploadState::from_json(nlohmann::json::array()), api::ApiError);
}

TEST_CASE("api fields: each reader names the field and the kind, never the value", "[api]") {
  nlohmann::json body = {{"n", -3}, {"s", 5}, {"f", "yes"}, {"ok", true}, {"name", "x"}, {"null", nullptr}};
  CHECK(message([&] { api::optional_positive(body, "n"); }) == "the field 'n' must be a positive integer, not a negative number");
  CHECK(message([&] { api::optional_string(body, "s"); }) == "the field 's' must be a string, not a number");
  CHECK(message([&] { api::optional_flag(body, "f"); }) == "the field 'f' must be true or false, not a string");
  CHECK(message([&] { api::required_string(body, "missing"); }) == "the field 'missing' (a string) is missing");
  CHECK(message([&] { api::required_positive(body, "null"); }) == "the field 'null' must be a positive integer, not null");
  CHECK(api::optional_flag(body, "ok"));
  CHECK_FALSE(api::optional_flag(body, "null"));
  CHECK(api::optional_string(body, "name") == "x");
  CHECK_FALSE(api::optional_positive(body, "absent"));
}

// docs/api.md's SYNOPSIS and bootsrv's route table list the same routes:
// "GET    /api/v1/images/IMAGE/versions/N" is the row (GET,
// images/{image}/versions/{version}); placeholders are compared as "*".
TEST_CASE("api routes: docs/api.md's SYNOPSIS is bootsrv's route table, row for row", "[api]") {
  auto shape = [](std::string path) {
    path = path.substr(0, path.find_first_of("?["));
    std::string out;
    size_t at = 0;
    while (at <= path.size()) {
      size_t slash = path.find('/', at);
      std::string seg = path.substr(at, slash == std::string::npos ? std::string::npos : slash - at);
      bool field = (seg.size() > 2 && seg.front() == '{') ||
                   (!seg.empty() && std::all_of(seg.begin(), seg.end(), [](char ch) { return std::isupper(ch); }));
      out += (out.empty() ? "" : "/") + (field ? std::string("*") : seg);
      if (slash == std::string::npos) break;
      at = slash + 1;
    }
    return out;
  };
  std::vector<std::string> table, documented;
  for (const auto& [method, pattern] : bootsrv::Api::route_list()) table.push_back(method + " " + shape(pattern));
  std::ifstream doc(std::string(BOOTFLEET_SOURCE_DIR) + "/docs/api.md");
  REQUIRE(doc);
  std::string line;
  bool in_synopsis = false;
  while (std::getline(doc, line)) {
    if (line.rfind("## ", 0) == 0) in_synopsis = line == "## SYNOPSIS";
    if (!in_synopsis) continue;
    std::istringstream words(line);
    std::string method, path;
    words >> method >> path;
    if (path.rfind("/api/v1/", 0) != 0) continue;
    documented.push_back(method + " " + shape(path.substr(8)));
  }
  std::sort(table.begin(), table.end());
  std::sort(documented.begin(), documented.end());
  CHECK(table.size() == 33);
  CHECK(documented == table);
}
