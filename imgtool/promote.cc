// imgtool promote IMAGE --from CHANNEL [--to CHANNEL]; imgtool channels IMAGE.
// Channels are pointers of an image to versions (store/channels.h); these
// commands move and show them, locally or on a boot server (--server).
#include <cstdio>
#include <iostream>

#include "api/paths.h"
#include "cli.h"
#include "store/channels_json.h"

namespace bootfleet::imgtool {

int cmd_promote(const std::vector<std::string>& args) {
  CommandSpec spec{"promote", "IMAGE --from CHANNEL [--to CHANNEL] [--json]",
                   "Put the version one channel names on another: what passed on test goes to production.",
                   "--to defaults to production. Recorded in the history as a promote on the\n"
                   "destination channel, so 'rollback --channel TO' undoes it. Refused when --from\n"
                   "has no version yet, or names a channel the image lacks (the error lists its\n"
                   "channels). With --server (or $BOOTFLEET_SERVER set and no --store) it is done on\n"
                   "that boot server."};
  auto options = base_options();
  std::string store_dir, image, from, to = store::kProductionChannel;
  bool as_json = false;
  ServerFlags server_flags;
  add_store_option(options, store_dir);
  add_server_options(options, server_flags);
  options.add_options()("image", po::value(&image)->required(), "the image")(
      "from", po::value(&from)->required(), "the channel whose version moves (e.g. test)")(
      "to", po::value(&to), "the channel it goes to (default production)")("json", po::bool_switch(&as_json), "print JSON");
  po::positional_options_description pos;
  pos.add("image", 1);
  po::variables_map vm;
  if (!parse_command_line(spec, options, pos, args, vm)) return kExitOk;
  store::validate_image_name(image);
  store::validate_channel_name(from);
  store::validate_channel_name(to);
  nlohmann::json answer;
  std::string where;
  if (server_flags.wanted(!vm["store"].defaulted())) {
    auto server = connect_server(server_flags);
    where = " on " + server->server();
    answer = server->post(api::path(api::route::kPromote, {image}), {{"from", from}, {"to", to}});
  } else {
    auto s = open_store(store_dir);
    answer = store::activation_result_json(image, to, s->promote(image, from, to, store::default_creator()));
  }
  if (as_json) {
    std::cout << answer.dump(2) << "\n";
    return kExitOk;
  }
  print_channel_activation(answer, where, " (promoted from " + from + ")");
  return kExitOk;
}

int cmd_channels(const std::vector<std::string>& args) {
  CommandSpec spec{"channels", "IMAGE [--json]", "List an image's channels: the version each names and its rollback target.",
                   "production is the image's active version; test always exists; a channel with\n"
                   "no version ('-') sends its groups' clients to production. With --server (or\n"
                   "$BOOTFLEET_SERVER set and no --store) the boot server's."};
  auto options = base_options();
  std::string store_dir, image;
  bool as_json = false;
  ServerFlags server_flags;
  add_store_option(options, store_dir);
  add_server_options(options, server_flags);
  options.add_options()("image", po::value(&image)->required(), "the image")("json", po::bool_switch(&as_json), "print JSON");
  po::positional_options_description pos;
  pos.add("image", 1);
  po::variables_map vm;
  if (!parse_command_line(spec, options, pos, args, vm)) return kExitOk;
  store::validate_image_name(image);
  nlohmann::json list = nlohmann::json::array();
  if (server_flags.wanted(!vm["store"].defaulted())) {
    list = connect_server(server_flags)->get(api::path(api::route::kChannels, {image})).value("channels", list);
  } else {
    auto s = open_store(store_dir);
    for (const auto& c : s->channels(image)) list.push_back(store::channel_json(c));
  }
  if (as_json) {
    std::cout << list.dump(2) << "\n";
    return kExitOk;
  }
  auto num = [](const nlohmann::json& v) { return v.is_number() ? "@" + std::to_string(v.get<int64_t>()) : std::string("-"); };
  std::printf("%-20s %-8s %s\n", "CHANNEL", "VERSION", "ROLLBACK");
  for (const auto& c : list) {
    std::printf("%-20s %-8s %s\n", c.value("channel", std::string("?")).c_str(), num(c["version"]).c_str(),
                num(c["previous"]).c_str());
  }
  return kExitOk;
}

}  // namespace bootfleet::imgtool
