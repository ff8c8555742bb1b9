// imgtool images [--json] and imgtool image set IMAGE --boot-mode MODE
#include <cstdio>
#include <iostream>
#include <nlohmann/json.hpp>

#include "cli.h"
#include "store/records_json.h"
#include "util/error.h"
#include "util/size.h"
#include "util/time.h"

namespace bootfleet::imgtool {

int cmd_images(const std::vector<std::string>& args) {
  CommandSpec spec{"images", "[--json]", "List the images in the store.",
                   "Columns: name, number of versions, active version, latest version, virtual\n"
                   "size, bytes of version files on disk, boot mode (linux or sanboot)."};
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
    for (const auto& i : images) j.push_back(store::image_json(i));  // the API's shape too
    std::cout << j.dump(2) << "\n";
    return kExitOk;
  }
  if (images.empty()) {
    std::cout << "no images in " << store_dir << " (add one with 'imgtool import IMAGE FILE')\n";
    return kExitOk;
  }
  std::printf("%-24s %8s %7s %7s %12s %12s  %s\n", "IMAGE", "VERSIONS", "ACTIVE", "LATEST", "SIZE", "ON DISK", "BOOT");
  for (const auto& i : images) {
    std::printf("%-24s %8lld %7s %7s %12s %12s  %s\n", i.name.c_str(), static_cast<long long>(i.version_count),
                i.active ? std::to_string(*i.active).c_str() : "-", i.latest ? std::to_string(*i.latest).c_str() : "-",
                util::format_size(i.size).c_str(), util::format_size(i.bytes_on_disk).c_str(),
                store::boot_mode_name(i.boot_mode));
  }
  return kExitOk;
}

namespace {

int image_set(const std::vector<std::string>& args) {
  CommandSpec spec{"image set", "IMAGE --boot-mode linux|sanboot [--json]", "Change how an image's clients boot.",
                   "--boot-mode linux: iPXE loads the version's kernel and initrd (its artifacts\n"
                   "vmlinuz, initrd.img) over HTTP, and the root is the client's NBD export.\n"
                   "--boot-mode sanboot: iPXE logs in to the client's iSCSI target and boots the\n"
                   "disk's own loader (Windows, or Linux with an iBFT-aware initramfs); bootsrv\n"
                   "must serve iSCSI (--iscsi-listen). Clients with a mode of their own\n"
                   "('imgtool client set --boot-mode') keep it. Applies from each client's next boot."};
  auto options = base_options();
  std::string store_dir, image, boot_mode;
  bool as_json = false;
  add_store_option(options, store_dir);
  options.add_options()("image", po::value(&image)->required(), "the image")(
      "boot-mode", po::value(&boot_mode)->required(), "linux or sanboot")("json", po::bool_switch(&as_json),
                                                                          "print JSON");
  po::positional_options_description pos;
  pos.add("image", 1);
  po::variables_map vm;
  if (!parse_command_line(spec, options, pos, args, vm)) return kExitOk;
  store::BootMode mode = store::parse_boot_mode(boot_mode, "--boot-mode");
  auto s = open_store(store_dir);
  s->set_image_boot_mode(image, mode);
  if (as_json) {
    std::cout << nlohmann::json{{"image", image}, {"boot_mode", store::boot_mode_name(mode)}}.dump(2) << "\n";
  } else {
    std::cout << "image " << image << ": boot mode " << store::boot_mode_name(mode) << "\n";
  }
  return kExitOk;
}

const char* kImageUsage =
    "Usage: imgtool image set IMAGE --boot-mode linux|sanboot [--json]\n"
    "       imgtool image SUBCOMMAND --help\n\n"
    "Settings of an image as a whole (its versions: 'imgtool versions IMAGE').\n";

}  // namespace

int cmd_image(const std::vector<std::string>& args) {
  if (args.empty() || args[0] == "--help" || args[0] == "-h") {
    (args.empty() ? std::cerr : std::cout) << kImageUsage;
    return args.empty() ? kExitError : kExitOk;
  }
  std::vector<std::string> rest(args.begin() + 1, args.end());
  if (args[0] == "set") return image_set(rest);
  throw util::Error("'" + args[0] + "' is not an image subcommand; use set\n" + kImageUsage);
}

}  // namespace bootfleet::imgtool
