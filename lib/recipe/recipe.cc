// The small pieces of the recipe model: how locations, problems and steps
// print. Parsing is in parse.cc.
#include "recipe/recipe.h"

#include <cstdio>

namespace bootfleet::recipe {

namespace {

// Progress lines stay one line: long text is cut and newlines shown as "\n".
std::string one_line(const std::string& text, size_t max = 60) {
  std::string out;
  for (char c : text) {
    if (out.size() >= max) {
      out += "...";
      break;
    }
    if (c == '\n') out += "\\n";
    else out += c;
  }
  return out;
}

std::string octal(uint32_t mode) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "%04o", mode);
  return buf;
}

}  // namespace

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

std::string Step::name() const {
  switch (kind) {
    case Kind::kMkdir: return "mkdir";
    case Kind::kCopyIn: return "copy-in";
    case Kind::kWrite: return "write";
    case Kind::kDelete: return "delete";
    case Kind::kChmod: return "chmod";
    case Kind::kChown: return "chown";
    case Kind::kSymlink: return "symlink";
    case Kind::kTarIn: return "tar-in";
    case Kind::kEdit: return "edit";
    case Kind::kRun: return "run";
    case Kind::kRegistry: return "registry";
    case Kind::kBootloader: return "bootloader";
    case Kind::kCopyOut: return "copy-out";
  }
  return "unknown";
}

std::string Step::summary() const {
  const std::string n = name();
  switch (kind) {
    case Kind::kMkdir: return n + " " + path + (mode ? " (" + octal(*mode) + ")" : "");
    case Kind::kCopyIn:
    case Kind::kTarIn: return n + " " + host_path + " -> " + path;
    case Kind::kWrite: return n + " " + path + " (" + std::to_string(content.size()) + " bytes)";
    case Kind::kDelete: return n + " " + path + (recursive ? " (recursive)" : "");
    case Kind::kChmod: return n + " " + (mode ? octal(*mode) : "?") + " " + path;
    case Kind::kChown:
      return n + " " + (uid ? std::to_string(*uid) : "-") + ":" + (gid ? std::to_string(*gid) : "-") + " " + path;
    case Kind::kSymlink: return n + " " + path + " -> " + target;
    case Kind::kEdit: return n + " " + path + ": '" + one_line(search, 30) + "' -> '" + one_line(replace, 30) + "'";
    case Kind::kRun: return n + " " + one_line(command);
    case Kind::kRegistry:
      return n + " " + path + " (" + std::to_string(registry.size()) + (registry.size() == 1 ? " change)" : " changes)");
    case Kind::kBootloader: return n + " extlinux in " + path + ": " + kernel;
    case Kind::kCopyOut: return n + " " + path + " -> " + (artifact.empty() ? host_path : "artifact " + artifact);
  }
  return n;
}

}  // namespace bootfleet::recipe
