// imgtool gc [--dry-run]
#include <iostream>

#include "cli.h"
#include "util/size.h"

namespace bootfleet::imgtool {

int cmd_gc(const std::vector<std::string>& args) {
  CommandSpec spec{"gc", "[--dry-run]", "Remove files under images/ that no catalog row refers to.",
                   "Images a writer is busy with are skipped. Leftovers in tmp/ are removed\n"
                   "whenever the store is opened."};
  auto options = base_options();
  std::string store_dir;
  bool dry_run = false;
  add_store_option(options, store_dir);
  options.add_options()("dry-run,n", po::bool_switch(&dry_run), "list, remove nothing");
  po::positional_options_description pos;
  po::variables_map vm;
  if (!parse_command_line(spec, options, pos, args, vm)) return kExitOk;
  auto s = open_store(store_dir);
  auto r = s->gc(!dry_run);
  for (const auto& f : r.removed) std::cout << (dry_run ? "would remove " : "removed ") << f << "\n";
  std::cout << "gc: " << (dry_run ? "would free " : "freed ") << util::format_size(r.bytes) << " in " << r.removed.size()
            << " files\n";
  return kExitOk;
}

}  // namespace bootfleet::imgtool
