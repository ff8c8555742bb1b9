// imgtool rollback IMAGE [--channel C] [--to N]
#include <iostream>

#include "api/paths.h"
#include "cli.h"
#include "store/channels_json.h"

namespace bootfleet::imgtool {

int cmd_rollback(const std::vector<std::string>& args) {
  CommandSpec spec{"rollback", "IMAGE [--channel CHANNEL] [--to N] [--json]",
                   "Put the version a channel had before back on it (default: production, the active one).",
                   "Rollbacks walk back through the channel's publishes and promotions: after\n"
                   "publishing 1, 2, 3, a rollback puts 2 back and a second one 1. --to N puts N on\n"
                   "the channel (recorded as a rollback). Each channel has its own history, so\n"
                   "rolling back test leaves production alone. One catalog transaction; running\n"
                   "clients keep their version. With --server (or $BOOTFLEET_SERVER set and no\n"
                   "--store) it is done on that boot server."};
  auto options = base_options();
  std::string store_dir, image, channel = store::kProductionChannel;
  int64_t to = 0;
  bool as_json = false;
  ServerFlags server_flags;
  add_store_option(options, store_dir);
  add_server_options(options, server_flags);
  options.add_options()("image", po::value(&image)->required(), "the image")("to", po::value(&to), "version to put on the channel")(
      "channel", po::value(&channel), "the channel (default production)")("json", po::bool_switch(&as_json), "print JSON");
  po::positional_options_description pos;
  pos.add("image", 1);
  po::variables_map vm;
  if (!parse_command_line(spec, options, pos, args, vm)) return kExitOk;
  store::validate_image_name(image);
  store::validate_channel_name(channel);
  std::optional<int64_t> target = vm.count("to") ? std::optional<int64_t>(to) : std::nullopt;
  nlohmann::json answer;
  std::string where;
  if (server_flags.wanted(!vm["store"].defaulted())) {
    auto server = connect_server(server_flags);
    where = " on " + server->server();
    nlohmann::json body = {{"channel", channel}};
    if (target) body["to"] = *target;
    answer = server->post(api::path(api::route::kRollback, {image}), body);
  } else {
    auto s = open_store(store_dir);
    answer = store::activation_result_json(image, channel, s->rollback_channel(image, channel, target, store::default_creator()));
  }
  if (as_json) {
    std::cout << answer.dump(2) << "\n";
    return kExitOk;
  }
  print_channel_activation(answer, where, " (rollback)");
  return kExitOk;
}

}  // namespace bootfleet::imgtool
