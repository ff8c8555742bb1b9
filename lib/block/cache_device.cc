#include "block/cache_device.h"

#include <algorithm>
#include <cstring>

#include "util/error.h"

namespace bootfleet::block {

void CacheDisk::read(uint64_t offset, void* buf, size_t length) const {
  auto* p = static_cast<uint8_t*>(buf);
  // WriteCache takes 32-bit lengths (a protocol request); a Disk read may be larger.
  while (length > 0) {
    uint32_t n = static_cast<uint32_t>(std::min<size_t>(length, 1u << 30));
    if (int rc = cache_.read(offset, n, p); rc != 0) {
      throw util::Error("write cache: read of " + std::to_string(n) + " bytes at " + std::to_string(offset) +
                        " failed: " + std::strerror(rc));
    }
    offset += n;
    p += n;
    length -= n;
  }
}

std::vector<vhd::Extent> CacheDisk::extents(uint64_t offset, uint64_t length) const {
  std::vector<vhd::Extent> out;
  while (length > 0) {
    uint32_t n = static_cast<uint32_t>(std::min<uint64_t>(length, 1u << 30));
    cache_.extents(offset, n, out);
    offset += n;
    length -= n;
  }
  return out;
}

}  // namespace bootfleet::block
