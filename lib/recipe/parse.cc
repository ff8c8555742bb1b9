// Recipe parsing and validation: YAML text in, a Recipe or every problem out.
//
// Design note. yaml-cpp turns the text into a node tree (a syntax error is a
// single Problem at yaml-cpp's position). One pass then walks the tree by the
// schema, never generically: the walk only descends where the format has a
// place, so a deep tree or an alias cycle (`&a [*a]` is legal YAML and
// yaml-cpp builds the cycle) cannot make it recurse without bound. Readers
// report into `problems_` and return nullopt instead of throwing, so one pass
// finds every problem; the Recipe is thrown away if there was any.
//
// Positions: a value is located at its own node, except a missing value
// (`key:` and nothing), which yaml-cpp marks at the following token, so it is
// located at its key. A missing key is located at the map that lacks it.
//
// Variables are substituted in each scalar value as it is read, never in
// keys, and never recursively (a value's own "${" stays literal).
//
// The canonical form is emitted from the parsed model, not from the YAML: it
// is JSON (which is YAML) and itself a valid recipe, with every default
// spelled out, every "${" escaped as "$${" and host paths relative to the
// recipe's directory, so neither comments nor where a checkout lives change
// it. Parsing the canonical form gives the same canonical form back; the
// fuzz target checks that.
#include <yaml-cpp/eventhandler.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <tuple>

#include "guest/guest.h"
#include "recipe/recipe.h"
#include "recipe/steps.h"
#include "util/bytes.h"
#include "util/error.h"
#include "util/names.h"
#include "util/size.h"
#include "util/text.h"

namespace bootfleet::recipe {

namespace fs = std::filesystem;

namespace {

// VHD's limit (DESIGN.md section 5) bounds what `base: create` may ask for.
constexpr uint64_t kMaxDiskSize = 2040ull << 30;
constexpr uint64_t kSector = 512;
constexpr uint32_t kMaxMode = 07777;
constexpr int kMaxMbrPartitions = 4;
constexpr int kMaxGptPartitions = 128;
// YAML aliases let a few bytes stand for many values, and the schema nests
// lists three deep (steps, registry changes, multi-string data), so the walk
// counts what it visits and gives up past a bound no real recipe comes near.
constexpr size_t kMaxValues = 200000;
// Past this many problems the rest would not help anyone.
constexpr size_t kMaxProblems = 500;

const std::vector<std::string> kTopKeys = {"image", "base", "steps", "message"};
const std::vector<std::string> kBaseKinds = {"version", "import", "create"};
const std::vector<std::string> kFilesystems = {"ext4", "xfs", "vfat", "ntfs"};

std::string join(const std::vector<std::string>& words, const std::string& sep = ", ") {
  std::string out;
  for (const auto& w : words) {
    if (!out.empty()) out += sep;
    out += w;
  }
  return out;
}

bool contains(const std::vector<std::string>& words, const std::string& w) {
  return std::find(words.begin(), words.end(), w) != words.end();
}

// Scalars quoted in messages are cut short and kept on one line.
std::string quote(const std::string& text) {
  std::string out = "'";
  for (char c : text) {
    // Cut only between characters, never inside a UTF-8 sequence.
    if (out.size() > 40 && (static_cast<unsigned char>(c) & 0xC0) != 0x80) {
      out += "...";
      break;
    }
    if (c == '\n') out += "\\n";
    else if (c == '\0') out += "\\0";
    else out += c;
  }
  return out + "'";
}

std::string describe(const YAML::Node& node) {
  switch (node.Type()) {
    case YAML::NodeType::Map: return "a map";
    case YAML::NodeType::Sequence: return "a list";
    case YAML::NodeType::Scalar: return quote(node.Scalar());
    default: return "nothing";
  }
}

bool valid_utf8(const std::string& s) {
  size_t i = 0;
  while (i < s.size()) {
    unsigned char c = static_cast<unsigned char>(s[i]);
    size_t n;
    uint32_t cp;
    if (c < 0x80) {
      ++i;
      continue;
    } else if ((c & 0xE0) == 0xC0) {
      n = 1;
      cp = c & 0x1F;
    } else if ((c & 0xF0) == 0xE0) {
      n = 2;
      cp = c & 0x0F;
    } else if ((c & 0xF8) == 0xF0) {
      n = 3;
      cp = c & 0x07;
    } else {
      return false;
    }
    if (i + n >= s.size()) return false;  // truncated sequence
    for (size_t k = 1; k <= n; ++k) {
      unsigned char cc = static_cast<unsigned char>(s[i + k]);
      if ((cc & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (cc & 0x3F);
    }
    // Overlong forms, surrogates and code points past U+10FFFF.
    if ((n == 1 && cp < 0x80) || (n == 2 && cp < 0x800) || (n == 3 && cp < 0x10000) || cp > 0x10FFFF ||
        (cp >= 0xD800 && cp <= 0xDFFF)) {
      return false;
    }
    i += n + 1;
  }
  return true;
}

bool valid_variable_name(const std::string& name) {
  if (name.empty() || std::isdigit(static_cast<unsigned char>(name[0]))) return false;
  for (char c : name) {
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '_') return false;
  }
  return true;
}

// The inverse of substitution's "$${" escape, for the canonical form.
std::string escape_dollars(const std::string& s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '$' && i + 1 < s.size() && s[i + 1] == '{') out += '$';
    out += s[i];
  }
  return out;
}

// Remembers where the last document started; ignores everything else.
class DocumentStarts : public YAML::EventHandler {
 public:
  YAML::Mark last = YAML::Mark::null_mark();
  void OnDocumentStart(const YAML::Mark& mark) override { last = mark; }
  void OnDocumentEnd() override {}
  void OnNull(const YAML::Mark&, YAML::anchor_t) override {}
  void OnAlias(const YAML::Mark&, YAML::anchor_t) override {}
  void OnScalar(const YAML::Mark&, const std::string&, YAML::anchor_t, const std::string&) override {}
  void OnSequenceStart(const YAML::Mark&, const std::string&, YAML::anchor_t, YAML::EmitterStyle::value) override {}
  void OnSequenceEnd() override {}
  void OnMapStart(const YAML::Mark&, const std::string&, YAML::anchor_t, YAML::EmitterStyle::value) override {}
  void OnMapEnd() override {}
};

// Thrown inside the walk to stop it (too many values or problems); the
// problems found so far, including why it stopped, are reported.
struct StopWalk {};

class Parser : public StepParser {
 public:
  Parser(std::string file, const std::string& base_dir, const ParseOptions& options)
      : file_(std::move(file)), options_(options) {
    std::error_code ec;
    fs::path dir = base_dir.empty() ? fs::path(".") : fs::path(base_dir);
    fs::path absolute = fs::absolute(dir, ec);
    base_dir_ = (ec ? dir : absolute).lexically_normal();
  }

  Recipe parse(const std::string& text);

 private:
  Location locate(const YAML::Mark& mark) const {
    Location l;
    l.file = file_;
    if (mark.line >= 0 && mark.column >= 0) {
      l.line = mark.line + 1;
      l.column = mark.column + 1;
    }
    return l;
  }
  void report(const Location& where, const std::string& field, const std::string& message) {
    problems_.push_back(Problem{where, field, message});
    if (problems_.size() >= kMaxProblems) {
      problems_.push_back(Problem{where, "", "too many problems; stopped after " + std::to_string(kMaxProblems)});
      throw StopWalk{};
    }
  }
  // Counts one value visited; stops the walk past kMaxValues.
  void visit(const Location& where) {
    if (++visited_ <= kMaxValues) return;
    problems_.push_back(Problem{where, "", "the recipe has more than " + std::to_string(kMaxValues) +
                                               " values (with YAML aliases expanded); stopped reading"});
    throw StopWalk{};
  }
  void report(const Value& v, const std::string& message) override { report(v.where, v.field, message); }

  Value item(const Value& list, size_t index, const YAML::Node& node) const {
    return Value{node, list.field + "[" + std::to_string(index) + "]", node.IsNull() ? list.where : locate(node.Mark())};
  }

  // The readers (StepParser's, for the step table's rows, and the base's).
  std::optional<Fields> fields(const Value& v, const std::vector<std::string>& allowed,
                               const std::vector<std::string>& required, const std::string& expected) override;
  std::optional<std::vector<Value>> list(const Value& v, const std::string& expected) override;

  std::optional<std::string> substitute(const Value& v, const std::string& raw);
  std::optional<std::string> str(const Value& v, bool allow_empty = false) override;
  std::optional<std::string> choice(const Value& v, const std::vector<std::string>& allowed);
  std::optional<std::string> guest_path(const Value& v) override;
  std::optional<std::string> host_path(const Value& v, HostCheck check) override;
  std::optional<bool> boolean(const Value& v) override;
  std::optional<uint32_t> mode(const Value& v) override;
  std::optional<uint64_t> size(const Value& v);
  std::optional<uint64_t> number(const Value& v, uint64_t max) override;
  std::optional<std::string> one_line(const Value& v, bool allow_empty, bool allow_spaces) override;

  void parse_top(const YAML::Node& root, Recipe& r);
  void parse_base(const Value& v, Base& base);
  void parse_create(const Value& v, Base& base);
  void parse_partitions(const Value& v, Base& base);
  std::optional<Step> parse_step(const Value& v);
  bool parse_step_body(const StepKind& kind, const Value& body, Step& step);
  std::optional<RegistryChange> registry_set(const Value& v) override;
  std::optional<RegistryChange> registry_delete(const Value& v) override;

  std::string canonical_host(const std::string& path) const;
  std::string canonical(const Recipe& r) const;
  std::vector<std::string> input_files(const Recipe& r) const;

  std::string file_;
  fs::path base_dir_;
  const ParseOptions& options_;
  std::vector<Problem> problems_;
  size_t visited_ = 0;
};

// --- shapes -------------------------------------------------------------

std::optional<Fields> Parser::fields(const Value& v, const std::vector<std::string>& allowed,
                                     const std::vector<std::string>& required, const std::string& expected) {
  if (!v.node.IsMap()) {
    report(v, "expected " + expected + ", found " + describe(v.node));
    return std::nullopt;
  }
  Fields out;
  for (auto it = v.node.begin(); it != v.node.end(); ++it) {
    const YAML::Node key = it->first;  // copies: yaml-cpp's it-> points into a temporary
    Location key_where = locate(key.Mark());
    if (!key.IsScalar()) {
      report(key_where, v.field, "a key must be a plain word, found " + describe(key) + "; allowed keys: " + join(allowed));
      continue;
    }
    const std::string& name = key.Scalar();
    std::string field = v.field.empty() ? name : v.field + "." + name;
    if (!contains(allowed, name)) {
      report(key_where, field, "unknown key" + util::did_you_mean(name, allowed) + "; allowed keys: " + join(allowed));
      continue;
    }
    if (out.has(name)) {
      report(key_where, field, "given twice");
      continue;
    }
    const YAML::Node value = it->second;
    visit(key_where);
    out.add(name, Value{value, field, value.IsNull() ? key_where : locate(value.Mark())});
  }
  for (const auto& name : required) {
    if (!out.has(name)) {
      report(v.where, v.field.empty() ? name : v.field + "." + name, "missing; expected " + expected);
    }
  }
  return out;
}

std::optional<std::vector<Value>> Parser::list(const Value& v, const std::string& expected) {
  if (!v.node.IsSequence()) {
    report(v, "expected " + expected + ", found " + describe(v.node));
    return std::nullopt;
  }
  std::vector<Value> out;
  size_t i = 0;
  for (auto it = v.node.begin(); it != v.node.end(); ++it, ++i) {
    out.push_back(item(v, i, *it));
    visit(out.back().where);
  }
  return out;
}

// --- scalars ------------------------------------------------------------

std::optional<std::string> Parser::substitute(const Value& v, const std::string& raw) {
  std::string out;
  bool ok = true;
  for (size_t i = 0; i < raw.size();) {
    if (raw.compare(i, 3, "$${") == 0) {
      out += "${";
      i += 3;
      continue;
    }
    if (raw.compare(i, 2, "${") != 0) {
      out += raw[i++];
      continue;
    }
    size_t close = raw.find('}', i + 2);
    if (close == std::string::npos) {
      report(v, "'${' without a closing '}' (write '$${' for a literal '${')");
      return std::nullopt;
    }
    std::string name = raw.substr(i + 2, close - i - 2);
    i = close + 1;
    if (!valid_variable_name(name)) {
      report(v, quote("${" + name + "}") + " does not name a variable (letters, digits and '_', not starting with a digit)");
      ok = false;
      continue;
    }
    auto it = options_.variables.find(name);
    if (it != options_.variables.end()) {
      out += it->second;
      continue;
    }
    const char* env = options_.use_environment ? std::getenv(name.c_str()) : nullptr;
    if (env) {
      out += env;
      continue;
    }
    report(v, "unknown variable ${" + name + "}; give it with --set " + name + "=VALUE" +
                  (options_.use_environment ? " or in the environment" : ""));
    ok = false;
  }
  if (!ok) return std::nullopt;
  return out;
}

std::optional<std::string> Parser::str(const Value& v, bool allow_empty) {
  if (!v.node.IsScalar()) {
    report(v, "expected a string, found " + describe(v.node));
    return std::nullopt;
  }
  auto s = substitute(v, v.node.Scalar());
  if (!s) return std::nullopt;
  if (!valid_utf8(*s)) {
    report(v, "not valid UTF-8 text");
    return std::nullopt;
  }
  if (s->empty() && !allow_empty) {
    report(v, "empty; expected a non-empty string");
    return std::nullopt;
  }
  return s;
}

std::optional<std::string> Parser::choice(const Value& v, const std::vector<std::string>& allowed) {
  auto s = str(v);
  if (!s) return std::nullopt;
  if (!contains(allowed, *s)) {
    report(v, quote(*s) + " is not allowed" + util::did_you_mean(*s, allowed) + "; use one of " + join(allowed));
    return std::nullopt;
  }
  return s;
}

std::optional<std::string> Parser::one_line(const Value& v, bool allow_empty, bool allow_spaces) {
  auto s = str(v, allow_empty);
  if (!s) return std::nullopt;
  for (char c : *s) {
    if (c == '\n' || c == '\r' || c == '\0' || (!allow_spaces && (c == ' ' || c == '\t'))) {
      report(v, quote(*s) + (allow_spaces ? " must be one line" : " must be one word (no spaces or newlines)"));
      return std::nullopt;
    }
  }
  return s;
}

std::optional<std::string> Parser::guest_path(const Value& v) {
  auto s = str(v);
  if (!s) return std::nullopt;
  if (s->find('\0') != std::string::npos) {
    report(v, "a guest path cannot contain a NUL character");
    return std::nullopt;
  }
  if ((*s)[0] != '/') {
    report(v, quote(*s) + " is not an absolute guest path; guest paths start with '/'");
    return std::nullopt;
  }
  for (size_t start = 0; start <= s->size();) {
    size_t end = s->find('/', start);
    if (end == std::string::npos) end = s->size();
    if (s->compare(start, end - start, "..") == 0 && end - start == 2) {
      report(v, quote(*s) + " has a '..' component; guest paths must not leave the directory they name");
      return std::nullopt;
    }
    start = end + 1;
  }
  return s;
}

std::optional<std::string> Parser::host_path(const Value& v, HostCheck check) {
  auto s = str(v);
  if (!s) return std::nullopt;
  if (s->find('\0') != std::string::npos) {
    report(v, "a host path cannot contain a NUL character");
    return std::nullopt;
  }
  fs::path p = (base_dir_ / fs::path(*s)).lexically_normal();
  // "files/" and "files" are one directory; one spelling keeps the canonical form stable.
  if (!p.has_filename() && p.has_relative_path()) p = p.parent_path();
  std::string abs = p.string();
  if (!options_.check_host_files) return abs;
  std::error_code ec;
  auto st = fs::status(p, ec);
  auto named = quote(*s) + (abs == *s ? "" : " (" + abs + ")");
  switch (check) {
    case HostCheck::kExists:
      if (!fs::exists(st)) {
        report(v, named + " does not exist");
        return std::nullopt;
      }
      break;
    case HostCheck::kRegularFile:
      if (!fs::exists(st)) {
        report(v, named + " does not exist");
        return std::nullopt;
      }
      if (!fs::is_regular_file(st)) {
        report(v, named + " is not a regular file");
        return std::nullopt;
      }
      break;
    case HostCheck::kParentDirExists: {
      if (fs::is_directory(st)) break;
      fs::path parent = p.parent_path();
      if (!fs::is_directory(parent, ec)) {
        report(v, named + ": its directory " + parent.string() + " does not exist");
        return std::nullopt;
      }
      break;
    }
  }
  return abs;
}

std::optional<bool> Parser::boolean(const Value& v) {
  auto s = str(v);
  if (!s) return std::nullopt;
  if (*s == "true" || *s == "True" || *s == "TRUE") return true;
  if (*s == "false" || *s == "False" || *s == "FALSE") return false;
  report(v, quote(*s) + " is not a boolean; use true or false");
  return std::nullopt;
}

// Modes are octal the way chmod(1) reads them, whether or not there is a
// leading 0: YAML 1.1 reads 0755 as octal and YAML 1.2 as decimal 755, and a
// recipe should not mean different things to different readers.
std::optional<uint32_t> Parser::mode(const Value& v) {
  auto s = str(v);
  if (!s) return std::nullopt;
  std::string digits = *s;
  if (digits.size() > 2 && digits[0] == '0' && (digits[1] == 'o' || digits[1] == 'O')) digits = digits.substr(2);
  bool ok = !digits.empty() && digits.size() <= 6;
  uint32_t m = 0;
  for (char c : digits) {
    if (c < '0' || c > '7') ok = false;
    else m = m * 8 + static_cast<uint32_t>(c - '0');
  }
  if (!ok || m > kMaxMode) {
    report(v, quote(*s) + " is not a file mode; use octal digits as chmod(1) does, from 0 to 07777, e.g. 0755 or 644");
    return std::nullopt;
  }
  return m;
}

std::optional<uint64_t> Parser::size(const Value& v) {
  auto s = str(v);
  if (!s) return std::nullopt;
  try {
    return util::parse_size(*s, "size");
  } catch (const util::Error& e) {
    std::string msg = e.what();
    if (msg.rfind("size: ", 0) == 0) msg = msg.substr(6);
    report(v, msg);
  }
  return std::nullopt;
}

// A decimal or 0x-hexadecimal whole number up to `max`.
std::optional<uint64_t> Parser::number(const Value& v, uint64_t max) {
  auto s = str(v);
  if (!s) return std::nullopt;
  bool hex = s->size() > 2 && (*s)[0] == '0' && ((*s)[1] == 'x' || (*s)[1] == 'X');
  std::string digits = hex ? s->substr(2) : *s;
  bool ok = !digits.empty();
  uint64_t n = 0;
  const uint64_t base = hex ? 16 : 10;
  for (char c : digits) {
    int d;
    if (c >= '0' && c <= '9') d = c - '0';
    else if (hex && c >= 'a' && c <= 'f') d = c - 'a' + 10;
    else if (hex && c >= 'A' && c <= 'F') d = c - 'A' + 10;
    else {
      ok = false;
      break;
    }
    if (n > (max - static_cast<uint64_t>(d)) / base) {
      report(v, quote(*s) + " is too large; at most " + std::to_string(max));
      return std::nullopt;
    }
    n = n * base + static_cast<uint64_t>(d);
  }
  if (!ok) {
    report(v, quote(*s) + " is not a whole number; use decimal digits or 0x and hex digits");
    return std::nullopt;
  }
  return n;
}

// --- the recipe -----------------------------------------------------------

Recipe Parser::parse(const std::string& text) {
  Recipe r;
  r.file = file_;
  // yaml-cpp 0.7's LoadAll never returns on some inputs (a ',' after the
  // first node, e.g. "[a],": each call makes another empty document at the
  // same place), so documents are counted with the event parser, at most two,
  // and only the first is loaded.
  std::optional<YAML::Mark> second_document;
  try {
    std::istringstream stream(text);
    YAML::Parser events(stream);
    DocumentStarts starts;
    if (events.HandleNextDocument(starts) && events.HandleNextDocument(starts)) second_document = starts.last;
  } catch (const YAML::Exception& e) {
    report(locate(e.mark), "", "YAML syntax: " + e.msg + util::yaml_tab_hint(text, e.mark.line + 1));
    throw RecipeError(problems_);
  }
  YAML::Node root;
  try {
    root = YAML::Load(text);
  } catch (const YAML::Exception& e) {
    report(locate(e.mark), "", "YAML syntax: " + e.msg + util::yaml_tab_hint(text, e.mark.line + 1));
    throw RecipeError(problems_);
  }
  if (second_document) {
    report(locate(*second_document), "",
           "more YAML after the end of the recipe (a '---' or stray text); a recipe is one YAML document");
  }
  try {
    parse_top(root, r);
  } catch (const YAML::Exception& e) {
    // The walk only uses accessors that cannot throw on the shapes it has
    // checked; this is a safety net so nothing but RecipeError escapes.
    problems_.push_back(Problem{locate(e.mark), "", "cannot read the recipe: " + e.msg});
  } catch (const StopWalk&) {
  }
  if (!problems_.empty()) {
    std::stable_sort(problems_.begin(), problems_.end(), [](const Problem& a, const Problem& b) {
      return std::tie(a.where.line, a.where.column) < std::tie(b.where.line, b.where.column);
    });
    throw RecipeError(std::move(problems_));
  }
  r.canonical = canonical(r);
  r.input_files = input_files(r);
  return r;
}

void Parser::parse_top(const YAML::Node& root, Recipe& r) {
  if (root.IsNull() && problems_.empty()) {
    report(locate(YAML::Mark::null_mark()), "", "empty; a recipe is a map with keys " + join(kTopKeys));
    return;
  }
  Value top{root, "", root.IsNull() ? locate(YAML::Mark::null_mark()) : locate(root.Mark())};
  auto f = fields(top, kTopKeys, {"image", "base"}, "a map with keys " + join(kTopKeys));
  if (!f) return;
  if (auto v = f->get("image")) {
    if (auto name = str(*v)) {
      try {
        util::validate_image_name(*name);
        r.image = *name;
      } catch (const util::Error& e) {
        report(*v, e.what());
      }
    }
  }
  if (auto v = f->get("base")) parse_base(*v, r.base);
  if (auto v = f->get("message")) {
    if (auto m = str(*v, true)) r.message = *m;
  }
  if (auto v = f->get("steps")) {
    if (auto items = list(*v, "a list of steps")) {
      for (const auto& it : *items) {
        if (auto step = parse_step(it)) r.steps.push_back(std::move(*step));
      }
    }
  }
}

void Parser::parse_base(const Value& v, Base& base) {
  base.where = v.where;
  auto version = [&](const Value& at) {
    auto s = str(at);
    if (!s) return;
    try {
      util::parse_version_ref(*s, true);
      base.kind = Base::Kind::kVersion;
      base.version = *s;
    } catch (const util::Error& e) {
      report(at, std::string(e.what()) + " (expected IMAGE@N or IMAGE@active)");
    }
  };
  if (v.node.IsScalar()) {
    version(v);
    return;
  }
  const std::string expected = "IMAGE@N, or a map with exactly one of " + join(kBaseKinds);
  auto f = fields(v, kBaseKinds, {}, expected);
  if (!f) return;
  std::vector<std::string> given;
  for (const auto& k : kBaseKinds) {
    if (f->has(k)) given.push_back(k);
  }
  if (given.size() != 1) {
    report(v, given.empty() ? "no base given; expected " + expected
                            : "gives " + join(given, " and ") + "; give exactly one of " + join(kBaseKinds));
    return;
  }
  if (auto at = f->get("version")) version(*at);
  if (auto at = f->get("import")) {
    if (auto p = host_path(*at, HostCheck::kRegularFile)) {
      base.kind = Base::Kind::kImport;
      base.import_path = *p;
    }
  }
  if (auto at = f->get("create")) parse_create(*at, base);
}

void Parser::parse_create(const Value& v, Base& base) {
  auto f = fields(v, {"size", "partition_table", "partitions"}, {"size"},
                  "a map with size and optionally partition_table, partitions");
  if (!f) return;
  base.kind = Base::Kind::kCreate;
  if (auto at = f->get("size")) {
    if (auto n = size(*at)) {
      if (*n == 0 || *n > kMaxDiskSize || *n % kSector != 0) {
        report(*at, util::format_size(*n) + " (" + std::to_string(*n) +
                        " bytes) is not a disk size; use a whole number of 512-byte sectors, up to 2040G");
      } else {
        base.size = *n;
      }
    }
  }
  base.partition_table = "mbr";
  if (auto at = f->get("partition_table")) {
    if (auto t = choice(*at, {"mbr", "gpt"})) base.partition_table = *t;
  }
  if (auto at = f->get("partitions")) parse_partitions(*at, base);
}

void Parser::parse_partitions(const Value& v, Base& base) {
  auto items = list(v, "a list of partitions");
  if (!items) return;
  const int max = base.partition_table == "gpt" ? kMaxGptPartitions : kMaxMbrPartitions;
  if (static_cast<int>(items->size()) > max) {
    report(v, std::to_string(items->size()) + " partitions; a " + base.partition_table + " partition table holds at most " +
                  std::to_string(max) + (base.partition_table == "mbr" ? " (use gpt for more)" : ""));
  }
  uint64_t total = 0;
  for (size_t i = 0; i < items->size(); ++i) {
    const Value& item = (*items)[i];
    auto f = fields(item, {"size", "type", "filesystem", "label", "bootable"}, {"type"},
                    "a map with type and optionally size, filesystem, label, bootable");
    if (!f) continue;
    Partition p;
    p.where = item.where;
    if (auto at = f->get("size")) {
      if (at->node.IsScalar() && at->node.Scalar() == "rest") {
        p.size = 0;
      } else if (auto n = size(*at)) {
        if (*n == 0 || *n % kSector != 0) {
          report(*at, std::to_string(*n) + " bytes is not a partition size; use a whole number of 512-byte sectors");
        }
        p.size = *n;
      }
    }
    if (p.size == 0 && i + 1 != items->size()) {
      report(f->get("size") ? f->get("size")->where : item.where, item.field + ".size",
             "only the last partition may take the rest of the disk; give this one a size");
    }
    total += std::min<uint64_t>(p.size, kMaxDiskSize);
    if (auto at = f->get("type")) {
      if (auto t = choice(*at, guest::partition_type_names())) p.type = *t;
    }
    if (auto at = f->get("filesystem")) {
      if (auto fsname = choice(*at, kFilesystems)) p.filesystem = *fsname;
    }
    // Which filesystems each partition type can hold.
    static const std::map<std::string, std::vector<std::string>> fits = {
        {"linux", {"ext4", "xfs"}}, {"efi", {"vfat"}}, {"fat32", {"vfat"}}, {"ntfs", {"ntfs"}}, {"swap", {}}};
    if (!p.type.empty() && !p.filesystem.empty() && !contains(fits.at(p.type), p.filesystem)) {
      const auto& ok = fits.at(p.type);
      report(f->get("filesystem")->where, item.field + ".filesystem",
             "a " + p.type + " partition cannot hold " + p.filesystem +
                 (ok.empty() ? "; a swap partition has no filesystem (leave it out)" : "; use " + join(ok, " or ")));
    }
    if (auto at = f->get("label")) {
      if (auto label = one_line(*at, false, true)) {
        // The longest label each filesystem's mkfs takes.
        static const std::map<std::string, size_t> longest = {
            {"ext4", 16}, {"xfs", 12}, {"vfat", 11}, {"ntfs", 128}, {"swap", 16}};
        std::string kind = p.type == "swap" ? "swap" : p.filesystem;
        auto it = longest.find(kind);
        if (!p.type.empty() && it == longest.end()) {
          report(*at, "a label names a filesystem, and this partition has none; give it a filesystem or drop the label");
        } else if (it != longest.end() && label->size() > it->second) {
          report(*at, quote(*label) + " is " + std::to_string(label->size()) + " bytes; a " + kind +
                          " label holds at most " + std::to_string(it->second));
        } else {
          p.label = *label;
        }
      }
    }
    if (auto at = f->get("bootable")) {
      if (auto b = boolean(*at)) p.bootable = *b;
    }
    base.partitions.push_back(std::move(p));
  }
  // The partition table and the first partition's 1 MiB alignment take 1 MiB
  // at the start; GPT keeps its backup table in the last MiB.
  const uint64_t reserved = (base.partition_table == "gpt" ? 2ull : 1ull) << 20;
  if (base.size && total + reserved > base.size) {
    report(v, "the partitions take " + util::format_size(total) + ", and with " + util::format_size(reserved) +
                  " for the " + base.partition_table + " partition table and alignment they do not fit in the " +
                  util::format_size(base.size) + " disk");
  }
}

// --- steps ----------------------------------------------------------------

std::optional<Step> Parser::parse_step(const Value& v) {
  const std::vector<std::string> kStepNames = step_names();
  const std::string expected = "a map with one key naming the step (" + join(kStepNames) + ")";
  if (v.node.IsScalar() && contains(kStepNames, v.node.Scalar())) {
    report(v, "a step is a map: write '" + v.node.Scalar() + ": ...' with the step's fields");
    return std::nullopt;
  }
  if (!v.node.IsMap()) {
    report(v, "expected " + expected + ", found " + describe(v.node));
    return std::nullopt;
  }
  if (v.node.size() != 1) {
    std::vector<std::string> keys;
    for (auto it = v.node.begin(); it != v.node.end(); ++it) {
      keys.push_back(it->first.IsScalar() ? it->first.Scalar() : describe(it->first));
    }
    report(v, keys.empty() ? "empty step; expected " + expected
                           : "has " + std::to_string(keys.size()) + " keys (" + join(keys) +
                                 "); a step has exactly one key naming it, with its fields below it");
    return std::nullopt;
  }
  auto it = v.node.begin();
  const YAML::Node key = it->first;  // copies: yaml-cpp's it-> points into a temporary
  const YAML::Node body = it->second;
  if (!key.IsScalar() || !contains(kStepNames, key.Scalar())) {
    std::string name = key.IsScalar() ? key.Scalar() : "";
    report(locate(key.Mark()), v.field,
           "unknown step " + (key.IsScalar() ? quote(name) : describe(key)) + util::did_you_mean(name, kStepNames) +
               "; steps are " + join(kStepNames));
    return std::nullopt;
  }
  const std::string name = key.Scalar();
  Location key_where = locate(key.Mark());
  Value body_value{body, v.field + "." + name, body.IsNull() ? key_where : locate(body.Mark())};
  Step step;
  step.where = v.where;
  if (!parse_step_body(*find_step_kind(name), body_value, step)) return std::nullopt;
  return step;
}

// Fills `step` from the step's body by its row of the step table; false
// when a problem was reported.
bool Parser::parse_step_body(const StepKind& kind, const Value& body, Step& step) {
  const size_t problems_before = problems_.size();
  step.kind = kind.kind;
  Fields f;
  if (kind.scalar_field && body.node.IsScalar()) {
    f.add(kind.scalar_field, body);  // `mkdir: /x` is `mkdir: {path: /x}`
  } else if (auto checked = fields(body, kind.fields, kind.required, kind.shape)) {
    f = std::move(*checked);
  } else {
    return false;
  }
  kind.parse(*this, f, body, step);
  return problems_.size() == problems_before;
}

namespace {
// Registry keys are backslash-separated names below the hive's root.
bool valid_registry_key(const std::string& key) {
  if (key.empty()) return false;
  size_t start = 0;
  while (true) {
    size_t end = key.find('\\', start);
    if (end == start) return false;  // an empty name: leading, trailing or doubled backslash
    if (end == std::string::npos) return start < key.size();
    start = end + 1;
  }
}

std::optional<uint8_t> hex_digit(char c) {
  int v = util::hex_value(c);
  if (v < 0) return std::nullopt;
  return static_cast<uint8_t>(v);
}
}  // namespace

std::optional<RegistryChange> Parser::registry_set(const Value& v) {
  auto f = fields(v, {"key", "value", "type", "data"}, {"key", "value", "data"},
                  "a map with key, value, data and optionally type");
  if (!f) return std::nullopt;
  const size_t problems_before = problems_.size();
  RegistryChange c;
  c.action = RegistryChange::Action::kSet;
  c.where = v.where;
  auto key = [&](const Value& x) -> std::optional<std::string> {
    auto s = str(x);
    if (s && !valid_registry_key(*s)) {
      report(x, quote(*s) + " is not a registry key; use names separated by single backslashes, below the hive's "
                            "root, e.g. 'Microsoft\\Windows'");
      return std::nullopt;
    }
    return s;
  };
  if (auto at = f->get("key")) {
    if (auto s = key(*at)) c.key = *s;
  }
  // "" is the key's default value (regedit's "(Default)").
  if (auto at = f->get("value")) {
    if (auto s = str(*at, true)) c.value = *s;
  }
  std::string type = "string";
  if (auto at = f->get("type")) {
    if (auto t = choice(*at, registry_type_names())) type = *t;
    else return std::nullopt;
  }
  const Value* data = f->get("data");
  if (!data) return std::nullopt;
  c.type = registry_type(type);
  using T = RegistryChange::Type;
  if (c.type == T::kString || c.type == T::kExpandString) {
    if (auto s = str(*data, true)) c.string_data = *s;
  } else if (c.type == T::kDword || c.type == T::kQword) {
    if (auto n = number(*data, c.type == T::kDword ? 0xffffffffull : UINT64_MAX)) c.number_data = *n;
  } else if (c.type == T::kMultiString) {
    if (auto items = list(*data, "a list of strings")) {
      for (const auto& it : *items) {
        // An empty string would end the list early in REG_MULTI_SZ.
        if (auto s = str(it)) c.multi_data.push_back(*s);
      }
    }
  } else {  // kBinary
    if (data->node.IsSequence()) {
      auto items = list(*data, "a list of bytes");
      for (const auto& it : *items) {
        if (auto n = number(it, 255)) c.binary_data.push_back(static_cast<uint8_t>(*n));
      }
    } else if (auto s = str(*data, true)) {
      std::string hex;
      bool ok = true;
      for (char ch : *s) {
        if (ch == ' ' || ch == '\t' || ch == '\n') continue;
        if (!hex_digit(ch)) ok = false;
        hex += ch;
      }
      if (!ok || hex.size() % 2 != 0) {
        report(*data, quote(*s) + " is not binary data; use pairs of hex digits, e.g. \"de ad be ef\", or a list of "
                                  "bytes, e.g. [222, 173]");
      } else {
        for (size_t i = 0; i < hex.size(); i += 2) {
          c.binary_data.push_back(static_cast<uint8_t>(*hex_digit(hex[i]) << 4 | *hex_digit(hex[i + 1])));
        }
      }
    }
  }
  if (problems_.size() != problems_before) return std::nullopt;
  return c;
}

std::optional<RegistryChange> Parser::registry_delete(const Value& v) {
  auto f = fields(v, {"key", "value"}, {"key"},
                  "a map with key and optionally value (without value, the whole key is deleted)");
  if (!f) return std::nullopt;
  RegistryChange c;
  c.action = RegistryChange::Action::kDelete;
  c.where = v.where;
  const Value* key = f->get("key");
  if (!key) return std::nullopt;
  auto s = str(*key);
  if (!s) return std::nullopt;
  if (!valid_registry_key(*s)) {
    report(*key, quote(*s) + " is not a registry key; use names separated by single backslashes, below the hive's root");
    return std::nullopt;
  }
  c.key = *s;
  if (auto at = f->get("value")) {
    // "" cannot mean the default value here: no value already means "the key".
    auto name = str(*at);
    if (!name) return std::nullopt;
    c.value = *name;
  }
  return c;
}

// --- what a parsed recipe gives the builder ----------------------------------

std::string Parser::canonical_host(const std::string& path) const {
  fs::path rel = fs::path(path).lexically_relative(base_dir_);
  std::string r = rel.string();
  if (r.empty() || r == ".." || r.rfind("../", 0) == 0) return path;
  return r;
}

std::string Parser::canonical(const Recipe& r) const {
  using nlohmann::json;
  auto e = [](const std::string& s) { return escape_dollars(s); };
  json out = json::object();
  out["image"] = r.image;
  if (!r.message.empty()) out["message"] = e(r.message);
  switch (r.base.kind) {
    case Base::Kind::kVersion: out["base"] = {{"version", e(r.base.version)}}; break;
    case Base::Kind::kImport: out["base"] = {{"import", e(canonical_host(r.base.import_path))}}; break;
    case Base::Kind::kCreate: {
      json parts = json::array();
      for (const auto& p : r.base.partitions) {
        json j = {{"type", p.type}, {"bootable", p.bootable}, {"size", p.size ? std::to_string(p.size) : "rest"}};
        if (!p.filesystem.empty()) j["filesystem"] = p.filesystem;
        if (!p.label.empty()) j["label"] = e(p.label);
        parts.push_back(j);
      }
      out["base"] = {{"create",
                      {{"size", std::to_string(r.base.size)},
                       {"partition_table", r.base.partition_table},
                       {"partitions", parts}}}};
      break;
    }
  }
  json steps = json::array();
  const CanonicalSpelling spell{e, [this](const std::string& path) { return canonical_host(path); }};
  for (const auto& s : r.steps) steps.push_back(json{{s.name(), step_kind(s.kind).canonical(s, spell)}});
  out["steps"] = steps;
  // Keys come out sorted (json::object is a std::map); the strings were
  // checked to be UTF-8, so dump() cannot throw.
  return out.dump(2) + "\n";
}

std::vector<std::string> Parser::input_files(const Recipe& r) const {
  std::vector<std::string> files;
  if (r.base.kind == Base::Kind::kImport) files.push_back(r.base.import_path);
  for (const auto& s : r.steps) {
    const HostInput input = step_kind(s.kind).host_input;
    if (input == HostInput::kFile) files.push_back(s.host_path);
    if (input != HostInput::kTree) continue;
    std::error_code ec;
    // Without host checks nothing on this machine is looked at (the fuzz
    // target must not walk "/"): the sources are listed as named.
    if (!options_.check_host_files || !fs::is_directory(s.host_path, ec)) {
      files.push_back(s.host_path);
      continue;
    }
    fs::recursive_directory_iterator it(s.host_path, ec), end;
    if (ec) throw util::Error(s.host_path + ": cannot list the copy-in directory: " + ec.message());
    for (; it != end; it.increment(ec)) {
      if (ec) throw util::Error(s.host_path + ": cannot list the copy-in directory: " + ec.message());
      if (it->is_regular_file(ec)) files.push_back(it->path().string());
    }
  }
  std::sort(files.begin(), files.end());
  files.erase(std::unique(files.begin(), files.end()), files.end());
  return files;
}

}  // namespace

Recipe parse_string(const std::string& text, const std::string& file, const std::string& base_dir,
                    const ParseOptions& options) {
  Parser parser(file, base_dir, options);
  return parser.parse(text);
}

Recipe parse_file(const std::string& path, const ParseOptions& options) {
  std::error_code ec;
  if (fs::is_directory(path, ec)) throw util::Error(path + ": is a directory, not a recipe file");
  std::ifstream in(path, std::ios::binary);
  if (!in) throw util::errno_error(path + ": cannot open the recipe");
  std::ostringstream text;
  text << in.rdbuf();
  if (in.bad()) throw util::errno_error(path + ": cannot read the recipe");
  std::string dir = fs::path(path).parent_path().string();
  return parse_string(text.str(), path, dir.empty() ? "." : dir, options);
}

}  // namespace bootfleet::recipe
