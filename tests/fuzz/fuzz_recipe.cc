// libFuzzer target for the recipe parser: the input is a recipe's text.
//
// Parsed without the environment and without looking at host files (so no
// input makes it walk this machine's file system). RecipeError and
// util::Error are expected; anything else escaping, crashes, hangs and UB
// are not. A recipe that parses must keep the promises the build cache
// relies on: its canonical form parses again, to the same canonical form.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "recipe/recipe.h"
#include "util/error.h"

using namespace bootfleet;

namespace {

[[noreturn]] void broken(const char* what, const std::string& detail) {
  std::fprintf(stderr, "fuzz_recipe: invariant broken: %s\n%s\n", what, detail.c_str());
  std::abort();
}

recipe::ParseOptions options() {
  recipe::ParseOptions o;
  o.use_environment = false;
  o.check_host_files = false;
  o.variables = {{"NAME", "lab"}, {"EMPTY", ""}, {"DOLLAR", "${NAME}"}};
  return o;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const recipe::ParseOptions kOptions = options();
  const std::string text(reinterpret_cast<const char*>(data), size);
  recipe::Recipe r;
  try {
    r = recipe::parse_string(text, "fuzz.yaml", "/recipes", kOptions);
  } catch (const recipe::RecipeError& e) {
    if (e.problems().empty()) broken("RecipeError without problems", text);
    for (const auto& p : e.problems()) {
      if (p.where.file != "fuzz.yaml" || p.where.line < 0 || p.where.column < 0 || p.message.empty()) {
        broken("a problem without a proper location or message", p.text());
      }
    }
    return 0;
  } catch (const util::Error&) {
    return 0;
  }
  if (r.canonical.empty()) broken("no canonical form", text);
  for (const auto& s : r.steps) (void)s.summary();
  try {
    recipe::Recipe again = recipe::parse_string(r.canonical, "canonical.yaml", "/recipes", kOptions);
    if (again.canonical != r.canonical) broken("the canonical form is not stable", r.canonical + "\n---\n" + again.canonical);
    if (again.steps.size() != r.steps.size()) broken("the canonical form has other steps", r.canonical);
  } catch (const util::Error& e) {
    broken("the canonical form does not parse", r.canonical + "\n" + e.what());
  }
  return 0;
}
