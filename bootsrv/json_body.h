// JSON request bodies of the control API (publish, rollback, upload
// declarations), refused before they can cost more than their size; and
// the JSON answers.
//
// Design note. nlohmann::json parses iteratively, but dump() and the
// destructor of older releases recurse once per nesting level: 100 000
// nested '[' in a 200 KB body was enough to overflow a connection thread's
// stack and take the whole server (every session and write cache) down.
// So the nesting is measured by a scan over the bytes (strings and their
// escapes skipped) before the parser sees them, and nothing the API says
// back ever contains a value it refused: errors name the field, the kind of
// value found (json_kind) and what would be right, never the value itself,
// so a peer cannot make the server echo (or render) what it sent.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

#include "api/fields.h"
#include "http/server.h"

namespace bootfleet::bootsrv {

// A JSON answer (the API's and the status page's): `body` and a newline,
// never cached.
http::Response json_response(int status, const nlohmann::json& body);

constexpr uint64_t kMaxJsonBody = 1 << 20;  // bytes
constexpr int kMaxJsonDepth = 16;           // arrays and objects inside one another

// The deepest nesting of arrays and objects in `text`, scanning no further
// than one level past `stop_at` (a value past it means "too deep").
int json_depth(std::string_view text, int stop_at = kMaxJsonDepth);

// Parses a request body: an empty body is {}. Throws ApiError 413 past
// kMaxJsonBody bytes, 400 past kMaxJsonDepth levels or when it is not JSON
// (naming the byte offset of the error, not the bytes).
nlohmann::json parse_json_body_text(std::string_view text);

// What a refused value was, for messages that must not echo it (api/fields.h).
using api::json_kind;

}  // namespace bootfleet::bootsrv
