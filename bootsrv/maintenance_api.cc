#include "maintenance_api.h"

#include "api_error.h"
#include "json_body.h"
#include "serve/maintenance.h"
#include "store/version_json.h"
#include "util/log.h"
#include "util/size.h"

namespace bootfleet::bootsrv {

using nlohmann::json;

namespace {

void allow(const std::string& method, const std::string& allowed, const std::string& path) {
  if (allowed.find(method) != std::string::npos) return;
  std::string header = allowed;
  if (allowed.find("GET") != std::string::npos) header += ", HEAD";
  throw ApiError(405, method + " is not allowed on " + path + "; use " + allowed, {{"allow", header}});
}

std::string string_field(const json& body, const char* name, bool required) {
  if (!body.contains(name) || body[name].is_null()) {
    if (required) throw ApiError(400, std::string("the field '") + name + "' (a string) is missing");
    return "";
  }
  if (!body[name].is_string()) {
    throw ApiError(400, std::string("the field '") + name + "' must be a string, not " + json_kind(body[name]));
  }
  return body[name].get<std::string>();
}

bool bool_field(const json& body, const char* name) {
  if (!body.contains(name) || body[name].is_null()) return false;
  if (!body[name].is_boolean()) {
    throw ApiError(400, std::string("the field '") + name + "' must be true or false, not " + json_kind(body[name]));
  }
  return body[name].get<bool>();
}

json session_json(serve::StoreExports& exports, const store::MaintenanceInfo& m) {
  auto s = exports.sessions().find(store::maintenance_session_name(m));
  return serve::maintenance_json(m, s.get(), /*known=*/true);
}

}  // namespace

std::optional<ApiAnswer> maintenance_route(serve::StoreExports& exports, const std::string& store_dir,
                                           const std::string& method, const std::vector<std::string>& p,
                                           const std::string& who, http::Body& body) {
  const std::string who_log = "api " + who;
  if (p.size() == 1 && p[0] == "maintenance") {
    allow(method, "GET", "/api/v1/maintenance");
    json list = json::array();
    for (const auto& m : exports.with_store([](store::Store& s) { return s.maintenance_sessions(); })) {
      list.push_back(session_json(exports, m));
    }
    return ApiAnswer{200, {{"maintenance", list}}};
  }
  if (p.size() < 3 || p[0] != "images" || p[2] != "maintenance" || p.size() > 4) return std::nullopt;
  const std::string& image = p[1];
  const std::string path = "/api/v1/images/" + image + "/maintenance";
  try {
    store::validate_image_name(image);
    exports.with_store([&](store::Store& s) { return s.image(image); });
  } catch (const util::Error& e) {
    throw ApiError(404, e.what());
  }
  if (p.size() == 4) {
    if (p[3] != "commit") return std::nullopt;
    allow(method, "POST", path + "/commit");
    json j = parse_json_body_text(body.read_all(kMaxJsonBody));
    if (!j.is_object()) throw ApiError(400, "the request body must be a JSON object");
    serve::MaintenanceCommit options;
    options.message = string_field(j, "message", true);
    options.force = bool_field(j, "force");
    options.publish = bool_field(j, "publish");
    options.by = "api:" + who;
    try {
      exports.with_store([&](store::Store& s) { return s.maintenance(image); });
    } catch (const util::Error& e) {
      throw ApiError(404, e.what());
    }
    serve::MaintenanceCommitResult r;
    try {
      auto writer = store::Store::open(store_dir);
      r = serve::commit_maintenance(*writer, exports.sessions(), image, options);
    } catch (const serve::MaintenanceBusy& e) {
      throw ApiError(409, e.what());
    } catch (const util::Error& e) {
      throw ApiError(409, e.what());
    }
    const auto& v = r.import.version;
    util::log_line(who_log + ": committed the maintenance session of " + r.session.client + " on " + image + "@" +
                   std::to_string(r.session.base) + " as " + image + "@" + std::to_string(v.number) + " (" +
                   std::to_string(v.stored_bytes) + " bytes stored" + (options.publish ? ", published" : "") + ")");
    return ApiAnswer{200,
                     {{"session", serve::maintenance_json(r.session, nullptr, false)},
                      {"version", store::version_json(v)},
                      {"changed_blocks", r.import.changed_blocks},
                      {"cache_bytes", r.cache_bytes},
                      {"forced_connections", r.connections},
                      {"published", options.publish}}};
  }
  allow(method, "GET, POST, DELETE", path);
  if (method == "GET") {
    try {
      auto m = exports.with_store([&](store::Store& s) { return s.maintenance(image); });
      return ApiAnswer{200, session_json(exports, m)};
    } catch (const util::Error& e) {
      throw ApiError(404, e.what());
    }
  }
  if (method == "DELETE") {
    store::MaintenanceInfo m;
    try {
      exports.with_store([&](store::Store& s) { return s.maintenance(image); });
    } catch (const util::Error& e) {
      throw ApiError(404, e.what());
    }
    try {
      auto writer = store::Store::open(store_dir);
      m = serve::discard_maintenance(*writer, &exports.sessions(), image);
    } catch (const util::Error& e) {
      throw ApiError(409, e.what());
    }
    util::log_line(who_log + ": discarded the maintenance session of " + m.client + " on " + image + "@" +
                   std::to_string(m.base));
    return ApiAnswer{200, {{"discarded", serve::maintenance_json(m, nullptr, false)}}};
  }
  json j = parse_json_body_text(body.read_all(kMaxJsonBody));
  if (!j.is_object()) throw ApiError(400, "the request body must be a JSON object");
  std::string client = string_field(j, "client", true);
  std::optional<int64_t> from;
  if (j.contains("from") && !j["from"].is_null()) {
    if (!j["from"].is_number_integer() || j["from"].get<int64_t>() < 1) {
      throw ApiError(400, "the field 'from' must be a positive integer (a version number), not " + json_kind(j["from"]));
    }
    from = j["from"].get<int64_t>();
  }
  store::MaintenanceInfo m;
  try {
    m = exports.with_store([&](store::Store& s) { return s.start_maintenance(image, client, from, "api:" + who); });
  } catch (const util::Error& e) {
    std::string text = e.what();
    // Something named that does not exist is 404; a session already there is a conflict.
    bool missing = text.find("no client") != std::string::npos || text.find("no such version") != std::string::npos;
    throw ApiError(missing ? 404 : 409, text);
  }
  util::log_line(who_log + ": started a maintenance session of " + m.client + " on " + image + "@" +
                 std::to_string(m.base));
  return ApiAnswer{201, session_json(exports, m)};
}

}  // namespace bootfleet::bootsrv
