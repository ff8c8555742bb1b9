// Readers of the fields of a control-API JSON body, one per kind of field,
// shared by every route that takes a body (uploads, publish, groups,
// maintenance …) so that the same mistake gets the same words everywhere.
//
// Design note. A refusal names the field and the kind of value found
// (json_kind: "a string", "a negative number" …), never the value itself:
// bodies come from the network, and nothing the server says back (or logs,
// or the status page renders) should repeat what it refused. Each reader
// throws ApiError(400); "missing" and null are the same for optional fields.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>

namespace bootfleet::api {

// "an array", "a string", "a negative number"...: what a refused value was,
// for messages that must not echo it.
std::string json_kind(const nlohmann::json& value);

// The field, which must be there (any value, even null).
const nlohmann::json& required_field(const nlohmann::json& body, const char* name);
// A string, or nullopt when missing or null.
std::optional<std::string> optional_string(const nlohmann::json& body, const char* name);
// A string that must be there.
std::string required_string(const nlohmann::json& body, const char* name);
// A positive integer (version numbers), or nullopt when missing or null.
std::optional<int64_t> optional_positive(const nlohmann::json& body, const char* name);
// A positive integer that must be there.
int64_t required_positive(const nlohmann::json& body, const char* name);
// A number of bytes (0 or more) that must be there.
uint64_t required_bytes(const nlohmann::json& body, const char* name);
// true or false; false when missing or null.
bool optional_flag(const nlohmann::json& body, const char* name);

}  // namespace bootfleet::api
