// The step table (see steps.h): one section per step kind, each with its
// parse, canonical form, summary and run, then the table itself. Read a
// section to know everything a step does; docs/recipes.md says the same in
// words.
#include "recipe/steps.h"

#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "guest/registry.h"
#include "util/error.h"
#include "util/names.h"
#include "util/text.h"

namespace bootfleet::recipe {

namespace fs = std::filesystem;
using nlohmann::json;
using util::Error;

namespace {

// Reads field `key` of `f` with `reader` into `out` when present.
template <typename Reader, typename T>
void read(const Fields& f, const char* key, Reader reader, T& out) {
  if (auto at = f.get(key)) {
    if (auto got = reader(*at)) out = *got;
  }
}
auto guest_path(StepParser& p) {
  return [&p](const Value& x) { return p.guest_path(x); };
}
auto host_path(StepParser& p, HostCheck check) {
  return [&p, check](const Value& x) { return p.host_path(x, check); };
}
auto text(StepParser& p) {  // may be empty
  return [&p](const Value& x) { return p.str(x, true); };
}
auto word(StepParser& p) {  // may not
  return [&p](const Value& x) { return p.str(x); };
}
auto mode(StepParser& p) {
  return [&p](const Value& x) { return p.mode(x); };
}

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

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

std::string parent_dir(const std::string& guest_path) {
  auto slash = guest_path.rfind('/');
  return slash == 0 || slash == std::string::npos ? "/" : guest_path.substr(0, slash);
}

// --- mkdir ------------------------------------------------------------------

void parse_mkdir(StepParser& p, const Fields& f, const Value&, Step& s) {
  read(f, "path", guest_path(p), s.path);
  read(f, "mode", mode(p), s.mode);
}
json canonical_mkdir(const Step& s, const CanonicalSpelling& c) {
  json b = {{"path", c.text(s.path)}};
  if (s.mode) b["mode"] = util::format_mode(*s.mode);
  return b;
}
std::string summary_mkdir(const Step& s) { return s.path + (s.mode ? " (" + util::format_mode(*s.mode) + ")" : ""); }
void run_mkdir(const StepRun& r, const Step& s) {
  r.guest.mkdir_p(s.path);
  if (s.mode) r.guest.chmod(*s.mode, s.path);
}

// --- copy-in ----------------------------------------------------------------

void parse_copy_in(StepParser& p, const Fields& f, const Value&, Step& s) {
  read(f, "from", host_path(p, HostCheck::kExists), s.host_path);
  read(f, "to", guest_path(p), s.path);
}
json canonical_copy(const Step& s, const CanonicalSpelling& c) {  // copy-in and tar-in
  return {{"from", c.text(c.host(s.host_path))}, {"to", c.text(s.path)}};
}
std::string summary_copy(const Step& s) { return s.host_path + " -> " + s.path; }
// Like cp -r: a directory lands inside TO (created if missing); a file
// lands inside TO when TO is a directory, else becomes TO. Host symlinks
// given as the source are followed (e.g. /vmlinuz -> boot/vmlinuz-…).
void run_copy_in(const StepRun& r, const Step& s) {
  guest::Guest& g = r.guest;
  if (fs::is_directory(s.host_path)) {
    g.mkdir_p(s.path);
    g.copy_in(s.host_path, s.path);
    return;
  }
  std::string dest = s.path;
  if (g.is_dir(dest)) dest = (dest == "/" ? "" : dest) + "/" + fs::path(s.host_path).filename().string();
  // A symlink at the destination is replaced, not written through (it
  // may point anywhere, e.g. busybox's /sbin/init -> /bin/busybox).
  if (g.is_symlink(dest)) g.rm(dest);
  g.upload(s.host_path, dest);
  // upload creates the file 0644; keep the host file's permissions, as cp does.
  g.chmod(static_cast<uint32_t>(fs::status(s.host_path).permissions()) & 07777, dest);
}

// --- write ------------------------------------------------------------------

void parse_write(StepParser& p, const Fields& f, const Value&, Step& s) {
  read(f, "path", guest_path(p), s.path);
  read(f, "content", text(p), s.content);
  read(f, "mode", mode(p), s.mode);
}
json canonical_write(const Step& s, const CanonicalSpelling& c) {
  json b = {{"path", c.text(s.path)}, {"content", c.text(s.content)}};
  if (s.mode) b["mode"] = util::format_mode(*s.mode);
  return b;
}
std::string summary_write(const Step& s) { return s.path + " (" + std::to_string(s.content.size()) + " bytes)"; }
// A missing directory is refused, not made: a write names a file, and a
// typo in its directory (/ect/motd) should stop the build, not create
// /ect. docs/recipes.md says to add a mkdir step.
void run_write(const StepRun& r, const Step& s) {
  std::string dir = parent_dir(s.path);
  if (!r.guest.is_dir(dir, /*follow_symlinks=*/true)) {
    throw Error("the directory " + dir + " of " + s.path + (r.guest.exists(dir) ? " is not a directory" : " does not exist") +
                " in the guest; write does not create directories: add a step '- mkdir: " + dir +
                "' before this one (or correct the path)");
  }
  r.guest.write_file(s.path, s.content);
  if (s.mode) r.guest.chmod(*s.mode, s.path);
}

// --- delete -----------------------------------------------------------------

void parse_delete(StepParser& p, const Fields& f, const Value&, Step& s) {
  read(f, "path", guest_path(p), s.path);
  read(f, "recursive", [&p](const Value& x) { return p.boolean(x); }, s.recursive);
}
json canonical_delete(const Step& s, const CanonicalSpelling& c) {
  return {{"path", c.text(s.path)}, {"recursive", s.recursive}};
}
std::string summary_delete(const Step& s) { return s.path + (s.recursive ? " (recursive)" : ""); }
void run_delete(const StepRun& r, const Step& s) {
  guest::Guest& g = r.guest;
  if (s.recursive) {
    g.rm_rf(s.path);
    return;
  }
  if (!g.exists(s.path)) throw Error(s.path + " does not exist in the guest (recursive: true also accepts a missing path)");
  if (!g.is_dir(s.path)) {
    g.rm(s.path);
    return;
  }
  try {
    g.rmdir(s.path);
  } catch (const Error& e) {
    throw Error(std::string(e.what()) + " (recursive: true removes a non-empty one)");
  }
}

// --- chmod ------------------------------------------------------------------

void parse_chmod(StepParser& p, const Fields& f, const Value&, Step& s) {
  read(f, "path", guest_path(p), s.path);
  read(f, "mode", mode(p), s.mode);
}
json canonical_chmod(const Step& s, const CanonicalSpelling& c) {
  return {{"path", c.text(s.path)}, {"mode", util::format_mode(s.mode.value_or(0))}};
}
std::string summary_chmod(const Step& s) { return (s.mode ? util::format_mode(*s.mode) : "?") + " " + s.path; }
void run_chmod(const StepRun& r, const Step& s) { r.guest.chmod(s.mode.value_or(0644), s.path); }

// --- chown ------------------------------------------------------------------

void parse_chown(StepParser& p, const Fields& f, const Value& body, Step& s) {
  read(f, "path", guest_path(p), s.path);
  auto id = [&p](const Value& x) -> std::optional<int> {
    if (auto n = p.number(x, 0x7fffffff)) return static_cast<int>(*n);
    return std::nullopt;
  };
  read(f, "uid", id, s.uid);
  read(f, "gid", id, s.gid);
  if (!f.has("uid") && !f.has("gid")) p.report(body, "give uid, gid or both");
}
json canonical_chown(const Step& s, const CanonicalSpelling& c) {
  json b = {{"path", c.text(s.path)}};
  if (s.uid) b["uid"] = *s.uid;
  if (s.gid) b["gid"] = *s.gid;
  return b;
}
std::string summary_chown(const Step& s) {
  return (s.uid ? std::to_string(*s.uid) : "-") + ":" + (s.gid ? std::to_string(*s.gid) : "-") + " " + s.path;
}
void run_chown(const StepRun& r, const Step& s) { r.guest.chown(s.uid.value_or(0), s.gid.value_or(0), s.path); }

// --- symlink ----------------------------------------------------------------

void parse_symlink(StepParser& p, const Fields& f, const Value&, Step& s) {
  read(f, "link", guest_path(p), s.path);
  read(f, "target", [&p](const Value& x) -> std::optional<std::string> {
    auto t = p.str(x);
    if (t && t->find('\0') != std::string::npos) {
      p.report(x, "a link target cannot contain a NUL character");
      return std::nullopt;
    }
    return t;
  }, s.target);
}
json canonical_symlink(const Step& s, const CanonicalSpelling& c) {
  return {{"link", c.text(s.path)}, {"target", c.text(s.target)}};
}
std::string summary_symlink(const Step& s) { return s.path + " -> " + s.target; }
void run_symlink(const StepRun& r, const Step& s) { r.guest.symlink(s.target, s.path); }

// --- tar-in -----------------------------------------------------------------

// The archives tar-in takes, by name, and how each is unpacked: the parser
// accepts exactly these names and the run unpacks exactly these.
struct TarFormat {
  const char* suffix;
  const char* compression;  // "" = plain tar; else libguestfs's tar-in name
};
constexpr TarFormat kTarFormats[] = {
    {".tar", ""},        {".tar.gz", "gzip"},   {".tgz", "gzip"},   {".tar.xz", "xz"},
    {".txz", "xz"},      {".tar.bz2", "bzip2"}, {".tbz2", "bzip2"}, {".tar.zst", "zstd"},
};
const TarFormat* tar_format(const std::string& path) {
  for (const auto& t : kTarFormats)
    if (ends_with(path, t.suffix)) return &t;
  return nullptr;
}
std::string tar_suffixes() {
  std::string out;
  for (size_t i = 0; i < std::size(kTarFormats); ++i) {
    out += (i == 0 ? "" : i + 1 == std::size(kTarFormats) ? " or " : ", ") + std::string(kTarFormats[i].suffix);
  }
  return out;
}

void parse_tar_in(StepParser& p, const Fields& f, const Value&, Step& s) {
  read(f, "from", host_path(p, HostCheck::kRegularFile), s.host_path);
  read(f, "to", guest_path(p), s.path);
  if (!s.host_path.empty() && !tar_format(s.host_path)) {
    p.report(*f.get("from"), "'" + s.host_path + "' is not named like a tar archive; use a " + tar_suffixes() + " file");
  }
}
void run_tar_in(const StepRun& r, const Step& s) {
  const TarFormat* t = tar_format(s.host_path);
  if (!t) throw Error(s.host_path + " is not named like a tar archive");  // the parser refused it already
  r.guest.mkdir_p(s.path);
  r.guest.tar_in(s.host_path, s.path, t->compression);
}

// --- edit -------------------------------------------------------------------

void parse_edit(StepParser& p, const Fields& f, const Value&, Step& s) {
  read(f, "path", guest_path(p), s.path);
  read(f, "replace", word(p), s.search);
  read(f, "with", text(p), s.replace);
}
json canonical_edit(const Step& s, const CanonicalSpelling& c) {
  return {{"path", c.text(s.path)}, {"replace", c.text(s.search)}, {"with", c.text(s.replace)}};
}
std::string summary_edit(const Step& s) {
  return s.path + ": '" + one_line(s.search, 30) + "' -> '" + one_line(s.replace, 30) + "'";
}
void run_edit(const StepRun& r, const Step& s) {
  std::string text = r.guest.read_file(s.path);
  size_t count = 0;
  std::string out;
  for (size_t pos = 0;;) {
    size_t hit = text.find(s.search, pos);
    if (hit == std::string::npos || s.search.empty()) {
      out.append(text, pos, std::string::npos);
      break;
    }
    out.append(text, pos, hit - pos).append(s.replace);
    pos = hit + s.search.size();
    ++count;
  }
  if (count == 0) throw Error("'" + s.search + "' does not occur in " + s.path);
  r.guest.write_file(s.path, out);
  r.say("      replaced " + std::to_string(count) + " occurrence" + (count == 1 ? "" : "s"));
}

// --- run --------------------------------------------------------------------

void parse_run(StepParser& p, const Fields& f, const Value&, Step& s) { read(f, "command", word(p), s.command); }
json canonical_run(const Step& s, const CanonicalSpelling& c) { return {{"command", c.text(s.command)}}; }
std::string summary_run(const Step& s) { return one_line(s.command); }
void run_run(const StepRun& r, const Step& s) {
  std::istringstream lines(r.guest.sh(s.command));
  for (std::string line; std::getline(lines, line);) r.say("      | " + line);
}

// --- registry ---------------------------------------------------------------

// Recipe names of the value types; looked up by name or type, never by the
// enum's order.
struct RegistryTypeName {
  RegistryChange::Type type;
  const char* name;
};
constexpr RegistryTypeName kRegistryTypes[] = {
    {RegistryChange::Type::kString, "string"},     {RegistryChange::Type::kExpandString, "expand-string"},
    {RegistryChange::Type::kDword, "dword"},       {RegistryChange::Type::kQword, "qword"},
    {RegistryChange::Type::kMultiString, "multi-string"}, {RegistryChange::Type::kBinary, "binary"},
};

void parse_registry(StepParser& p, const Fields& f, const Value& body, Step& s) {
  read(f, "hive", guest_path(p), s.path);
  if (auto at = f.get("set")) {
    if (auto items = p.list(*at, "a list of values to set ({key, value, type, data})")) {
      for (const auto& it : *items) {
        if (auto c = p.registry_set(it)) s.registry.push_back(std::move(*c));
      }
    }
  }
  if (auto at = f.get("delete")) {
    if (auto items = p.list(*at, "a list of keys or values to delete ({key, value})")) {
      for (const auto& it : *items) {
        if (auto c = p.registry_delete(it)) s.registry.push_back(std::move(*c));
      }
    }
  }
  auto count = [&](const char* key) {
    const Value* at = f.get(key);
    return at && at->node.IsSequence() ? at->node.size() : 0;
  };
  if (count("set") + count("delete") == 0) p.report(body, "nothing to change; give a non-empty set, delete or both");
}
json canonical_registry(const Step& s, const CanonicalSpelling& c) {
  json set = json::array(), del = json::array();
  for (const auto& r : s.registry) {
    if (r.action == RegistryChange::Action::kDelete) {
      json d = {{"key", c.text(r.key)}};
      if (!r.value.empty()) d["value"] = c.text(r.value);
      del.push_back(d);
      continue;
    }
    json j = {{"key", c.text(r.key)}, {"value", c.text(r.value)}, {"type", registry_type_name(r.type)}};
    switch (r.type) {
      case RegistryChange::Type::kString:
      case RegistryChange::Type::kExpandString: j["data"] = c.text(r.string_data); break;
      case RegistryChange::Type::kDword:
      case RegistryChange::Type::kQword: j["data"] = std::to_string(r.number_data); break;
      case RegistryChange::Type::kMultiString: {
        json items = json::array();
        for (const auto& m : r.multi_data) items.push_back(c.text(m));
        j["data"] = items;
        break;
      }
      case RegistryChange::Type::kBinary: {
        static const char* digits = "0123456789abcdef";
        std::string hex;
        for (uint8_t byte : r.binary_data) {
          if (!hex.empty()) hex += ' ';
          hex += digits[byte >> 4];
          hex += digits[byte & 15];
        }
        j["data"] = hex;
        break;
      }
    }
    set.push_back(j);
  }
  return {{"hive", c.text(s.path)}, {"set", set}, {"delete", del}};
}
std::string summary_registry(const Step& s) {
  return s.path + " (" + std::to_string(s.registry.size()) + (s.registry.size() == 1 ? " change)" : " changes)");
}
void run_registry(const StepRun& r, const Step& s) {
  char tmpl[] = "/tmp/bootfleet-hive-XXXXXX";
  int fd = ::mkstemp(tmpl);
  if (fd < 0) throw util::errno_error("create a temporary file for the hive", errno);
  ::close(fd);
  std::string local = tmpl;
  struct Remove {
    std::string p;
    ~Remove() { ::unlink(p.c_str()); }
  } cleanup{local};
  r.guest.download(s.path, local);
  guest::Hive hive(local, true);
  for (const auto& c : s.registry) {
    std::string where = c.key + (c.value.empty() && c.action == RegistryChange::Action::kDelete ? "" : "\\" + c.value);
    if (c.action == RegistryChange::Action::kDelete) {
      bool done = c.value.empty() ? hive.delete_key(c.key) : hive.delete_value(c.key, c.value);
      r.say(std::string("      ") + (done ? "deleted " : "absent, nothing to delete: ") + where);
      continue;
    }
    guest::RegistryValue v;
    switch (c.type) {
      case RegistryChange::Type::kString: v = {guest::kRegSz, guest::encode_string(c.string_data)}; break;
      case RegistryChange::Type::kExpandString: v = {guest::kRegExpandSz, guest::encode_string(c.string_data)}; break;
      case RegistryChange::Type::kDword:
        v = {guest::kRegDword, guest::encode_dword(static_cast<uint32_t>(c.number_data))};
        break;
      case RegistryChange::Type::kQword: v = {guest::kRegQword, guest::encode_qword(c.number_data)}; break;
      case RegistryChange::Type::kMultiString: v = {guest::kRegMultiSz, guest::encode_multi_string(c.multi_data)}; break;
      case RegistryChange::Type::kBinary: v = {guest::kRegBinary, c.binary_data}; break;
    }
    hive.set_value(c.key, c.value, v);
    r.say("      set " + where + " = " + guest::describe(v));
  }
  hive.commit();
  r.guest.upload(local, s.path);
}

// --- bootloader -------------------------------------------------------------

const char* const kDefaultBootDir = "/boot/extlinux";

// The host's extlinux boot code for the disk's first 440 bytes (package
// extlinux or syslinux-common): mbr.bin for MBR disks, gptmbr.bin for GPT.
std::string boot_code_path(const std::string& name) {
  for (const std::string dir : {"/usr/lib/EXTLINUX/", "/usr/lib/syslinux/mbr/", "/usr/share/syslinux/"}) {
    if (::access((dir + name).c_str(), R_OK) == 0) return dir + name;
  }
  throw Error("no extlinux boot code " + name + " on this host (install the extlinux package: /usr/lib/EXTLINUX/" +
              name + ")");
}

void parse_bootloader(StepParser& p, const Fields& f, const Value&, Step& s) {
  s.path = kDefaultBootDir;
  read(f, "path", guest_path(p), s.path);
  read(f, "kernel", [&p](const Value& x) { return p.one_line(x, false, false); }, s.kernel);
  read(f, "initrd", [&p](const Value& x) { return p.one_line(x, false, false); }, s.initrd);
  read(f, "append", [&p](const Value& x) { return p.one_line(x, true, true); }, s.append);
}
json canonical_bootloader(const Step& s, const CanonicalSpelling& c) {
  json b = {{"path", c.text(s.path)}, {"kernel", c.text(s.kernel)}, {"append", c.text(s.append)}};
  if (!s.initrd.empty()) b["initrd"] = c.text(s.initrd);
  return b;
}
std::string summary_bootloader(const Step& s) { return "extlinux in " + s.path + ": " + s.kernel; }
// extlinux in `path` of the filesystem holding it, a config with one
// entry, the boot code in the disk's first 440 bytes, and the partition
// marked (MBR: active; GPT: legacy BIOS bootable), so a BIOS boots the disk.
void run_bootloader(const StepRun& r, const Step& s) {
  guest::Guest& g = r.guest;
  if (!g.feature_available("extlinux")) throw Error("this libguestfs appliance has no extlinux");
  const std::string& dir = s.path;
  g.mkdir_p(dir);
  std::string conf = "DEFAULT bootfleet\nPROMPT 0\nTIMEOUT 1\nLABEL bootfleet\n  LINUX " + s.kernel + "\n";
  if (!s.initrd.empty()) conf += "  INITRD " + s.initrd + "\n";
  if (!s.append.empty()) conf += "  APPEND " + s.append + "\n";
  g.write_file(dir + "/extlinux.conf", conf);
  g.extlinux(dir);

  // The partition holding dir: the device mounted at the longest prefix.
  std::string part, best;
  for (const auto& [dev, mp] : g.mountpoints()) {
    bool under = mp == "/" || dir == mp || dir.rfind(mp + "/", 0) == 0;
    if (under && mp.size() >= best.size()) best = mp, part = dev;
  }
  if (part.empty()) throw Error(dir + " is on no mounted partition");
  std::string disk = g.part_disk(part);
  int partnum = g.part_number(part);
  std::string table = g.part_table_type(disk);
  if (table != "msdos" && table != "gpt") {
    throw Error("extlinux boots MBR and GPT disks; " + disk + " has a " + table + " table");
  }
  const std::string code_path = boot_code_path(table == "gpt" ? "gptmbr.bin" : "mbr.bin");
  std::ifstream in(code_path, std::ios::binary);
  std::string code((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (code.size() < 440) throw Error(code_path + ": shorter than the 440 bytes of boot code");
  g.pwrite_device(disk, code.substr(0, 440), 0);
  if (table == "gpt") g.part_set_legacy_bios_bootable(disk, partnum);
  else g.part_set_bootable(disk, partnum, true);
  r.say("      extlinux in " + dir + " on " + part + ", " + (table == "gpt" ? "GPT" : "MBR") + " boot code on " + disk);
}

// --- copy-out ---------------------------------------------------------------

void parse_copy_out(StepParser& p, const Fields& f, const Value& body, Step& s) {
  read(f, "from", guest_path(p), s.path);
  read(f, "to", host_path(p, HostCheck::kParentDirExists), s.host_path);
  read(f, "artifact", word(p), s.artifact);
  if (f.get("to") && f.get("artifact")) {
    p.report(*f.get("artifact"), "give either to or artifact, not both");
  } else if (!f.get("to") && !f.get("artifact")) {
    p.report(body, std::string("missing to or artifact; expected ") + step_kind(Step::Kind::kCopyOut).shape);
  } else if (auto at = f.get("artifact"); at && !s.artifact.empty()) {
    if (!util::is_artifact_name(s.artifact)) {
      p.report(*at, "artifact name '" + s.artifact + "' must be " + util::kArtifactNameRule);
    }
  }
}
json canonical_copy_out(const Step& s, const CanonicalSpelling& c) {
  json b = {{"from", c.text(s.path)}};
  if (s.artifact.empty()) b["to"] = c.text(c.host(s.host_path));
  else b["artifact"] = c.text(s.artifact);
  return b;
}
std::string summary_copy_out(const Step& s) {
  return s.path + " -> " + (s.artifact.empty() ? s.host_path : "artifact " + s.artifact);
}
void run_copy_out(const StepRun& r, const Step& s) {
  if (!s.artifact.empty()) {
    if (r.options.artifacts_dir.empty()) throw Error("artifacts are only kept by imgtool build");
    fs::create_directories(r.options.artifacts_dir);
    r.guest.download(s.path, r.options.artifacts_dir + "/" + s.artifact);
    return;
  }
  if (fs::is_directory(s.host_path)) r.guest.copy_out(s.path, s.host_path);
  else r.guest.download(s.path, s.host_path);
}

}  // namespace

// --- the table --------------------------------------------------------------

const std::vector<StepKind>& step_kinds() {
  using K = Step::Kind;
  static const std::vector<StepKind> kinds = {
      {K::kMkdir, "mkdir", {"path", "mode"}, {"path"}, "a guest path, or a map with path and optionally mode", "path",
       HostInput::kNone, parse_mkdir, canonical_mkdir, summary_mkdir, run_mkdir},
      {K::kCopyIn, "copy-in", {"from", "to"}, {"from", "to"},
       "a map with from (a host file or directory) and to (a guest directory)", nullptr, HostInput::kTree,
       parse_copy_in, canonical_copy, summary_copy, run_copy_in},
      {K::kWrite, "write", {"path", "content", "mode"}, {"path", "content"},
       "a map with path, content and optionally mode", nullptr, HostInput::kNone, parse_write, canonical_write,
       summary_write, run_write},
      {K::kDelete, "delete", {"path", "recursive"}, {"path"},
       "a guest path, or a map with path and optionally recursive", "path", HostInput::kNone, parse_delete,
       canonical_delete, summary_delete, run_delete},
      {K::kChmod, "chmod", {"path", "mode"}, {"path", "mode"}, "a map with path and mode", nullptr, HostInput::kNone,
       parse_chmod, canonical_chmod, summary_chmod, run_chmod},
      {K::kChown, "chown", {"path", "uid", "gid"}, {"path"}, "a map with path, uid and gid", nullptr,
       HostInput::kNone, parse_chown, canonical_chown, summary_chown, run_chown},
      {K::kSymlink, "symlink", {"link", "target"}, {"link", "target"},
       "a map with link (the guest path to create) and target (what it points to)", nullptr, HostInput::kNone,
       parse_symlink, canonical_symlink, summary_symlink, run_symlink},
      {K::kTarIn, "tar-in", {"from", "to"}, {"from", "to"},
       "a map with from (a host tar archive: .tar, .tar.gz, .tar.xz, .tar.bz2, .tar.zst) and to (a guest directory)",
       nullptr, HostInput::kFile, parse_tar_in, canonical_copy, summary_copy, run_tar_in},
      {K::kEdit, "edit", {"path", "replace", "with"}, {"path", "replace", "with"},
       "a map with path, replace (the text to find) and with (its replacement)", nullptr, HostInput::kNone,
       parse_edit, canonical_edit, summary_edit, run_edit},
      {K::kRun, "run", {"command"}, {"command"}, "a shell command, or a map with command", "command",
       HostInput::kNone, parse_run, canonical_run, summary_run, run_run},
      {K::kRegistry, "registry", {"hive", "set", "delete"}, {"hive"},
       "a map with hive (a guest path) and set and/or delete (lists of changes)", nullptr, HostInput::kNone,
       parse_registry, canonical_registry, summary_registry, run_registry},
      {K::kBootloader, "bootloader", {"path", "kernel", "initrd", "append"}, {"kernel"},
       "a map with kernel and optionally path, initrd, append", nullptr, HostInput::kNone, parse_bootloader,
       canonical_bootloader, summary_bootloader, run_bootloader},
      {K::kCopyOut, "copy-out", {"from", "to", "artifact"}, {"from"},
       "a map with from (a guest file) and either to (a host file or existing directory) or artifact (a name to "
       "keep the file under beside the new version)",
       nullptr, HostInput::kNone, parse_copy_out, canonical_copy_out, summary_copy_out, run_copy_out},
  };
  return kinds;
}

const StepKind& step_kind(Step::Kind kind) {
  for (const auto& k : step_kinds())
    if (k.kind == kind) return k;
  throw Error("step kind " + std::to_string(static_cast<int>(kind)) + " has no row in the step table");
}

const StepKind* find_step_kind(const std::string& name) {
  for (const auto& k : step_kinds())
    if (name == k.name) return &k;
  return nullptr;
}

std::vector<std::string> step_names() {
  std::vector<std::string> out;
  for (const auto& k : step_kinds()) out.push_back(k.name);
  return out;
}

std::vector<std::string> registry_type_names() {
  std::vector<std::string> out;
  for (const auto& t : kRegistryTypes) out.push_back(t.name);
  return out;
}

RegistryChange::Type registry_type(const std::string& name) {
  for (const auto& t : kRegistryTypes)
    if (name == t.name) return t.type;
  throw Error("unknown registry type '" + name + "'");
}

const char* registry_type_name(RegistryChange::Type type) {
  for (const auto& t : kRegistryTypes)
    if (type == t.type) return t.name;
  return "?";
}

}  // namespace bootfleet::recipe
