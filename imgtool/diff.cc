// imgtool diff IMAGE@A IMAGE@B [--json] [--verify | --files]
#include <iostream>
#include <nlohmann/json.hpp>

#include "cli.h"
#include "guest/disk_server.h"
#include "guest/guest.h"
#include "guest/inspect.h"
#include "util/error.h"
#include "util/size.h"

namespace bootfleet::imgtool {

namespace {

const char* kind_mark(guest::FileChange::Kind k) {
  switch (k) {
    case guest::FileChange::Kind::kAdded: return "+";
    case guest::FileChange::Kind::kRemoved: return "-";
    case guest::FileChange::Kind::kChanged: return "M";
    case guest::FileChange::Kind::kMetadata: return "m";
  }
  return "?";
}

const char* kind_name(guest::FileChange::Kind k) {
  switch (k) {
    case guest::FileChange::Kind::kAdded: return "added";
    case guest::FileChange::Kind::kRemoved: return "removed";
    case guest::FileChange::Kind::kChanged: return "changed";
    case guest::FileChange::Kind::kMetadata: return "metadata";
  }
  return "?";
}

// Files that differ between two versions: both attached read-only to one
// appliance and their trees compared (guest/inspect.h says how).
int diff_files(store::Store& s, const store::DiffResult& r, const std::string& na, const std::string& nb, bool as_json) {
  guest::FileDiff d;
  if (r.changed_bytes > 0) {
    guest::WorkDir work;
    guest::DiskServer da(open_version_device(s, r.a), work.path(), "a");
    guest::DiskServer db(open_version_device(s, r.b), work.path(), "b");
    guest::LaunchOptions lo;
    lo.nbd_socket = da.socket();
    lo.export_name = da.export_name();
    lo.second_nbd_socket = db.socket();
    lo.second_export_name = db.export_name();
    lo.read_only = true;
    lo.accel = guest::accel_from_environment();
    lo.note = [](const std::string& n) { std::cerr << "imgtool diff: note: " << n << "\n"; };
    auto g = guest::Guest::launch(lo);
    g->mkmountpoint("/a");
    g->mkmountpoint("/b");
    g->mount_root(0, "/a", true);
    g->mount_root(1, "/b", true);
    d = guest::diff_trees(*g, "/a", "/b", work.path());
  }
  bool differ = !d.files.empty();
  if (as_json) {
    nlohmann::json files = nlohmann::json::array(), reg = nlohmann::json::array();
    for (const auto& f : d.files) {
      files.push_back({{"change", kind_name(f.kind)}, {"path", f.path}, {"type", f.type},
                       {"old_size", f.old_size}, {"new_size", f.new_size}, {"detail", f.detail}});
    }
    for (const auto& x : d.registry) reg.push_back({{"hive", x.hive}, {"change", x.what}});
    std::cout << nlohmann::json{{"a", na}, {"b", nb}, {"changed_bytes", r.changed_bytes}, {"files", files},
                                {"registry", reg}}.dump(2) << "\n";
    return differ ? kExitNo : kExitOk;
  }
  for (const auto& f : d.files) {
    std::cout << kind_mark(f.kind) << " " << f.path << " (" << f.type;
    switch (f.kind) {
      case guest::FileChange::Kind::kAdded: std::cout << ", " << util::format_size(f.new_size); break;
      case guest::FileChange::Kind::kRemoved: std::cout << ", " << util::format_size(f.old_size); break;
      case guest::FileChange::Kind::kChanged:
        std::cout << ", " << util::format_size(f.old_size) << " -> " << util::format_size(f.new_size);
        break;
      case guest::FileChange::Kind::kMetadata: break;
    }
    if (!f.detail.empty()) std::cout << ", " << f.detail;
    std::cout << ")\n";
  }
  std::string hive;
  for (const auto& x : d.registry) {
    if (x.hive != hive) std::cout << "registry " << (hive = x.hive) << ":\n";
    std::cout << "  " << x.what << "\n";
  }
  std::cout << na << " -> " << nb << ": " << d.files.size() << " files differ"
            << (r.changed_bytes == 0 ? " (no block changed, nothing to examine)" : "") << "\n";
  return differ ? kExitNo : kExitOk;
}

}  // namespace

int cmd_diff(const std::vector<std::string>& args) {
  CommandSpec spec{"diff", "IMAGE@A IMAGE@B [--json] [--verify | --files]",
                   "Show which byte ranges changed between two versions, and totals.",
                   "The answer comes from the 2 MiB block digests recorded at import: no block data\n"
                   "is read, so it takes milliseconds whatever the disk size; ranges are then whole\n"
                   "blocks. --verify reads both versions to confirm the digests and narrows each\n"
                   "range to the 512-byte sectors that differ.\n\n"
                   "--files compares the files instead: both versions are attached read-only to a\n"
                   "libguestfs appliance and the lines printed are '+ PATH' (added), '- PATH'\n"
                   "(removed), 'M PATH' (content changed, with sizes) and 'm PATH' (only mode,\n"
                   "owner or time); Windows registry hives that changed are opened and their keys and\n"
                   "values compared. When the block diff is empty no appliance is started.\n"
                   "Exit status: 0 no difference, 1 differences, 2 error (as diff(1))."};
  auto options = base_options();
  std::string store_dir, a, b;
  bool as_json = false, verify = false, files = false;
  add_store_option(options, store_dir);
  options.add_options()
      ("a", po::value(&a)->required(), "first version")
      ("b", po::value(&b)->required(), "second version")
      ("json", po::bool_switch(&as_json), "print JSON")
      ("verify", po::bool_switch(&verify), "read the data to confirm and narrow to sectors")
      ("files", po::bool_switch(&files), "list the files (and registry values) that differ");
  po::positional_options_description pos;
  pos.add("a", 1).add("b", 1);
  po::variables_map vm;
  if (!parse_command_line(spec, options, pos, args, vm)) return kExitOk;
  if (verify && files) throw util::Error("diff: --verify and --files do not go together; choose one");
  auto s = open_store(store_dir);
  auto r = s->diff(store::parse_version_ref(a), store::parse_version_ref(b), verify);
  std::string na = r.a.image + "@" + std::to_string(r.a.number), nb = r.b.image + "@" + std::to_string(r.b.number);
  if (files) return diff_files(*s, r, na, nb, as_json);
  if (as_json) {
    nlohmann::json ranges = nlohmann::json::array();
    for (const auto& x : r.ranges) ranges.push_back({{"offset", x.offset}, {"length", x.length}});
    nlohmann::json j = {{"a", na},
                        {"b", nb},
                        {"changed_bytes", r.changed_bytes},
                        {"blocks", {{"added", r.blocks_added}, {"removed", r.blocks_removed}, {"modified", r.blocks_modified}}},
                        {"granularity", verify ? 512 : 2 << 20},
                        {"data_read", r.data_read},
                        {"ranges", ranges}};
    if (verify) {
      j["verified"] = r.verified;
      j["verify_problems"] = r.verify_problems;
    }
    std::cout << j.dump(2) << "\n";
  } else {
    for (const auto& x : r.ranges) {
      std::cout << "changed " << x.offset << "+" << x.length << " (" << util::format_size(x.length) << ")\n";
    }
    std::cout << na << " -> " << nb << ": " << util::format_size(r.changed_bytes) << " changed in "
              << r.ranges.size() << " ranges (" << r.blocks_modified << " blocks modified, " << r.blocks_added
              << " added, " << r.blocks_removed << " zeroed)" << (verify ? ", confirmed by reading the data" : "")
              << "\n";
    for (const auto& p : r.verify_problems) std::cout << "verify: " << p << "\n";
  }
  if (!r.verified) return kExitError;
  return r.changed_bytes == 0 ? kExitOk : kExitNo;
}

}  // namespace bootfleet::imgtool
