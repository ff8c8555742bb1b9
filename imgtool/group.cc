// imgtool client group add|set|rm|list: groups of clients that follow one
// channel of one image (or a pinned version of it). A client joins with
// 'imgtool client set CLIENT --group NAME'. Locally or on a boot server
// (--server); the store checks everything (store/channels.h).
#include <cstdio>
#include <iostream>

#include "api/paths.h"
#include "cli.h"
#include "store/channels_json.h"
#include "util/error.h"

namespace bootfleet::imgtool {

namespace {

// "none" (or "") for "no pin", else a version number.
std::optional<int64_t> parse_pin(const std::string& text) {
  if (text == "none" || text.empty()) return std::nullopt;
  if (text.size() > 18 || text.find_first_not_of("0123456789") != std::string::npos || text[0] == '0') {
    throw util::Error("--pin '" + text + "': give a version number (e.g. 3), or 'none' to unpin");
  }
  return std::stoll(text);
}

void print_group(const nlohmann::json& g) {
  std::string pin = g["pin"].is_number() ? ", pinned to @" + std::to_string(g["pin"].get<int64_t>()) : "";
  std::cout << g.value("name", std::string("?")) << ": image " << g.value("image", std::string("?")) << ", channel "
            << g.value("channel", std::string("?")) << pin << ", " << g["members"].size() << " client"
            << (g["members"].size() == 1 ? "" : "s") << "\n";
}

struct Target {
  std::string store_dir;
  ServerFlags server;
  bool as_json = false;
  void add(po::options_description& options) {
    add_store_option(options, store_dir);
    add_server_options(options, server);
    options.add_options()("json", po::bool_switch(&as_json), "print JSON");
  }
};

void show(const Target& t, const nlohmann::json& g, const char* verb) {
  if (t.as_json) {
    std::cout << g.dump(2) << "\n";
    return;
  }
  std::cout << verb << " ";
  print_group(g);
}

int group_add(const std::vector<std::string>& args) {
  CommandSpec spec{"client group add", "NAME --image IMAGE [--channel CHANNEL] [--pin N] [--json]",
                   "Make a group of clients that boot IMAGE from CHANNEL (default production).",
                   "Its clients boot the version CHANNEL names (a channel with none yet: production),\n"
                   "or, with --pin, version N whatever is published. Put clients in it with\n"
                   "'imgtool client set CLIENT --group NAME'. NAME: letters, digits, '.', '_', '-'."};
  auto options = base_options();
  std::string name, image, channel = store::kProductionChannel, pin;
  Target t;
  t.add(options);
  options.add_options()("name", po::value(&name)->required(), "the group's name")(
      "image", po::value(&image)->required(), "the image its clients boot")(
      "channel", po::value(&channel), "the channel they follow (default production)")(
      "pin", po::value(&pin), "a version they boot instead of the channel's");
  po::positional_options_description pos;
  pos.add("name", 1);
  po::variables_map vm;
  if (!parse_command_line(spec, options, pos, args, vm)) return kExitOk;
  store::validate_group_name(name);
  std::optional<int64_t> pinned = parse_pin(pin);
  nlohmann::json g;
  if (t.server.wanted(!vm["store"].defaulted())) {
    nlohmann::json body = {{"name", name}, {"image", image}, {"channel", channel}};
    if (pinned) body["pin"] = *pinned;
    g = connect_server(t.server)->post(api::path(api::route::kGroups), body);
  } else {
    g = store::group_json(open_store(t.store_dir)->add_group(name, image, channel, pinned));
  }
  show(t, g, "added");
  return kExitOk;
}

int group_set(const std::vector<std::string>& args) {
  CommandSpec spec{"client group set", "NAME [--image IMAGE] [--channel CHANNEL] [--pin N|none] [--json]",
                   "Change a group's image, channel or pin; its clients follow from their next boot.",
                   "A new image unpins the group (and its clients' own pins) unless --pin is given."};
  auto options = base_options();
  std::string name, image, channel, pin;
  Target t;
  t.add(options);
  options.add_options()("name", po::value(&name)->required(), "the group")("image", po::value(&image), "new image")(
      "channel", po::value(&channel), "new channel")("pin", po::value(&pin), "a version, or 'none' to unpin");
  po::positional_options_description pos;
  pos.add("name", 1);
  po::variables_map vm;
  if (!parse_command_line(spec, options, pos, args, vm)) return kExitOk;
  store::GroupChange change;
  if (vm.count("image")) change.image = image;
  if (vm.count("channel")) change.channel = channel;
  if (vm.count("pin")) change.pin = parse_pin(pin);
  if (!change.image && !change.channel && !change.pin) {
    throw util::Error("client group set: nothing to change; give --image, --channel or --pin");
  }
  nlohmann::json g;
  if (t.server.wanted(!vm["store"].defaulted())) {
    store::validate_group_name(name);
    nlohmann::json body = nlohmann::json::object();
    if (change.image) body["image"] = *change.image;
    if (change.channel) body["channel"] = *change.channel;
    if (change.pin) body["pin"] = *change.pin ? nlohmann::json(**change.pin) : nlohmann::json(nullptr);
    g = connect_server(t.server)->post(api::path(api::route::kGroup, {name}), body);
  } else {
    g = store::group_json(open_store(t.store_dir)->set_group(name, change));
  }
  show(t, g, "changed");
  return kExitOk;
}

int group_rm(const std::vector<std::string>& args) {
  CommandSpec spec{"client group rm", "NAME", "Remove an empty group.",
                   "Refused while clients are in it (they are named); move them out with\n"
                   "'imgtool client set CLIENT --group none'."};
  auto options = base_options();
  std::string name;
  Target t;
  t.add(options);
  options.add_options()("name", po::value(&name)->required(), "the group");
  po::positional_options_description pos;
  pos.add("name", 1);
  po::variables_map vm;
  if (!parse_command_line(spec, options, pos, args, vm)) return kExitOk;
  store::validate_group_name(name);
  if (t.server.wanted(!vm["store"].defaulted())) connect_server(t.server)->del(api::path(api::route::kGroup, {name}));
  else open_store(t.store_dir)->remove_group(name);
  if (t.as_json) std::cout << nlohmann::json{{"name", name}, {"removed", true}}.dump(2) << "\n";
  else std::cout << "removed group " << name << "\n";
  return kExitOk;
}

int group_list(const std::vector<std::string>& args) {
  CommandSpec spec{"client group list", "[--json]", "List the groups: image, channel, pin and clients.", ""};
  auto options = base_options();
  Target t;
  t.add(options);
  po::variables_map vm;
  if (!parse_command_line(spec, options, {}, args, vm)) return kExitOk;
  nlohmann::json list = nlohmann::json::array();
  if (t.server.wanted(!vm["store"].defaulted())) {
    list = connect_server(t.server)->get(api::path(api::route::kGroups)).value("groups", list);
  } else {
    for (const auto& g : open_store(t.store_dir)->groups()) list.push_back(store::group_json(g));
  }
  if (t.as_json) {
    std::cout << list.dump(2) << "\n";
    return kExitOk;
  }
  if (list.empty()) {
    std::cout << "no groups (add one with 'imgtool client group add NAME --image IMAGE --channel test')\n";
    return kExitOk;
  }
  std::printf("%-20s %-24s %-12s %-6s %s\n", "GROUP", "IMAGE", "CHANNEL", "PIN", "CLIENTS");
  for (const auto& g : list) {
    std::string members;
    for (const auto& m : g["members"]) members += (members.empty() ? "" : " ") + m.get<std::string>();
    std::string pin = g["pin"].is_number() ? "@" + std::to_string(g["pin"].get<int64_t>()) : "-";
    std::printf("%-20s %-24s %-12s %-6s %s\n", g.value("name", std::string("?")).c_str(),
                g.value("image", std::string("?")).c_str(), g.value("channel", std::string("?")).c_str(), pin.c_str(),
                members.empty() ? "-" : members.c_str());
  }
  return kExitOk;
}

const char* kGroupUsage =
    "Usage: imgtool client group add NAME --image IMAGE [--channel CHANNEL] [--pin N]\n"
    "       imgtool client group set NAME [--image IMAGE] [--channel CHANNEL] [--pin N|none]\n"
    "       imgtool client group rm NAME\n"
    "       imgtool client group list [--json]\n"
    "       imgtool client group SUBCOMMAND --help\n\n"
    "A group names an image and the channel of it its clients follow (production, test,\n"
    "or another), or a version they are pinned to. A client boots, in this order: its own\n"
    "pin, its group's pin, its group's channel, production (docs/channels.md).\n";

}  // namespace

int cmd_client_group(const std::vector<std::string>& args) {
  if (args.empty() || args[0] == "--help" || args[0] == "-h") {
    (args.empty() ? std::cerr : std::cout) << kGroupUsage;
    return args.empty() ? kExitError : kExitOk;
  }
  std::vector<std::string> rest(args.begin() + 1, args.end());
  if (args[0] == "add") return group_add(rest);
  if (args[0] == "set") return group_set(rest);
  if (args[0] == "rm" || args[0] == "remove") return group_rm(rest);
  if (args[0] == "list" || args[0] == "ls") return group_list(rest);
  throw util::Error("'" + args[0] + "' is not a client group subcommand; use add, set, rm or list\n" + kGroupUsage);
}

void set_client_placement_remote(const ServerFlags& flags, const std::string& key, const std::optional<std::string>& group,
                                 bool set_group, std::optional<int64_t> pin, bool set_pin) {
  nlohmann::json body = nlohmann::json::object();
  if (set_group) body["group"] = group ? nlohmann::json(*group) : nlohmann::json(nullptr);
  if (set_pin) body["pin"] = pin ? nlohmann::json(*pin) : nlohmann::json(nullptr);
  auto server = connect_server(flags);
  auto c = server->post(api::path(api::route::kClient, {key}), body);
  std::cout << "changed " << c.value("name", key) << " on " << server->server() << ": group "
            << (c["group"].is_string() ? c["group"].get<std::string>() : std::string("none")) << ", pin "
            << (c["pin"].is_number() ? "@" + std::to_string(c["pin"].get<int64_t>()) : std::string("none"));
  if (c.contains("boots") && c["boots"].is_object()) std::cout << "; boots " << c["boots"].value("describe", std::string("?"));
  std::cout << "\n";
}

}  // namespace bootfleet::imgtool
