// imgtool: the admin's tool for bootfleet images. One file per command; this
// file only dispatches and turns exceptions into messages and exit codes.
#include <cstring>
#include <iostream>
#include <string>
#include <vector>

#include "cli.h"
#include "util/args.h"
#include "util/log.h"
#include "util/error.h"
#include "util/version.h"

using namespace bootfleet::imgtool;

namespace {

void print_usage(std::ostream& out) {
  out << "Usage: imgtool COMMAND [ARGS...]\n"
         "       imgtool [--store DIR] [--server URL] COMMAND [ARGS...]\n"
         "       imgtool COMMAND --help\n"
         "       imgtool --help | --version\n\n"
         "Build, inspect and convert the disk images bootfleet serves.\n\n"
         "Commands:\n";
  for (const auto& c : all_commands()) {
    std::string name = c.name;
    out << "  " << name << std::string(name.size() < 10 ? 10 - name.size() : 1, ' ') << c.summary << "\n";
  }
  out << "\nGlobal options (before or after the command): --store DIR (default $BOOTFLEET_STORE,\n"
         "else /var/lib/bootfleet); --server URL, --token-file F, --ca-file F (a boot server's API).\n"
         "  --help     show this help (imgtool COMMAND --help: that command's)\n"
         "  --version  show imgtool's version\n"
         "\nSizes take K, M, G, T suffixes (binary): 512, 4K, 20G, 1.5T.\n"
         "Exit status: 0 success; 1 the answer is no: check, lint or verify found problems,\n"
         "compare or diff found a difference, boot-test failed; 2 any error.\n"
         "Documentation: docs/imgtool.md.\n";
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  bootfleet::util::set_log_program("imgtool");  // the library's log lines (e.g. the store's lock wait) name us
  try {
    args = bootfleet::util::move_global_options(args, {"--store", "--server", "--token-file", "--ca-file"});
  } catch (const bootfleet::util::Error& e) {
    std::cerr << "imgtool: " << e.what() << "\n";
    return kExitError;
  }
  if (args.empty()) {
    print_usage(std::cerr);
    return kExitError;
  }
  const std::string& name = args[0];
  if (name == "--help" || name == "-h" || name == "help") {
    if (args.size() > 1) {
      for (const auto& c : all_commands())
        if (args[1] == c.name) return c.run({"--help"});
    }
    print_usage(std::cout);
    return kExitOk;
  }
  if (name == "--version") {
    std::cout << "imgtool (bootfleet) " << bootfleet::util::version() << "\n";
    return kExitOk;
  }
  for (const auto& c : all_commands()) {
    if (name != c.name) continue;
    try {
      return c.run({args.begin() + 1, args.end()});
    } catch (const bootfleet::util::Error& e) {
      std::cerr << "imgtool " << name << ": " << e.what() << "\n";
      return kExitError;
    } catch (const std::exception& e) {
      std::cerr << "imgtool " << name << ": internal error: " << e.what() << "\n";
      return kExitError;
    }
  }
  std::cerr << "imgtool: '" << name << "' is not a command.\n\n";
  print_usage(std::cerr);
  return kExitError;
}
