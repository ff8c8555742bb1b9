#include "cli.h"

#include <algorithm>
#include <cstdlib>
#include <iostream>
#include <sstream>

#include "block/session.h"
#include "util/error.h"
#include "vhd/chain.h"

namespace bootfleet::imgtool {

po::options_description base_options() {
  po::options_description options("Options");
  options.add_options()("help,h", "show this help and exit");
  return options;
}

std::map<std::string, std::string> parse_set_options(const std::vector<std::string>& sets) {
  std::map<std::string, std::string> out;
  for (const auto& s : sets) {
    auto eq = s.find('=');
    if (eq == std::string::npos || eq == 0) throw util::Error("--set '" + s + "': expected NAME=VALUE");
    out[s.substr(0, eq)] = s.substr(eq + 1);
  }
  return out;
}

std::shared_ptr<block::Device> open_version_device(store::Store& store, const store::VersionInfo& v) {
  std::string path = store.path_of(v);
  std::shared_ptr<const vhd::Chain> chain = vhd::Chain::open(path);
  return std::make_shared<block::VersionDevice>(block::Pin{v.image, v.number, path, ""}, chain);
}

void add_store_option(po::options_description& options, std::string& dir) {
  options.add_options()("store", po::value(&dir)->default_value(store::Store::default_dir()),
                        "the store directory (default: $BOOTFLEET_STORE, else /var/lib/bootfleet)");
}

std::unique_ptr<store::Store> open_store(const std::string& dir) {
  auto s = store::Store::open(dir);
  for (const auto& line : s->cleanup_report()) std::cerr << "imgtool: store " << dir << ": " << line << "\n";
  return s;
}

namespace {

// The positional arguments are options underneath (Boost.Program_options
// binds them by name), but the user never types those names: help leaves
// them out and errors call them by the synopsis's words (FILE, IMAGE@N).
std::vector<std::string> positional_names(const po::positional_options_description& positional) {
  std::vector<std::string> names;
  unsigned count = std::min(positional.max_total_count(), 16u);
  for (unsigned i = 0; i < count; ++i) {
    const std::string& n = positional.name_for_position(i);
    if (std::find(names.begin(), names.end(), n) == names.end()) names.push_back(n);
  }
  return names;
}

// "IMAGE FILE [-m MESSAGE]" -> {"IMAGE", "FILE"}: the words before the first option.
std::vector<std::string> synopsis_words(const std::string& synopsis) {
  std::vector<std::string> words;
  std::istringstream in(synopsis.substr(0, synopsis.find('\n')));
  std::string w;
  while (in >> w && w[0] != '[' && w[0] != '-') words.push_back(w);
  return words;
}

// main() prefixes "imgtool COMMAND: "; a subcommand ("client add") adds its own word.
std::string subcommand_prefix(const CommandSpec& spec) {
  auto space = spec.name.find(' ');
  return space == std::string::npos ? "" : spec.name.substr(space + 1) + ": ";
}

std::string usage_line(const CommandSpec& spec) {
  return "imgtool " + spec.name + " " + spec.synopsis.substr(0, spec.synopsis.find('\n'));
}

}  // namespace

bool parse_command_line(const CommandSpec& spec, po::options_description& options,
                        const po::positional_options_description& positional,
                        const std::vector<std::string>& args, po::variables_map& vm) {
  const auto hidden = positional_names(positional);
  for (const auto& a : args) {
    if (a == "--help" || a == "-h") {
      po::options_description shown("Options");
      for (const auto& o : options.options()) {
        if (std::find(hidden.begin(), hidden.end(), o->long_name()) == hidden.end()) shown.add(o);
      }
      std::cout << "Usage: imgtool " << spec.name << " " << spec.synopsis << "\n\n"
                << spec.summary << "\n\n"
                << shown << "\n";
      if (!spec.details.empty()) std::cout << spec.details << "\n";
      return false;
    }
  }
  try {
    po::store(po::command_line_parser(args).options(options).positional(positional).run(), vm);
    po::notify(vm);
  } catch (const po::required_option& e) {
    std::string name = e.get_option_name();
    if (name.rfind("--", 0) == 0) name = name.substr(2);
    // Boost names the first missing option alphabetically; the user wants
    // the first missing argument in the synopsis's order.
    for (const auto& h : hidden) {
      const po::option_description* d = options.find_nothrow(h, false);
      if (!vm.count(h) && d && d->semantic()->is_required()) {
        name = h;
        break;
      }
    }
    auto at = std::find(hidden.begin(), hidden.end(), name);
    if (at == hidden.end()) {
      throw util::Error(subcommand_prefix(spec) + e.what() + "\nUsage: " + usage_line(spec) + "  (see imgtool " + spec.name +
                        " --help)");
    }
    auto words = synopsis_words(spec.synopsis);
    size_t index = static_cast<size_t>(at - hidden.begin());
    std::string word = index < words.size() ? words[index] : name;
    throw util::Error("missing " + word + " (" + usage_line(spec) + "; see imgtool " + spec.name + " --help)");
  } catch (const po::too_many_positional_options_error&) {
    throw util::Error("too many arguments (" + usage_line(spec) + "; see imgtool " + spec.name + " --help)");
  } catch (const po::error& e) {
    throw util::Error(subcommand_prefix(spec) + e.what() + "\nUsage: " + usage_line(spec) + "  (see imgtool " + spec.name +
                      " --help)");
  }
  return true;
}

bool ServerFlags::wanted(bool store_given) const {
  if (!server.empty()) return true;
  const char* from_env = std::getenv("BOOTFLEET_SERVER");
  return from_env && *from_env && !store_given;
}

void add_server_options(po::options_description& options, ServerFlags& flags) {
  options.add_options()
      ("server", po::value(&flags.server), "bootsrv's URL, e.g. https://boot.example:8443 (default $BOOTFLEET_SERVER)")
      ("token-file", po::value(&flags.token_file), "file holding an API token (default $BOOTFLEET_TOKEN_FILE)")
      ("ca-file", po::value(&flags.ca_file), "CA certificate for a server with its own (default $BOOTFLEET_CA_FILE)");
}

std::unique_ptr<remote::Client> connect_server(const ServerFlags& flags) {
  return std::make_unique<remote::Client>(remote::resolve_client_options(flags.server, flags.token_file, flags.ca_file));
}

void print_channel_activation(const nlohmann::json& answer, const std::string& where, const std::string& suffix) {
  std::string image = answer.value("image", std::string("?"));
  std::string channel = answer.value("channel", std::string(store::kProductionChannel));
  bool production = channel == store::kProductionChannel;
  std::string now = "@" + std::to_string(answer.value("version", answer.value("active", int64_t{0})));
  auto previous = answer.find("previous");
  std::string before = previous != answer.end() && previous->is_number() ? "@" + std::to_string(previous->get<int64_t>()) : "none";
  if (!answer.value("changed", true)) {
    std::cout << image << where << ": " << now << (production ? " is already active" : " is already on channel " + channel)
              << "; nothing changed\n";
  } else {
    std::cout << image << where << ": " << (production ? std::string("active") : "channel " + channel) << " " << before
              << " -> " << now << suffix << "\n";
  }
}

const std::vector<Command>& all_commands() {
  static const std::vector<Command> commands = {
      {"create", "create an empty VHD (fixed, dynamic, or differencing on a parent)", cmd_create},
      {"info", "show a disk file's format, size, allocation, ids and parent chain", cmd_info},
      {"convert", "convert between raw, VHD (any type, chains flattened) and VHDX", cmd_convert},
      {"check", "check a VHD file and its parent chain for structural problems", cmd_check},
      {"compare", "compare the guest-visible content of two disk files", cmd_compare},
      {"init", "create a store", cmd_init},
      {"images", "list the images in the store", cmd_images},
      {"image", "change an image's settings (its boot mode)", cmd_image},
      {"versions", "list the versions of an image", cmd_versions},
      {"history", "list the publishes and rollbacks of an image", cmd_history},
      {"import", "import a disk file (raw, VHD, VHDX) as the next version of an image", cmd_import},
      {"export", "write a version out as one flat raw or VHD file", cmd_export},
      {"diff", "show what changed between two versions, from block digests", cmd_diff},
      {"verify", "recompute digests and check the structure of stored versions", cmd_verify},
      {"publish", "make a version what new boots get (on a channel, now or --at a time)", cmd_publish},
      {"rollback", "put the version a channel had before back on it", cmd_rollback},
      {"promote", "put the version one channel has on another (test -> production)", cmd_promote},
      {"channels", "list the channels of an image and the version each names", cmd_channels},
      {"schedule", "list and cancel scheduled publishes (publish --at)", cmd_schedule},
      {"prune", "remove old versions, keeping what is active, leased or needed", cmd_prune},
      {"squash", "store a version again as a new base, so its chain is short", cmd_squash},
      {"gc", "remove files in the store that no catalog row refers to", cmd_gc},
      {"lint", "check a recipe for every problem, without building", cmd_lint},
      {"build", "build the next version of an image from a recipe", cmd_build},
      {"inspect", "show the operating system, filesystems and applications of a version", cmd_inspect},
      {"client", "register, list, change and remove the PCs bootsrv boots", cmd_client},
      {"maintenance", "capture a client's writes, kept across its reboots, as the next version", cmd_maintenance},
      {"push", "upload the versions of an image a boot server lacks", cmd_push},
      {"status", "show a boot server's active versions, sessions and cache use", cmd_status},
      {"boot-test", "network-boot a version in QEMU and check its console", cmd_boot_test},
  };
  return commands;
}

}  // namespace bootfleet::imgtool
