#include "util/uuid.h"

#include <sys/random.h>

#include "util/bytes.h"
#include "util/error.h"

namespace bootfleet::util {

Uuid random_uuid() {
  Uuid id{};
  size_t got = 0;
  while (got < id.size()) {
    ssize_t n = ::getrandom(id.data() + got, id.size() - got, 0);
    if (n < 0) throw errno_error("getrandom");
    got += static_cast<size_t>(n);
  }
  id[6] = static_cast<uint8_t>((id[6] & 0x0F) | 0x40);
  id[8] = static_cast<uint8_t>((id[8] & 0x3F) | 0x80);
  return id;
}

std::string uuid_to_string(const Uuid& id) {
  std::string hex = to_hex(id);
  return hex.substr(0, 8) + "-" + hex.substr(8, 4) + "-" + hex.substr(12, 4) + "-" +
         hex.substr(16, 4) + "-" + hex.substr(20);
}

bool uuid_is_nil(const Uuid& id) {
  for (uint8_t b : id)
    if (b != 0) return false;
  return true;
}

}  // namespace bootfleet::util
