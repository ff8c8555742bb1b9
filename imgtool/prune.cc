// imgtool prune IMAGE --keep K [--dry-run] | imgtool prune IMAGE@N
#include <iostream>
#include <nlohmann/json.hpp>

#include "cli.h"
#include "util/error.h"

namespace bootfleet::imgtool {

int cmd_prune(const std::vector<std::string>& args) {
  CommandSpec spec{"prune", "IMAGE --keep K [--dry-run] [--json]\n       imgtool prune IMAGE@N",
                   "Remove old versions of IMAGE.",
                   "With --keep K, keeps the newest K versions and, whatever K, the active version,\n"
                   "the rollback target, every version a live server lease pins, a channel names\n"
                   "(or rolls back to), a client or group is pinned to or a pending schedule will\n"
                   "publish, and every parent a kept version needs; removes the rest and says why\n"
                   "each kept one stays.\n"
                   "With IMAGE@N, removes exactly that version, refused when any of those reasons\n"
                   "holds. Rows are deleted before files, so a crash leaves only files that gc\n"
                   "removes. To shorten chains so old bases can go, see squash."};
  auto options = base_options();
  std::string store_dir, target;
  int64_t keep = -1;
  bool dry_run = false, as_json = false;
  add_store_option(options, store_dir);
  options.add_options()
      ("target", po::value(&target)->required(), "IMAGE or IMAGE@N")
      ("keep,k", po::value(&keep), "versions to keep, newest first")
      ("dry-run,n", po::bool_switch(&dry_run), "say what would be removed, remove nothing")
      ("json", po::bool_switch(&as_json), "print JSON");
  po::positional_options_description pos;
  pos.add("target", 1);
  po::variables_map vm;
  if (!parse_command_line(spec, options, pos, args, vm)) return kExitOk;
  auto ref = store::parse_version_ref(target);
  auto s = open_store(store_dir);
  if (ref.number) {
    if (vm.count("keep")) throw util::Error("--keep and IMAGE@N exclude each other");
    if (dry_run) throw util::Error("--dry-run is for --keep");
    s->remove_version(ref);
    std::cout << "removed " << ref.text() << "\n";
    return kExitOk;
  }
  if (!vm.count("keep")) throw util::Error("say how many versions to keep (--keep K), or name one version (IMAGE@N)");
  auto decisions = s->prune(ref.image, keep, !dry_run);
  int removed = 0;
  nlohmann::json j = nlohmann::json::array();
  for (const auto& d : decisions) {
    if (!d.keep) ++removed;
    j.push_back({{"version", d.number}, {"keep", d.keep}, {"reasons", d.reasons}});
    if (as_json) continue;
    std::cout << (d.keep ? "keep   @" : (dry_run ? "would remove @" : "remove @")) << d.number;
    for (size_t i = 0; i < d.reasons.size(); ++i) std::cout << (i ? ", " : "  (") << d.reasons[i];
    std::cout << (d.reasons.empty() ? "" : ")") << "\n";
  }
  if (as_json) std::cout << nlohmann::json{{"image", ref.image}, {"dry_run", dry_run}, {"versions", j}}.dump(2) << "\n";
  else std::cout << ref.image << ": " << (dry_run ? "would remove " : "removed ") << removed << " of " << decisions.size()
                 << " versions\n";
  return kExitOk;
}

}  // namespace bootfleet::imgtool
