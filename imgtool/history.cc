// imgtool history IMAGE [--json]
#include <cstdio>
#include <iostream>
#include <nlohmann/json.hpp>

#include "cli.h"
#include "util/time.h"

namespace bootfleet::imgtool {

int cmd_history(const std::vector<std::string>& args) {
  CommandSpec spec{"history", "IMAGE [--json]", "List the publishes and rollbacks of an image, oldest first.", ""};
  auto options = base_options();
  std::string store_dir, image;
  bool as_json = false;
  add_store_option(options, store_dir);
  options.add_options()("image", po::value(&image)->required(), "the image")("json", po::bool_switch(&as_json),
                                                                             "print JSON");
  po::positional_options_description pos;
  pos.add("image", 1);
  po::variables_map vm;
  if (!parse_command_line(spec, options, pos, args, vm)) return kExitOk;
  auto s = open_store(store_dir);
  auto history = s->history(image);
  if (as_json) {
    nlohmann::json j = nlohmann::json::array();
    for (const auto& a : history) {
      j.push_back({{"action", a.action},
                   {"version", a.version},
                   {"previous", a.previous ? nlohmann::json(*a.previous) : nlohmann::json(nullptr)},
                   {"at", util::format_utc_ms(a.at_ms)},
                   {"by", a.by}});
    }
    std::cout << j.dump(2) << "\n";
    return kExitOk;
  }
  if (history.empty()) {
    std::cout << image << ": nothing published yet\n";
    return kExitOk;
  }
  for (const auto& a : history) {
    std::printf("%s  %-8s @%lld (was %s)  by %s\n", util::format_utc_ms(a.at_ms).c_str(), a.action.c_str(),
                static_cast<long long>(a.version), a.previous ? ("@" + std::to_string(*a.previous)).c_str() : "none",
                a.by.c_str());
  }
  return kExitOk;
}

}  // namespace bootfleet::imgtool
