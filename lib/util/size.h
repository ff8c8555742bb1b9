// Human sizes: "512", "4K", "20G", "1.5T" (binary multiples; an optional
// "iB" or "B" suffix is accepted) and their rendering for people.
#pragma once

#include <cstdint>
#include <string>

namespace bootfleet::util {

// Throws Error saying what was found and what is accepted; `what` names the
// option or field the text came from.
uint64_t parse_size(const std::string& text, const std::string& what);

// "20 GiB", "1.5 MiB", "512 B".
std::string format_size(uint64_t bytes);

}  // namespace bootfleet::util
