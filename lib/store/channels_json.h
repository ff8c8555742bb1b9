// The JSON of channels, groups, schedules, resolutions and activations: one
// shape for `imgtool … --json` and the control API alike (docs/channels.md).
#pragma once

#include <nlohmann/json.hpp>

#include "store/store.h"

namespace bootfleet::store {

nlohmann::json channel_json(const ChannelInfo& c);
nlohmann::json group_json(const GroupInfo& g);
nlohmann::json schedule_json(const Schedule& s);
nlohmann::json resolution_json(const BootResolution& r);
nlohmann::json activation_json(const Activation& a);
// A publish, promote or rollback on `channel`: image, channel, version (and
// "active", its old name), previous, changed, message.
nlohmann::json activation_result_json(const std::string& image, const std::string& channel,
                                      const ActivationResult& r);
// The fields channels add to a client's JSON: group, pin.
void add_placement_json(const ClientInfo& c, nlohmann::json& j);

}  // namespace bootfleet::store
