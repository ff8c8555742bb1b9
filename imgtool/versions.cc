// imgtool versions IMAGE [--json]
#include <cstdio>
#include <iostream>
#include <nlohmann/json.hpp>

#include "cli.h"
#include "store/version_json.h"
#include "util/size.h"
#include "util/time.h"

namespace bootfleet::imgtool {

int cmd_versions(const std::vector<std::string>& args) {
  CommandSpec spec{"versions", "IMAGE [--json]", "List the versions of an image.",
                   "A '*' marks the active version, 'r' the rollback target. PARENT is the version\n"
                   "a differencing file sits on ('-' for a base); DEPTH the files in its chain."};
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
  auto info = s->image(image);
  auto versions = s->versions(image);
  if (as_json) {
    nlohmann::json j = nlohmann::json::array();
    for (const auto& v : versions) {
      auto o = store::version_json(v);
      o["active"] = info.active == v.number;
      o["rollback_target"] = info.previous == v.number;
      j.push_back(o);
    }
    std::cout << j.dump(2) << "\n";
    return kExitOk;
  }
  if (versions.empty()) {
    std::cout << image << " has no versions\n";
    return kExitOk;
  }
  std::printf("  %-7s %-6s %-5s %10s %10s  %-20s  %s\n", "VERSION", "PARENT", "DEPTH", "SIZE", "STORED", "CREATED",
              "MESSAGE");
  for (const auto& v : versions) {
    const char* mark = info.active == v.number ? "*" : info.previous == v.number ? "r" : " ";
    std::printf("%s %-7lld %-6s %-5d %10s %10s  %-20s  %s\n", mark, static_cast<long long>(v.number),
                v.parent ? std::to_string(*v.parent).c_str() : "-", v.depth, util::format_size(v.size).c_str(),
                util::format_size(v.stored_bytes).c_str(), util::format_utc(v.created_at).c_str(), v.message.c_str());
  }
  return kExitOk;
}

}  // namespace bootfleet::imgtool
