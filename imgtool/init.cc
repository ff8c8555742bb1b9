// imgtool init [DIR]
#include <iostream>

#include "cli.h"

namespace bootfleet::imgtool {

int cmd_init(const std::vector<std::string>& args) {
  CommandSpec spec{"init", "[DIR]", "Create a store: DIR/catalog.db, DIR/images/, DIR/tmp/, DIR/locks/.",
                   "DIR defaults to --store, $BOOTFLEET_STORE, else /var/lib/bootfleet. DIR may\n"
                   "exist but must be empty. See docs/store.md for the layout."};
  auto options = base_options();
  std::string dir, store_dir;
  add_store_option(options, store_dir);
  options.add_options()("dir", po::value(&dir), "directory of the new store");
  po::positional_options_description pos;
  pos.add("dir", 1);
  po::variables_map vm;
  if (!parse_command_line(spec, options, pos, args, vm)) return kExitOk;
  if (dir.empty()) dir = store_dir;
  store::Store::init(dir);
  std::cout << "initialised an empty store in " << dir << "\n";
  return kExitOk;
}

}  // namespace bootfleet::imgtool
