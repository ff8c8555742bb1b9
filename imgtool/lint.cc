// imgtool lint RECIPE [--set K=V]... [--json]
#include <iostream>
#include <nlohmann/json.hpp>

#include "cli.h"
#include "recipe/recipe.h"
#include "util/error.h"

namespace bootfleet::imgtool {

int cmd_lint(const std::vector<std::string>& args) {
  CommandSpec spec{"lint", "RECIPE [--set NAME=VALUE]... [--json]",
                   "Parse and check a recipe the way build does, without building anything.",
                   "Reports every problem, one per line on stderr, as FILE:LINE:COLUMN: FIELD: MESSAGE;\n"
                   "a clean recipe prints 'RECIPE: ok (N steps)'. ${NAME} in the recipe is replaced\n"
                   "by --set NAME=VALUE, else by the environment variable NAME. Host files that\n"
                   "steps read (copy-in, tar-in, import) must exist, and copy-out's directory.\n"
                   "Exit status: 0 clean, 1 problems found, 2 the recipe cannot be read."};
  auto options = base_options();
  std::string file;
  std::vector<std::string> sets;
  bool as_json = false;
  options.add_options()("recipe", po::value(&file)->required(), "the recipe file")(
      "set", po::value(&sets)->composing(), "NAME=VALUE for ${NAME} in the recipe (repeatable)")(
      "json", po::bool_switch(&as_json), "print JSON");
  po::positional_options_description pos;
  pos.add("recipe", 1);
  po::variables_map vm;
  if (!parse_command_line(spec, options, pos, args, vm)) return kExitOk;

  recipe::ParseOptions parse_options;
  parse_options.variables = parse_set_options(sets);

  std::vector<recipe::Problem> problems;
  size_t steps = 0;
  try {
    steps = recipe::parse_file(file, parse_options).steps.size();
  } catch (const recipe::RecipeError& e) {
    problems = e.problems();
  }
  if (as_json) {
    nlohmann::json list = nlohmann::json::array();
    for (const auto& p : problems) {
      list.push_back({{"file", p.where.file},
                      {"line", p.where.line},
                      {"column", p.where.column},
                      {"field", p.field},
                      {"message", p.message}});
    }
    // Recipes are checked to be UTF-8, but a message may quote a cut-off
    // multibyte character; replace it rather than fail.
    std::cout << nlohmann::json{{"ok", problems.empty()}, {"problems", list}}.dump(
                     2, ' ', false, nlohmann::json::error_handler_t::replace)
              << "\n";
  } else if (problems.empty()) {
    std::cout << file << ": ok (" << steps << (steps == 1 ? " step)" : " steps)") << "\n";
  } else {
    for (const auto& p : problems) std::cerr << p.text() << "\n";
  }
  return problems.empty() ? kExitOk : kExitNo;
}

}  // namespace bootfleet::imgtool
