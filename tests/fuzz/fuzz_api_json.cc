// libFuzzer target for the control API's JSON bodies (publish, rollback,
// upload declarations): parse_json_body_text, then the declaration reader,
// the upload state reader (api/upload.h) and the field readers the routes
// use (api/fields.h). Nothing may crash or recurse
// without bound; a body past kMaxJsonDepth or kMaxJsonBody is refused
// before parsing; and no refusal repeats a string it was sent (the input's
// longer printable runs never appear in an error message).
#include <cstdint>
#include <string>
#include <string_view>

#include "api/fields.h"
#include "api/upload.h"
#include "api_error.h"
#include "json_body.h"
#include "uploads.h"

using namespace bootfleet;
using nlohmann::json;

namespace {

// True when `message` contains a string value of `input` (8 bytes or
// more) marked as foreign by a '<', '>' or '~', bytes no message of the API
// has: the API names the kind of what it refused, never the value.
bool echoes(const std::string& message, std::string_view input) {
  auto refusable = [](std::string_view v) { return v.find_first_of("<>~") != std::string_view::npos; };
  size_t start = 0;
  while ((start = input.find('"', start)) != std::string_view::npos) {
    size_t end = input.find('"', start + 1);
    if (end == std::string_view::npos) break;
    std::string_view value = input.substr(start + 1, end - start - 1);
    if (value.size() >= 8 && refusable(value) && message.find(value) != std::string::npos) return true;
    start = end + 1;
  }
  return false;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view input(reinterpret_cast<const char*>(data), size);
  json j;
  try {
    j = bootsrv::parse_json_body_text(input);
  } catch (const bootsrv::ApiError& e) {
    if (e.status() != 400 && e.status() != 413) __builtin_trap();
    if (echoes(e.what(), input)) __builtin_trap();
    return 0;
  }
  if (bootsrv::json_depth(input) > bootsrv::kMaxJsonDepth) __builtin_trap();  // parsed what it should refuse
  try {
    bootsrv::UploadDeclaration d = bootsrv::UploadDeclaration::from_json("lab", j);
    if (d.version < 1 || d.image != "lab") __builtin_trap();
  } catch (const bootsrv::ApiError& e) {
    if (e.status() != 400) __builtin_trap();
    if (echoes(e.what(), input)) __builtin_trap();
  }
  // The upload state imgtool push reads from the server's answers, and the
  // field readers every route uses: the same rules (400, no echo).
  try {
    api::UploadState st = api::UploadState::from_json(j);
    if (st.upload.empty() && !j.contains("upload")) __builtin_trap();
  } catch (const bootsrv::ApiError& e) {
    if (e.status() != 400) __builtin_trap();
    if (echoes(e.what(), input)) __builtin_trap();
  }
  for (const char* name : {"version", "channel", "publish", "from"}) {
    try {
      (void)api::optional_positive(j, name);
      (void)api::optional_string(j, name);
      (void)api::optional_flag(j, name);
    } catch (const bootsrv::ApiError& e) {
      if (e.status() != 400) __builtin_trap();
      if (echoes(e.what(), input)) __builtin_trap();
    }
  }
  (void)bootsrv::json_kind(j);
  return 0;
}
