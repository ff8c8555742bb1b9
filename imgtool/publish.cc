// imgtool publish IMAGE@N [--channel C] [--at TIME]
#include <chrono>
#include <iostream>

#include "api/paths.h"
#include "cli.h"
#include "store/channels_json.h"
#include "util/error.h"

namespace bootfleet::imgtool {

int cmd_publish(const std::vector<std::string>& args) {
  CommandSpec spec{"publish", "IMAGE@N [--channel CHANNEL [--new-channel]] [--at TIME] [--json]",
                   "Make version N what new boots of IMAGE get (on the production channel, or CHANNEL).",
                   "One catalog transaction; clients already running keep the version they booted.\n"
                   "Publishing the version a channel already has changes nothing and says so.\n"
                   "--channel test moves only the clients of groups that follow 'test'; production\n"
                   "(the default) is the image's active version. A channel other than production and\n"
                   "test is made by its first publish with --new-channel (docs/channels.md).\n"
                   "--at TIME schedules it instead: bootsrv publishes it at TIME, once, even across\n"
                   "its restarts (TIME: 2026-11-26T19:00:00Z, '2026-11-26 19:00' in UTC, +15m, +2h,\n"
                   "+1d, @UNIXSECONDS); 'imgtool schedule list|cancel' shows and cancels it. With\n"
                   "--server (or $BOOTFLEET_SERVER set and no --store) it is done on that boot server\n"
                   "through its control API (docs/api.md); push the version there first."};
  auto options = base_options();
  std::string store_dir, ref_text, channel = store::kProductionChannel, when;
  bool as_json = false, new_channel = false;
  ServerFlags server_flags;
  add_store_option(options, store_dir);
  add_server_options(options, server_flags);
  options.add_options()("version", po::value(&ref_text)->required(), "IMAGE@N")(
      "channel", po::value(&channel), "the channel to publish on (default production)")(
      "new-channel", po::bool_switch(&new_channel), "make CHANNEL if the image has no such channel yet")(
      "at", po::value(&when), "publish at this time instead of now (bootsrv applies it)")(
      "json", po::bool_switch(&as_json), "print JSON");
  po::positional_options_description pos;
  pos.add("version", 1);
  po::variables_map vm;
  if (!parse_command_line(spec, options, pos, args, vm)) return kExitOk;
  auto ref = store::parse_version_ref(ref_text, /*version_required=*/true);
  if (!ref.number) throw util::Error(ref_text + ": publish takes IMAGE@N with a number, e.g. " + ref.image + "@3");
  store::validate_channel_name(channel);
  std::optional<int64_t> at_ms;
  if (vm.count("at")) {
    int64_t now = std::chrono::duration_cast<std::chrono::milliseconds>(
                      std::chrono::system_clock::now().time_since_epoch()).count();
    at_ms = store::parse_schedule_time(when, now, "--at");
  }
  nlohmann::json answer;
  std::string where;
  if (server_flags.wanted(!vm["store"].defaulted())) {
    auto server = connect_server(server_flags);
    where = " on " + server->server();
    nlohmann::json body = {{"version", *ref.number}, {"channel", channel}, {"new_channel", new_channel}};
    // The server parses the time again; send what we resolved, so "+15m" means from now here.
    if (at_ms) body["at"] = "@" + std::to_string((*at_ms + 999) / 1000);
    answer = server->post(api::path(api::route::kPublish, {ref.image}), body);
  } else {
    auto s = open_store(store_dir);
    if (at_ms) {
      answer = {{"schedule", store::schedule_json(s->add_schedule(ref, channel, *at_ms, store::default_creator(), new_channel))}};
    } else {
      answer = store::activation_result_json(ref.image, channel,
                                             s->publish_channel(ref, channel, store::default_creator(), new_channel));
    }
  }
  if (as_json) {
    std::cout << answer.dump(2) << "\n";
    return kExitOk;
  }
  if (answer.contains("schedule")) {
    const auto& sch = answer["schedule"];
    std::cout << ref.image << where << ": scheduled #" << sch.value("id", int64_t{0}) << ": publish @" << *ref.number
              << " on " << channel << " at " << sch.value("at", std::string("?"))
              << " (bootsrv applies it; 'imgtool schedule cancel " << sch.value("id", int64_t{0}) << "' cancels it)\n";
    return kExitOk;
  }
  print_channel_activation(answer, where, "");
  return kExitOk;
}

}  // namespace bootfleet::imgtool
