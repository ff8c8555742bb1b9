#include "status_page.h"

#include <sys/statvfs.h>
#include <unistd.h>

#include <algorithm>
#include <map>

#include "json_body.h"
#include "status_assets.h"
#include "util/error.h"
#include "util/log.h"
#include "util/metrics.h"

namespace bootfleet::bootsrv {

using nlohmann::json;
namespace metrics = util::metrics;

namespace {

int64_t ms_of(std::chrono::system_clock::time_point t) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count();
}

std::string path_of(const std::string& target) { return target.substr(0, target.find_first_of("?#")); }

struct Disk {
  uint64_t size = 0, free = 0;
  bool known = false;
};

Disk disk_of(const std::string& dir) {
  struct statvfs st {};
  if (dir.empty() || ::statvfs(dir.c_str(), &st) != 0) return {};
  // f_bavail: what an unprivileged writer (bootsrv's user) can still use.
  return {uint64_t(st.f_blocks) * st.f_frsize, uint64_t(st.f_bavail) * st.f_frsize, true};
}

// `key` names the configuration key in errors (the file's own errors say
// FILE:LINE).
std::shared_ptr<const TokenSet> load_tokens(const std::string& file, const char* key) {
  if (file.empty()) return nullptr;
  if (::access(file.c_str(), R_OK) != 0) {
    throw util::errno_error(std::string(key) + ": cannot read the token file " + file);
  }
  return std::make_shared<TokenSet>(TokenSet::load(file));
}

const char* content_type_of(const std::string& name) {
  if (name.ends_with(".html")) return "text/html; charset=utf-8";
  if (name.ends_with(".js")) return "text/javascript; charset=utf-8";
  if (name.ends_with(".css")) return "text/css; charset=utf-8";
  return "application/octet-stream";
}

}  // namespace

StatusAccess check_status_access(const http::Request& request, const http::Connection& connection,
                                 const TokenSet* status_tokens, const TokenSet* api_tokens, bool plain_http) {
  if (connection.peer_is_loopback()) return {0, "", "loopback"};
  if (!connection.secure && !plain_http) {
    return {403, "the status data and /metrics are served to other hosts over HTTPS only (https_listen), or over "
                 "plain HTTP with 'api_plain_http: true'; loopback needs neither", ""};
  }
  const std::string* auth = request.header("authorization");
  std::string presented;
  if (auth && auth->size() > 7 && (auth->compare(0, 7, "Bearer ") == 0 || auth->compare(0, 7, "bearer ") == 0)) {
    presented = auth->substr(7);
    while (!presented.empty() && presented.front() == ' ') presented.erase(0, 1);
  }
  if (!status_tokens && !api_tokens) {
    return {403, "no tokens are configured: only loopback may see the status; set 'status_tokens: FILE' (lines "
                 "'NAME TOKEN', docs/status.md) in bootsrv's configuration", ""};
  }
  if (presented.empty()) {
    return {401, "this needs 'Authorization: Bearer TOKEN' with a token from status_tokens or api_tokens "
                 "(in a browser: open /status#token=TOKEN)", ""};
  }
  // Both sets are always asked, so the time taken says nothing of which matched.
  std::optional<std::string> s = status_tokens ? status_tokens->match(presented) : std::nullopt;
  std::optional<std::string> a = api_tokens ? api_tokens->match(presented) : std::nullopt;
  if (s) return {0, "", *s};
  if (a) return {0, "", *a};
  return {403, "the bearer token is in neither status_tokens nor api_tokens", ""};
}

StatusPage::StatusPage(serve::StoreExports& exports, BootEvents& events, StatusOptions options)
    : exports_(exports), events_(events), options_(std::move(options)) {
  status_tokens_ = load_tokens(options_.status_tokens_file, "status_tokens");
  api_tokens_ = load_tokens(options_.api_tokens_file, "api_tokens");
}

void StatusPage::reload_tokens() {
  auto s = load_tokens(options_.status_tokens_file, "status_tokens");
  auto a = load_tokens(options_.api_tokens_file, "api_tokens");
  std::lock_guard lock(tokens_mutex_);
  status_tokens_ = s;
  api_tokens_ = a;
}

bool StatusPage::owns(const std::string& target) {
  std::string path = path_of(target);
  return path == "/metrics" || path == "/status" || path.rfind("/status/", 0) == 0;
}

http::Response StatusPage::handle(const http::Request& request, const http::Connection& connection) {
  std::string path = path_of(request.target);
  if (request.method != "GET" && request.method != "HEAD") {
    http::Response no = http::Response::text(405, path + " takes GET (the status page and metrics are read-only)");
    no.headers.emplace_back("Allow", "GET, HEAD");
    return no;
  }
  if (path == "/status" || path == "/status/" || path == "/status/app.js" || path == "/status/style.css") {
    std::string name = path == "/status" || path == "/status/" ? "index.html" : path.substr(8);
    auto asset = status_asset(name);
    if (!asset) return http::Response::text(404, "no such file of the status page");
    http::Response r;
    r.content_type = content_type_of(name);
    r.body = std::string(*asset);
    // A page of its own origin only: no frames, no scripts or styles from elsewhere.
    r.headers.emplace_back("Content-Security-Policy",
                           "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
                           "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'");
    r.headers.emplace_back("X-Content-Type-Options", "nosniff");
    r.headers.emplace_back("Cache-Control", "no-cache");
    return r;
  }
  if (path != "/status/data" && path != "/metrics") {
    return http::Response::text(404, "not found; the status page is /status, its data /status/data, metrics /metrics");
  }
  std::shared_ptr<const TokenSet> status_tokens, api_tokens;
  {
    std::lock_guard lock(tokens_mutex_);
    status_tokens = status_tokens_;
    api_tokens = api_tokens_;
  }
  StatusAccess access =
      check_status_access(request, connection, status_tokens.get(), api_tokens.get(), options_.plain_http);
  if (access.status) {
    util::log_line("status " + connection.peer + " \"GET " + path + "\": " + std::to_string(access.status) + " " +
                   access.message);
    if (path == "/metrics") {
      http::Response r = http::Response::text(access.status, access.message);
      if (access.status == 401) r.headers.emplace_back("WWW-Authenticate", "Bearer realm=\"bootsrv\"");
      return r;
    }
    http::Response r = json_response(access.status, {{"error", {{"status", access.status}, {"message", access.message}}}});
    if (access.status == 401) r.headers.emplace_back("WWW-Authenticate", "Bearer realm=\"bootsrv\"");
    return r;
  }
  try {
    if (path == "/metrics") {
      http::Response r;
      r.content_type = "text/plain; version=0.0.4; charset=utf-8";
      r.body = metrics_text();
      r.headers.emplace_back("Cache-Control", "no-store");
      return r;
    }
    return json_response(200, data());
  } catch (const util::Error& e) {
    util::log_line("status " + connection.peer + " \"GET " + path + "\": 500 " + e.what());
    return json_response(500, {{"error", {{"status", 500}, {"message", e.what()}}}});
  }
}

json StatusPage::data() {
  const int64_t now = ms_of(std::chrono::system_clock::now());
  std::vector<store::ImageInfo> images;
  std::vector<store::ClientInfo> clients;
  std::map<std::string, store::GroupInfo> groups;
  std::map<std::string, store::MaintenanceInfo> maintenance;  // by client name
  exports_.with_store([&](store::Store& s) {
    images = s.images();
    clients = s.clients();
    for (auto& g : s.groups()) groups[g.name] = g;
    for (auto& m : s.maintenance_sessions()) maintenance[m.client] = m;
  });
  auto sessions = exports_.sessions().sessions();
  std::map<std::string, std::shared_ptr<block::Session>> named;
  for (const auto& s : sessions) {
    if (s->named()) named[s->name()] = s;
  }
  std::map<std::string, double> read_bytes, write_bytes;
  for (const auto& [labels, v] : metrics::registry().series("bootfleet_client_read_bytes_total")) {
    read_bytes[labels.at(0).second] = v;
  }
  for (const auto& [labels, v] : metrics::registry().series("bootfleet_client_write_bytes_total")) {
    write_bytes[labels.at(0).second] = v;
  }
  json boots = events_.boots();

  // One row per registered client, then per named session of a name the
  // client table does not know (default_image boots, ad-hoc NBD clients).
  json rows = json::array();
  auto row = [&](const std::string& session_name, const std::string& name, const json& mac, const std::string& image,
                 const store::ClientInfo* client) {
    auto it = named.find(session_name);
    std::shared_ptr<block::Session> s = it == named.end() ? nullptr : it->second;
    json boot = boots.contains(session_name) ? boots[session_name] : json(nullptr);
    std::string state = "off";
    json since = nullptr;
    if (s && s->connections() > 0) {
      state = "up";
      if (auto c = s->connected_since()) since = ms_of(*c);
    } else if (events_.booting(session_name)) {
      state = "booting";
      since = boot["started_ms"];
    } else if (s) {
      since = ms_of(s->started());  // started by a boot script or left by a client that went away
    }
    // What it follows (channels.h): a pin, or its group's pin or channel.
    json group = nullptr, channel = nullptr, pin = nullptr;
    if (client) {
      if (client->pin) pin = *client->pin;
      if (client->group && groups.count(*client->group)) {
        const store::GroupInfo& g = groups[*client->group];
        group = g.name;
        channel = g.channel;
        if (!client->pin && g.pin) pin = *g.pin;
      } else {
        channel = store::kProductionChannel;
      }
    }
    // In maintenance whether up or not: its writes are kept until a commit.
    json maintenance_base = nullptr;
    if (auto m = maintenance.find(name); client && m != maintenance.end() && m->second.image == image) {
      state = "maintenance";
      maintenance_base = m->second.base;
    }
    rows.push_back({{"name", name},
                    {"group", group},
                    {"channel", channel},
                    {"pin", pin},
                    {"maintenance_base", maintenance_base},
                    {"mac", mac},
                    {"image", image},
                    {"session", session_name},
                    {"state", state},
                    {"since_ms", since},
                    {"version", s ? json(s->pin().version) : json(nullptr)},
                    {"connections", s ? s->connections() : 0},
                    {"cache_bytes", s ? s->cache().data_bytes() : 0},
                    {"read_bytes", read_bytes.count(session_name) ? read_bytes[session_name] : 0.0},
                    {"write_bytes", write_bytes.count(session_name) ? write_bytes[session_name] : 0.0},
                    {"last_boot", boot}});
    named.erase(session_name);
  };
  for (const auto& c : clients) row(c.image + "/" + c.name, c.name, c.mac, c.image, &c);
  for (const auto& [session_name, s] : std::map(named)) {
    auto slash = session_name.find('/');
    row(session_name, session_name.substr(slash + 1), nullptr, session_name.substr(0, slash), nullptr);
  }
  json image_rows = json::array();
  uint64_t store_bytes = 0;
  for (const auto& i : images) {
    store_bytes += i.bytes_on_disk;
    image_rows.push_back({{"name", i.name},
                          {"active", i.active ? json(*i.active) : json(nullptr)},
                          {"previous", i.previous ? json(*i.previous) : json(nullptr)},
                          {"latest", i.latest ? json(*i.latest) : json(nullptr)},
                          {"versions", i.version_count},
                          {"boot_mode", store::boot_mode_name(i.boot_mode)},
                          {"bytes_on_disk", i.bytes_on_disk}});
  }
  json anonymous = json::array();
  uint64_t cache_bytes = 0;
  for (const auto& s : sessions) {
    cache_bytes += s->cache().data_bytes();
    if (!s->named()) {
      anonymous.push_back({{"session", s->name()}, {"image", s->pin().image}, {"version", s->pin().version},
                           {"cache_bytes", s->cache().data_bytes()}});
    }
  }
  json connections = json::object(), errors = json::object();
  for (const char* p : {"nbd", "iscsi", "http", "tftp"}) {
    connections[p] = metrics::registry().value("bootfleet_connections_open", {{"protocol", p}});
    errors[p] = metrics::registry().value("bootfleet_protocol_errors_total", {{"protocol", p}});
  }
  Disk cache = disk_of(options_.cache_dir), store_disk = disk_of(options_.store_dir);
  json health = {{"cache_dir", options_.cache_dir},
                 {"cache_disk_free_bytes", cache.known ? json(cache.free) : json(nullptr)},
                 {"cache_disk_size_bytes", cache.known ? json(cache.size) : json(nullptr)},
                 {"store_disk_free_bytes", store_disk.known ? json(store_disk.free) : json(nullptr)},
                 {"store_bytes", store_bytes},
                 {"cache_bytes", cache_bytes},
                 {"sessions", sessions.size()},
                 {"connections", connections},
                 {"errors", errors}};
  return {{"now_ms", now},
          {"version", options_.version},
          {"started_ms", ms_of(started_)},
          {"health", health},
          {"clients", rows},
          {"anonymous_sessions", anonymous},
          {"images", image_rows},
          {"events", events_.recent_events()},
          {"errors", events_.recent_errors()}};
}

std::string StatusPage::metrics_text() {
  std::string out;
  metrics::registry().render(out);
  // What is cheap to compute now is not kept between scrapes (metrics.h).
  metrics::Registry scrape;
  scrape.gauge("bootfleet_build_info", "bootsrv's version (the value is always 1)", {{"version", options_.version}})
      .set(1);
  scrape.gauge("bootfleet_start_time_seconds", "When bootsrv started, Unix seconds").set(double(ms_of(started_)) / 1000);
  auto sessions = exports_.sessions().sessions();
  double named = 0, anonymous = 0, cache = 0;
  for (const auto& s : sessions) {
    (s->named() ? named : anonymous) += 1;
    double bytes = double(s->cache().data_bytes());
    cache += bytes;
    // Anonymous sessions of an image together, as the client counters.
    scrape.gauge("bootfleet_session_cache_bytes", "Write cache bytes held, by export (IMAGE/CLIENT; IMAGE: its anonymous sessions)",
                 {{"export", s->named() ? s->name() : s->pin().image}})
        .add(bytes);
  }
  scrape.gauge("bootfleet_sessions", "Sessions, named (IMAGE/CLIENT) and anonymous", {{"kind", "named"}}).set(named);
  scrape.gauge("bootfleet_sessions", "", {{"kind", "anonymous"}}).set(anonymous);
  scrape.gauge("bootfleet_cache_bytes", "Write cache bytes held by all sessions").set(cache);
  Disk c = disk_of(options_.cache_dir), s = disk_of(options_.store_dir);
  if (c.known) {
    scrape.gauge("bootfleet_cache_disk_free_bytes", "Free space of the write caches' file system").set(double(c.free));
    scrape.gauge("bootfleet_cache_disk_size_bytes", "Size of the write caches' file system").set(double(c.size));
  }
  if (s.known) {
    scrape.gauge("bootfleet_store_disk_free_bytes", "Free space of the store's file system").set(double(s.free));
    scrape.gauge("bootfleet_store_disk_size_bytes", "Size of the store's file system").set(double(s.size));
  }
  std::map<std::string, uint64_t> actions = {{"publish", 0}, {"rollback", 0}};
  double store_bytes = 0;
  exports_.with_store([&](store::Store& st) {
    for (const auto& i : st.images()) {
      store_bytes += double(i.bytes_on_disk);
      scrape.gauge("bootfleet_image_active_version", "The active version of each image (0: none)", {{"image", i.name}})
          .set(i.active ? double(*i.active) : 0);
      scrape.gauge("bootfleet_image_versions", "Versions of each image in the store", {{"image", i.name}})
          .set(double(i.version_count));
      for (const auto& a : st.history(i.name)) ++actions[a.action];
    }
  });
  scrape.gauge("bootfleet_store_bytes", "Bytes of every version file in the store").set(store_bytes);
  for (const auto& [action, n] : actions) {
    scrape.counter("bootfleet_activations_total",
                   "Publishes and rollbacks in the store's history (by imgtool or the API), by action",
                   {{"action", action}})
        .add(n);
  }
  std::map<std::string, double> states = {{"off", 0}, {"booting", 0}, {"up", 0}, {"maintenance", 0}};
  const json page = data();
  for (const auto& row : page["clients"]) states[row["state"].get<std::string>()] += 1;
  for (const auto& [state, n] : states) {
    scrape.gauge("bootfleet_clients", "Clients (registered, or with a named session) by state", {{"state", state}})
        .set(n);
  }
  scrape.render(out);
  return out;
}

}  // namespace bootfleet::bootsrv
