// The step table: every kind of recipe step, declared once (steps.cc).
//
// Design note. A step kind is one row: its YAML name, the fields its map
// takes (and the short scalar form, if any), how its body is parsed, its
// canonical form for the build cache key, its one-line summary, and how it
// runs on a guest. The parser (parse.cc), the model's name()/summary()
// (recipe.cc) and the executor (execute.cc) only walk this table, so a new
// step is one row here plus its section in docs/recipes.md and a test;
// nothing else switches on Step::Kind. Rules two rows share (which tar
// archives tar-in takes and how each is unpacked, the registry value types)
// are tables here too, read by both the parse and the run of the row.
//
// Parsing stays apart from guests in what it does (DESIGN.md section 3: a
// recipe is checked whole before any slow work): a row's parse reads only
// the YAML through StepParser, and its run is only called by run_steps.
// This header is internal to lib/recipe.
#pragma once

#include <yaml-cpp/yaml.h>

#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "guest/guest.h"
#include "recipe/execute.h"
#include "recipe/recipe.h"

namespace bootfleet::recipe {

// A value in the YAML tree with the field path and position problems name.
struct Value {
  YAML::Node node;
  std::string field;
  Location where;
};

// The entries of a map that passed the key checks.
class Fields {
 public:
  const Value* get(const std::string& key) const {
    auto it = entries_.find(key);
    return it == entries_.end() ? nullptr : &it->second;
  }
  bool has(const std::string& key) const { return entries_.count(key) != 0; }
  void add(const std::string& key, Value v) { entries_.emplace(key, std::move(v)); }

 private:
  std::map<std::string, Value> entries_;
};

enum class HostCheck { kExists, kRegularFile, kParentDirExists };

// What a row's parse may ask of the parser: typed readers that report a
// problem (and return nullopt) instead of throwing, so one pass finds every
// problem of the recipe.
class StepParser {
 public:
  virtual void report(const Value& v, const std::string& message) = 0;
  virtual std::optional<Fields> fields(const Value& v, const std::vector<std::string>& allowed,
                                       const std::vector<std::string>& required, const std::string& expected) = 0;
  virtual std::optional<std::vector<Value>> list(const Value& v, const std::string& expected) = 0;
  virtual std::optional<std::string> str(const Value& v, bool allow_empty = false) = 0;
  virtual std::optional<std::string> guest_path(const Value& v) = 0;
  virtual std::optional<std::string> host_path(const Value& v, HostCheck check) = 0;
  virtual std::optional<bool> boolean(const Value& v) = 0;
  virtual std::optional<uint32_t> mode(const Value& v) = 0;
  virtual std::optional<uint64_t> number(const Value& v, uint64_t max) = 0;
  virtual std::optional<std::string> one_line(const Value& v, bool allow_empty, bool allow_spaces) = 0;
  virtual std::optional<RegistryChange> registry_set(const Value& v) = 0;
  virtual std::optional<RegistryChange> registry_delete(const Value& v) = 0;

 protected:
  ~StepParser() = default;
};

// How the canonical form spells values that depend on where the recipe is
// and how variables are written.
struct CanonicalSpelling {
  std::function<std::string(const std::string&)> text;  // a string value ("${" escaped as "$${")
  std::function<std::string(const std::string&)> host;  // a host path (relative to the recipe where below it)
};

// What a row's run gets: the guest with its filesystems mounted, and where
// its progress lines and artifacts go.
struct StepRun {
  guest::Guest& guest;
  const ExecuteOptions& options;
  void say(const std::string& line) const {
    if (options.say) options.say(line);
  }
};

// Which host files a step reads, for the build cache's input hash.
enum class HostInput { kNone, kFile, kTree };

struct StepKind {
  Step::Kind kind;
  const char* name;  // the YAML key
  // The map's keys, the required ones, and the shape named in errors.
  std::vector<std::string> fields, required;
  const char* shape;
  // The field a plain scalar body stands for (`mkdir: /x`), or nullptr.
  const char* scalar_field;
  HostInput host_input;
  // Fills `step` (kind and where are set) from the checked fields of `body`.
  void (*parse)(StepParser& p, const Fields& f, const Value& body, Step& step);
  // The body of the step in the canonical form.
  nlohmann::json (*canonical)(const Step& step, const CanonicalSpelling& spell);
  // The summary after the step's name, e.g. "files/ -> /etc" for copy-in.
  std::string (*summary)(const Step& step);
  void (*run)(const StepRun& r, const Step& step);
};

// Every step kind, in the order docs/recipes.md lists them.
const std::vector<StepKind>& step_kinds();
const StepKind& step_kind(Step::Kind kind);
const StepKind* find_step_kind(const std::string& name);
std::vector<std::string> step_names();

// Registry value types by their recipe names ("string", "dword", …).
std::vector<std::string> registry_type_names();
RegistryChange::Type registry_type(const std::string& name);  // name must be one of registry_type_names()
const char* registry_type_name(RegistryChange::Type type);

}  // namespace bootfleet::recipe
