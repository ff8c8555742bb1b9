#include "maintenance_api.h"

#include "api/fields.h"
#include "api_error.h"
#include "json_body.h"
#include "serve/maintenance.h"
#include "store/version_json.h"
#include "util/log.h"
#include "util/size.h"

namespace bootfleet::bootsrv {

using nlohmann::json;

namespace {

json session_json(serve::StoreExports& exports, const store::MaintenanceInfo& m) {
  auto s = exports.sessions().find(store::maintenance_session_name(m));
  return serve::maintenance_json(m, s.get(), /*known=*/true);
}

// The image of the path, which must exist (404 naming those there are).
const std::string& known_image(ApiCall& c) {
  const std::string& image = c.value(0);
  try {
    store::validate_image_name(image);  // a name no image can have: not there either
  } catch (const util::Error& e) {
    throw ApiError(404, e.what());
  }
  try {
    c.exports.with_store([&](store::Store& s) { return s.image(image); });
  } catch (const store::NotFound& e) {
    throw ApiError(404, e.what());
  }
  return image;
}

// The image's session record, which must exist (404).
store::MaintenanceInfo session_of(ApiCall& c, const std::string& image) {
  try {
    return c.exports.with_store([&](store::Store& s) { return s.maintenance(image); });
  } catch (const store::NotFound& e) {
    throw ApiError(404, e.what());
  }
}

json body_object(ApiCall& c) {
  json j = parse_json_body_text(c.body.read_all(kMaxJsonBody));
  if (!j.is_object()) throw ApiError(400, "the request body must be a JSON object");
  return j;
}

}  // namespace

ApiAnswer maintenance_list(ApiCall& c) {
  json list = json::array();
  for (const auto& m : c.exports.with_store([](store::Store& s) { return s.maintenance_sessions(); })) {
    list.push_back(session_json(c.exports, m));
  }
  return {200, {{"maintenance", list}}};
}

ApiAnswer maintenance_show(ApiCall& c) {
  const std::string& image = known_image(c);
  return {200, session_json(c.exports, session_of(c, image))};
}

ApiAnswer maintenance_commit(ApiCall& c) {
  const std::string& image = known_image(c);
  json j = body_object(c);
  serve::MaintenanceCommit options;
  options.message = api::required_string(j, "message");
  options.force = api::optional_flag(j, "force");
  options.publish = api::optional_flag(j, "publish");
  options.by = "api:" + c.who;
  session_of(c, image);
  serve::MaintenanceCommitResult r;
  try {
    auto writer = store::Store::open(c.store_dir);
    r = serve::commit_maintenance(*writer, c.exports.sessions(), image, options);
  } catch (const serve::MaintenanceBusy& e) {
    throw ApiError(409, e.what());
  } catch (const util::Error& e) {
    throw ApiError(409, e.what());
  }
  const auto& v = r.import.version;
  util::log_line("api " + c.who + ": committed the maintenance session of " + r.session.client + " on " + image +
                 "@" + std::to_string(r.session.base) + " as " + image + "@" + std::to_string(v.number) + " (" +
                 std::to_string(v.stored_bytes) + " bytes stored" + (options.publish ? ", published" : "") + ")");
  return {200,
          {{"session", serve::maintenance_json(r.session, nullptr, false)},
           {"version", store::version_json(v)},
           {"changed_blocks", r.import.changed_blocks},
           {"cache_bytes", r.cache_bytes},
           {"forced_connections", r.connections},
           {"published", options.publish}}};
}

ApiAnswer maintenance_discard(ApiCall& c) {
  const std::string& image = known_image(c);
  session_of(c, image);
  store::MaintenanceInfo m;
  try {
    auto writer = store::Store::open(c.store_dir);
    m = serve::discard_maintenance(*writer, &c.exports.sessions(), image);
  } catch (const util::Error& e) {
    throw ApiError(409, e.what());
  }
  util::log_line("api " + c.who + ": discarded the maintenance session of " + m.client + " on " + image + "@" +
                 std::to_string(m.base));
  return {200, {{"discarded", serve::maintenance_json(m, nullptr, false)}}};
}

ApiAnswer maintenance_start(ApiCall& c) {
  const std::string& image = known_image(c);
  json j = body_object(c);
  std::string client = api::required_string(j, "client");
  std::optional<int64_t> from = api::optional_positive(j, "from");
  store::MaintenanceInfo m;
  try {
    m = c.exports.with_store([&](store::Store& s) { return s.start_maintenance(image, client, from, "api:" + c.who); });
  } catch (const store::NotFound& e) {
    throw ApiError(404, e.what());  // the client or the version
  } catch (const util::Error& e) {
    throw ApiError(409, e.what());  // e.g. a session already there
  }
  util::log_line("api " + c.who + ": started a maintenance session of " + m.client + " on " + image + "@" +
                 std::to_string(m.base));
  return {201, session_json(c.exports, m)};
}

}  // namespace bootfleet::bootsrv
