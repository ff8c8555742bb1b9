#include "api/fields.h"

#include "api/error.h"

namespace bootfleet::api {

using nlohmann::json;

std::string json_kind(const json& v) {
  switch (v.type()) {
    case json::value_t::null: return "null";
    case json::value_t::object: return "an object";
    case json::value_t::array: return "an array";
    case json::value_t::string: return "a string";
    case json::value_t::boolean: return "true or false";
    case json::value_t::number_integer:
      return v.get<int64_t>() < 0 ? "a negative number" : v.get<int64_t>() == 0 ? "zero" : "a number";
    case json::value_t::number_unsigned:
      return v.get<uint64_t>() == 0 ? "zero" : v.get<uint64_t>() > INT64_MAX ? "a number past 2^63" : "a number";
    case json::value_t::number_float: return "a number with a fraction or exponent";
    case json::value_t::binary: return "binary data";
    case json::value_t::discarded: return "nothing";
  }
  return "something else";
}

namespace {

const json* present(const json& body, const char* name) {
  if (!body.is_object()) return nullptr;
  auto it = body.find(name);
  return it == body.end() || it->is_null() ? nullptr : &*it;
}

std::string the_field(const char* name) { return std::string("the field '") + name + "'"; }

}  // namespace

const json& required_field(const json& body, const char* name) {
  if (!body.is_object() || !body.contains(name)) throw ApiError(400, the_field(name) + " is missing");
  return body.at(name);
}

std::optional<std::string> optional_string(const json& body, const char* name) {
  const json* v = present(body, name);
  if (!v) return std::nullopt;
  if (!v->is_string()) throw ApiError(400, the_field(name) + " must be a string, not " + json_kind(*v));
  return v->get<std::string>();
}

std::string required_string(const json& body, const char* name) {
  auto v = optional_string(body, name);
  if (!v) throw ApiError(400, the_field(name) + " (a string) is missing");
  return *v;
}

std::optional<int64_t> optional_positive(const json& body, const char* name) {
  const json* v = present(body, name);
  if (!v) return std::nullopt;
  if (!v->is_number_integer() || v->get<int64_t>() < 1) {
    throw ApiError(400, the_field(name) + " must be a positive integer, not " + json_kind(*v));
  }
  return v->get<int64_t>();
}

int64_t required_positive(const json& body, const char* name) {
  required_field(body, name);
  auto v = optional_positive(body, name);
  if (!v) throw ApiError(400, the_field(name) + " must be a positive integer, not null");
  return *v;
}

uint64_t required_bytes(const json& body, const char* name) {
  const json& v = required_field(body, name);
  if (!v.is_number_integer() || v.get<int64_t>() < 0) {
    throw ApiError(400, the_field(name) + " must be a number of bytes, not " + json_kind(v));
  }
  return v.get<uint64_t>();
}

bool optional_flag(const json& body, const char* name) {
  const json* v = present(body, name);
  if (!v) return false;
  if (!v->is_boolean()) throw ApiError(400, the_field(name) + " must be true or false, not " + json_kind(*v));
  return v->get<bool>();
}

}  // namespace bootfleet::api
