// imgtool rollback IMAGE [--to N]
#include <iostream>

#include "cli.h"

namespace bootfleet::imgtool {

int cmd_rollback(const std::vector<std::string>& args) {
  CommandSpec spec{"rollback", "IMAGE [--to N]",
                   "Make the previously active version of IMAGE active again.",
                   "Rollbacks walk back through the publishes: after publishing 1, 2, 3, a rollback\n"
                   "makes 2 active and a second one 1. --to N makes N active (recorded as a\n"
                   "rollback). One catalog transaction; running clients keep their version. With\n"
                   "--server (or $BOOTFLEET_SERVER set and no --store) it is done on that boot server."};
  auto options = base_options();
  std::string store_dir, image;
  int64_t to = 0;
  ServerFlags server_flags;
  add_store_option(options, store_dir);
  add_server_options(options, server_flags);
  options.add_options()("image", po::value(&image)->required(), "the image")("to", po::value(&to), "version to make active");
  po::positional_options_description pos;
  pos.add("image", 1);
  po::variables_map vm;
  if (!parse_command_line(spec, options, pos, args, vm)) return kExitOk;
  store::validate_image_name(image);
  if (server_flags.wanted(!vm["store"].defaulted())) {
    auto server = connect_server(server_flags);
    nlohmann::json body = nlohmann::json::object();
    if (vm.count("to")) body["to"] = to;
    auto r = server->post("/api/v1/images/" + image + "/rollback", body);
    print_remote_activation(*server, r, " (rollback)");
    return kExitOk;
  }
  auto s = open_store(store_dir);
  auto r = s->rollback(image, vm.count("to") ? std::optional<int64_t>(to) : std::nullopt, store::default_creator());
  std::string before = r.before ? "@" + std::to_string(*r.before) : "none";
  if (!r.changed) std::cout << image << ": @" << r.now << " is already active; nothing changed\n";
  else std::cout << image << ": active " << before << " -> @" << r.now << " (rollback)\n";
  return kExitOk;
}

}  // namespace bootfleet::imgtool
