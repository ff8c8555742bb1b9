// imgtool inspect IMAGE[@N] [--json]
#include <iostream>
#include <nlohmann/json.hpp>

#include "cli.h"
#include "guest/disk_server.h"
#include "guest/guest.h"
#include "guest/inspect.h"
#include "util/size.h"

namespace bootfleet::imgtool {

int cmd_inspect(const std::vector<std::string>& args) {
  CommandSpec spec{"inspect", "IMAGE[@N] [--json] [--store DIR]",
                   "Show what libguestfs inspection sees in a version: filesystems, operating system,\n"
                   "distribution and version, hostname, installed applications.",
                   "The version is attached read-only to a libguestfs appliance (one launch, about\n"
                   "20-40 s without KVM). A disk without an operating system lists its filesystems\n"
                   "only. Applications are listed where libguestfs can read the package database\n"
                   "(dpkg, rpm, Windows uninstall keys)."};
  auto options = base_options();
  std::string store_dir, ref_text;
  bool as_json = false;
  add_store_option(options, store_dir);
  options.add_options()("version", po::value(&ref_text)->required(), "IMAGE@N, IMAGE@active or IMAGE")(
      "json", po::bool_switch(&as_json), "print JSON");
  po::positional_options_description pos;
  pos.add("version", 1);
  po::variables_map vm;
  if (!parse_command_line(spec, options, pos, args, vm)) return kExitOk;

  auto s = open_store(store_dir);
  store::VersionInfo v = s->version(store::parse_version_ref(ref_text));
  std::string name = v.image + "@" + std::to_string(v.number);
  guest::WorkDir work;
  guest::DiskServer disk(open_version_device(*s, v), work.path(), "inspect");
  guest::LaunchOptions lo;
  lo.nbd_socket = disk.socket();
  lo.export_name = disk.export_name();
  lo.read_only = true;
  lo.accel = guest::accel_from_environment();
  lo.note = [](const std::string& n) { std::cerr << "imgtool inspect: note: " << n << "\n"; };
  auto g = guest::Guest::launch(lo);
  auto r = guest::inspect(*g, 0);
  g.reset();

  if (as_json) {
    nlohmann::json fss = nlohmann::json::array(), oss = nlohmann::json::array();
    for (const auto& f : r.filesystems) {
      fss.push_back({{"device", f.device}, {"type", f.type}, {"label", f.label}, {"size", f.size}});
    }
    for (const auto& o : r.systems) {
      nlohmann::json mps = nlohmann::json::object(), apps = nlohmann::json::array();
      for (const auto& [mp, d] : o.mountpoints) mps[mp] = d;
      for (const auto& [n, ver] : o.applications) apps.push_back({{"name", n}, {"version", ver}});
      oss.push_back({{"root", o.root}, {"type", o.type}, {"distro", o.distro}, {"product_name", o.product_name},
                     {"major_version", o.major}, {"minor_version", o.minor}, {"hostname", o.hostname},
                     {"arch", o.arch}, {"package_format", o.package_format}, {"mountpoints", mps},
                     {"applications", apps}});
    }
    std::cout << nlohmann::json{{"version", name}, {"filesystems", fss}, {"operating_systems", oss}}.dump(2) << "\n";
    return kExitOk;
  }
  std::cout << name << " (" << util::format_size(v.size) << ")\n";
  std::cout << "filesystems:\n";
  for (const auto& f : r.filesystems) {
    std::cout << "  " << f.device << "  " << f.type << (f.label.empty() ? "" : "  label '" + f.label + "'") << "  "
              << util::format_size(f.size) << "\n";
  }
  if (r.systems.empty()) std::cout << "operating system: none found\n";
  for (const auto& o : r.systems) {
    std::cout << "operating system on " << o.root << ": " << (o.product_name.empty() ? o.type : o.product_name)
              << "\n  type " << o.type << ", distro " << (o.distro.empty() ? "-" : o.distro) << ", version "
              << o.major << "." << o.minor << ", arch " << (o.arch.empty() ? "-" : o.arch) << ", hostname "
              << (o.hostname.empty() ? "-" : o.hostname) << "\n";
    for (const auto& [mp, d] : o.mountpoints) std::cout << "  mount " << d << " on " << mp << "\n";
    std::cout << "  applications: " << o.applications.size() << "\n";
    for (const auto& [n, ver] : o.applications) std::cout << "    " << n << " " << ver << "\n";
  }
  return kExitOk;
}

}  // namespace bootfleet::imgtool
