// The control API's routes for channels, groups, pins and scheduled
// publishes (docs/api.md, docs/channels.md), and the housekeeping step that
// applies due schedules.
//
// Which method and path reaches each handler is the route table's
// (Api::routes in api.cc; docs/api.md, SYNOPSIS).
//
// Every mutation is recorded as "api:TOKEN-NAME". Errors: 400 for a body
// that is wrong in itself, 404 for a thing that does not exist (naming those
// that do), 409 for a change the store refuses in its present state.
#include <algorithm>

#include "api.h"
#include "api/fields.h"
#include "api_error.h"
#include "json_body.h"
#include "store/channels_json.h"
#include "store/records_json.h"
#include "util/log.h"
#include "util/mac.h"

namespace bootfleet::bootsrv {

using nlohmann::json;

namespace {

// A name from the body (channel, group, image), checked before anything
// repeats it: a refusal names the field, never the value (json_body.h).
std::optional<std::string> json_name(const json& body, const char* name, void (*validate)(const std::string&),
                                     const char* rule) {
  auto v = api::optional_string(body, name);
  if (!v) return v;
  try {
    validate(*v);
  } catch (const util::Error&) {
    throw ApiError(400, std::string("the field '") + name + "' is not " + rule);
  }
  return v;
}
constexpr const char* kNameRule = "a name (1-64 letters, digits, '.', '_', '-', from a letter or digit)";

void check_name(const std::string& name, void (*validate)(const std::string&)) {
  try {
    validate(name);
  } catch (const util::Error& e) {
    throw ApiError(400, e.what());
  }
}

// "lab@2 (was @1)", "lab@3 (was @2) on channel test": the log's words for a change.
std::string change_text(const std::string& image, const std::string& channel, const store::ActivationResult& r) {
  return image + "@" + std::to_string(r.now) + (r.before ? " (was @" + std::to_string(*r.before) + ")" : std::string()) +
         (channel == store::kProductionChannel ? std::string() : " on channel " + channel);
}

}  // namespace

namespace {

// Runs `fn` on the shared store connection: a thing the store does not
// have becomes 404, another refusal 409.
template <class Fn>
auto guarded(ApiCall& c, Fn&& fn) {
  try {
    return c.exports.with_store(fn);
  } catch (const ApiError&) {
    throw;
  } catch (const store::NotFound& e) {
    throw ApiError(404, e.what());
  } catch (const util::Error& e) {
    throw ApiError(409, e.what());
  }
}

json body_json(ApiCall& c) {
  json j = parse_json_body_text(c.body.read_all(kMaxJsonBody));
  if (!j.is_object()) throw ApiError(400, "the request body must be a JSON object");
  return j;
}

const std::string& image_of(ApiCall& c) {
  check_name(c.value(0), store::validate_image_name);
  return c.value(0);
}

std::string channel_of(const json& j) {
  return json_name(j, "channel", store::validate_channel_name, kNameRule).value_or(store::kProductionChannel);
}

}  // namespace

ApiAnswer Api::channels(ApiCall& c) {
  const std::string& image = image_of(c);
  json list = json::array();
  for (const auto& ch : guarded(c, [&](store::Store& s) { return s.channels(image); })) list.push_back(store::channel_json(ch));
  return {200, json{{"image", image}, {"channels", list}}};
}

ApiAnswer Api::promote(ApiCall& c) {
  const std::string& image = image_of(c);
  json j = body_json(c);
  auto from = json_name(j, "from", store::validate_channel_name, kNameRule);
  auto to = json_name(j, "to", store::validate_channel_name, kNameRule);
  if (!from) throw ApiError(400, "the field 'from' (a channel, e.g. \"test\") is missing");
  std::string dest = to.value_or(store::kProductionChannel);
  auto r = guarded(c, [&](store::Store& s) { return s.promote(image, *from, dest, "api:" + c.who); });
  if (r.changed) util::log_line(c.who_log + ": promote from " + *from + ": " + change_text(image, dest, r));
  return {200, store::activation_result_json(image, dest, r)};
}

ApiAnswer Api::rollback(ApiCall& c) {
  const std::string& image = image_of(c);
  json j = body_json(c);
  std::string channel = channel_of(j);
  auto to = api::optional_positive(j, "to");
  auto r = guarded(c, [&](store::Store& s) { return s.rollback_channel(image, channel, to, "api:" + c.who); });
  if (r.changed) util::log_line(c.who_log + ": rollback " + change_text(image, channel, r));
  return {200, store::activation_result_json(image, channel, r)};
}

ApiAnswer Api::publish(ApiCall& c) {
  const std::string& image = image_of(c);
  const std::string by = "api:" + c.who;
  json j = body_json(c);
  std::string channel = channel_of(j);
  auto n = api::optional_positive(j, "version");
  if (!n) throw ApiError(400, "the field 'version' (a version number) is missing");
  bool create = api::optional_flag(j, "new_channel");
  if (auto when = api::optional_string(j, "at")) {
    int64_t now = std::chrono::duration_cast<std::chrono::milliseconds>(
                      std::chrono::system_clock::now().time_since_epoch()).count();
    int64_t at_ms = 0;
    try {
      at_ms = store::parse_schedule_time(*when, now, "at");
    } catch (const util::Error&) {
      throw ApiError(400, "the field 'at' is not a time; use 2026-11-26T19:00:00Z, '2026-11-26 19:00' (UTC), "
                          "+90s, +15m, +2h, +1d or @UNIXSECONDS");
    }
    auto sch = guarded(c, [&](store::Store& s) { return s.add_schedule({image, n, false}, channel, at_ms, by, create); });
    util::log_line(c.who_log + ": scheduled #" + std::to_string(sch.id) + ": publish " + image + "@" +
                   std::to_string(*n) + " on " + channel + " at " + store::schedule_json(sch)["at"].get<std::string>());
    return {201, json{{"schedule", store::schedule_json(sch)}}};
  }
  auto r = guarded(c, [&](store::Store& s) { return s.publish_channel({image, n, false}, channel, by, create); });
  if (r.changed) util::log_line(c.who_log + ": publish " + change_text(image, channel, r));
  return {200, store::activation_result_json(image, channel, r)};
}

ApiAnswer Api::groups(ApiCall& c) {
  json list = json::array();
  for (const auto& g : guarded(c, [](store::Store& s) { return s.groups(); })) list.push_back(store::group_json(g));
  return {200, json{{"groups", list}}};
}

ApiAnswer Api::group_add(ApiCall& c) {
  json j = body_json(c);
  auto name = json_name(j, "name", store::validate_group_name, "a group name (1-64 letters, digits, '.', '_', '-'; not 'none')");
  auto image = json_name(j, "image", store::validate_image_name, "an image name");
  if (!name || !image) throw ApiError(400, "a group needs the fields 'name' and 'image'");
  std::string channel = channel_of(j);
  auto pin = api::optional_positive(j, "pin");
  auto g = guarded(c, [&](store::Store& s) { return s.add_group(*name, *image, channel, pin); });
  util::log_line(c.who_log + ": group " + g.name + " added (" + g.image + ", channel " + g.channel + ")");
  return {201, store::group_json(g)};
}

namespace {

const std::string& group_of(ApiCall& c) {
  check_name(c.value(0), store::validate_group_name);
  return c.value(0);
}

}  // namespace

ApiAnswer Api::group(ApiCall& c) {
  const std::string& name = group_of(c);
  return {200, store::group_json(guarded(c, [&](store::Store& s) { return s.group(name); }))};
}

ApiAnswer Api::group_remove(ApiCall& c) {
  const std::string& name = group_of(c);
  guarded(c, [&](store::Store& s) {
    s.remove_group(name);
    return 0;
  });
  util::log_line(c.who_log + ": group " + name + " removed");
  return {200, json{{"name", name}, {"removed", true}}};
}

ApiAnswer Api::group_change(ApiCall& c) {
  const std::string& name = group_of(c);
  json j = body_json(c);
  store::GroupChange change;
  change.image = json_name(j, "image", store::validate_image_name, "an image name");
  change.channel = json_name(j, "channel", store::validate_channel_name, kNameRule);
  if (j.contains("pin")) change.pin = api::optional_positive(j, "pin");
  auto g = guarded(c, [&](store::Store& s) { return s.set_group(name, change); });
  util::log_line(c.who_log + ": group " + g.name + " changed (" + g.image + ", channel " + g.channel +
                 (g.pin ? ", pinned @" + std::to_string(*g.pin) : std::string()) + ")");
  return {200, store::group_json(g)};
}

namespace {

const std::string& client_key(ApiCall& c) {
  const std::string& key = c.value(0);
  if (!util::parse_mac(key)) {
    try {
      store::validate_client_name(key);
    } catch (const util::Error&) {
      throw ApiError(400, "/api/v1/clients/KEY takes a MAC address or a client name (letters, digits, '.', '_', '-')");
    }
  }
  return key;
}

}  // namespace

ApiAnswer Api::client(ApiCall& c) {
  const std::string& key = client_key(c);
  return {200, guarded(c, [&](store::Store& s) { return store::client_json(s, s.client(key)); })};
}

ApiAnswer Api::client_change(ApiCall& c) {
  const std::string& key = client_key(c);
  json j = body_json(c);
  if (!j.contains("group") && !j.contains("pin")) {
    throw ApiError(400, "nothing to change: give 'group' (a name, or null) and/or 'pin' (a version, or null)");
  }
  std::optional<std::string> group = json_name(j, "group", store::validate_group_name, "a group name, or null");
  std::optional<int64_t> pin = api::optional_positive(j, "pin");
  guarded(c, [&](store::Store& s) {
    if (j.contains("group")) s.set_client_group(key, group);
    if (j.contains("pin")) s.set_client_pin(key, pin);
    return 0;
  });
  util::log_line(c.who_log + ": client " + key + " changed (group, pin)");
  return client(c);
}

ApiAnswer Api::schedules(ApiCall& c) {
  auto all = http::query_param(c.request.target, "all");
  bool every = all && (*all == "1" || *all == "true");
  json list = json::array();
  for (const auto& s : guarded(c, [&](store::Store& st) { return st.schedules(std::nullopt, every); })) {
    list.push_back(store::schedule_json(s));
  }
  return {200, json{{"schedules", list}}};
}

ApiAnswer Api::schedule_cancel(ApiCall& c) {
  const std::string& id = c.value(0);
  if (id.empty() || id.size() > 18 || !std::all_of(id.begin(), id.end(), ::isdigit)) {
    throw ApiError(400, "schedule ids are numbers (see GET /api/v1/schedules)");
  }
  auto s = guarded(c, [&](store::Store& st) { return st.cancel_schedule(std::stoll(id), "api:" + c.who); });
  util::log_line(c.who_log + ": schedule #" + id + " cancelled");
  return {200, json{{"schedule", store::schedule_json(s)}}};
}

void apply_due_schedules(serve::StoreExports& exports) {
  int64_t now = std::chrono::duration_cast<std::chrono::milliseconds>(
                    std::chrono::system_clock::now().time_since_epoch()).count();
  std::vector<store::Schedule> done;
  try {
    done = exports.with_store([&](store::Store& s) { return s.apply_due_schedules(now); });
  } catch (const util::Error& e) {
    util::log_line(std::string("scheduled publishes not applied (tried again at the next housekeeping): ") + e.what());
    return;
  }
  for (const auto& s : done) {
    util::log_line("schedule #" + std::to_string(s.id) + " (by " + s.created_by + ") " + s.state + ": " +
                   s.result.value_or(""));
  }
}

}  // namespace bootfleet::bootsrv
