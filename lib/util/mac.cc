#include "util/mac.h"

#include "util/bytes.h"
#include "util/error.h"

namespace bootfleet::util {

std::optional<std::string> parse_mac(std::string_view text) {
  // Which characters separate the 12 digits, by position among the digits:
  // after every 2 (':' or '-'), after every 4 ('.'), or never.
  char separator = 0;
  size_t group = 0;
  if (text.size() == 17) {
    separator = text[2];
    group = 2;
    if (separator != ':' && separator != '-') return std::nullopt;
  } else if (text.size() == 14) {
    separator = '.';
    group = 4;
  } else if (text.size() != 12) {
    return std::nullopt;
  }
  std::string digits;
  digits.reserve(12);
  size_t in_group = 0;
  for (char c : text) {
    if (group && in_group == group) {
      if (c != separator) return std::nullopt;
      in_group = 0;
      continue;
    }
    int v = hex_value(c);
    if (v < 0) return std::nullopt;
    digits.push_back("0123456789abcdef"[v]);
    ++in_group;
  }
  if (digits.size() != 12) return std::nullopt;
  std::string out;
  out.reserve(17);
  for (size_t i = 0; i < 12; i += 2) {
    if (i) out.push_back(':');
    out.append(digits, i, 2);
  }
  return out;
}

std::string normalize_mac(std::string_view text) {
  if (auto mac = parse_mac(text)) return *mac;
  throw Error("'" + std::string(text.substr(0, 64)) +
              "' is not a MAC address; write it as aa:bb:cc:dd:ee:ff, aa-bb-cc-dd-ee-ff, aabb.ccdd.eeff or aabbccddeeff");
}

std::string mac_with_hyphens(const std::string& normalized) {
  std::string out = normalized;
  for (char& c : out)
    if (c == ':') c = '-';
  return out;
}

}  // namespace bootfleet::util
