// imgtool maintenance start|commit|discard|status: a client's writes, kept
// across its reboots, captured as the image's next version
// (docs/maintenance.md). Each subcommand works on the local store or, with
// --server, through a boot server's control API.
//
// Design note. start and status only touch the catalog, which bootsrv reads
// at every boot script. commit and discard also need the session's write
// cache, which lives in bootsrv's cache directory and belongs to the one
// process holding its lock: with a bootsrv running, that is bootsrv (use
// --server); with none, imgtool takes the lock itself, reopens the
// persisted sessions as bootsrv would at its start (block::SessionManager
// ::recover) and commits or discards through the same serve:: functions.
#include <filesystem>
#include <iostream>
#include <nlohmann/json.hpp>

#include "api/paths.h"
#include "block/session.h"
#include "cli.h"
#include "serve/maintenance.h"
#include "store/version_json.h"
#include "util/error.h"
#include "util/size.h"
#include "util/time.h"

namespace bootfleet::imgtool {

namespace {

using nlohmann::json;

// What every subcommand takes: the local store or a server, IMAGE, --json.
struct Common {
  std::string store_dir, image;
  bool as_json = false;
  ServerFlags server;
  po::variables_map vm;
  bool remote() const { return server.wanted(!vm["store"].defaulted()); }
};

po::options_description common_options(Common& c, bool image_required) {
  auto options = base_options();
  add_store_option(options, c.store_dir);
  add_server_options(options, c.server);
  options.add_options()("json", po::bool_switch(&c.as_json), "print JSON");
  auto image = po::value(&c.image);
  if (image_required) image->required();
  options.add_options()("image", image, "the image");
  return options;
}

// False for --help.
bool parse(const CommandSpec& spec, po::options_description& options, const std::vector<std::string>& args,
           Common& c) {
  po::positional_options_description pos;
  pos.add("image", 1);
  if (!parse_command_line(spec, options, pos, args, c.vm)) return false;
  if (!c.image.empty()) store::validate_image_name(c.image);
  return true;
}

void add_cache_dir_option(po::options_description& options, std::string& dir) {
  options.add_options()("cache-dir", po::value(&dir),
                        "bootsrv's cache directory (default STORE/cache, as bootsrv's); local store only");
}

// The persisted sessions of a cache directory no bootsrv holds.
std::unique_ptr<block::SessionManager> open_sessions(store::Store& s, std::string cache_dir) {
  if (cache_dir.empty()) cache_dir = s.dir() + "/cache";
  block::SessionManager::Options o;
  o.cache_dir = cache_dir;
  // No cache directory: no server ever ran here, so no session was booted.
  o.persist = std::filesystem::is_directory(cache_dir);
  auto sessions = std::make_unique<block::SessionManager>(o);
  try {
    sessions->recover([&](const block::Pin& old) {
      store::VersionInfo v = s.version({old.image, old.version, false});
      return block::Pin{v.image, v.number, s.path_of(v), old.keep};
    });
  } catch (const util::Error& e) {
    if (std::string(e.what()).find("another bootsrv") == std::string::npos) throw;
    throw util::Error("a bootsrv is running on " + cache_dir +
                      " and holds its sessions: do this through it with --server URL (its control API), or stop it "
                      "first");
  }
  return sessions;
}

void print_session(const json& j) {
  std::cout << j["image"].get<std::string>() << ": maintenance session of " << j["client"].get<std::string>()
            << " on @" << j["base"].get<int64_t>() << " (export " << j["session"].get<std::string>() << "), started "
            << j["started"].get<std::string>() << " by " << j["started_by"].get<std::string>();
  if (j["booted"].is_boolean()) {
    if (!j["booted"].get<bool>()) std::cout << "; not booted yet";
    else
      std::cout << "; " << util::format_size(j["cache_bytes"].get<uint64_t>()) << " written, "
                << j["connections"].get<int>() << " connections";
  }
  std::cout << "\n";
}

std::optional<int64_t> parse_from(const std::string& image, const std::string& text) {
  if (text.empty()) return std::nullopt;
  std::string ref_text = text.find('@') == std::string::npos ? image + "@" + text : text;
  auto ref = store::parse_version_ref(ref_text, /*version_required=*/true);
  if (ref.image != image) {
    throw util::Error("--from " + text + ": a maintenance session of " + image + " starts from a version of " + image +
                      ", e.g. --from " + image + "@3");
  }
  if (!ref.number) throw util::Error("--from " + text + ": name a version number, e.g. " + image + "@3");
  return ref.number;
}

int maintenance_start(const std::vector<std::string>& args) {
  CommandSpec spec{"maintenance start", "IMAGE --client NAME|MAC [--from IMAGE@N] [--json]",
                   "Put a client in maintenance: its next boot gets IMAGE@N with a write cache kept across its reboots.",
                   "N is the active version unless --from names another. From its next boot on, the\n"
                   "client boots that version (whatever its own image or the active version is), its\n"
                   "kernel command line says bootfleet.mode=maintenance (linux path) and its writes\n"
                   "are kept across reboots until 'imgtool maintenance commit' makes them the next\n"
                   "version or 'imgtool maintenance discard' drops them. One session per image and\n"
                   "per client at a time. With --server it is started on that boot server."};
  Common c;
  std::string client, from;
  auto options = common_options(c, true);
  options.add_options()("client", po::value(&client)->required(), "the client (name or MAC) that does the maintenance")(
      "from", po::value(&from), "the version to start from (default: the active one)");
  if (!parse(spec, options, args, c)) return kExitOk;
  const std::string& image = c.image;
  auto number = parse_from(image, from);
  json j;
  if (c.remote()) {
    auto server = connect_server(c.server);
    json body = {{"client", client}};
    if (number) body["from"] = *number;
    j = server->post(api::path(api::route::kImageMaintenance, {image}), body);
  } else {
    auto s = open_store(c.store_dir);
    j = serve::maintenance_json(s->start_maintenance(image, client, number, store::default_creator()), nullptr, false);
  }
  if (c.as_json) {
    std::cout << j.dump(2) << "\n";
    return kExitOk;
  }
  std::cout << "started: ";
  print_session(j);
  std::cout << j["client"].get<std::string>() << "'s next boot continues it; commit with 'imgtool maintenance commit "
            << image << " -m MESSAGE'\n";
  return kExitOk;
}

int maintenance_commit(const std::vector<std::string>& args) {
  CommandSpec spec{"maintenance commit", "IMAGE -m MESSAGE [--force] [--publish] [--cache-dir DIR] [--json]",
                   "Store what the client wrote in its maintenance session as the image's next version.",
                   "The session's written (and zeroed) sectors become a differencing VHD on the latest\n"
                   "version, with block digests, recorded as made by maintenance on CLIENT from @N;\n"
                   "it is not published unless --publish. Refused while the client is connected (shut\n"
                   "it down first) unless --force, which commits what it has written so far, like\n"
                   "pulling its plug. The session ends; the client's next boot is an ordinary one.\n"
                   "Without --server the cache is read from --cache-dir, which no running bootsrv may\n"
                   "hold. A commit that is interrupted stores nothing and leaves the session as it was."};
  Common c;
  std::string message, cache_dir;
  bool force = false, publish = false;
  auto options = common_options(c, true);
  add_cache_dir_option(options, cache_dir);
  options.add_options()("message,m", po::value(&message)->required(), "what was done (the version's message)")(
      "force", po::bool_switch(&force), "commit even while the client is connected")(
      "publish", po::bool_switch(&publish), "make the new version active");
  if (!parse(spec, options, args, c)) return kExitOk;
  const std::string& image = c.image;
  json j;
  if (c.remote()) {
    auto server = connect_server(c.server);
    j = server->post(api::path(api::route::kMaintenanceCommit, {image}),
                     {{"message", message}, {"force", force}, {"publish", publish}});
  } else {
    auto s = open_store(c.store_dir);
    s->maintenance(image);  // a clear error before the cache directory is looked at
    auto sessions = open_sessions(*s, cache_dir);
    auto r = serve::commit_maintenance(*s, *sessions, image, {message, store::default_creator(), force, publish});
    j = {{"session", serve::maintenance_json(r.session, nullptr, false)},
         {"version", store::version_json(r.import.version)},
         {"changed_blocks", r.import.changed_blocks},
         {"cache_bytes", r.cache_bytes},
         {"forced_connections", r.connections},
         {"published", publish}};
  }
  if (c.as_json) {
    std::cout << j.dump(2) << "\n";
    return kExitOk;
  }
  const auto& v = j["version"];
  std::string ref = image + "@" + std::to_string(v["number"].get<int64_t>());
  std::cout << "committed " << j["session"]["client"].get<std::string>() << "'s maintenance session on @"
            << j["session"]["base"].get<int64_t>() << " as " << ref;
  if (v["parent"].is_number()) std::cout << " (on @" << v["parent"].get<int64_t>() << ")";
  std::cout << ": " << util::format_size(j["cache_bytes"].get<uint64_t>()) << " written, "
            << j["changed_blocks"].get<uint64_t>() << " changed blocks, "
            << util::format_size(v["stored_bytes"].get<uint64_t>()) << " stored (file "
            << util::format_size(v["file_size"].get<uint64_t>()) << ")" << (publish ? "; published" : "") << "\n";
  if (!publish) std::cout << "publish it with 'imgtool publish " << ref << "'\n";
  return kExitOk;
}

int maintenance_discard(const std::vector<std::string>& args) {
  CommandSpec spec{"maintenance discard", "IMAGE [--cache-dir DIR] [--json]",
                   "End IMAGE's maintenance session and drop what the client wrote in it.",
                   "The client's next boot is an ordinary one. Without --server and with a bootsrv\n"
                   "running on the cache directory, the record goes now and bootsrv drops the cache at\n"
                   "the client's next boot (or when it idles out)."};
  Common c;
  std::string cache_dir;
  auto options = common_options(c, true);
  add_cache_dir_option(options, cache_dir);
  if (!parse(spec, options, args, c)) return kExitOk;
  const std::string& image = c.image;
  json j;
  if (c.remote()) {
    auto server = connect_server(c.server);
    j = server->del(api::path(api::route::kImageMaintenance, {image}))["discarded"];
  } else {
    auto s = open_store(c.store_dir);
    s->maintenance(image);
    std::unique_ptr<block::SessionManager> sessions;
    try {
      sessions = open_sessions(*s, cache_dir);
    } catch (const util::Error& e) {
      std::cerr << "imgtool maintenance discard: " << e.what() << "; the record is removed now, the cache later\n";
    }
    j = serve::maintenance_json(serve::discard_maintenance(*s, sessions.get(), image), nullptr, false);
  }
  if (c.as_json) {
    std::cout << j.dump(2) << "\n";
    return kExitOk;
  }
  std::cout << "discarded " << j["client"].get<std::string>() << "'s maintenance session of " << image << "@"
            << j["base"].get<int64_t>() << "\n";
  return kExitOk;
}

int maintenance_status(const std::vector<std::string>& args) {
  CommandSpec spec{"maintenance status", "[IMAGE] [--json]",
                   "List the maintenance sessions (or IMAGE's): client, base version, who started it.",
                   "With --server also whether the client has booted in it, what it has written and\n"
                   "its connections (the server holds the caches). --json prints a list of objects\n"
                   "(docs/maintenance.md has the fields; unknown ones are null)."};
  Common c;
  auto options = common_options(c, false);
  if (!parse(spec, options, args, c)) return kExitOk;
  const std::string& image = c.image;
  json list = json::array();
  if (c.remote()) {
    auto server = connect_server(c.server);
    if (!image.empty()) list.push_back(server->get(api::path(api::route::kImageMaintenance, {image})));
    else list = server->get(api::path(api::route::kMaintenance))["maintenance"];
  } else {
    auto s = open_store(c.store_dir);
    if (!image.empty()) list.push_back(serve::maintenance_json(s->maintenance(image), nullptr, false));
    else
      for (const auto& m : s->maintenance_sessions()) list.push_back(serve::maintenance_json(m, nullptr, false));
  }
  if (c.as_json) {
    std::cout << list.dump(2) << "\n";
    return kExitOk;
  }
  if (list.empty()) std::cout << "no maintenance sessions\n";
  for (const auto& j : list) print_session(j);
  return kExitOk;
}

const char* kMaintenanceUsage =
    "Usage: imgtool maintenance start IMAGE --client NAME|MAC [--from IMAGE@N] [--json]\n"
    "       imgtool maintenance commit IMAGE -m MESSAGE [--force] [--publish] [--cache-dir DIR] [--json]\n"
    "       imgtool maintenance discard IMAGE [--cache-dir DIR] [--json]\n"
    "       imgtool maintenance status [IMAGE] [--json]\n"
    "       imgtool maintenance SUBCOMMAND --help\n\n"
    "A maintenance session: one client boots a version of an image with a write cache\n"
    "kept across its reboots (install software on a running PC, reboot as often as the\n"
    "installer wants), then commit stores what it wrote as the image's next version.\n"
    "Each takes --server URL to act on a boot server (docs/maintenance.md).\n";

}  // namespace

int cmd_maintenance(const std::vector<std::string>& args) {
  if (args.empty() || args[0] == "--help" || args[0] == "-h") {
    (args.empty() ? std::cerr : std::cout) << kMaintenanceUsage;
    return args.empty() ? kExitError : kExitOk;
  }
  std::vector<std::string> rest(args.begin() + 1, args.end());
  if (args[0] == "start") return maintenance_start(rest);
  if (args[0] == "commit") return maintenance_commit(rest);
  if (args[0] == "discard") return maintenance_discard(rest);
  if (args[0] == "status") return maintenance_status(rest);
  throw util::Error("'" + args[0] + "' is not a maintenance subcommand; use start, commit, discard or status\n" +
                    kMaintenanceUsage);
}

}  // namespace bootfleet::imgtool
