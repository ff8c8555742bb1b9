#include "util/time.h"

#include <cstdio>
#include <ctime>

namespace bootfleet::util {

std::string format_utc(int64_t unix_seconds) {
  std::time_t t = static_cast<std::time_t>(unix_seconds);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

std::string format_utc_ms(int64_t unix_ms) {
  std::string s = format_utc(unix_ms / 1000);
  char ms[8];
  std::snprintf(ms, sizeof ms, ".%03d", static_cast<int>(unix_ms % 1000));
  return s.substr(0, s.size() - 1) + ms + "Z";
}

}  // namespace bootfleet::util
