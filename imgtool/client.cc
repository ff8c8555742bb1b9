// imgtool client add|list|set|rm: the PCs bootsrv knows by MAC address.
// One command with subcommands, each with its own --help; the store does the
// checking (MAC forms, unique names, existing images), this file only parses
// and prints.
#include <cstdio>
#include <iostream>
#include <nlohmann/json.hpp>

#include "cli.h"
#include "store/channels_json.h"
#include "store/records_json.h"
#include "util/error.h"
#include "util/mac.h"
#include "util/size.h"
#include "util/time.h"

namespace bootfleet::imgtool {

namespace {

const char* kMacForms =
    "MAC is aa:bb:cc:dd:ee:ff, AA-BB-CC-DD-EE-FF, aabb.ccdd.eeff or aabbccddeeff; it is\n"
    "stored as aa:bb:cc:dd:ee:ff.";

const char* kBootModes =
    "--boot-mode: 'linux' (the version's kernel and initrd over HTTP, root over NBD),\n"
    "'sanboot' (the disk over iSCSI, booted by its own loader: Windows) or 'image'\n"
    "(whatever the image says: 'imgtool image set IMAGE --boot-mode', the default).";

// "image" (follow the image's mode) or a mode.
std::optional<store::BootMode> client_boot_mode(const std::string& text) {
  if (text == "image") return std::nullopt;
  return store::parse_boot_mode(text, "--boot-mode");
}

std::string boot_mode_text(const store::ClientInfo& c) {
  return c.boot_mode ? store::boot_mode_name(*c.boot_mode) : "image's";
}

void print_client(const store::ClientInfo& c) {
  std::cout << c.name << " (" << c.mac << "): image " << c.image << ", boot mode " << boot_mode_text(c)
            << (c.cmdline ? ", kernel arguments '" + *c.cmdline + "'" : std::string())
            << (c.cache_quota ? ", write cache quota " + util::format_size(*c.cache_quota) : std::string())
            << (c.group ? ", group " + *c.group : std::string())
            << (c.pin ? ", pinned to @" + std::to_string(*c.pin) : std::string()) << "\n";
}

int client_add(const std::vector<std::string>& args) {
  CommandSpec spec{"client add", "MAC --image IMAGE [--name NAME] [--cmdline \"ARGS\"] [--cache-quota SIZE] [--boot-mode MODE]",
                   "Register a PC by its MAC address: which image it boots and what it is called.",
                   std::string(kMacForms) +
                       "\nNAME (default: the MAC with '-', e.g. 52-54-00-12-34-56) is the CLIENT in the\n"
                       "export IMAGE/CLIENT: letters, digits, '.', '_', '-'. --cmdline adds kernel\n"
                       "arguments to the ones bootsrv gives Linux clients. --cache-quota (e.g. 20G)\n"
                       "bounds its write cache, over bootsrv's cache_quota.\n" + kBootModes};
  auto options = base_options();
  std::string store_dir, mac, name, image, cmdline, quota, boot_mode = "image";
  add_store_option(options, store_dir);
  options.add_options()("mac", po::value(&mac)->required(), "the client's MAC address")(
      "image", po::value(&image)->required(), "the image it boots")("name", po::value(&name), "its name")(
      "cmdline", po::value(&cmdline), "extra kernel arguments")(
      "cache-quota", po::value(&quota), "its write cache quota (e.g. 20G)")(
      "boot-mode", po::value(&boot_mode), "linux, sanboot or image (default: image)");
  po::positional_options_description pos;
  pos.add("mac", 1);
  po::variables_map vm;
  if (!parse_command_line(spec, options, pos, args, vm)) return kExitOk;
  std::optional<uint64_t> cache_quota;
  if (vm.count("cache-quota")) {
    cache_quota = util::parse_size(quota, "--cache-quota");
    if (*cache_quota == 0) throw util::Error("--cache-quota: give a size above 0 (e.g. 20G), or leave it out");
  }
  auto s = open_store(store_dir);
  auto c = s->add_client(mac, vm.count("name") ? std::optional(name) : std::nullopt, image,
                         vm.count("cmdline") ? std::optional(cmdline) : std::nullopt, client_boot_mode(boot_mode));
  if (cache_quota) {
    store::ClientChange change;
    change.cache_quota = cache_quota;
    c = s->set_client(c.mac, change);
  }
  std::cout << "added ";
  print_client(c);
  return kExitOk;
}

int client_list(const std::vector<std::string>& args) {
  CommandSpec spec{"client list", "[--json]", "List the registered clients, by name.",
                   "BOOT is the mode each boots by; '*' marks a client that follows its image's.\n"
                   "VERSION is what its next boot gets (client pin, group pin, group channel,\n"
                   "production; '!' marks its own pin). In JSON, boot_mode is the client's own\n"
                   "(null: the image's), effective_boot_mode the one it boots by, group and pin its\n"
                   "own, and boots how its version resolves (or boot_error why it cannot boot)."};
  auto options = base_options();
  std::string store_dir;
  bool as_json = false;
  add_store_option(options, store_dir);
  options.add_options()("json", po::bool_switch(&as_json), "print JSON");
  po::positional_options_description pos;
  po::variables_map vm;
  if (!parse_command_line(spec, options, pos, args, vm)) return kExitOk;
  auto s = open_store(store_dir);
  auto clients = s->clients();
  if (as_json) {
    nlohmann::json j = nlohmann::json::array();
    for (const auto& c : clients) j.push_back(store::client_json(*s, c));  // the API's shape too
    std::cout << j.dump(2) << "\n";
    return kExitOk;
  }
  if (clients.empty()) {
    std::cout << "no clients (add one with 'imgtool client add MAC --image IMAGE')\n";
    return kExitOk;
  }
  std::printf("%-20s %-17s %-24s %-9s %-16s %-8s %s\n", "NAME", "MAC", "IMAGE", "BOOT", "GROUP", "VERSION", "CMDLINE");
  for (const auto& c : clients) {
    // The mode it boots by; '*' marks one that follows the image's.
    std::string mode = std::string(store::boot_mode_name(s->effective_boot_mode(c))) + (c.boot_mode ? "" : "*");
    // The version its next boot gets ('!' after a pin: its own).
    std::string boots = "-";
    try {
      auto r = s->resolve_boot(c);
      boots = "@" + std::to_string(r.version) + (r.source == "client pin" ? "!" : "");
    } catch (const util::Error&) {
    }
    std::printf("%-20s %-17s %-24s %-9s %-16s %-8s %s\n", c.name.c_str(), c.mac.c_str(), c.image.c_str(), mode.c_str(),
                c.group.value_or("-").c_str(), boots.c_str(), c.cmdline.value_or("-").c_str());
  }
  return kExitOk;
}

int client_set(const std::vector<std::string>& args) {
  CommandSpec spec{"client set", "MAC|NAME [--name NAME] [--image IMAGE] [--cmdline \"ARGS\"] [--cache-quota SIZE] [--boot-mode MODE] [--group GROUP|none] [--pin N|none]",
                   "Change a client's name, image, kernel arguments, write cache quota, boot mode, group or pin.",
                   std::string(kMacForms) +
                       "\n--cmdline \"\" removes the extra kernel arguments, --cache-quota 0 the client's\n"
                       "own quota (bootsrv's cache_quota applies again). A new image applies from the\n"
                       "client's next boot, and so does a boot mode; a new quota from its next session.\n"
                       "--group puts it in a group (its image becomes the group's; 'none' takes it out),\n"
                       "--pin N makes it boot version N of its image whatever is published ('none'\n"
                       "unpins). --group and --pin alone also work on a boot server (--server).\n" + kBootModes};
  auto options = base_options();
  std::string store_dir, key, name, image, cmdline, quota, boot_mode, group, pin;
  add_store_option(options, store_dir);
  options.add_options()("client", po::value(&key)->required(), "the client's MAC or name")(
      "name", po::value(&name), "new name")("image", po::value(&image), "new image")(
      "cmdline", po::value(&cmdline), "new extra kernel arguments (\"\" for none)")(
      "cache-quota", po::value(&quota), "new write cache quota (0: bootsrv's default)")(
      "boot-mode", po::value(&boot_mode), "linux, sanboot or image")(
      "group", po::value(&group), "its group, or 'none'")("pin", po::value(&pin), "a version it always boots, or 'none'");
  ServerFlags server_flags;
  add_server_options(options, server_flags);
  po::positional_options_description pos;
  pos.add("client", 1);
  po::variables_map vm;
  if (!parse_command_line(spec, options, pos, args, vm)) return kExitOk;
  std::optional<std::string> new_group;
  if (vm.count("group") && group != "none" && !group.empty()) {
    store::validate_group_name(group);
    new_group = group;
  }
  std::optional<int64_t> new_pin;
  if (vm.count("pin") && pin != "none" && !pin.empty()) {
    if (pin.size() > 18 || pin.find_first_not_of("0123456789") != std::string::npos || pin[0] == '0') {
      throw util::Error("--pin '" + pin + "': give a version number (e.g. 3), or 'none' to unpin");
    }
    new_pin = std::stoll(pin);
  }
  bool placement_only = !vm.count("name") && !vm.count("image") && !vm.count("cmdline") && !vm.count("cache-quota") &&
                        !vm.count("boot-mode");
  if (server_flags.wanted(!vm["store"].defaulted())) {
    if (!placement_only || (!vm.count("group") && !vm.count("pin"))) {
      throw util::Error("client set --server changes only --group and --pin; change the rest in the server's store");
    }
    if (!util::parse_mac(key)) store::validate_client_name(key);
    set_client_placement_remote(server_flags, key, new_group, vm.count("group") > 0, new_pin, vm.count("pin") > 0);
    return kExitOk;
  }
  store::ClientChange change;
  if (vm.count("name")) change.name = name;
  if (vm.count("image")) change.image = image;
  if (vm.count("cmdline")) change.cmdline = cmdline;
  if (vm.count("cache-quota")) change.cache_quota = util::parse_size(quota, "--cache-quota");
  if (vm.count("boot-mode")) change.boot_mode = client_boot_mode(boot_mode);
  if (placement_only && !vm.count("group") && !vm.count("pin")) {
    throw util::Error("client set: nothing to change; give --name, --image, --cmdline, --cache-quota, --boot-mode, "
                      "--group or --pin");
  }
  auto s = open_store(store_dir);
  auto c = s->client(key);
  // The group first: it decides the image a pin given with it is of.
  if (vm.count("group")) c = s->set_client_group(c.mac, new_group);
  if (!placement_only) c = s->set_client(c.mac, change);
  if (vm.count("pin")) c = s->set_client_pin(c.mac, new_pin);
  std::cout << "changed ";
  print_client(c);
  return kExitOk;
}

int client_rm(const std::vector<std::string>& args) {
  CommandSpec spec{"client rm", "MAC|NAME", "Forget a client.",
                   "Its running session, if any, keeps going until it ends; its next boot is\n"
                   "treated as an unknown MAC."};
  auto options = base_options();
  std::string store_dir, key;
  add_store_option(options, store_dir);
  options.add_options()("client", po::value(&key)->required(), "the client's MAC or name");
  po::positional_options_description pos;
  pos.add("client", 1);
  po::variables_map vm;
  if (!parse_command_line(spec, options, pos, args, vm)) return kExitOk;
  auto s = open_store(store_dir);
  auto c = s->client(key);
  s->remove_client(c.mac);
  std::cout << "removed " << c.name << " (" << c.mac << ")\n";
  return kExitOk;
}

const char* kClientUsage =
    "Usage: imgtool client add MAC --image IMAGE [--name NAME] [--cmdline \"ARGS\"] [--cache-quota SIZE] [--boot-mode MODE]\n"
    "       imgtool client list [--json]\n"
    "       imgtool client set MAC|NAME [--name NAME] [--image IMAGE] [--cmdline \"ARGS\"] [--cache-quota SIZE] [--boot-mode MODE]\n"
    "                              [--group GROUP|none] [--pin N|none]\n"
    "       imgtool client rm MAC|NAME\n"
    "       imgtool client group add|set|rm|list …   (groups: imgtool client group --help)\n"
    "       imgtool client SUBCOMMAND --help\n\n"
    "The PCs bootsrv network-boots, known by MAC address: the image each boots,\n"
    "its name (the CLIENT of its export IMAGE/CLIENT), extra kernel arguments and\n"
    "its boot mode (linux, sanboot, or its image's).\n";

}  // namespace

int cmd_client(const std::vector<std::string>& args) {
  if (args.empty() || args[0] == "--help" || args[0] == "-h") {
    (args.empty() ? std::cerr : std::cout) << kClientUsage;
    return args.empty() ? kExitError : kExitOk;
  }
  std::vector<std::string> rest(args.begin() + 1, args.end());
  if (args[0] == "add") return client_add(rest);
  if (args[0] == "list" || args[0] == "ls") return client_list(rest);
  if (args[0] == "set") return client_set(rest);
  if (args[0] == "rm" || args[0] == "remove") return client_rm(rest);
  if (args[0] == "group") return cmd_client_group(rest);
  throw util::Error("'" + args[0] + "' is not a client subcommand; use add, list, set, rm or group\n" + kClientUsage);
}

}  // namespace bootfleet::imgtool
