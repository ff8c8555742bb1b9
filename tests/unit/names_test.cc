// Names with one definition each, used by every door: artifact names
// (util/names.h: recipes and uploads) and client names (the store's rule,
// which export names use too).
#include <stdlib.h>

#include <catch2/catch.hpp>
#include <filesystem>
#include <string>
#include <vector>

#include "recipe/recipe.h"
#include "serve/exports.h"
#include "store/store.h"
#include "util/error.h"
#include "util/names.h"

using namespace bootfleet;
namespace fs = std::filesystem;

TEST_CASE("names: an artifact name is 1-64 letters, digits, '.', '_', '-', not starting with '.'", "[names]") {
  CHECK(util::is_artifact_name("vmlinuz"));
  CHECK(util::is_artifact_name("initrd.img-6.1_x-64"));
  CHECK(util::is_artifact_name(std::string(64, 'a')));
  CHECK_FALSE(util::is_artifact_name(std::string(65, 'a')));  // uploads took 65-128 before
  CHECK_FALSE(util::is_artifact_name(""));
  CHECK_FALSE(util::is_artifact_name(".hidden"));
  CHECK_FALSE(util::is_artifact_name("a/b"));
  CHECK_FALSE(util::is_artifact_name("a b"));
  CHECK_FALSE(util::is_artifact_name("caf\xc3\xa9"));
  CHECK(std::string(util::kArtifactNameRule).find("1-64") != std::string::npos);
}

TEST_CASE("names: a recipe's copy-out refuses the artifact names uploads refuse, with the same rule", "[names]") {
  recipe::ParseOptions o;
  o.use_environment = false;
  o.check_host_files = false;
  auto recipe = [](const std::string& name) {
    return "image: lab\nbase: lab@1\nsteps:\n  - copy-out: {from: /boot/vmlinuz, artifact: " + name + "}\n";
  };
  CHECK(recipe::parse_string(recipe(std::string(64, 'k')), "r.yaml", "/", o).steps.at(0).artifact ==
        std::string(64, 'k'));
  try {
    recipe::parse_string(recipe(std::string(65, 'k')), "r.yaml", "/", o);
    FAIL("a 65-character artifact name was accepted");
  } catch (const recipe::RecipeError& e) {
    REQUIRE(e.problems().size() == 1);
    CHECK(e.problems()[0].field == "steps[0].copy-out.artifact");
    CHECK(e.problems()[0].message.find(util::kArtifactNameRule) != std::string::npos);
  }
}

TEST_CASE("names: an export's client name follows the store's rule", "[names]") {
  char tmpl[] = "/tmp/bootfleet-names-unit-XXXXXX";
  REQUIRE(::mkdtemp(tmpl) != nullptr);
  fs::path dir = tmpl;
  {
    store::Store::init((dir / "s").string());
    auto s = store::Store::open((dir / "s").string());
    fs::create_directories(dir / "cache");
    block::SessionManager::Options options;
    options.cache_dir = (dir / "cache").string();
    serve::StoreExports exports(*s, options);
    // What `imgtool client add` refuses, an export refuses too (it took ':'
    // and a leading '-' before), naming the export and the rule.
    for (const std::string& client : std::vector<std::string>{"pc:01", "-pc01", "", std::string(65, 'p')}) {
      INFO(client);
      CHECK_THROWS_AS(store::validate_client_name(client), util::Error);
      CHECK_THROWS_WITH(exports.open("lab/" + client),
                        Catch::Contains("export 'lab/" + client + "': client name"));
    }
    // A valid name gets past the name check to the image lookup.
    CHECK_THROWS_WITH(exports.open("lab/pc-01"), !Catch::Contains("client name"));
  }
  fs::remove_all(dir);
}
