// diff: where two versions differ, by their block digests (no data read),
// or, with read_data, by reading both disks to confirm the digests.
#include "store/store.h"

#include <dirent.h>
#include <fcntl.h>
#include <pwd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <map>
#include <set>

#include "util/bytes.h"
#include "util/error.h"
#include "util/file.h"
#include "util/lock.h"
#include "util/log.h"
#include "util/mac.h"
#include "util/size.h"
#include "vhd/chain.h"
#include "vhd/check.h"
#include "vhd/convert.h"

#include "store/store_internal.h"

namespace bootfleet::store {

namespace fs = std::filesystem;
using util::Error;
using namespace internal;

DiffResult Store::diff(const VersionRef& ra, const VersionRef& rb, bool read_data) {
  DiffResult r;
  r.a = version(ra);
  r.b = version(rb);
  BlockDigests da = digests(r.a), db = digests(r.b);
  uint64_t size = std::max(r.a.size, r.b.size);
  auto add_range = [&](uint64_t off, uint64_t len) {
    if (len == 0) return;
    if (!r.ranges.empty() && r.ranges.back().offset + r.ranges.back().length == off) r.ranges.back().length += len;
    else r.ranges.push_back({off, len});
    r.changed_bytes += len;
  };
  auto changed = BlockDigests::changed_blocks(da, db);
  for (uint32_t b : changed) {
    bool in_a = da.get(b).has_value(), in_b = db.get(b).has_value();
    if (in_a && in_b) ++r.blocks_modified;
    else if (in_b) ++r.blocks_added;
    else ++r.blocks_removed;
  }
  if (!read_data) {
    for (uint32_t b : changed) {
      uint64_t off = uint64_t{b} * kDigestBlockSize;
      add_range(off, std::min<uint64_t>(kDigestBlockSize, size - off));
    }
    return r;
  }
  // --verify: read both disks whole; confirm equal digests mean equal data,
  // and narrow each changed block to the sectors that differ.
  r.data_read = true;
  auto a = open_version(r.a), b = open_version(r.b);
  std::vector<uint8_t> ba(kDigestBlockSize), bb(kDigestBlockSize);
  std::set<uint32_t> changed_set(changed.begin(), changed.end());
  uint32_t blocks = static_cast<uint32_t>((size + kDigestBlockSize - 1) / kDigestBlockSize);
  for (uint32_t blk = 0; blk < blocks; ++blk) {
    uint64_t off = uint64_t{blk} * kDigestBlockSize;
    size_t len = static_cast<size_t>(std::min<uint64_t>(kDigestBlockSize, size - off));
    std::fill(ba.begin(), ba.end(), 0);
    std::fill(bb.begin(), bb.end(), 0);
    if (off < a->size()) a->read(off, ba.data(), static_cast<size_t>(std::min<uint64_t>(len, a->size() - off)));
    if (off < b->size()) b->read(off, bb.data(), static_cast<size_t>(std::min<uint64_t>(len, b->size() - off)));
    bool differs = std::memcmp(ba.data(), bb.data(), len) != 0;
    if (differs != (changed_set.count(blk) > 0)) {
      r.verified = false;
      r.verify_problems.push_back("block " + std::to_string(blk) + ": digests say " +
                                  (changed_set.count(blk) ? "changed" : "unchanged") + ", the data is " +
                                  (differs ? "different" : "the same"));
    }
    if (!differs) continue;
    for (size_t s = 0; s < len; s += 512) {
      if (std::memcmp(ba.data() + s, bb.data() + s, 512) != 0) add_range(off + s, 512);
    }
  }
  return r;
}

}  // namespace bootfleet::store
