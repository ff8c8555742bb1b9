// 16-byte identifiers (VHD unique ids, parent ids), random version 4.
#pragma once

#include <array>
#include <cstdint>
#include <string>

namespace bootfleet::util {

using Uuid = std::array<uint8_t, 16>;

Uuid random_uuid();
// Canonical 8-4-4-4-12 lower-case form, bytes in file order.
std::string uuid_to_string(const Uuid& id);
bool uuid_is_nil(const Uuid& id);

}  // namespace bootfleet::util
