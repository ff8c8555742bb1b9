#include "api.h"

#include <fcntl.h>
#include <sys/stat.h>

#include <algorithm>
#include <functional>

#include "api/paths.h"
#include "api_error.h"
#include "json_body.h"
#include "maintenance_api.h"
#include "store/channels_json.h"
#include "store/records_json.h"
#include "store/version_json.h"
#include "store/version_ref.h"
#include "util/error.h"
#include "util/file.h"
#include "util/log.h"
#include "util/sha256.h"

namespace bootfleet::bootsrv {

using nlohmann::json;

namespace {

http::Response error_response(int status, const std::string& message, const json& extra = json::object()) {
  json body = {{"error", {{"status", status}, {"message", message}}}};
  for (const auto& [k, v] : extra.items()) body["error"][k] = v;
  http::Response r = json_response(status, body);
  if (extra.contains("allow")) r.headers.emplace_back("Allow", extra["allow"].get<std::string>());
  if (status == 401) r.headers.emplace_back("WWW-Authenticate", "Bearer realm=\"bootsrv\"");
  if (status == 503) r.headers.emplace_back("Retry-After", "30");
  return r;
}

json opt(const std::optional<int64_t>& v) { return v ? json(*v) : json(nullptr); }

int64_t unix_seconds(std::chrono::system_clock::time_point t) {
  return std::chrono::duration_cast<std::chrono::seconds>(t.time_since_epoch()).count();
}

// A version number from a path segment or a JSON field.
int64_t version_number(const std::string& text, const std::string& what) {
  if (text.empty() || text.size() > 18 || !std::all_of(text.begin(), text.end(), ::isdigit) || text[0] == '0') {
    throw ApiError(400, what + " '" + text + "' is not a version number (a positive integer)");
  }
  return std::stoll(text);
}

json parse_json_body(http::Body& body) { return parse_json_body_text(body.read_all(kMaxJsonBody)); }

void check_image_name(const std::string& image) {
  try {
    store::validate_image_name(image);
  } catch (const util::Error& e) {
    throw ApiError(400, e.what());
  }
}

}  // namespace

Api::Api(serve::StoreExports& exports, ApiOptions options) : exports_(exports), options_(std::move(options)) {
  if (!options_.tokens_file.empty()) {
    tokens_ = std::make_shared<TokenSet>(TokenSet::load(options_.tokens_file));
    UploadOptions uploads = options_.uploads;
    uploads.sha256_of = [this](const std::string& path) { return artifact_sha256(path); };
    uploads_ = std::make_unique<Uploads>(exports_, uploads);
  }
}

bool Api::owns(const std::string& target) {
  std::string path = target.substr(0, target.find_first_of("?#"));
  return path == "/healthz" || path == "/api" || path.rfind("/api/", 0) == 0;
}

void Api::reload_tokens() {
  if (options_.tokens_file.empty()) return;
  auto fresh = std::make_shared<TokenSet>(TokenSet::load(options_.tokens_file));
  std::lock_guard lock(tokens_mutex_);
  tokens_ = fresh;
}

void Api::housekeeping() {
  if (!uploads_) return;
  for (const auto& id : uploads_->expire()) util::log_line("upload " + id + " expired: untouched for upload_ttl");
}

std::string Api::artifact_sha256(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) throw util::errno_error("stat " + path);
  int64_t mtime = int64_t{st.st_mtim.tv_sec} * 1000000000 + st.st_mtim.tv_nsec;
  {
    std::lock_guard lock(sha_mutex_);
    auto it = sha_cache_.find(path);
    if (it != sha_cache_.end() && it->second.size == static_cast<uint64_t>(st.st_size) && it->second.mtime_ns == mtime) {
      return it->second.hex;
    }
  }
  // Artifacts never change once committed: hashed once, then remembered.
  util::UniqueFd fd = util::open_file(path, O_RDONLY);
  util::Sha256 hash;
  std::vector<uint8_t> buf(1 << 20);
  uint64_t at = 0;
  while (true) {
    size_t n = util::pread_some(fd.get(), buf.data(), buf.size(), at, path);
    if (n == 0) break;
    hash.update({buf.data(), n});
    at += n;
  }
  std::string hex = util::digest_hex(hash.finish());
  std::lock_guard lock(sha_mutex_);
  sha_cache_[path] = {static_cast<uint64_t>(st.st_size), mtime, hex};
  return hex;
}

json Api::version_json(const store::VersionInfo& v, std::optional<int64_t> active) {
  std::vector<std::pair<std::string, std::string>> artifacts = exports_.with_store([&](store::Store& s) {
    std::vector<std::pair<std::string, std::string>> out;
    for (const auto& name : s.artifacts(v)) out.emplace_back(name, s.artifact_path(v, name));
    return out;
  });
  json arts = json::array();
  for (const auto& [name, path] : artifacts) {
    arts.push_back({{"name", name}, {"size", util::file_size(util::open_file(path, O_RDONLY).get(), path)},
                    {"sha256", artifact_sha256(path)}});
  }
  // The catalog record (the fields of `imgtool versions --json`), plus
  // "size" (= virtual_size), whether it is active, and its artifacts.
  json j = store::version_json(v);
  j["size"] = v.size;
  j["active"] = active == v.number;
  j["artifacts"] = arts;
  return j;
}

http::Response Api::handle(const http::Request& request, const http::Connection& connection, http::Body& body) {
  const std::string line = "\"" + request.method + " " + http::loggable_target(request.target) + "\"";
  try {
    auto path = http::split_path(request.target);
    if (!path) throw ApiError(400, "the path is not a clean /-separated path");
    if (path->size() == 1 && (*path)[0] == "healthz") {
      if (request.method != "GET" && request.method != "HEAD") throw ApiError(405, "/healthz takes GET", {{"allow", "GET, HEAD"}});
      return json_response(200, {{"status", "ok"}});
    }
    std::shared_ptr<const TokenSet> tokens;
    {
      std::lock_guard lock(tokens_mutex_);
      tokens = tokens_;
    }
    if (!tokens) {
      throw ApiError(404, "the control API is off: set 'api_tokens: FILE' in bootsrv's configuration file "
                          "(lines 'NAME TOKEN'; see docs/api.md) and restart bootsrv");
    }
    if (!connection.secure && !connection.peer_is_loopback() && !options_.plain_http) {
      util::log_line("api " + connection.peer + " " + line + ": 403 plain HTTP from a remote peer");
      throw ApiError(403, "the control API is served over HTTPS only (https_listen); or set 'api_plain_http: true' "
                          "to allow plain HTTP");
    }
    const std::string* auth = request.header("authorization");
    std::string presented;
    if (auth && auth->size() > 7 && (auth->compare(0, 7, "Bearer ") == 0 || auth->compare(0, 7, "bearer ") == 0)) {
      presented = auth->substr(7);
      while (!presented.empty() && presented.front() == ' ') presented.erase(0, 1);
    }
    if (presented.empty()) {
      util::log_line("api " + connection.peer + " " + line + ": 401 no bearer token");
      throw ApiError(401, "this needs 'Authorization: Bearer TOKEN' with a token from bootsrv's api_tokens file");
    }
    std::optional<std::string> who = tokens->match(presented);
    if (!who) {
      util::log_line("api " + connection.peer + " " + line + ": 403 unknown token");
      throw ApiError(403, "the bearer token is not in bootsrv's api_tokens file");
    }
    if (path->size() < 2 || (*path)[0] != "api" || (*path)[1] != "v1") {
      throw ApiError(404, "no such API; this server speaks /api/v1/");
    }
    return route(request, *path, *who, connection, body);
  } catch (const ApiError& e) {
    return error_response(e.status(), e.what(), e.extra());
  } catch (const http::BadRequest& e) {
    return error_response(e.status(), e.what());
  }
}

// The one list of routes. A row per method and pattern; handlers of one
// pattern sit together, in the order of docs/api.md's SYNOPSIS.
struct Api::Route {
  const char* method;
  const char* pattern;
  std::function<ApiAnswer(Api&, ApiCall&)> handler;  // a member, or a free handler (maintenance_api.h)
};

const std::vector<Api::Route>& Api::routes() {
  namespace r = api::route;
  static const std::vector<Route> table = {
      {"GET", r::kHealthz, &Api::healthz},
      {"GET", r::kStatus, &Api::status},
      {"GET", r::kImages, &Api::images},
      {"GET", r::kVersions, &Api::versions},
      {"GET", r::kVersion, &Api::version},
      {"GET", r::kHistory, &Api::history},
      {"POST", r::kPublish, &Api::publish},
      {"POST", r::kRollback, &Api::rollback},
      {"POST", r::kPromote, &Api::promote},
      {"GET", r::kChannels, &Api::channels},
      {"GET", r::kGroups, &Api::groups},
      {"POST", r::kGroups, &Api::group_add},
      {"GET", r::kGroup, &Api::group},
      {"POST", r::kGroup, &Api::group_change},
      {"DELETE", r::kGroup, &Api::group_remove},
      {"GET", r::kClients, &Api::clients},
      {"GET", r::kClient, &Api::client},
      {"POST", r::kClient, &Api::client_change},
      {"GET", r::kSchedules, &Api::schedules},
      {"DELETE", r::kSchedule, &Api::schedule_cancel},
      {"GET", r::kSessions, &Api::sessions},
      {"DELETE", r::kSession, &Api::session_reset},
      {"GET", r::kMaintenance, [](Api&, ApiCall& c) { return maintenance_list(c); }},
      {"GET", r::kImageMaintenance, [](Api&, ApiCall& c) { return maintenance_show(c); }},
      {"POST", r::kImageMaintenance, [](Api&, ApiCall& c) { return maintenance_start(c); }},
      {"POST", r::kMaintenanceCommit, [](Api&, ApiCall& c) { return maintenance_commit(c); }},
      {"DELETE", r::kImageMaintenance, [](Api&, ApiCall& c) { return maintenance_discard(c); }},
      {"POST", r::kUploads, &Api::upload_create},
      {"GET", r::kUpload, &Api::upload_state},
      {"PUT", r::kUploadDisk, &Api::upload_disk},
      {"PUT", r::kUploadArtifact, &Api::upload_artifact},
      {"POST", r::kUploadCommit, &Api::upload_commit},
      {"DELETE", r::kUpload, &Api::upload_abort},
  };
  return table;
}

std::vector<std::pair<std::string, std::string>> Api::route_list() {
  std::vector<std::pair<std::string, std::string>> out;
  for (const auto& r : routes()) out.emplace_back(r.method, r.pattern);
  return out;
}

http::Response Api::route(const http::Request& request, const std::vector<std::string>& path, const std::string& who,
                          const http::Connection& connection, http::Body& body) {
  const std::string method = request.method == "HEAD" ? "GET" : request.method;
  const std::vector<std::string> p(path.begin() + 2, path.end());
  std::string allowed;  // the methods of the rows whose pattern matches, for a 405
  for (const auto& r : routes()) {
    auto values = api::match(r.pattern, p);
    if (!values) continue;
    if (method != r.method) {
      if (allowed.find(r.method) == std::string::npos) allowed += (allowed.empty() ? "" : ", ") + std::string(r.method);
      continue;
    }
    ApiCall call{request, method, std::move(*values), who, "api " + who + " (" + connection.peer + ")", body,
                 exports_, options_.uploads.store_dir};
    ApiAnswer answer = std::invoke(r.handler, *this, call);
    return json_response(answer.status, answer.body);
  }
  const std::string target = request.target.substr(0, request.target.find('?'));
  if (!allowed.empty()) {
    std::string header = allowed + (allowed.find("GET") != std::string::npos ? ", HEAD" : "");
    throw ApiError(405, request.method + " is not allowed on " + target + "; use " + allowed, {{"allow", header}});
  }
  throw ApiError(404, "no route " + target + "; see docs/api.md for the routes under /api/v1/");
}

ApiAnswer Api::healthz(ApiCall&) {
  auto up = std::chrono::duration_cast<std::chrono::seconds>(std::chrono::steady_clock::now() - started_).count();
  return {200, {{"status", "ok"}, {"version", options_.version}, {"uptime_seconds", up}}};
}

ApiAnswer Api::images(ApiCall&) {
  json images = json::array();
  for (const auto& i : exports_.with_store([](store::Store& s) { return s.images(); })) {
    images.push_back(store::image_json(i));
  }
  return {200, {{"images", images}}};
}

store::ImageInfo Api::image_info(const std::string& image) {
  check_image_name(image);
  try {
    return exports_.with_store([&](store::Store& s) { return s.image(image); });
  } catch (const store::NotFound& e) {
    throw ApiError(404, e.what());
  }
}

ApiAnswer Api::versions(ApiCall& c) {
  const std::string& image = c.value(0);
  store::ImageInfo info = image_info(image);
  json versions = json::array();
  for (const auto& v : exports_.with_store([&](store::Store& s) { return s.versions(image); })) {
    versions.push_back(version_json(v, info.active));
  }
  return {200, {{"image", image}, {"versions", versions}}};
}

ApiAnswer Api::version(ApiCall& c) {
  const std::string& image = c.value(0);
  check_image_name(image);
  int64_t n = version_number(c.value(1), "version");
  store::ImageInfo info = image_info(image);
  store::VersionInfo v;
  try {
    v = exports_.with_store([&](store::Store& s) { return s.version({image, n, false}); });
  } catch (const store::NotFound& e) {
    throw ApiError(404, e.what());
  }
  return {200, version_json(v, info.active)};
}

ApiAnswer Api::history(ApiCall& c) {
  const std::string& image = c.value(0);
  image_info(image);
  json history = json::array();
  for (const auto& a : exports_.with_store([&](store::Store& s) { return s.history(image); })) {
    history.push_back(store::activation_json(a));
  }
  json scheduled = json::array();
  for (const auto& s : exports_.with_store([&](store::Store& st) { return st.schedules(image, true); })) {
    scheduled.push_back(store::schedule_json(s));
  }
  return {200, {{"image", image}, {"history", history}, {"schedules", scheduled}}};
}

ApiAnswer Api::session_reset(ApiCall& c) {
  const std::string& image = c.value(0);
  const std::string& client = c.value(1);
  check_image_name(image);
  try {
    store::validate_client_name(client);
  } catch (const util::Error& e) {
    throw ApiError(400, e.what());
  }
  std::string name = image + "/" + client;
  if (!exports_.sessions().reset(name)) {
    std::string list;
    for (const auto& s : exports_.sessions().sessions())
      if (s->named()) list += (list.empty() ? "" : ", ") + s->name();
    throw ApiError(404, "no session " + name + " (sessions: " + (list.empty() ? std::string("none") : list) + ")");
  }
  util::log_line(c.who_log + ": reset session " + name + " (its write cache is dropped; the next boot starts fresh)");
  return {200, {{"image", image}, {"client", client}, {"reset", true}}};
}

ApiAnswer Api::clients(ApiCall&) {
  json clients = json::array();
  exports_.with_store([&](store::Store& s) {
    for (const auto& c : s.clients()) clients.push_back(store::client_json(s, c));
  });
  return {200, {{"clients", clients}}};
}

ApiAnswer Api::sessions(ApiCall&) {
  json sessions = json::array();
  auto all = exports_.sessions().sessions();
  std::sort(all.begin(), all.end(), [](const auto& a, const auto& b) { return a->name() < b->name(); });
  for (const auto& s : all) {
    auto slash = s->name().find('/');
    auto since = s->connected_since();
    sessions.push_back({{"export", s->named() ? s->name() : s->pin().image},
                        {"session", s->name()},
                        {"image", s->pin().image},
                        {"client", s->named() && slash != std::string::npos ? json(s->name().substr(slash + 1))
                                                                            : json(nullptr)},
                        {"version", s->pin().version},
                        {"cache_bytes", s->cache().data_bytes()},
                        {"connections", s->connections()},
                        {"started_at", unix_seconds(s->started())},
                        {"connected_since", since ? json(unix_seconds(*since)) : json(nullptr)}});
  }
  return {200, {{"sessions", sessions}}};
}

ApiAnswer Api::status(ApiCall&) {
  json images = json::array();
  for (const auto& i : exports_.with_store([](store::Store& s) { return s.images(); })) {
    images.push_back({{"name", i.name}, {"active", opt(i.active)}, {"previous", opt(i.previous)}, {"latest", opt(i.latest)}});
  }
  uint64_t cache = 0;
  auto sessions = exports_.sessions().sessions();
  for (const auto& s : sessions) cache += s->cache().data_bytes();
  json scheduled = json::array();
  for (const auto& s : exports_.with_store([](store::Store& st) { return st.schedules(std::nullopt, false); })) {
    scheduled.push_back(store::schedule_json(s));
  }
  return {200, {{"images", images},
                {"schedules", scheduled},
                {"sessions", sessions.size()},
                {"cache_bytes", cache},
                {"uploads", uploads_ ? uploads_->open_count() : 0}}};
}

// Uploads exist whenever the API is on (the constructor makes them with
// the tokens), so a handler reaching here always has them.
ApiAnswer Api::upload_create(ApiCall& c) {
  const std::string& image = c.value(0);
  check_image_name(image);
  UploadDeclaration d = UploadDeclaration::from_json(image, parse_json_body(c.body));
  Uploads::Created created = uploads_->create(d, c.who);
  if (created.exists) {
    store::ImageInfo info = image_info(image);
    return {200, {{"exists", true}, {"version", version_json(*created.exists, info.active)}}};
  }
  return {created.status, created.body};
}

ApiAnswer Api::upload_state(ApiCall& c) { return {200, uploads_->state(c.value(0))}; }

ApiAnswer Api::upload_abort(ApiCall& c) {
  const std::string& id = c.value(0);
  uploads_->abort(id);
  util::log_line(c.who_log + ": upload " + id + " aborted");
  return {200, {{"upload", id}, {"aborted", true}}};
}

ApiAnswer Api::upload_disk(ApiCall& c) {
  const std::string& id = c.value(0);
  auto offset = http::query_param(c.request.target, "offset");
  if (!offset || offset->empty() || offset->size() > 19 || !std::all_of(offset->begin(), offset->end(), ::isdigit)) {
    throw ApiError(400, "PUT " + api::path(api::route::kUploadDisk, {id}) + " needs ?offset=K, K the bytes received so far");
  }
  return {200, uploads_->append(id, std::stoull(*offset), c.body)};
}

ApiAnswer Api::upload_artifact(ApiCall& c) { return {200, uploads_->put_artifact(c.value(0), c.value(1), c.body)}; }

ApiAnswer Api::upload_commit(ApiCall& c) {
  Uploads::Committed committed = uploads_->commit(c.value(0), c.who);
  store::ImageInfo info = exports_.with_store([&](store::Store& s) { return s.image(committed.version.image); });
  return {committed.status, {{"version", version_json(committed.version, info.active)}}};
}

}  // namespace bootfleet::bootsrv
