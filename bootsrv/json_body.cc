#include "json_body.h"

#include <cstdint>

#include "api_error.h"

namespace bootfleet::bootsrv {

http::Response json_response(int status, const nlohmann::json& body) {
  http::Response r;
  r.status = status;
  r.content_type = "application/json";
  r.body = body.dump() + "\n";
  r.headers.emplace_back("Cache-Control", "no-store");
  return r;
}

using nlohmann::json;

int json_depth(std::string_view text, int stop_at) {
  int depth = 0, deepest = 0;
  bool in_string = false, escaped = false;
  for (char c : text) {
    if (in_string) {
      if (escaped) escaped = false;
      else if (c == '\\') escaped = true;
      else if (c == '"') in_string = false;
      continue;
    }
    switch (c) {
      case '"': in_string = true; break;
      case '[':
      case '{':
        if (++depth > deepest) deepest = depth;
        if (deepest > stop_at) return deepest;
        break;
      case ']':
      case '}':
        if (depth > 0) --depth;  // unbalanced: the parser says so
        break;
      default: break;
    }
  }
  return deepest;
}

json parse_json_body_text(std::string_view text) {
  if (text.size() > kMaxJsonBody) {
    throw ApiError(413, "the request body has " + std::to_string(text.size()) + " bytes; a JSON body may have up to " +
                            std::to_string(kMaxJsonBody));
  }
  if (text.empty()) return json::object();
  if (json_depth(text) > kMaxJsonDepth) {
    throw ApiError(400, "the request body nests arrays and objects more than " + std::to_string(kMaxJsonDepth) +
                            " deep; the API's bodies need 3");
  }
  json j = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) {
    // The parser's own message quotes the bytes it read last: not repeated.
    throw ApiError(400, "the request body is not JSON; send one JSON object, e.g. {\"version\": 3}");
  }
  return j;
}

}  // namespace bootfleet::bootsrv
