// imgtool info FILE [--json]
#include <filesystem>
#include <iostream>
#include <nlohmann/json.hpp>

#include "cli.h"
#include "util/bytes.h"
#include "util/error.h"
#include "util/size.h"
#include "vhd/chain.h"
#include "vhd/check.h"
#include "vhd/open_disk.h"
#include "vhd/vhd_file.h"

namespace bootfleet::imgtool {

namespace {

using nlohmann::json;

json describe_layer(const vhd::VhdFile& f) {
  const vhd::Footer& ft = f.footer();
  json j;
  j["file"] = f.path();
  j["type"] = vhd::disk_type_name(f.type());
  j["virtual_size"] = f.size();
  j["file_size"] = f.file_size();
  j["allocated_bytes"] = f.allocated_bytes();
  j["unique_id"] = util::uuid_to_string(ft.unique_id);
  j["created"] = vhd::format_vhd_timestamp(ft.timestamp);
  j["creator"] = {{"application", util::printable_code(ft.creator_app.data(), 4)},
                  {"version", std::to_string(ft.creator_version >> 16) + "." +
                                  std::to_string(ft.creator_version & 0xFFFF)},
                  {"host_os", util::printable_code(ft.creator_host_os.data(), 4)}};
  j["geometry"] = {{"cylinders", ft.geometry.cylinders},
                   {"heads", ft.geometry.heads},
                   {"sectors_per_track", ft.geometry.sectors_per_track}};
  if (f.type() != vhd::DiskType::kFixed) {
    j["block_size"] = f.block_size();
    uint32_t used = 0;
    for (uint32_t e : f.bat()) used += e != vhd::kBatUnused;
    j["blocks"] = {{"total", f.block_count()}, {"allocated", used}};
  }
  if (f.type() == vhd::DiskType::kDifferencing) {
    json locators = json::array();
    for (const auto& l : f.header().locators) {
      if (l.empty()) continue;
      locators.push_back({{"platform", l.code()}, {"path", vhd::read_locator_path(f, l)}});
    }
    j["parent"] = {{"unique_id", util::uuid_to_string(f.header().parent_unique_id)},
                   {"name", f.header().parent_name()},
                   {"timestamp", vhd::format_vhd_timestamp(f.header().parent_timestamp)},
                   {"locators", locators}};
  }
  return j;
}

void print_text(const json& j) {
  std::cout << "file:            " << j["file"].get<std::string>() << "\n"
            << "format:          " << j["format"].get<std::string>() << "\n";
  if (j["virtual_size"].is_null()) {
    std::cout << "virtual size:    unknown (no readable footer)\n";
    if (j["file_size"].is_number()) {
      std::cout << "file size:       " << util::format_size(j["file_size"]) << " (" << j["file_size"].get<uint64_t>()
                << " bytes)\n";
    }
    std::cout << "checks:          PROBLEMS (see below)\n";
    for (const json& p : j["problems"]) std::cout << "problem: " << p.get<std::string>() << "\n";
    return;
  }
  std::cout << "virtual size:    " << util::format_size(j["virtual_size"]) << " ("
            << j["virtual_size"].get<uint64_t>() << " bytes)\n";
  if (!j.contains("chain")) return;
  const json& top = j["chain"][0];
  std::cout << "file size:       " << util::format_size(top["file_size"]) << "\n"
            << "allocated:       " << util::format_size(top["allocated_bytes"]) << "\n";
  if (top.contains("block_size")) {
    std::cout << "block size:      " << util::format_size(top["block_size"]) << " ("
              << top["blocks"]["allocated"].get<uint32_t>() << " of " << top["blocks"]["total"].get<uint32_t>()
              << " blocks allocated)\n";
  }
  const json& g = top["geometry"];
  std::cout << "unique id:       " << top["unique_id"].get<std::string>() << "\n"
            << "created:         " << top["created"].get<std::string>() << "\n"
            << "creator:         " << top["creator"]["application"].get<std::string>() << " "
            << top["creator"]["version"].get<std::string>() << " on "
            << top["creator"]["host_os"].get<std::string>() << "\n"
            << "geometry (CHS):  " << g["cylinders"] << "/" << g["heads"] << "/" << g["sectors_per_track"]
            << "\n"
            << "checks:          " << (j["checks_ok"].get<bool>() ? "ok" : "PROBLEMS (see below)") << "\n";
  if (j["chain"].size() > 1 || top.contains("parent")) {
    std::cout << "chain:\n";
    for (const json& l : j["chain"]) {
      std::cout << "  " << l["file"].get<std::string>() << "  " << l["type"].get<std::string>() << "  "
                << l["unique_id"].get<std::string>() << "  " << util::format_size(l["allocated_bytes"])
                << " allocated\n";
    }
  }
  for (const json& p : j["problems"]) std::cout << "problem: " << p.get<std::string>() << "\n";
}

}  // namespace

int cmd_info(const std::vector<std::string>& args) {
  CommandSpec spec{"info", "FILE [--json]",
                   "Show a disk file's format, virtual size, allocation, unique id, creator and\n"
                   "the whole parent chain, and whether its checksums and structure hold.",
                   "FILE may be raw, VHD (fixed, dynamic, differencing) or VHDX. With --json the\n"
                   "same facts are printed as one JSON object (see docs/imgtool.md)."};
  auto options = base_options();
  std::string file;
  bool as_json = false;
  options.add_options()("file", po::value(&file)->required(), "the disk file")(
      "json", po::bool_switch(&as_json), "print JSON");
  po::positional_options_description pos;
  pos.add("file", 1);
  po::variables_map vm;
  if (!parse_command_line(spec, options, pos, args, vm)) return kExitOk;

  json j;
  j["file"] = file;
  vhd::InputFormat format = vhd::detect_format(file);
  if (format == vhd::InputFormat::kVhd) {
    // Report what can be read even when the file has problems: info is how
    // an admin finds out what is wrong.
    vhd::CheckReport report = vhd::check(file);
    json problems = json::array();
    for (const auto& f : report.files)
      for (const auto& p : f.problems) problems.push_back(f.path + ": " + p);
    json chain = json::array();
    for (const auto& f : report.files) {
      if (f.type.empty()) break;
      auto inspected = vhd::VhdFile::inspect(f.path);
      if (!inspected.file) break;
      chain.push_back(describe_layer(*inspected.file));
    }
    if (chain.empty()) {
      // Not even a footer: the file's length and what is wrong are all
      // there is to show (check says the same and exits 1).
      std::error_code ec;
      auto length = std::filesystem::file_size(file, ec);
      j["format"] = "vhd";
      j["virtual_size"] = nullptr;
      j["file_size"] = ec ? json(nullptr) : json(length);
    } else {
      j["format"] = std::string("vhd-") + chain[0]["type"].get<std::string>();
      j["virtual_size"] = chain[0]["virtual_size"];
    }
    j["chain"] = chain;
    j["checks_ok"] = report.clean();
    j["problems"] = problems;
  } else {
    auto disk = vhd::open_disk(file, format);
    j["format"] = format == vhd::InputFormat::kVhdx ? "vhdx" : "raw";
    j["detail"] = disk->format_name();
    j["virtual_size"] = disk->size();
  }
  if (as_json) std::cout << j.dump(2) << "\n";
  else print_text(j);
  return kExitOk;
}

}  // namespace bootfleet::imgtool
