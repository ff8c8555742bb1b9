// imgtool history IMAGE [--channel C] [--json]: who changed which channel to
// which version, when; and the publishes scheduled for it.
#include <cstdio>
#include <iostream>
#include <nlohmann/json.hpp>

#include "api/paths.h"
#include "cli.h"
#include "store/channels_json.h"

namespace bootfleet::imgtool {

int cmd_history(const std::vector<std::string>& args) {
  CommandSpec spec{"history", "IMAGE [--channel CHANNEL] [--json]",
                   "List the publishes, promotions and rollbacks of an image, oldest first, on every channel.",
                   "Each line says when, what (publish, promote, rollback), on which channel, the\n"
                   "version and the one before it, and who: user@host for the local store,\n"
                   "api:TOKEN-NAME through bootsrv's control API, 'schedule #N of WHO' for a\n"
                   "scheduled publish bootsrv applied. Scheduled publishes (pending, done, cancelled)\n"
                   "follow. --channel shows one channel's. --json prints the history as an array (id,\n"
                   "action, channel, version, previous, at, at_ms, by); 'imgtool schedule list --all\n"
                   "--json' has the schedules.\n"
                   "With --server (or $BOOTFLEET_SERVER set and no --store) the boot server's."};
  auto options = base_options();
  std::string store_dir, image, channel;
  bool as_json = false;
  ServerFlags server_flags;
  add_store_option(options, store_dir);
  add_server_options(options, server_flags);
  options.add_options()("image", po::value(&image)->required(), "the image")(
      "channel", po::value(&channel), "only this channel's")("json", po::bool_switch(&as_json), "print JSON");
  po::positional_options_description pos;
  pos.add("image", 1);
  po::variables_map vm;
  if (!parse_command_line(spec, options, pos, args, vm)) return kExitOk;
  store::validate_image_name(image);
  nlohmann::json history = nlohmann::json::array(), schedules = nlohmann::json::array();
  if (server_flags.wanted(!vm["store"].defaulted())) {
    auto answer = connect_server(server_flags)->get(api::path(api::route::kHistory, {image}));
    history = answer.value("history", history);
    schedules = answer.value("schedules", schedules);
  } else {
    auto s = open_store(store_dir);
    if (!channel.empty()) s->channel(image, channel);  // throws, listing the channels
    for (const auto& a : s->history(image)) history.push_back(store::activation_json(a));
    for (const auto& x : s->schedules(image, true)) schedules.push_back(store::schedule_json(x));
  }
  if (!channel.empty()) {
    auto only = [&](nlohmann::json& list) {
      nlohmann::json kept = nlohmann::json::array();
      for (const auto& e : list)
        if (e.value("channel", std::string(store::kProductionChannel)) == channel) kept.push_back(e);
      list = kept;
    };
    only(history);
    only(schedules);
  }
  if (as_json) {
    std::cout << history.dump(2) << "\n";  // an array, as before channels; schedules: 'schedule list --all --json'

    return kExitOk;
  }
  if (history.empty() && schedules.empty()) {
    std::cout << image << ": nothing published yet\n";
    return kExitOk;
  }
  for (const auto& a : history) {
    std::string previous = a["previous"].is_number() ? "@" + std::to_string(a["previous"].get<int64_t>()) : "none";
    std::printf("%s  %-8s %-12s @%lld (was %s)  by %s\n", a.value("at", std::string("?")).c_str(),
                a.value("action", std::string("?")).c_str(), a.value("channel", std::string("?")).c_str(),
                static_cast<long long>(a.value("version", int64_t{0})), previous.c_str(),
                a.value("by", std::string("?")).c_str());
  }
  for (const auto& x : schedules) {
    std::printf("%s  %-8s %-12s @%lld  #%lld %s by %s%s\n", x.value("at", std::string("?")).c_str(), "schedule",
                x.value("channel", std::string("?")).c_str(), static_cast<long long>(x.value("version", int64_t{0})),
                static_cast<long long>(x.value("id", int64_t{0})), x.value("state", std::string("?")).c_str(),
                x.value("by", std::string("?")).c_str(),
                x["result"].is_string() ? (": " + x["result"].get<std::string>()).c_str() : "");
  }
  return kExitOk;
}

}  // namespace bootfleet::imgtool
