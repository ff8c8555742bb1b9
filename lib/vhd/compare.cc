#include "vhd/compare.h"

#include <algorithm>
#include <cstring>
#include <vector>

namespace bootfleet::vhd {

namespace {

// Fills buf with [offset, offset+length) of disk (zeros past its end);
// returns false, without reading, when the range is known to be zero.
bool fetch(const Disk& disk, uint64_t offset, uint8_t* buf, size_t length) {
  std::memset(buf, 0, length);
  if (offset >= disk.size()) return false;
  size_t inside = static_cast<size_t>(std::min<uint64_t>(length, disk.size() - offset));
  bool any = false;
  for (const Extent& e : disk.extents(offset, inside)) {
    if (!e.data) continue;
    disk.read(e.offset, buf + (e.offset - offset), static_cast<size_t>(e.length));
    any = true;
  }
  return any;
}

}  // namespace

CompareResult compare(const Disk& a, const Disk& b,
                      const std::function<void(uint64_t, uint64_t)>& progress) {
  constexpr size_t kChunk = 2u << 20;
  uint64_t total = std::max(a.size(), b.size());
  std::vector<uint8_t> ba(kChunk), bb(kChunk);
  for (uint64_t off = 0; off < total; off += kChunk) {
    size_t n = static_cast<size_t>(std::min<uint64_t>(kChunk, total - off));
    bool da = fetch(a, off, ba.data(), n);
    bool db = fetch(b, off, bb.data(), n);
    if ((da || db) && std::memcmp(ba.data(), bb.data(), n) != 0) {
      size_t i = 0;
      while (ba[i] == bb[i]) ++i;
      return {false, off + i};
    }
    if (progress) progress(off + n, total);
  }
  return {true, std::nullopt};
}

}  // namespace bootfleet::vhd
