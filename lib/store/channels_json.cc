#include "store/channels_json.h"

#include "util/time.h"

namespace bootfleet::store {

using nlohmann::json;

namespace {
json opt(const std::optional<int64_t>& v) { return v ? json(*v) : json(nullptr); }
json opt(const std::optional<std::string>& v) { return v ? json(*v) : json(nullptr); }
}  // namespace

json channel_json(const ChannelInfo& c) {
  return {{"image", c.image}, {"channel", c.name}, {"version", opt(c.version)}, {"previous", opt(c.previous)}};
}

json group_json(const GroupInfo& g) {
  return {{"name", g.name}, {"image", g.image},   {"channel", g.channel},
          {"pin", opt(g.pin)}, {"members", g.members}, {"created", util::format_utc(g.created_at)}};
}

json schedule_json(const Schedule& s) {
  return {{"id", s.id},
          {"image", s.image},
          {"version", s.version},
          {"channel", s.channel},
          {"at", util::format_utc_ms(s.at_ms)},
          {"at_ms", s.at_ms},
          {"by", s.created_by},
          {"created", util::format_utc_ms(s.created_ms)},
          {"state", s.state},
          {"done", s.done_ms ? json(util::format_utc_ms(*s.done_ms)) : json(nullptr)},
          {"result", opt(s.result)}};
}

json resolution_json(const BootResolution& r) {
  return {{"image", r.image}, {"version", r.version}, {"source", r.source},
          {"channel", r.channel}, {"group", opt(r.group)}, {"describe", r.describe()}};
}

json activation_json(const Activation& a) {
  return {{"id", a.id},
          {"action", a.action},
          {"channel", a.channel},
          {"version", a.version},
          {"previous", opt(a.previous)},
          {"at", util::format_utc_ms(a.at_ms)},
          {"at_ms", a.at_ms},
          {"by", a.by}};
}

json activation_result_json(const std::string& image, const std::string& channel, const ActivationResult& r) {
  std::string ref = image + "@" + std::to_string(r.now);
  const bool production = channel == kProductionChannel;
  std::string message = !r.changed ? ref + (production ? " was already active" : " was already on channel " + channel) +
                                         "; nothing changed"
                                   : ref + (production ? " is active" : " is on channel " + channel) +
                                         (r.before ? " (was @" + std::to_string(*r.before) + ")" : std::string()) +
                                         "; new boots get it, running clients keep their version";
  return {{"image", image},      {"channel", channel},         {"version", r.now}, {"active", r.now},
          {"previous", opt(r.before)}, {"changed", r.changed}, {"message", message}};
}

void add_placement_json(const ClientInfo& c, json& j) {
  j["group"] = opt(c.group);
  j["pin"] = opt(c.pin);
}

}  // namespace bootfleet::store
