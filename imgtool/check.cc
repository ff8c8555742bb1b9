// imgtool check FILE [--json]
#include <iostream>
#include <nlohmann/json.hpp>

#include "cli.h"
#include "vhd/check.h"

namespace bootfleet::imgtool {

int cmd_check(const std::vector<std::string>& args) {
  CommandSpec spec{"check", "FILE [--json]",
                   "Check a VHD file and its parent chain for structural problems.",
                   "Checks footer and header cookies and checksums, the footer copy, the BAT\n"
                   "(entries inside the file, not overlapping the metadata or each other), parent\n"
                   "locators, sector bitmaps, and for a differencing file its parent: found\n"
                   "through the locators, with the unique id the child records, the same size,\n"
                   "and no loop. Every problem is printed, each naming its file.\n"
                   "Exit status: 0 clean, 1 problems found, 2 the file cannot be read."};
  auto options = base_options();
  std::string file;
  bool as_json = false;
  options.add_options()("file", po::value(&file)->required(), "the VHD to check")(
      "json", po::bool_switch(&as_json), "print JSON");
  po::positional_options_description pos;
  pos.add("file", 1);
  po::variables_map vm;
  if (!parse_command_line(spec, options, pos, args, vm)) return kExitOk;

  vhd::CheckReport report = vhd::check(file);
  // Unreadable: the first file yielded nothing but problems and no type.
  bool unreadable = !report.files.empty() && report.files.front().type.empty();
  if (as_json) {
    nlohmann::json j;
    j["file"] = file;
    j["clean"] = report.clean();
    j["files"] = nlohmann::json::array();
    for (const auto& f : report.files) {
      j["files"].push_back({{"file", f.path}, {"type", f.type}, {"problems", f.problems}});
    }
    std::cout << j.dump(2) << "\n";
  } else {
    for (const auto& f : report.files) {
      for (const auto& p : f.problems) std::cout << f.path << ": " << p << "\n";
    }
    if (report.clean()) {
      std::cout << file << ": clean (" << report.files.size() << (report.files.size() == 1 ? " file" : " files")
                << " checked)\n";
    }
  }
  if (report.clean()) return kExitOk;
  return unreadable ? kExitError : kExitNo;
}

}  // namespace bootfleet::imgtool
