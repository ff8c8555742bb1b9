// The step table (lib/recipe/steps.h): every step kind has one row, the
// parser, the model's names and summaries, the canonical form and the docs
// all follow it; tar-in's accepted names are the ones its run unpacks.
#include <catch2/catch.hpp>
#include <fstream>
#include <set>
#include <sstream>

#include "recipe/recipe.h"
#include "recipe/steps.h"

using namespace bootfleet::recipe;

namespace {
ParseOptions quiet() {
  ParseOptions o;
  o.use_environment = false;
  o.check_host_files = false;
  return o;
}
Recipe parse(const std::string& steps) {
  return parse_string("image: lab\nbase: lab@1\nsteps:\n" + steps, "r.yaml", "/recipes", quiet());
}
}  // namespace

TEST_CASE("step table: one row per kind, each documented in docs/recipes.md", "[recipe]") {
  std::ifstream in(std::string(BOOTFLEET_SOURCE_DIR) + "/docs/recipes.md");
  REQUIRE(in);
  std::stringstream doc;
  doc << in.rdbuf();
  std::set<std::string> names;
  std::set<int> kinds;
  for (const auto& k : step_kinds()) {
    INFO(k.name);
    CHECK(names.insert(k.name).second);
    CHECK(kinds.insert(static_cast<int>(k.kind)).second);
    CHECK(&step_kind(k.kind) == &k);
    CHECK(find_step_kind(k.name) == &k);
    CHECK(k.parse != nullptr);
    CHECK(k.canonical != nullptr);
    CHECK(k.summary != nullptr);
    CHECK(k.run != nullptr);
    CHECK(doc.str().find("### " + std::string(k.name) + "\n") != std::string::npos);
  }
  CHECK(names.size() == 13);
  CHECK(find_step_kind("frobnicate") == nullptr);
}

TEST_CASE("step table: a recipe with every kind parses, names and summarises each by its row", "[recipe]") {
  Recipe r = parse(
      "  - mkdir: {path: /srv, mode: 0750}\n"
      "  - copy-in: {from: files, to: /etc}\n"
      "  - write: {path: /etc/motd, content: hi, mode: 01777}\n"
      "  - delete: /tmp/x\n"
      "  - chmod: {path: /srv, mode: 700}\n"
      "  - chown: {path: /srv, uid: 1000}\n"
      "  - symlink: {link: /etc/localtime, target: /usr/share/zoneinfo/UTC}\n"
      "  - tar-in: {from: app.tar.xz, to: /opt}\n"
      "  - edit: {path: /etc/motd, replace: hi, with: hello}\n"
      "  - run: echo hi\n"
      "  - registry: {hive: /h, set: [{key: 'A\\B', value: v, type: dword, data: 1}]}\n"
      "  - bootloader: {kernel: /vmlinuz}\n"
      "  - copy-out: {from: /etc/motd, artifact: motd}\n");
  REQUIRE(r.steps.size() == step_kinds().size());
  for (size_t i = 0; i < r.steps.size(); ++i) {
    INFO(i);
    CHECK(r.steps[i].kind == step_kinds()[i].kind);
    CHECK(r.steps[i].name() == step_kinds()[i].name);
    CHECK(r.steps[i].summary().rfind(r.steps[i].name() + " ", 0) == 0);
  }
  // One mode spelling everywhere: the summary and the canonical form.
  CHECK(r.steps[0].summary() == "mkdir /srv (0750)");
  CHECK(r.steps[4].summary() == "chmod 0700 /srv");
  CHECK(r.canonical.find("\"mode\": \"01777\"") != std::string::npos);
  // The bootloader's default directory is the parser's, spelled once.
  CHECK(r.steps[11].path == "/boot/extlinux");
  CHECK(r.canonical.find("\"type\": \"dword\"") != std::string::npos);
  // The canonical form is a recipe that gives itself back.
  CHECK(parse_string(r.canonical, "c.yaml", "/recipes", quiet()).canonical == r.canonical);
}

TEST_CASE("step table: tar-in takes the archives its run unpacks, and no others", "[recipe]") {
  for (const char* ok : {"a.tar", "a.tar.gz", "a.tgz", "a.tar.xz", "a.txz", "a.tar.bz2", "a.tbz2", "a.tar.zst"}) {
    INFO(ok);
    CHECK(parse("  - tar-in: {from: " + std::string(ok) + ", to: /opt}\n").steps.at(0).kind == Step::Kind::kTarIn);
  }
  for (const char* bad : {"a.zip", "a.tar.lz4", "a.gz", "tar"}) {
    INFO(bad);
    try {
      parse("  - tar-in: {from: " + std::string(bad) + ", to: /opt}\n");
      FAIL("accepted " << bad);
    } catch (const RecipeError& e) {
      REQUIRE(e.problems().size() == 1);
      CHECK(e.problems()[0].field == "steps[0].tar-in.from");
      CHECK(e.problems()[0].message.find(".tar.xz") != std::string::npos);
    }
  }
}

TEST_CASE("step table: registry types are looked up by name, not by the enum's order", "[recipe]") {
  for (const auto& name : registry_type_names()) CHECK(registry_type_name(registry_type(name)) == name);
  CHECK(registry_type_name(RegistryChange::Type::kBinary) == std::string("binary"));
  CHECK(registry_type_name(RegistryChange::Type::kString) == std::string("string"));
  CHECK_THROWS(registry_type("reg_sz"));
}
