// The small pieces of the recipe model: how locations, problems and steps
// print (a step through its row of the step table, steps.h). Parsing is in
// parse.cc.
#include "recipe/recipe.h"

#include "recipe/steps.h"

namespace bootfleet::recipe {


std::string Location::text() const {
  if (line <= 0) return file;
  return file + ":" + std::to_string(line) + ":" + std::to_string(column);
}

std::string Problem::text() const {
  std::string out = where.text();
  if (!out.empty()) out += ": ";
  if (!field.empty()) out += field + ": ";
  return out + message;
}

namespace {
std::string join_problems(const std::vector<Problem>& problems) {
  if (problems.empty()) return "invalid recipe";
  std::string out;
  for (const auto& p : problems) {
    if (!out.empty()) out += "\n";
    out += p.text();
  }
  return out;
}
}  // namespace

RecipeError::RecipeError(std::vector<Problem> problems)
    : util::Error(join_problems(problems)), problems_(std::move(problems)) {}

std::string Step::name() const { return step_kind(kind).name; }

std::string Step::summary() const { return name() + " " + step_kind(kind).summary(*this); }

}  // namespace bootfleet::recipe
