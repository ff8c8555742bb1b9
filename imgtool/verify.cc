// imgtool verify [IMAGE[@N]] [--json]
#include <iostream>
#include <nlohmann/json.hpp>

#include "cli.h"
#include "util/progress.h"
#include "util/size.h"

namespace bootfleet::imgtool {

int cmd_verify(const std::vector<std::string>& args) {
  CommandSpec spec{"verify", "[IMAGE[@N]] [--json]",
                   "Recompute the digests of stored versions and check every file's structure and chain.",
                   "Without an argument every version of every image is verified; IMAGE verifies its\n"
                   "versions, IMAGE@N that version and the chain under it. Each version's own\n"
                   "blocks are read and hashed; blocks it inherits are checked against its verified\n"
                   "parent's digests, so verifying a whole image reads each file once.\n"
                   "Exit status: 0 all good, 1 problems found (each names image, version, block)."};
  auto options = base_options();
  std::string store_dir, ref_text;
  bool as_json = false;
  add_store_option(options, store_dir);
  options.add_options()("version", po::value(&ref_text), "IMAGE or IMAGE@N")("json", po::bool_switch(&as_json),
                                                                               "print JSON");
  po::positional_options_description pos;
  pos.add("version", 1);
  po::variables_map vm;
  if (!parse_command_line(spec, options, pos, args, vm)) return kExitOk;
  auto s = open_store(store_dir);
  std::optional<store::VersionRef> ref;
  if (!ref_text.empty()) ref = store::parse_version_ref(ref_text);
  auto progress = util::Progress::for_terminal("verify", 0);
  auto report = s->verify(ref, [&](uint64_t done, uint64_t) { progress.update(done); });
  progress.finish();
  if (as_json) {
    nlohmann::json problems = nlohmann::json::array();
    for (const auto& p : report.problems) {
      problems.push_back({{"image", p.image}, {"version", p.version}, {"problem", p.message}});
    }
    std::cout << nlohmann::json{{"checked", report.checked}, {"bytes_hashed", report.bytes_hashed},
                                {"ok", report.problems.empty()}, {"problems", problems}}
                     .dump(2)
              << "\n";
  } else {
    for (const auto& p : report.problems) std::cout << p.image << "@" << p.version << ": " << p.message << "\n";
    std::cout << (report.problems.empty() ? "ok: " : "PROBLEMS: ") << report.checked.size() << " versions checked, "
              << util::format_size(report.bytes_hashed) << " hashed";
    if (!report.problems.empty()) std::cout << ", " << report.problems.size() << " problems";
    std::cout << "\n";
  }
  return report.problems.empty() ? kExitOk : kExitNo;
}

}  // namespace bootfleet::imgtool
