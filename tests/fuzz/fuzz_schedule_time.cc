// libFuzzer target for what the control API and imgtool take as schedule
// times and channel/group names (store/channels.h): parse_schedule_time on
// any bytes must either refuse with util::Error naming `what` or give a time
// that fits, with no signed overflow (UBSan) on the relative forms; the name
// validators accept only the words they promise.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "store/channels.h"
#include "util/error.h"

using namespace bootfleet;

namespace {

[[noreturn]] void broken(const char* what, const std::string& detail) {
  std::fprintf(stderr, "fuzz_schedule_time: invariant broken: %s\n%s\n", what, detail.c_str());
  std::abort();
}

bool is_word(const std::string& s) {
  if (s.empty() || s.size() > 64) return false;
  for (char c : s) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-';
    if (!ok) return false;
  }
  return s[0] != '.' && s[0] != '_' && s[0] != '-';
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  constexpr int64_t kNow = 1795719600000;  // 2026-11-26T19:00:00Z
  try {
    int64_t at = store::parse_schedule_time(text, kNow, "--at");
    if (at < 0) broken("a time before 1970", text);
  } catch (const util::Error& e) {
    if (std::string(e.what()).rfind("--at: ", 0) != 0) broken("an error that does not name --at", e.what());
  }
  bool channel_ok = true;
  try {
    store::validate_channel_name(text);
  } catch (const util::Error&) {
    channel_ok = false;
  }
  if (channel_ok != is_word(text)) broken("validate_channel_name disagrees with the rule", text);
  return 0;
}
