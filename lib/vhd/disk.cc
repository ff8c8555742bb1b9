#include "vhd/disk.h"

#include <cstring>

namespace bootfleet::vhd {

void ZeroDisk::read(uint64_t, void* buf, size_t length) const { std::memset(buf, 0, length); }

void append_extent(std::vector<Extent>& out, Extent e) {
  if (e.length == 0) return;
  if (!out.empty() && out.back().data == e.data && out.back().offset + out.back().length == e.offset) {
    out.back().length += e.length;
  } else {
    out.push_back(e);
  }
}

}  // namespace bootfleet::vhd
