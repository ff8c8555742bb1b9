#include "util/size.h"

#include <cmath>
#include <cstdio>

#include "util/error.h"

namespace bootfleet::util {

uint64_t parse_size(const std::string& text, const std::string& what) {
  auto fail = [&](const std::string& why) -> Error {
    return Error(what + ": '" + text + "' is not a size (" + why +
                 "); use a number of bytes with an optional K, M, G or T suffix, e.g. 512, 4K, 20G, 1.5T");
  };
  size_t i = 0;
  while (i < text.size() && (std::isdigit(static_cast<unsigned char>(text[i])) || text[i] == '.')) ++i;
  std::string number = text.substr(0, i);
  // "." alone would reach std::stold, which throws its own exception type.
  if (number.find_first_of("0123456789") == std::string::npos) throw fail("no number");
  if (number.find('.') != number.rfind('.')) throw fail("two decimal points");
  // Hundreds of digits would make std::stold fail with ERANGE, also not an Error.
  if (number.size() > 40) throw fail("too many digits");
  std::string unit = text.substr(i);
  if (unit.size() >= 2 && (unit.substr(1) == "iB" || unit.substr(1) == "ib")) unit = unit.substr(0, 1);
  else if (unit.size() == 2 && (unit[1] == 'B' || unit[1] == 'b')) unit = unit.substr(0, 1);
  uint64_t multiplier = 1;
  if (unit.empty() || unit == "B" || unit == "b") multiplier = 1;
  else if (unit == "K" || unit == "k") multiplier = 1ULL << 10;
  else if (unit == "M" || unit == "m") multiplier = 1ULL << 20;
  else if (unit == "G" || unit == "g") multiplier = 1ULL << 30;
  else if (unit == "T" || unit == "t") multiplier = 1ULL << 40;
  else throw fail("unknown unit '" + text.substr(i) + "'");

  if (number.find('.') == std::string::npos) {
    if (number.size() > 19) throw fail("too large");
    uint64_t n = std::stoull(number);
    if (multiplier > 1 && n > UINT64_MAX / multiplier) throw fail("too large");
    return n * multiplier;
  }
  long double value = std::stold(number) * static_cast<long double>(multiplier);
  if (value >= 1.8e19L) throw fail("too large");
  long double rounded = std::floor(value);
  if (rounded != value) throw fail("not a whole number of bytes");
  return static_cast<uint64_t>(rounded);
}

std::string format_size(uint64_t bytes) {
  static const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB"};
  if (bytes < 1024) return std::to_string(bytes) + " B";
  double v = static_cast<double>(bytes);
  int u = 0;
  while (v >= 1024 && u < 5) {
    v /= 1024;
    ++u;
  }
  char buf[32];
  if (v == std::floor(v)) std::snprintf(buf, sizeof buf, "%.0f %s", v, units[u]);
  else std::snprintf(buf, sizeof buf, "%.1f %s", v, units[u]);
  return buf;
}

}  // namespace bootfleet::util
