// imgtool images [--json]
#include <cstdio>
#include <iostream>
#include <nlohmann/json.hpp>

#include "cli.h"
#include "util/size.h"
#include "util/time.h"

namespace bootfleet::imgtool {

int cmd_images(const std::vector<std::string>& args) {
  CommandSpec spec{"images", "[--json]", "List the images in the store.",
                   "Columns: name, number of versions, active version, latest version, virtual\n"
                   "size, bytes of version files on disk."};
  auto options = base_options();
  std::string store_dir;
  bool as_json = false;
  add_store_option(options, store_dir);
  options.add_options()("json", po::bool_switch(&as_json), "print JSON");
  po::positional_options_description pos;
  po::variables_map vm;
  if (!parse_command_line(spec, options, pos, args, vm)) return kExitOk;
  auto s = open_store(store_dir);
  auto images = s->images();
  if (as_json) {
    nlohmann::json j = nlohmann::json::array();
    for (const auto& i : images) {
      j.push_back({{"name", i.name},
                   {"versions", i.version_count},
                   {"active", i.active ? nlohmann::json(*i.active) : nlohmann::json(nullptr)},
                   {"previous", i.previous ? nlohmann::json(*i.previous) : nlohmann::json(nullptr)},
                   {"latest", i.latest ? nlohmann::json(*i.latest) : nlohmann::json(nullptr)},
                   {"virtual_size", i.size},
                   {"bytes_on_disk", i.bytes_on_disk},
                   {"created", util::format_utc(i.created_at)}});
    }
    std::cout << j.dump(2) << "\n";
    return kExitOk;
  }
  if (images.empty()) {
    std::cout << "no images in " << store_dir << " (add one with 'imgtool import IMAGE FILE')\n";
    return kExitOk;
  }
  std::printf("%-24s %8s %7s %7s %12s %12s\n", "IMAGE", "VERSIONS", "ACTIVE", "LATEST", "SIZE", "ON DISK");
  for (const auto& i : images) {
    std::printf("%-24s %8lld %7s %7s %12s %12s\n", i.name.c_str(), static_cast<long long>(i.version_count),
                i.active ? std::to_string(*i.active).c_str() : "-", i.latest ? std::to_string(*i.latest).c_str() : "-",
                util::format_size(i.size).c_str(), util::format_size(i.bytes_on_disk).c_str());
  }
  return kExitOk;
}

}  // namespace bootfleet::imgtool
