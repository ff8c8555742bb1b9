// imgtool publish IMAGE@N
#include <iostream>

#include "cli.h"
#include "util/error.h"

namespace bootfleet::imgtool {

int cmd_publish(const std::vector<std::string>& args) {
  CommandSpec spec{"publish", "IMAGE@N",
                   "Make version N the active version of IMAGE: new boots get it.",
                   "One catalog transaction; clients already running keep the version they booted.\n"
                   "Publishing the active version again changes nothing and says so. With --server\n"
                   "(or $BOOTFLEET_SERVER set and no --store) it is done on that boot server through\n"
                   "its control API (docs/api.md); push the version there first."};
  auto options = base_options();
  std::string store_dir, ref_text;
  ServerFlags server_flags;
  add_store_option(options, store_dir);
  add_server_options(options, server_flags);
  options.add_options()("version", po::value(&ref_text)->required(), "IMAGE@N");
  po::positional_options_description pos;
  pos.add("version", 1);
  po::variables_map vm;
  if (!parse_command_line(spec, options, pos, args, vm)) return kExitOk;
  auto ref = store::parse_version_ref(ref_text, /*version_required=*/true);
  if (server_flags.wanted(!vm["store"].defaulted())) {
    if (!ref.number) throw util::Error("publish --server takes IMAGE@N with a number");
    auto server = connect_server(server_flags);
    auto r = server->post("/api/v1/images/" + ref.image + "/publish", {{"version", *ref.number}});
    print_remote_activation(*server, r, "");
    return kExitOk;
  }
  auto s = open_store(store_dir);
  auto r = s->publish(ref, store::default_creator());
  std::string before = r.before ? "@" + std::to_string(*r.before) : "none";
  if (!r.changed) std::cout << ref.image << ": @" << r.now << " is already active; nothing changed\n";
  else std::cout << ref.image << ": active " << before << " -> @" << r.now << "\n";
  return kExitOk;
}

}  // namespace bootfleet::imgtool
