// A recipe: the declarative description of one image build (docs/recipes.md).
//
// Design note. Parsing and validation (parse.cc) happen before any slow work
// and never touch a guest, the store or the network: they turn YAML into
// this model, with every host path made absolute (relative to the recipe
// file), every variable substituted, and every error collected with its
// file:line:column. Execution (lib/guest) only ever sees a valid Recipe.
// `canonical` is the recipe after variables, re-emitted in one fixed form,
// so the build cache keys on meaning, not on comments or spacing.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "util/error.h"

namespace bootfleet::recipe {

struct Location {
  std::string file;
  int line = 0;    // 1-based; 0 when unknown
  int column = 0;  // 1-based
  std::string text() const;  // "file:line:column"
};

struct Partition {
  uint64_t size = 0;       // bytes; 0 = the rest of the disk (last partition only)
  std::string type;        // linux | efi | ntfs | fat32 | swap
  std::string filesystem;  // ext4 | xfs | vfat | ntfs | "" (none)
  std::string label;
  bool bootable = false;
  Location where;
};

struct Base {
  enum class Kind { kVersion, kImport, kCreate };
  Kind kind = Kind::kCreate;
  // kVersion: "IMAGE@N" or "IMAGE@active" as written.
  std::string version;
  // kImport: an absolute host path (raw, VHD or VHDX).
  std::string import_path;
  // kCreate: a blank disk.
  uint64_t size = 0;
  std::string partition_table;  // mbr | gpt
  std::vector<Partition> partitions;
  Location where;
};

struct RegistryChange {
  enum class Action { kSet, kDelete };
  enum class Type { kString, kExpandString, kDword, kQword, kMultiString, kBinary };
  Action action = Action::kSet;
  std::string key;         // backslash-separated, below the hive's root, e.g. "Microsoft\\Windows"
  std::string value;       // value name; "" with kDelete and no value = delete the key
  Type type = Type::kString;
  std::string string_data;                 // kString, kExpandString
  std::vector<std::string> multi_data;     // kMultiString
  uint64_t number_data = 0;                // kDword, kQword
  std::vector<uint8_t> binary_data;        // kBinary
  Location where;
};

struct Step {
  enum class Kind {
    kMkdir, kCopyIn, kWrite, kDelete, kChmod, kChown, kSymlink,
    kTarIn, kEdit, kRun, kRegistry, kBootloader, kCopyOut,
  };
  Kind kind = Kind::kRun;
  Location where;

  // Guest path the step acts on: mkdir, write, delete, chmod, chown, edit,
  // the link of symlink, the destination directory of copy-in and tar-in,
  // the hive file of registry, the guest file of copy-out.
  std::string path;
  // Host path (absolute): the source of copy-in and tar-in, the destination
  // of copy-out (a file or an existing directory).
  std::string host_path;
  std::string target;        // symlink: what the link points to
  std::string content;       // write
  std::optional<uint32_t> mode;  // write (optional), chmod (required), mkdir (optional)
  std::optional<int> uid, gid;   // chown
  bool recursive = false;        // delete (of a directory)
  std::string search, replace;   // edit: every occurrence of `search`
  std::string command;           // run: a shell command in the guest
  std::vector<RegistryChange> registry;
  // bootloader: the device to install on ("" = the disk holding `path`'s
  // filesystem); `path` is the boot directory, e.g. "/boot/extlinux".
  std::string kernel, initrd, append;  // bootloader: entries of extlinux.conf
  // copy-out to the store instead of a host path: the guest file is kept
  // beside the new version under this name (bootsrv serves it at
  // /artifacts/IMAGE@N/NAME). Letters, digits, '.', '_', '-'; 1-64.
  std::string artifact;

  std::string name() const;  // the YAML key, e.g. "copy-in"
  std::string summary() const;  // one line for progress output, e.g. "copy-in files/ -> /etc"
};

struct Recipe {
  std::string file;        // the recipe file as given
  std::string image;
  Base base;
  std::vector<Step> steps;
  std::string message;
  // The recipe after variables, in a fixed form (the build cache hashes it).
  std::string canonical;
  // Every host file the steps read (copy-in sources expanded to their files,
  // tar-in, import), for the build cache's input hash.
  std::vector<std::string> input_files;
};

struct Problem {
  Location where;
  std::string field;    // e.g. "steps[2].copy-in.from"
  std::string message;  // what was found and what is allowed
  std::string text() const;  // "file:line:col: field: message"
};

// Thrown when a recipe is invalid; carries every problem found, not just the first.
class RecipeError : public util::Error {
 public:
  explicit RecipeError(std::vector<Problem> problems);
  const std::vector<Problem>& problems() const { return problems_; }

 private:
  std::vector<Problem> problems_;
};

struct ParseOptions {
  // Values for ${NAME} in any string: --set KEY=VALUE first, then the
  // environment (when use_environment). An unknown variable is a problem.
  std::map<std::string, std::string> variables;
  bool use_environment = true;
  // Whether host files named by steps must exist (false for fuzzing). When
  // false nothing on the host is looked at, so Recipe::input_files lists
  // copy-in sources as named instead of the files below a directory.
  bool check_host_files = true;
};

// Parses and validates; throws RecipeError (or util::Error when the file
// cannot be read).
Recipe parse_file(const std::string& path, const ParseOptions& options = {});
// `file` names the text in errors; relative host paths resolve against `base_dir`.
Recipe parse_string(const std::string& text, const std::string& file, const std::string& base_dir,
                    const ParseOptions& options = {});

}  // namespace bootfleet::recipe
