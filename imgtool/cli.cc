#include "cli.h"

#include <iostream>

#include "util/error.h"

namespace bootfleet::imgtool {

po::options_description base_options() {
  po::options_description options("Options");
  options.add_options()("help,h", "show this help and exit");
  return options;
}

bool parse_command_line(const CommandSpec& spec, po::options_description& options,
                        const po::positional_options_description& positional,
                        const std::vector<std::string>& args, po::variables_map& vm) {
  for (const auto& a : args) {
    if (a == "--help" || a == "-h") {
      std::cout << "Usage: imgtool " << spec.name << " " << spec.synopsis << "\n\n"
                << spec.summary << "\n\n"
                << options << "\n";
      if (!spec.details.empty()) std::cout << spec.details << "\n";
      return false;
    }
  }
  try {
    po::store(po::command_line_parser(args).options(options).positional(positional).run(), vm);
    po::notify(vm);
  } catch (const po::error& e) {
    throw util::Error(spec.name + ": " + e.what() + "\nUsage: imgtool " + spec.name + " " +
                      spec.synopsis + "  (see imgtool " + spec.name + " --help)");
  }
  return true;
}

const std::vector<Command>& all_commands() {
  static const std::vector<Command> commands = {
      {"create", "create an empty VHD (fixed, dynamic, or differencing on a parent)", cmd_create},
      {"info", "show a disk file's format, size, allocation, ids and parent chain", cmd_info},
      {"convert", "convert between raw, VHD (any type, chains flattened) and VHDX", cmd_convert},
      {"check", "check a VHD file and its parent chain for structural problems", cmd_check},
      {"compare", "compare the guest-visible content of two disk files", cmd_compare},
  };
  return commands;
}

}  // namespace bootfleet::imgtool
