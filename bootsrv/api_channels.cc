// The control API's routes for channels, groups, pins and scheduled
// publishes (docs/api.md, docs/channels.md), and the housekeeping step that
// applies due schedules.
//
//   POST   /api/v1/images/IMAGE/publish   {"version":N, "channel":"test", "at":"+1h", "new_channel":false}
//   POST   /api/v1/images/IMAGE/rollback  {"to":N, "channel":"test"}
//   POST   /api/v1/images/IMAGE/promote   {"from":"test", "to":"production"}
//   GET    /api/v1/images/IMAGE/channels
//   GET    /api/v1/groups                 POST /api/v1/groups {"name","image","channel","pin"}
//   GET    /api/v1/groups/NAME            POST (change) and DELETE
//   GET    /api/v1/clients/KEY            POST {"group": NAME|null, "pin": N|null}
//   GET    /api/v1/schedules[?all=1]      DELETE /api/v1/schedules/ID
//
// Every mutation is recorded as "api:TOKEN-NAME". Errors: 400 for a body
// that is wrong in itself, 404 for a thing that does not exist (naming those
// that do), 409 for a change the store refuses in its present state.
#include <algorithm>

#include "api.h"
#include "api_error.h"
#include "json_body.h"
#include "store/channels_json.h"
#include "util/log.h"
#include "util/mac.h"

namespace bootfleet::bootsrv {

using nlohmann::json;

namespace {

const json& field(const json& body, const char* name) {
  static const json null = nullptr;
  auto it = body.find(name);
  return it == body.end() ? null : *it;
}

std::optional<std::string> json_string(const json& body, const char* name) {
  const json& v = field(body, name);
  if (v.is_null()) return std::nullopt;
  if (!v.is_string()) throw ApiError(400, std::string("the field '") + name + "' must be a string, not " + json_kind(v));
  return v.get<std::string>();
}

std::optional<int64_t> json_number(const json& body, const char* name) {
  const json& v = field(body, name);
  if (v.is_null()) return std::nullopt;
  if (!v.is_number_integer() || v.get<int64_t>() < 1) {
    throw ApiError(400, std::string("the field '") + name + "' must be a positive integer, not " + json_kind(v));
  }
  return v.get<int64_t>();
}

bool json_bool(const json& body, const char* name) {
  const json& v = field(body, name);
  if (v.is_null()) return false;
  if (!v.is_boolean()) throw ApiError(400, std::string("the field '") + name + "' must be true or false, not " + json_kind(v));
  return v.get<bool>();
}

// A name from the body (channel, group, image), checked before anything
// repeats it: a refusal names the field, never the value (json_body.h).
std::optional<std::string> json_name(const json& body, const char* name, void (*validate)(const std::string&),
                                     const char* rule) {
  auto v = json_string(body, name);
  if (!v) return v;
  try {
    validate(*v);
  } catch (const util::Error&) {
    throw ApiError(400, std::string("the field '") + name + "' is not " + rule);
  }
  return v;
}
constexpr const char* kNameRule = "a name (1-64 letters, digits, '.', '_', '-', from a letter or digit)";

// A store refusal: 404 when it says something does not exist, else 409.
ApiError refusal(const util::Error& e) {
  std::string m = e.what();
  bool missing = m.find("no image '") != std::string::npos || m.find("no group '") != std::string::npos ||
                 m.find("no client '") != std::string::npos || m.find("no channel '") != std::string::npos ||
                 m.find("no schedule #") != std::string::npos || m.find("no such version") != std::string::npos;
  return ApiError(missing ? 404 : 409, m);
}

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

std::optional<std::pair<int, json>> Api::route_channels(const std::string& method, const std::string& target,
                                                        const std::vector<std::string>& p, const std::string& who,
                                                        const std::string& who_log, http::Body& body) {
  const std::string by = "api:" + who;
  auto need = [&](const std::string& allowed) {
    std::string m = method == "HEAD" ? "GET" : method;
    if (allowed.find(m) == std::string::npos || m.empty()) {
      throw ApiError(405, method + " is not allowed on " + target.substr(0, target.find('?')) + "; use " + allowed,
                     {{"allow", allowed}});
    }
    return m;
  };
  auto body_json = [&] {
    json j = parse_json_body_text(body.read_all(kMaxJsonBody));
    if (!j.is_object()) throw ApiError(400, "the request body must be a JSON object");
    return j;
  };
  auto store = [&](auto&& fn) {
    try {
      return exports_.with_store(fn);
    } catch (const ApiError&) {
      throw;
    } catch (const util::Error& e) {
      throw refusal(e);
    }
  };

  if (p.size() == 3 && p[0] == "images" && (p[2] == "publish" || p[2] == "rollback" || p[2] == "promote" ||
                                            p[2] == "channels")) {
    const std::string& image = p[1];
    check_name(image, store::validate_image_name);
    if (p[2] == "channels") {
      need("GET");
      json list = json::array();
      for (const auto& c : store([&](store::Store& s) { return s.channels(image); })) list.push_back(store::channel_json(c));
      return std::pair{200, json{{"image", image}, {"channels", list}}};
    }
    need("POST");
    json j = body_json();
    if (p[2] == "promote") {
      auto from = json_name(j, "from", store::validate_channel_name, kNameRule);
      auto to = json_name(j, "to", store::validate_channel_name, kNameRule);
      if (!from) throw ApiError(400, "the field 'from' (a channel, e.g. \"test\") is missing");
      std::string dest = to.value_or(store::kProductionChannel);
      auto r = store([&](store::Store& s) { return s.promote(image, *from, dest, by); });
      if (r.changed) util::log_line(who_log + ": promote from " + *from + ": " + change_text(image, dest, r));
      return std::pair{200, store::activation_result_json(image, dest, r)};
    }
    std::string channel = json_name(j, "channel", store::validate_channel_name, kNameRule).value_or(store::kProductionChannel);
    if (p[2] == "rollback") {
      auto to = json_number(j, "to");
      auto r = store([&](store::Store& s) { return s.rollback_channel(image, channel, to, by); });
      if (r.changed) util::log_line(who_log + ": rollback " + change_text(image, channel, r));
      return std::pair{200, store::activation_result_json(image, channel, r)};
    }
    auto n = json_number(j, "version");
    if (!n) throw ApiError(400, "the field 'version' (a version number) is missing");
    bool create = json_bool(j, "new_channel");
    if (auto when = json_string(j, "at")) {
      int64_t now = std::chrono::duration_cast<std::chrono::milliseconds>(
                        std::chrono::system_clock::now().time_since_epoch()).count();
      int64_t at_ms = 0;
      try {
        at_ms = store::parse_schedule_time(*when, now, "at");
      } catch (const util::Error&) {
        throw ApiError(400, "the field 'at' is not a time; use 2026-11-26T19:00:00Z, '2026-11-26 19:00' (UTC), "
                            "+90s, +15m, +2h, +1d or @UNIXSECONDS");
      }
      auto sch = store([&](store::Store& s) { return s.add_schedule({image, n, false}, channel, at_ms, by, create); });
      util::log_line(who_log + ": scheduled #" + std::to_string(sch.id) + ": publish " + image + "@" +
                     std::to_string(*n) + " on " + channel + " at " + store::schedule_json(sch)["at"].get<std::string>());
      return std::pair{201, json{{"schedule", store::schedule_json(sch)}}};
    }
    auto r = store([&](store::Store& s) { return s.publish_channel({image, n, false}, channel, by, create); });
    if (r.changed) util::log_line(who_log + ": publish " + change_text(image, channel, r));
    return std::pair{200, store::activation_result_json(image, channel, r)};
  }

  if (p.size() >= 1 && p[0] == "groups") {
    if (p.size() == 1) {
      if (need("GET, POST") == "GET") {
        json list = json::array();
        for (const auto& g : store([](store::Store& s) { return s.groups(); })) list.push_back(store::group_json(g));
        return std::pair{200, json{{"groups", list}}};
      }
      json j = body_json();
      auto name = json_name(j, "name", store::validate_group_name, "a group name (1-64 letters, digits, '.', '_', '-'; not 'none')");
      auto image = json_name(j, "image", store::validate_image_name, "an image name");
      if (!name || !image) throw ApiError(400, "a group needs the fields 'name' and 'image'");
      std::string channel = json_name(j, "channel", store::validate_channel_name, kNameRule).value_or(store::kProductionChannel);
      auto pin = json_number(j, "pin");
      auto g = store([&](store::Store& s) { return s.add_group(*name, *image, channel, pin); });
      util::log_line(who_log + ": group " + g.name + " added (" + g.image + ", channel " + g.channel + ")");
      return std::pair{201, store::group_json(g)};
    }
    if (p.size() == 2) {
      const std::string& name = p[1];
      check_name(name, store::validate_group_name);
      std::string m = need("GET, POST, DELETE");
      if (m == "GET") return std::pair{200, store::group_json(store([&](store::Store& s) { return s.group(name); }))};
      if (m == "DELETE") {
        store([&](store::Store& s) {
          s.remove_group(name);
          return 0;
        });
        util::log_line(who_log + ": group " + name + " removed");
        return std::pair{200, json{{"name", name}, {"removed", true}}};
      }
      json j = body_json();
      store::GroupChange change;
      change.image = json_name(j, "image", store::validate_image_name, "an image name");
      change.channel = json_name(j, "channel", store::validate_channel_name, kNameRule);
      if (j.contains("pin")) change.pin = json_number(j, "pin");
      auto g = store([&](store::Store& s) { return s.set_group(name, change); });
      util::log_line(who_log + ": group " + g.name + " changed (" + g.image + ", channel " + g.channel +
                     (g.pin ? ", pinned @" + std::to_string(*g.pin) : std::string()) + ")");
      return std::pair{200, store::group_json(g)};
    }
  }

  if (p.size() == 2 && p[0] == "clients") {
    const std::string& key = p[1];
    if (!util::parse_mac(key)) {
      try {
        store::validate_client_name(key);
      } catch (const util::Error&) {
        throw ApiError(400, "/api/v1/clients/KEY takes a MAC address or a client name (letters, digits, '.', '_', '-')");
      }
    }
    std::string m = need("GET, POST");
    if (m == "POST") {
      json j = body_json();
      if (!j.contains("group") && !j.contains("pin")) {
        throw ApiError(400, "nothing to change: give 'group' (a name, or null) and/or 'pin' (a version, or null)");
      }
      std::optional<std::string> group = json_name(j, "group", store::validate_group_name, "a group name, or null");
      std::optional<int64_t> pin = json_number(j, "pin");
      store([&](store::Store& s) {
        if (j.contains("group")) s.set_client_group(key, group);
        if (j.contains("pin")) s.set_client_pin(key, pin);
        return 0;
      });
      util::log_line(who_log + ": client " + key + " changed (group, pin)");
    }
    json c = store([&](store::Store& s) {
      store::ClientInfo info = s.client(key);
      json out = {{"mac", info.mac}, {"name", info.name}, {"image", info.image}};
      store::add_placement_json(info, out);
      try {
        out["boots"] = store::resolution_json(s.resolve_boot(info));
      } catch (const util::Error& e) {
        out["boots"] = nullptr;
        out["boot_error"] = e.what();
      }
      return out;
    });
    return std::pair{200, c};
  }

  if (p.size() >= 1 && p[0] == "schedules") {
    if (p.size() == 1) {
      need("GET");
      auto all = http::query_param(target, "all");
      bool every = all && (*all == "1" || *all == "true");
      json list = json::array();
      for (const auto& s : store([&](store::Store& st) { return st.schedules(std::nullopt, every); })) {
        list.push_back(store::schedule_json(s));
      }
      return std::pair{200, json{{"schedules", list}}};
    }
    if (p.size() == 2) {
      need("DELETE");
      const std::string& id = p[1];
      if (id.empty() || id.size() > 18 || !std::all_of(id.begin(), id.end(), ::isdigit)) {
        throw ApiError(400, "schedule ids are numbers (see GET /api/v1/schedules)");
      }
      auto s = store([&](store::Store& st) { return st.cancel_schedule(std::stoll(id), by); });
      util::log_line(who_log + ": schedule #" + id + " cancelled");
      return std::pair{200, json{{"schedule", store::schedule_json(s)}}};
    }
  }
  return std::nullopt;
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
