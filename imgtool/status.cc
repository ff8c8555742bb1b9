// imgtool status --server URL [--json]: what a boot server is serving now.
#include <iomanip>
#include <iostream>
#include <nlohmann/json.hpp>

#include "api/paths.h"
#include "cli.h"
#include "util/error.h"
#include "util/size.h"

namespace bootfleet::imgtool {

namespace {

std::string number_or_dash(const nlohmann::json& value) {
  return value.is_number() ? "@" + std::to_string(value.get<int64_t>()) : "-";
}

}  // namespace

int cmd_status(const std::vector<std::string>& args) {
  CommandSpec spec{"status", "--server URL [--token-file F] [--ca-file F] [--json]",
                   "Show a boot server's images (active, rollback target, latest), pending scheduled publishes, live sessions and cache use.",
                   "Asks the server's control API (docs/api.md); --server and --token-file default to\n"
                   "$BOOTFLEET_SERVER and $BOOTFLEET_TOKEN_FILE. The local store's own state is\n"
                   "'imgtool images'. --json prints the server's answers as one object:\n"
                   "{\"status\": …, \"sessions\": […]}."};
  auto options = base_options();
  ServerFlags server_flags;
  bool as_json = false;
  add_server_options(options, server_flags);
  options.add_options()("json", po::bool_switch(&as_json), "print JSON");
  po::variables_map vm;
  if (!parse_command_line(spec, options, {}, args, vm)) return kExitOk;
  auto server = connect_server(server_flags);
  auto status = server->get(api::path(api::route::kStatus));
  auto sessions = server->get(api::path(api::route::kSessions)).value("sessions", nlohmann::json::array());
  if (as_json) {
    std::cout << nlohmann::json{{"server", server->server()}, {"status", status}, {"sessions", sessions}}.dump(2) << "\n";
    return kExitOk;
  }
  std::cout << server->server() << "\n\n";
  std::cout << std::left << std::setw(24) << "IMAGE" << std::setw(8) << "ACTIVE" << std::setw(10) << "ROLLBACK"
            << "LATEST\n";
  for (const auto& image : status.value("images", nlohmann::json::array())) {
    std::cout << std::setw(24) << image.value("name", std::string("?")) << std::setw(8)
              << number_or_dash(image.value("active", nlohmann::json())) << std::setw(10)
              << number_or_dash(image.value("previous", nlohmann::json()))
              << number_or_dash(image.value("latest", nlohmann::json())) << "\n";
  }
  std::cout << "\n" << sessions.size() << " session" << (sessions.size() == 1 ? "" : "s") << ", write caches "
            << util::format_size(status.value("cache_bytes", uint64_t{0}));
  if (status.value("uploads", 0) > 0) std::cout << ", " << status.value("uploads", 0) << " upload(s) open";
  std::cout << "\n";
  for (const auto& s : status.value("schedules", nlohmann::json::array())) {
    std::cout << "scheduled #" << s.value("id", int64_t{0}) << ": publish " << s.value("image", std::string("?")) << "@"
              << s.value("version", int64_t{0}) << " on " << s.value("channel", std::string("?")) << " at "
              << s.value("at", std::string("?")) << " (by " << s.value("by", std::string("?")) << ")\n";
  }
  if (!sessions.empty()) {
    std::cout << "\n" << std::setw(32) << "EXPORT" << std::setw(10) << "VERSION" << std::setw(12) << "CACHE"
              << "CONNECTIONS\n";
    for (const auto& session : sessions) {
      std::cout << std::setw(32) << session.value("export", std::string("?")) << std::setw(10)
                << number_or_dash(session.value("version", nlohmann::json())) << std::setw(12)
                << util::format_size(session.value("cache_bytes", uint64_t{0})) << session.value("connections", 0)
                << "\n";
    }
  }
  return kExitOk;
}

}  // namespace bootfleet::imgtool
