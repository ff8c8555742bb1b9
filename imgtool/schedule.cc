// imgtool schedule list|cancel: the publishes `publish --at` scheduled.
// bootsrv applies them (store::Store::apply_due_schedules); these commands
// only show and cancel, locally or on a boot server (--server).
#include <cstdio>
#include <iostream>

#include "api/paths.h"
#include "cli.h"
#include "store/channels_json.h"
#include "util/error.h"

namespace bootfleet::imgtool {

namespace {

void print_schedules(const nlohmann::json& list) {
  if (list.empty()) {
    std::cout << "nothing scheduled ('imgtool publish IMAGE@N --at TIME' schedules a publish)\n";
    return;
  }
  std::printf("%-5s %-25s %-24s %-12s %-10s %s\n", "ID", "AT", "VERSION", "CHANNEL", "STATE", "BY");
  for (const auto& s : list) {
    std::string ref = s.value("image", std::string("?")) + "@" + std::to_string(s.value("version", int64_t{0}));
    std::string state = s.value("state", std::string("?"));
    std::printf("%-5s %-25s %-24s %-12s %-10s %s\n", ("#" + std::to_string(s.value("id", int64_t{0}))).c_str(),
                s.value("at", std::string("?")).c_str(), ref.c_str(), s.value("channel", std::string("?")).c_str(),
                state.c_str(), s.value("by", std::string("?")).c_str());
    if (s.contains("result") && s["result"].is_string()) std::printf("      %s\n", s["result"].get<std::string>().c_str());
  }
}

int schedule_list(const std::vector<std::string>& args) {
  CommandSpec spec{"schedule list", "[IMAGE] [--all] [--json]", "List pending scheduled publishes, soonest first.",
                   "--all adds those done, cancelled or failed, with what happened. A pending one\n"
                   "whose time has passed waits for a running bootsrv to apply it."};
  auto options = base_options();
  std::string store_dir, image;
  bool all = false, as_json = false;
  ServerFlags server_flags;
  add_store_option(options, store_dir);
  add_server_options(options, server_flags);
  options.add_options()("image", po::value(&image), "only this image's")("all", po::bool_switch(&all), "include past ones")(
      "json", po::bool_switch(&as_json), "print JSON");
  po::positional_options_description pos;
  pos.add("image", 1);
  po::variables_map vm;
  if (!parse_command_line(spec, options, pos, args, vm)) return kExitOk;
  if (!image.empty()) store::validate_image_name(image);
  nlohmann::json list = nlohmann::json::array();
  if (server_flags.wanted(!vm["store"].defaulted())) {
    for (const auto& s : connect_server(server_flags)->get(api::path(api::route::kSchedules) + (all ? "?all=1" : ""))
                             .value("schedules", list)) {
      if (image.empty() || s.value("image", std::string()) == image) list.push_back(s);
    }
  } else {
    auto s = open_store(store_dir);
    for (const auto& x : s->schedules(image.empty() ? std::nullopt : std::optional(image), all)) {
      list.push_back(store::schedule_json(x));
    }
  }
  if (as_json) std::cout << list.dump(2) << "\n";
  else print_schedules(list);
  return kExitOk;
}

int schedule_cancel(const std::vector<std::string>& args) {
  CommandSpec spec{"schedule cancel", "ID [--json]", "Cancel a pending scheduled publish.",
                   "ID is the number 'schedule list' shows (with or without '#'). A schedule that\n"
                   "was applied already is refused: roll back instead."};
  auto options = base_options();
  std::string store_dir, id_text;
  bool as_json = false;
  ServerFlags server_flags;
  add_store_option(options, store_dir);
  add_server_options(options, server_flags);
  options.add_options()("id", po::value(&id_text)->required(), "the schedule's number")("json", po::bool_switch(&as_json),
                                                                                         "print JSON");
  po::positional_options_description pos;
  pos.add("id", 1);
  po::variables_map vm;
  if (!parse_command_line(spec, options, pos, args, vm)) return kExitOk;
  std::string digits = !id_text.empty() && id_text[0] == '#' ? id_text.substr(1) : id_text;
  if (digits.empty() || digits.size() > 18 || digits.find_first_not_of("0123456789") != std::string::npos) {
    throw util::Error("'" + id_text + "' is not a schedule number; 'imgtool schedule list' shows them");
  }
  int64_t id = std::stoll(digits);
  nlohmann::json s;
  if (server_flags.wanted(!vm["store"].defaulted())) {
    s = connect_server(server_flags)->del(api::path(api::route::kSchedule, {std::to_string(id)})).value("schedule", nlohmann::json());
  } else {
    s = store::schedule_json(open_store(store_dir)->cancel_schedule(id, store::default_creator()));
  }
  if (as_json) {
    std::cout << s.dump(2) << "\n";
    return kExitOk;
  }
  std::cout << "cancelled #" << id << ": publish " << s.value("image", std::string("?")) << "@"
            << s.value("version", int64_t{0}) << " on " << s.value("channel", std::string("?")) << " at "
            << s.value("at", std::string("?")) << "\n";
  return kExitOk;
}

const char* kScheduleUsage =
    "Usage: imgtool schedule list [IMAGE] [--all] [--json]\n"
    "       imgtool schedule cancel ID [--json]\n"
    "       imgtool schedule SUBCOMMAND --help\n\n"
    "Publishes scheduled with 'imgtool publish IMAGE@N [--channel C] --at TIME'. A running\n"
    "bootsrv applies each once at its time (within its housekeeping interval, at most 10 s),\n"
    "also one that fell due while it was stopped.\n";

}  // namespace

int cmd_schedule(const std::vector<std::string>& args) {
  if (args.empty() || args[0] == "--help" || args[0] == "-h") {
    (args.empty() ? std::cerr : std::cout) << kScheduleUsage;
    return args.empty() ? kExitError : kExitOk;
  }
  std::vector<std::string> rest(args.begin() + 1, args.end());
  if (args[0] == "list" || args[0] == "ls") return schedule_list(rest);
  if (args[0] == "cancel" || args[0] == "rm") return schedule_cancel(rest);
  throw util::Error("'" + args[0] + "' is not a schedule subcommand; use list or cancel\n" + kScheduleUsage);
}

}  // namespace bootfleet::imgtool
