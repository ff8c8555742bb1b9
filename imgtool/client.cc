// imgtool client add|list|set|rm: the PCs bootsrv knows by MAC address.
// One command with subcommands, each with its own --help; the store does the
// checking (MAC forms, unique names, existing images), this file only parses
// and prints.
#include <cstdio>
#include <iostream>
#include <nlohmann/json.hpp>

#include "cli.h"
#include "util/error.h"
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
            << (c.cache_quota ? ", write cache quota " + util::format_size(*c.cache_quota) : std::string()) << "\n";
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
                   "In JSON, boot_mode is the client's own (null: the image's) and\n"
                   "effective_boot_mode the one it boots by."};
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
    for (const auto& c : clients) {
      j.push_back({{"mac", c.mac},
                   {"name", c.name},
                   {"image", c.image},
                   {"cmdline", c.cmdline ? nlohmann::json(*c.cmdline) : nlohmann::json(nullptr)},
                   {"cache_quota", c.cache_quota ? nlohmann::json(*c.cache_quota) : nlohmann::json(nullptr)},
                   {"boot_mode", c.boot_mode ? nlohmann::json(store::boot_mode_name(*c.boot_mode)) : nlohmann::json(nullptr)},
                   {"effective_boot_mode", store::boot_mode_name(s->effective_boot_mode(c))},
                   {"created", util::format_utc(c.created_at)}});
    }
    std::cout << j.dump(2) << "\n";
    return kExitOk;
  }
  if (clients.empty()) {
    std::cout << "no clients (add one with 'imgtool client add MAC --image IMAGE')\n";
    return kExitOk;
  }
  std::printf("%-20s %-17s %-24s %-9s %s\n", "NAME", "MAC", "IMAGE", "BOOT", "CMDLINE");
  for (const auto& c : clients) {
    // The mode it boots by; '*' marks one that follows the image's.
    std::string mode = std::string(store::boot_mode_name(s->effective_boot_mode(c))) + (c.boot_mode ? "" : "*");
    std::printf("%-20s %-17s %-24s %-9s %s\n", c.name.c_str(), c.mac.c_str(), c.image.c_str(), mode.c_str(),
                c.cmdline.value_or("-").c_str());
  }
  return kExitOk;
}

int client_set(const std::vector<std::string>& args) {
  CommandSpec spec{"client set", "MAC|NAME [--name NAME] [--image IMAGE] [--cmdline \"ARGS\"] [--cache-quota SIZE] [--boot-mode MODE]",
                   "Change a client's name, image, kernel arguments, write cache quota or boot mode.",
                   std::string(kMacForms) +
                       "\n--cmdline \"\" removes the extra kernel arguments, --cache-quota 0 the client's\n"
                       "own quota (bootsrv's cache_quota applies again). A new image applies from the\n"
                       "client's next boot, and so does a boot mode; a new quota from its next session.\n" + kBootModes};
  auto options = base_options();
  std::string store_dir, key, name, image, cmdline, quota, boot_mode;
  add_store_option(options, store_dir);
  options.add_options()("client", po::value(&key)->required(), "the client's MAC or name")(
      "name", po::value(&name), "new name")("image", po::value(&image), "new image")(
      "cmdline", po::value(&cmdline), "new extra kernel arguments (\"\" for none)")(
      "cache-quota", po::value(&quota), "new write cache quota (0: bootsrv's default)")(
      "boot-mode", po::value(&boot_mode), "linux, sanboot or image");
  po::positional_options_description pos;
  pos.add("client", 1);
  po::variables_map vm;
  if (!parse_command_line(spec, options, pos, args, vm)) return kExitOk;
  store::ClientChange change;
  if (vm.count("name")) change.name = name;
  if (vm.count("image")) change.image = image;
  if (vm.count("cmdline")) change.cmdline = cmdline;
  if (vm.count("cache-quota")) change.cache_quota = util::parse_size(quota, "--cache-quota");
  if (vm.count("boot-mode")) change.boot_mode = client_boot_mode(boot_mode);
  if (!change.name && !change.image && !change.cmdline && !change.cache_quota && !change.boot_mode) {
    throw util::Error("client set: nothing to change; give --name, --image, --cmdline, --cache-quota or --boot-mode");
  }
  auto s = open_store(store_dir);
  auto c = s->set_client(key, change);
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
    "       imgtool client rm MAC|NAME\n"
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
  throw util::Error("'" + args[0] + "' is not a client subcommand; use add, list, set or rm\n" + kClientUsage);
}

}  // namespace bootfleet::imgtool
