// Ethernet (MAC) addresses as people and firmware write them. Every form is
// normalized to lower-case "aa:bb:cc:dd:ee:ff", the one the catalog stores.
// Accepted: aa:bb:cc:dd:ee:ff, AA-BB-CC-DD-EE-FF, aabb.ccdd.eeff (Cisco),
// aabbccddeeff. This parses untrusted input (URLs of boot requests): it
// looks at most at 17 characters and never allocates more than its result.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace bootfleet::util {

// The normalized address, or nullopt when `text` is none of the forms above.
std::optional<std::string> parse_mac(std::string_view text);

// Like parse_mac, but throws util::Error naming `text` and the forms accepted.
std::string normalize_mac(std::string_view text);

// "aa:bb:cc:dd:ee:ff" -> "aa-bb-cc-dd-ee-ff" (file and export-name friendly).
std::string mac_with_hyphens(const std::string& normalized);

}  // namespace bootfleet::util
