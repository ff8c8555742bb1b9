#include "block/write_cache.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <mutex>
#include <set>

#include "util/error.h"
#include "vhd/vhd_file.h"
#include "vhd/writer.h"

namespace bootfleet::block {

namespace {
constexpr uint64_t kSector = 512;

util::UniqueFd open_anonymous_file(const std::string& dir) {
  // O_TMPFILE: the file has no name, so nothing is left behind whatever
  // happens to the server.
  int fd = ::open(dir.c_str(), O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
  if (fd >= 0) return util::UniqueFd(fd);
  std::string tmpl = dir + "/.bootfleet-cache-XXXXXX";
  fd = ::mkostemp(tmpl.data(), O_CLOEXEC);
  if (fd < 0) throw util::errno_error(dir + ": cannot create a write cache file");
  ::unlink(tmpl.c_str());
  return util::UniqueFd(fd);
}
}  // namespace

bool RamBudget::take(uint64_t bytes) {
  int64_t n = static_cast<int64_t>(bytes);
  if (left_.fetch_sub(n) >= n) return true;
  left_.fetch_add(n);
  return false;
}

WriteCache::WriteCache(std::shared_ptr<const vhd::Disk> below, const std::string& dir, std::shared_ptr<RamBudget> ram)
    : below_(std::move(below)), path_(dir + "/(write cache)"), fd_(open_anonymous_file(dir)), ram_(std::move(ram)) {}

WriteCache::~WriteCache() {
  if (!ram_) return;
  for (const auto& c : chunks_)
    if (c) ram_->give_back(kRamChunk);
}

void WriteCache::reserve_chunks(uint64_t end) {
  if (!ram_) return;
  while (chunks_.size() * kRamChunk < end) {
    chunks_.push_back(ram_->take(kRamChunk) ? std::make_unique<uint8_t[]>(kRamChunk) : nullptr);
  }
}

bool WriteCache::load(uint64_t offset, uint8_t* buf, size_t length, bool if_cached) const {
  while (length > 0) {
    uint64_t chunk = offset / kRamChunk;
    size_t n = static_cast<size_t>(std::min<uint64_t>(length, kRamChunk - offset % kRamChunk));
    if (chunk < chunks_.size() && chunks_[chunk]) {
      std::memcpy(buf, chunks_[chunk].get() + offset % kRamChunk, n);
    } else if (!if_cached) {
      util::pread_full(fd_.get(), buf, n, offset, path_);
    } else if (!util::pread_if_cached(fd_.get(), buf, n, offset, path_)) {
      return false;
    }
    offset += n;
    buf += n;
    length -= n;
  }
  return true;
}

std::vector<std::array<uint64_t, 3>> WriteCache::store_ram_part(uint64_t offset, const uint8_t* buf, size_t length) {
  std::vector<std::array<uint64_t, 3>> file_parts;
  size_t done = 0;
  while (done < length) {
    uint64_t at = offset + done, chunk = at / kRamChunk;
    size_t n = static_cast<size_t>(std::min<uint64_t>(length - done, kRamChunk - at % kRamChunk));
    if (chunk < chunks_.size() && chunks_[chunk]) {
      std::memcpy(chunks_[chunk].get() + at % kRamChunk, buf + done, n);
    } else if (!file_parts.empty() && file_parts.back()[0] + file_parts.back()[2] == at) {
      file_parts.back()[2] += n;
    } else {
      file_parts.push_back({at, done, n});
    }
    done += n;
  }
  return file_parts;
}

void WriteCache::put(uint64_t first, uint64_t count, int64_t file_offset) {
  uint64_t end = first + count;
  auto it = index_.lower_bound(first);
  if (it != index_.begin()) {
    auto prev = std::prev(it);
    if (prev->first + prev->second.sectors > first) it = prev;
  }
  while (it != index_.end() && it->first < end) {
    uint64_t s = it->first, e = s + it->second.sectors;
    Run r = it->second;
    it = index_.erase(it);
    if (s < first) index_[s] = {first - s, r.file_offset};
    if (e > end) {
      index_[end] = {e - end, r.file_offset < 0 ? -1 : r.file_offset + static_cast<int64_t>((end - s) * kSector)};
    }
  }
  auto [pos, inserted] = index_.emplace(first, Run{count, file_offset});
  (void)inserted;
  // Merge with neighbours that continue it (sequential writes, big zeroing),
  // so the index stays as small as the pattern of writes allows.
  auto continues = [](const std::pair<const uint64_t, Run>& a, const std::pair<const uint64_t, Run>& b) {
    if (a.first + a.second.sectors != b.first) return false;
    if (a.second.file_offset < 0 || b.second.file_offset < 0) return a.second.file_offset < 0 && b.second.file_offset < 0;
    return a.second.file_offset + static_cast<int64_t>(a.second.sectors * kSector) == b.second.file_offset;
  };
  if (pos != index_.begin()) {
    auto prev = std::prev(pos);
    if (continues(*prev, *pos)) {
      prev->second.sectors += pos->second.sectors;
      index_.erase(pos);
      pos = prev;
    }
  }
  auto next = std::next(pos);
  if (next != index_.end() && continues(*pos, *next)) {
    pos->second.sectors += next->second.sectors;
    index_.erase(next);
  }
}

int WriteCache::read(uint64_t offset, uint32_t length, uint8_t* buf) const {
  std::shared_lock lock(mutex_);
  return read_locked(offset, length, buf, false);
}

int WriteCache::try_read(uint64_t offset, uint32_t length, uint8_t* buf) const {
  std::shared_lock lock(mutex_);
  return read_locked(offset, length, buf, true);
}

int WriteCache::read_locked(uint64_t offset, uint32_t length, uint8_t* buf, bool if_cached) const {
  uint64_t pos = offset, end = offset + length;
  auto it = index_.upper_bound(pos / kSector);
  if (it != index_.begin()) --it;
  try {
    while (pos < end) {
      while (it != index_.end() && (it->first + it->second.sectors) * kSector <= pos) ++it;
      uint64_t n;
      if (it != index_.end() && it->first * kSector <= pos) {
        n = std::min(end, (it->first + it->second.sectors) * kSector) - pos;
        if (it->second.file_offset < 0) {
          std::memset(buf, 0, n);
        } else {
          if (!load(static_cast<uint64_t>(it->second.file_offset) + (pos - it->first * kSector), buf, n, if_cached))
            return EAGAIN;
        }
      } else {
        uint64_t next = it != index_.end() ? it->first * kSector : end;
        n = std::min(end, next) - pos;
        if (!if_cached) below_->read(pos, buf, n);
        else if (!below_->try_read(pos, buf, n)) return EAGAIN;
      }
      buf += n;
      pos += n;
    }
  } catch (const util::Error&) {
    return EIO;
  }
  return 0;
}

int WriteCache::write_sectors(uint64_t first, uint64_t count, const uint8_t* buf) {
  uint64_t bytes = count * kSector;
  uint64_t target = 0;
  bool in_place = false;
  std::vector<std::array<uint64_t, 3>> file_parts;
  {
    std::unique_lock lock(mutex_);
    auto it = index_.upper_bound(first);
    if (it != index_.begin()) {
      auto r = std::prev(it);
      if (r->second.file_offset >= 0 && r->first <= first && first + count <= r->first + r->second.sectors) {
        target = static_cast<uint64_t>(r->second.file_offset) + (first - r->first) * kSector;
        in_place = true;
      }
    }
    if (!in_place) {
      target = file_end_;
      file_end_ += bytes;
      reserve_chunks(file_end_);
    }
    // RAM-held parts are copied under the lock; file parts are written
    // after it, so one client's slow disk write never blocks other readers.
    file_parts = store_ram_part(target, buf, bytes);
  }
  for (const auto& [offset, from, length] : file_parts) {
    size_t done = 0;
    while (done < length) {
      ssize_t n = ::pwrite(fd_.get(), buf + from + done, length - done, static_cast<off_t>(offset + done));
      if (n < 0) {
        if (errno == EINTR) continue;
        return errno == ENOSPC || errno == EDQUOT ? ENOSPC : EIO;
      }
      done += static_cast<size_t>(n);
    }
  }
  if (!in_place) {
    std::unique_lock lock(mutex_);
    put(first, count, static_cast<int64_t>(target));
  }
  return 0;
}

int WriteCache::write(uint64_t offset, uint32_t length, const uint8_t* buf, bool fua) {
  if (length == 0) return 0;
  int rc;
  if (offset % kSector == 0 && length % kSector == 0) {
    rc = write_sectors(offset / kSector, length / kSector, buf);
  } else {
    // Complete the request to whole sectors with what is underneath.
    uint64_t first = offset / kSector, last = (offset + length + kSector - 1) / kSector;
    std::vector<uint8_t> whole((last - first) * kSector);
    rc = read(first * kSector, static_cast<uint32_t>(whole.size()), whole.data());
    if (rc != 0) return rc;
    std::memcpy(whole.data() + (offset - first * kSector), buf, length);
    rc = write_sectors(first, last - first, whole.data());
  }
  if (rc == 0 && fua) rc = flush();
  return rc;
}

int WriteCache::write_zeroes(uint64_t offset, uint32_t length, bool fua) {
  if (length == 0) return 0;
  uint64_t end = offset + length;
  uint64_t first = (offset + kSector - 1) / kSector, last = end / kSector;  // whole sectors inside
  std::vector<uint8_t> zeros(kSector, 0);
  auto write_zero_bytes = [&](uint64_t from, uint64_t to) {  // less than a sector each
    return to > from ? write(from, static_cast<uint32_t>(to - from), zeros.data(), false) : 0;
  };
  int rc = 0;
  if (first >= last) {
    std::vector<uint8_t> all(length, 0);
    rc = write(offset, length, all.data(), false);
  } else {
    // Whole sectors are only recorded; partial ones at either end are
    // written as zeros.
    rc = write_zero_bytes(offset, first * kSector);
    if (rc == 0) {
      std::unique_lock lock(mutex_);
      put(first, last - first, -1);
    }
    if (rc == 0) rc = write_zero_bytes(last * kSector, end);
  }
  if (rc == 0 && fua) rc = flush();
  return rc;
}

int WriteCache::flush() {
  if (::fdatasync(fd_.get()) != 0) return errno == ENOSPC ? ENOSPC : EIO;
  return 0;
}

int WriteCache::extents(uint64_t offset, uint32_t length, std::vector<vhd::Extent>& out) const {
  std::shared_lock lock(mutex_);
  uint64_t pos = offset, end = offset + length;
  auto it = index_.upper_bound(pos / kSector);
  if (it != index_.begin()) --it;
  while (pos < end) {
    while (it != index_.end() && (it->first + it->second.sectors) * kSector <= pos) ++it;
    if (it != index_.end() && it->first * kSector <= pos) {
      uint64_t n = std::min(end, (it->first + it->second.sectors) * kSector) - pos;
      vhd::append_extent(out, {pos, n, it->second.file_offset >= 0});
      pos += n;
    } else {
      uint64_t next = it != index_.end() ? std::min(end, it->first * kSector) : end;
      for (const auto& e : below_->extents(pos, next - pos)) vhd::append_extent(out, e);
      pos = next;
    }
  }
  return 0;
}

std::vector<uint32_t> WriteCache::touched_blocks(uint32_t block_size) const {
  std::shared_lock lock(mutex_);
  const uint64_t block_sectors = block_size / kSector;
  std::vector<uint32_t> out;
  for (const auto& [first, run] : index_) {
    uint64_t b = first / block_sectors, last = (first + run.sectors - 1) / block_sectors;
    if (!out.empty() && out.back() >= b) b = out.back() + 1;
    for (; b <= last; ++b) out.push_back(static_cast<uint32_t>(b));
  }
  return out;
}

uint64_t WriteCache::data_bytes() const {
  std::shared_lock lock(mutex_);
  uint64_t n = 0;
  for (const auto& [first, run] : index_)
    if (run.file_offset >= 0) n += run.sectors * kSector;
  return n;
}

uint64_t WriteCache::ram_bytes() const {
  std::shared_lock lock(mutex_);
  uint64_t n = 0;
  for (const auto& c : chunks_) n += c ? kRamChunk : 0;
  return n;
}

size_t WriteCache::run_count() const {
  std::shared_lock lock(mutex_);
  return index_.size();
}

void WriteCache::write_vhd(const std::string& parent_path, const std::string& out_path) const {
  auto parent = vhd::VhdFile::open(parent_path);
  if (parent->size() != size()) {
    throw util::Error(parent_path + ": size " + std::to_string(parent->size()) + " is not the cache's " +
                      std::to_string(size()));
  }
  vhd::WriterOptions wo;
  wo.type = vhd::DiskType::kDifferencing;
  wo.parent = parent.get();
  vhd::Writer writer(out_path, wo);
  std::shared_lock lock(mutex_);
  const uint64_t block_sectors = writer.block_size() / kSector;
  std::set<uint32_t> blocks;
  for (const auto& [first, run] : index_) {
    for (uint64_t b = first / block_sectors; b <= (first + run.sectors - 1) / block_sectors; ++b) {
      blocks.insert(static_cast<uint32_t>(b));
    }
  }
  std::vector<uint8_t> data(writer.block_size());
  std::vector<uint8_t> bitmap(vhd::bitmap_bytes(writer.block_size()));
  for (uint32_t b : blocks) {
    uint32_t len = writer.block_length(b);
    uint64_t start = uint64_t{b} * block_sectors, stop = start + len / kSector;
    std::fill(bitmap.begin(), bitmap.end(), 0);
    // Whole 8-sector groups are marked (see vhd::kSectorsPerBitmapByte);
    // sectors the cache does not hold come from below, so the content of
    // every marked sector is what the session reads.
    auto it = index_.upper_bound(start);
    if (it != index_.begin()) --it;
    for (; it != index_.end() && it->first < stop; ++it) {
      uint64_t s = std::max(start, it->first), e = std::min(stop, it->first + it->second.sectors);
      for (uint64_t x = s; x < e; ++x) {
        uint64_t group = (x - start) / vhd::kSectorsPerBitmapByte * vhd::kSectorsPerBitmapByte;
        for (uint64_t g = group; g < group + vhd::kSectorsPerBitmapByte && start + g < stop; ++g) {
          vhd::bitmap_set(bitmap, static_cast<uint32_t>(g));
        }
      }
    }
    if (read_locked(start * kSector, len, data.data(), false) != 0) {
      throw util::Error("write cache: cannot read block " + std::to_string(b) + " to write it out");
    }
    for (uint32_t x = 0; x < len / kSector; ++x) {
      if (!vhd::bitmap_test(bitmap, x)) std::memset(data.data() + size_t{x} * kSector, 0, kSector);
    }
    writer.write_block(b, {data.data(), len}, bitmap);
  }
  writer.finish();
}

}  // namespace bootfleet::block
