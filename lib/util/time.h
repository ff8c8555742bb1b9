// Wall-clock time rendered for people and JSON: ISO 8601 in UTC.
#pragma once

#include <cstdint>
#include <string>

namespace bootfleet::util {

std::string format_utc(int64_t unix_seconds);  // 2026-11-25T04:21:03Z
std::string format_utc_ms(int64_t unix_ms);    // 2026-11-25T04:21:03.123Z

}  // namespace bootfleet::util
