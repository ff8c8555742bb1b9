#include "block/write_cache.h"

#include <fcntl.h>
#include <linux/falloc.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <mutex>
#include <set>

#include "block/io_error.h"
#include "util/bytes.h"
#include "util/error.h"
#include "vhd/vhd_file.h"
#include "vhd/writer.h"

namespace bootfleet::block {

namespace {
constexpr uint64_t kSector = 512;
constexpr uint64_t kSectorsPerCluster = WriteCache::kCluster / kSector;
// A persistent cache commits its map by itself once this many freed slots
// wait for a commit, so a client that zeroes and rewrites without ever
// flushing still gets its space back.
constexpr size_t kPendingFreeLimit = 1024;

// The map file: a header, then records.
constexpr char kMapMagic[8] = {'B', 'F', 'W', 'C', 'M', 'A', 'P', '1'};
constexpr size_t kMapHeader = 32;  // magic, u32 cluster size, u32 0, u64 disk size, u32 0, u32 crc
constexpr size_t kMapRecord = 16;  // u64 cluster, u32 entry, u32 crc

uint32_t crc32c(const uint8_t* p, size_t n, uint32_t crc = 0) {
  static const auto table = [] {
    std::array<uint32_t, 256> t{};
    for (uint32_t i = 0; i < 256; ++i) {
      uint32_t c = i;
      for (int k = 0; k < 8; ++k) c = (c & 1) ? (c >> 1) ^ 0x82F63B78u : c >> 1;
      t[i] = c;
    }
    return t;
  }();
  crc = ~crc;
  for (size_t i = 0; i < n; ++i) crc = table[(crc ^ p[i]) & 0xFF] ^ (crc >> 8);
  return ~crc;
}

void put_record(uint8_t* r, uint64_t cluster, uint32_t value) {
  util::store_be64(r, cluster);
  util::store_be32(r + 8, value);
  // Seeded so that a run of zero bytes (a hole after a cut) is no record.
  util::store_be32(r + 12, crc32c(r, 12, 0x5EED0001u));
}

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

int io_errno(int e) { return e == ENOSPC || e == EDQUOT ? ENOSPC : EIO; }
}  // namespace

bool RamBudget::take(uint64_t bytes) {
  int64_t n = static_cast<int64_t>(bytes);
  if (left_.fetch_sub(n) >= n) return true;
  left_.fetch_add(n);
  return false;
}

WriteCache::WriteCache(std::shared_ptr<const vhd::Disk> below, const std::string& dir, std::shared_ptr<RamBudget> ram,
                       Storage storage)
    : below_(std::move(below)), storage_(std::move(storage)), ram_(std::move(ram)) {
  if (storage_.persist_dir.empty()) {
    path_ = dir + "/(write cache)";
    fd_ = open_anonymous_file(dir);
  } else {
    open_persistent();
  }
  reserve_space();
}

void WriteCache::reserve_space() {
  if (storage_.reserve == 0) return;
  // KEEP_SIZE: the blocks are the file's without changing its size, so a
  // reopen still finds the slots it committed by the size it has.
  if (::fallocate(fd_.get(), FALLOC_FL_KEEP_SIZE, 0, static_cast<off_t>(storage_.reserve)) == 0) return;
  if (errno == EOPNOTSUPP) return;  // the file system cannot reserve: documented
  throw util::errno_error(path_ + ": cannot reserve " + std::to_string(storage_.reserve) +
                          " bytes for a write cache (cache_reserve)");
}

WriteCache::~WriteCache() {
  // A persistent cache going away with its server (not ended) keeps what
  // was written since the last flush too, when it can.
  if (persistent() && !discarded_) (void)commit();
  if (!ram_) return;
  for (const auto& c : chunks_)
    if (c) ram_->give_back(kRamChunk);
}

void WriteCache::set_quota(uint64_t bytes) {
  std::unique_lock lock(mutex_);
  storage_.quota = bytes;
}

// --- the map ---

uint32_t WriteCache::entry(uint64_t cluster) const {
  auto it = tables_.find(cluster / kTableClusters);
  return it == tables_.end() ? kBelow : it->second[cluster % kTableClusters];
}

uint32_t WriteCache::set_entry(uint64_t cluster, uint32_t value) {
  uint32_t old;
  if (value == kBelow) {
    auto it = tables_.find(cluster / kTableClusters);
    if (it == tables_.end()) return kBelow;
    old = std::exchange(it->second[cluster % kTableClusters], kBelow);
    if (std::all_of(it->second.begin(), it->second.end(), [](uint32_t v) { return v == kBelow; })) tables_.erase(it);
  } else {
    auto& table = tables_[cluster / kTableClusters];  // value-initialised: all kBelow
    old = std::exchange(table[cluster % kTableClusters], value);
  }
  if (old == value) return old;
  held_ += (value >= kSlot0) - (old >= kSlot0);
  zeroed_ += (value == kZero) - (old == kZero);
  if (persistent()) dirty_.insert(cluster);
  return old;
}

void WriteCache::release_slot(uint32_t slot) {
  if (busy_.count(slot)) {
    orphaned_.insert(slot);
  } else if (persistent()) {
    pending_free_.push_back(slot);
  } else {
    free_.push_back(slot);
  }
}

std::optional<uint32_t> WriteCache::allocate_slot() {
  if (!free_.empty()) {
    uint32_t s = free_.back();
    free_.pop_back();
    return s;
  }
  if (storage_.quota && (uint64_t{next_slot_} + 1) * kCluster > storage_.quota) return std::nullopt;
  if (next_slot_ == UINT32_MAX - kSlot0) return std::nullopt;
  return next_slot_++;
}

// --- the data space ---

void WriteCache::reserve_chunks(uint64_t end) {
  if (!ram_) return;
  while (chunks_.size() * kRamChunk < end) {
    chunks_.push_back(ram_->take(kRamChunk) ? std::make_unique<uint8_t[]>(kRamChunk) : nullptr);
    chunk_dirty_.push_back(0);
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
      if (persistent()) chunk_dirty_[chunk] = 1;
    } else if (!file_parts.empty() && file_parts.back()[0] + file_parts.back()[2] == at) {
      file_parts.back()[2] += n;
    } else {
      file_parts.push_back({at, done, n});
    }
    done += n;
  }
  return file_parts;
}

int WriteCache::pwrite_data(uint64_t offset, const uint8_t* buf, size_t length) {
  size_t done = 0;
  while (done < length) {
    ssize_t n = ::pwrite(fd_.get(), buf + done, length - done, static_cast<off_t>(offset + done));
    if (n < 0) {
      if (errno == EINTR) continue;
      return io_errno(errno);
    }
    done += static_cast<size_t>(n);
  }
  return 0;
}

// --- reads ---

// Where the run of clusters that starts at `pos` ends (at most `end`): it
// goes on while `same(entry, cluster)` accepts the next cluster's entry.
// The caller holds mutex_.
template <class Same>
uint64_t WriteCache::end_of_run(uint64_t pos, uint64_t end, Same same) const {
  uint64_t run_end = std::min(end, (pos / kCluster + 1) * kCluster);
  while (run_end < end && same(entry(run_end / kCluster), run_end / kCluster)) run_end = std::min(end, run_end + kCluster);
  return run_end;
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
  uint64_t pos = offset;
  const uint64_t end = offset + length;
  try {
    while (pos < end) {
      // A run of clusters read the same way: below, zeros, or consecutive slots.
      uint64_t c = pos / kCluster;
      uint32_t e = entry(c);
      uint64_t run_end = end_of_run(pos, end, [&](uint32_t next, uint64_t cluster) {
        return e < kSlot0 ? next == e : next == e + (cluster - c);
      });
      size_t n = static_cast<size_t>(run_end - pos);
      if (e == kBelow) {
        // The last cluster may pass the disk's end (a size that is not a
        // multiple of 4 KiB): what lies past it reads as zeros.
        size_t inside = pos < size() ? static_cast<size_t>(std::min<uint64_t>(n, size() - pos)) : 0;
        if (inside < n) std::memset(buf + inside, 0, n - inside);
        if (inside == 0) {
        } else if (!if_cached) {
          below_->read(pos, buf, inside);
        } else if (!below_->try_read(pos, buf, inside)) {
          return EAGAIN;
        }
      } else if (e == kZero) {
        std::memset(buf, 0, n);
      } else if (!load(uint64_t{e - kSlot0} * kCluster + pos % kCluster, buf, n, if_cached)) {
        return EAGAIN;
      }
      buf += n;
      pos = run_end;
    }
  } catch (const util::Error& e) {
    // Below (the chain) or the cache's own data file: the message names which.
    return io_error("write cache " + path_, "read", offset, length, e);
  }
  return 0;
}

int WriteCache::map_read(uint64_t offset, uint32_t length, std::vector<util::FileSpan>& out) const {
  std::shared_lock lock(mutex_);
  uint64_t pos = offset;
  const uint64_t end = offset + length;
  while (pos < end) {
    uint64_t c = pos / kCluster;
    uint32_t e = entry(c);
    if (e >= kSlot0) return ENOTSUP;
    uint64_t run_end = end_of_run(pos, end, [e](uint32_t next, uint64_t) { return next == e; });
    if (e == kZero) {
      util::append_span(out, {-1, 0, run_end - pos});
    } else {
      // As in read_locked: past the disk's end (inside the last cluster) reads as zeros.
      uint64_t inside = pos < size() ? std::min(run_end, size()) - pos : 0;
      if (inside > 0 && !below_->map(pos, inside, out)) return ENOTSUP;
      util::append_span(out, {-1, 0, run_end - pos - inside});
    }
    pos = run_end;
  }
  return util::spans_cached(out) ? 0 : EAGAIN;
}

int WriteCache::extents(uint64_t offset, uint32_t length, std::vector<vhd::Extent>& out) const {
  std::shared_lock lock(mutex_);
  uint64_t pos = offset;
  const uint64_t end = offset + length;
  while (pos < end) {
    uint64_t c = pos / kCluster;
    uint32_t e = entry(c);
    auto kind = [](uint32_t v) { return v >= kSlot0 ? kSlot0 : v; };
    uint64_t run_end = end_of_run(pos, end, [&](uint32_t next, uint64_t) { return kind(next) == kind(e); });
    if (e == kBelow) {
      for (const auto& x : below_->extents(pos, run_end - pos)) vhd::append_extent(out, x);
    } else {
      vhd::append_extent(out, {pos, run_end - pos, e >= kSlot0});
    }
    pos = run_end;
  }
  return 0;
}

// --- writes ---

int WriteCache::write_clusters(uint64_t first, uint64_t count, const uint8_t* buf) {
  std::vector<uint32_t> slots(count);
  std::vector<uint8_t> fresh(count, 0);
  std::vector<std::array<uint64_t, 3>> file_parts;
  for (int attempt = 0;; ++attempt) {
    std::unique_lock lock(mutex_);
    uint64_t i = 0;
    bool full = false;
    for (; i < count; ++i) {
      uint32_t e = entry(first + i);
      if (e >= kSlot0) {
        slots[i] = e - kSlot0;
        fresh[i] = 0;
        continue;
      }
      auto s = allocate_slot();
      if (!s) {
        full = true;
        break;
      }
      slots[i] = *s;
      fresh[i] = 1;
    }
    if (full) {
      // Never pointed at: straight back to the free list.
      for (uint64_t k = 0; k < i; ++k)
        if (fresh[k]) free_.push_back(slots[k]);
      bool retry = attempt == 0 && persistent() && !pending_free_.empty();
      lock.unlock();
      if (retry && !discarded_ && commit() == 0) continue;  // freed slots become reusable
      return ENOSPC;
    }
    for (uint64_t k = 0; k < count; ++k) ++busy_[slots[k]];
    reserve_chunks(uint64_t{next_slot_} * kCluster);
    // RAM-held parts are copied under the lock; file parts are written
    // after it, so one client's slow disk write never blocks other readers.
    for (uint64_t k = 0; k < count;) {
      uint64_t run = 1;
      while (k + run < count && slots[k + run] == slots[k] + run) ++run;
      for (auto p : store_ram_part(uint64_t{slots[k]} * kCluster, buf + k * kCluster, run * kCluster)) {
        p[1] += k * kCluster;
        file_parts.push_back(p);
      }
      k += run;
    }
    break;
  }
  int rc = 0;
  for (const auto& [offset, from, length] : file_parts) {
    rc = pwrite_data(offset, buf + from, length);
    if (rc != 0) break;
  }
  std::unique_lock lock(mutex_);
  for (uint64_t k = 0; k < count; ++k) {
    uint32_t s = slots[k];
    if (--busy_[s] == 0) {
      busy_.erase(s);
      if (orphaned_.erase(s)) release_slot(s);
    }
    if (!fresh[k]) continue;
    if (rc != 0) {
      free_.push_back(s);
      continue;
    }
    // Mapped only now that its data is written: a commit never records a
    // slot whose data may still be on its way.
    uint32_t old = set_entry(first + k, kSlot0 + s);
    if (old >= kSlot0) release_slot(old - kSlot0);  // a concurrent writer of the same cluster
  }
  bool commit_now = persistent() && pending_free_.size() >= kPendingFreeLimit;
  lock.unlock();
  if (rc == 0 && commit_now && !discarded_) rc = commit();
  return rc;
}

int WriteCache::zero_clusters(uint64_t first, uint64_t count) {
  bool commit_now;
  {
    std::unique_lock lock(mutex_);
    for (uint64_t c = first; c < first + count; ++c) {
      uint32_t old = set_entry(c, kZero);
      if (old >= kSlot0) release_slot(old - kSlot0);
    }
    commit_now = persistent() && pending_free_.size() >= kPendingFreeLimit;
  }
  return commit_now && !discarded_ ? commit() : 0;
}

int WriteCache::write(uint64_t offset, uint32_t length, const uint8_t* buf, bool fua) {
  if (length == 0) return 0;
  int rc;
  if (offset % kCluster == 0 && length % kCluster == 0) {
    rc = write_clusters(offset / kCluster, length / kCluster, buf);
  } else {
    // Complete the request to whole clusters with what is there now. Such
    // writes run one at a time, so two of them into different sectors of
    // one cluster cannot undo each other.
    std::lock_guard partial(partial_mutex_);
    uint64_t first = offset / kCluster, last = (offset + length + kCluster - 1) / kCluster;
    std::vector<uint8_t> whole((last - first) * kCluster);
    rc = read(first * kCluster, kCluster, whole.data());
    if (rc == 0 && last - first > 1) rc = read((last - 1) * kCluster, kCluster, whole.data() + whole.size() - kCluster);
    if (rc != 0) return rc;
    std::memcpy(whole.data() + (offset - first * kCluster), buf, length);
    rc = write_clusters(first, last - first, whole.data());
  }
  if (rc == 0 && fua) rc = flush();
  return rc;
}

int WriteCache::write_zeroes(uint64_t offset, uint32_t length, bool fua) {
  if (length == 0) return 0;
  uint64_t end = offset + length;
  uint64_t first = (offset + kCluster - 1) / kCluster, last = end / kCluster;  // whole clusters inside
  int rc = 0;
  if (first >= last) {
    std::vector<uint8_t> all(length, 0);
    rc = write(offset, length, all.data(), false);
  } else {
    // Whole clusters are only marked; partial ones at either end are
    // written as zeros.
    std::vector<uint8_t> zeros(kCluster, 0);
    if (offset < first * kCluster) rc = write(offset, static_cast<uint32_t>(first * kCluster - offset), zeros.data(), false);
    if (rc == 0) rc = zero_clusters(first, last - first);
    if (rc == 0 && end > last * kCluster) rc = write(last * kCluster, static_cast<uint32_t>(end - last * kCluster), zeros.data(), false);
  }
  if (rc == 0 && fua) rc = flush();
  return rc;
}

int WriteCache::flush() {
  if (persistent() && !discarded_) return commit();
  if (::fdatasync(fd_.get()) != 0) return io_errno(errno);
  return 0;
}

// --- persistence ---

void WriteCache::open_persistent() {
  const std::string& dir = storage_.persist_dir;
  path_ = dir + "/data";
  map_path_ = dir + "/map";
  if (storage_.create) {
    fd_ = util::open_file(path_, O_RDWR | O_CREAT | O_TRUNC, 0600);
    write_map_snapshot({});
    util::fsync_file(fd_.get(), path_);
    util::fsync_parent_dir(path_);
    return;
  }
  fd_ = util::open_file(path_, O_RDWR, 0600);
  map_fd_ = util::open_file(map_path_, O_RDWR, 0600);
  uint64_t map_size = util::file_size(map_fd_.get(), map_path_);
  std::vector<uint8_t> bytes(static_cast<size_t>(map_size));
  util::pread_full(map_fd_.get(), bytes.data(), bytes.size(), 0, map_path_);
  if (bytes.size() < kMapHeader || std::memcmp(bytes.data(), kMapMagic, 8) != 0 ||
      util::load_be32(bytes.data() + 28) != crc32c(bytes.data(), 28)) {
    throw util::Error(map_path_ + ": not a write cache map (bad magic or header checksum)");
  }
  if (util::load_be32(bytes.data() + 8) != kCluster) {
    throw util::Error(map_path_ + ": cluster size " + std::to_string(util::load_be32(bytes.data() + 8)) +
                      ", this bootsrv uses " + std::to_string(kCluster));
  }
  if (util::load_be64(bytes.data() + 16) != size()) {
    throw util::Error(map_path_ + ": made for a disk of " + std::to_string(util::load_be64(bytes.data() + 16)) +
                      " bytes, the version under it has " + std::to_string(size()));
  }
  size_t at = kMapHeader;
  for (; at + kMapRecord <= bytes.size(); at += kMapRecord) {
    const uint8_t* r = bytes.data() + at;
    if (util::load_be32(r + 12) != crc32c(r, 12, 0x5EED0001u)) break;  // the torn tail of a crash
    uint64_t cluster = util::load_be64(r);
    uint32_t value = util::load_be32(r + 8);
    if (cluster >= (size() + kCluster - 1) / kCluster) {
      throw util::Error(map_path_ + ": record " + std::to_string((at - kMapHeader) / kMapRecord) + " names cluster " +
                        std::to_string(cluster) + ", past the end of the disk");
    }
    set_entry(cluster, value);
    ++map_records_;
  }
  if (at != bytes.size() && ::ftruncate(map_fd_.get(), static_cast<off_t>(at)) != 0) {
    throw util::errno_error(map_path_ + ": cannot cut the torn tail");
  }
  dirty_.clear();
  // Slots no entry points at are free; the file above the highest used one
  // (written but never committed) is given back.
  std::vector<uint8_t> used;
  for (const auto& [t, table] : tables_)
    for (uint32_t v : table)
      if (v >= kSlot0) {
        uint32_t s = v - kSlot0;
        if (s >= used.size()) used.resize(size_t{s} + 1, 0);
        if (used[s]) throw util::Error(map_path_ + ": slot " + std::to_string(s) + " is mapped twice");
        used[s] = 1;
      }
  next_slot_ = static_cast<uint32_t>(used.size());
  for (uint32_t s = next_slot_; s-- > 0;)
    if (!used[s]) free_.push_back(s);  // descending: the lowest is popped first
  if (::ftruncate(fd_.get(), static_cast<off_t>(uint64_t{next_slot_} * kCluster)) != 0) {
    throw util::errno_error(path_ + ": cannot trim the data file");
  }
}

void WriteCache::write_map_snapshot(const std::vector<std::pair<uint64_t, uint32_t>>& entries) {
  std::vector<uint8_t> bytes(kMapHeader + entries.size() * kMapRecord, 0);
  std::memcpy(bytes.data(), kMapMagic, 8);
  util::store_be32(bytes.data() + 8, kCluster);
  util::store_be64(bytes.data() + 16, size());
  util::store_be32(bytes.data() + 28, crc32c(bytes.data(), 28));
  for (size_t i = 0; i < entries.size(); ++i)
    put_record(bytes.data() + kMapHeader + i * kMapRecord, entries[i].first, entries[i].second);
  util::AtomicOutput out(map_path_);
  {
    auto fd = util::open_file(out.path(), O_RDWR | O_CREAT | O_TRUNC, 0600);
    util::pwrite_full(fd.get(), bytes.data(), bytes.size(), 0, out.path());
    util::fsync_file(fd.get(), out.path());
  }
  out.commit();
  map_fd_ = util::open_file(map_path_, O_RDWR, 0600);
  map_records_ = entries.size();
}

int WriteCache::commit() {
  std::lock_guard one(commit_mutex_);
  std::vector<std::pair<uint64_t, uint32_t>> records;
  std::vector<uint32_t> freeing;
  std::vector<size_t> chunks;
  bool snapshot;
  {
    std::unique_lock lock(mutex_);
    if (!map_fd_) return EIO;  // a cache whose map could not be written before
    snapshot = map_records_ + dirty_.size() > 2 * (held_ + zeroed_) + 4096;
    if (snapshot) {
      for (const auto& [t, table] : tables_)
        for (uint32_t i = 0; i < kTableClusters; ++i)
          if (table[i] != kBelow) records.emplace_back(t * kTableClusters + i, table[i]);
    } else {
      for (uint64_t c : dirty_) records.emplace_back(c, entry(c));
    }
    dirty_.clear();
    freeing.swap(pending_free_);
    for (size_t i = 0; i < chunk_dirty_.size(); ++i)
      if (chunk_dirty_[i]) chunks.push_back(i), chunk_dirty_[i] = 0;
  }
  int rc = 0;
  // RAM-held slots first, so the map never points at data only in memory.
  std::unique_ptr<uint8_t[]> copy;
  for (size_t i : chunks) {
    if (!copy) copy = std::make_unique<uint8_t[]>(kRamChunk);
    {
      std::shared_lock lock(mutex_);
      std::memcpy(copy.get(), chunks_[i].get(), kRamChunk);
    }
    if ((rc = pwrite_data(i * kRamChunk, copy.get(), kRamChunk)) != 0) break;
  }
  if (rc == 0 && ::fdatasync(fd_.get()) != 0) rc = io_errno(errno);
  if (rc == 0) {
    const uint64_t map_at = snapshot ? 0 : kMapHeader + map_records_ * kMapRecord;
    try {
      if (snapshot) {
        write_map_snapshot(records);
      } else if (!records.empty()) {
        std::vector<uint8_t> bytes(records.size() * kMapRecord);
        for (size_t i = 0; i < records.size(); ++i)
          put_record(bytes.data() + i * kMapRecord, records[i].first, records[i].second);
        rc = 0;
        const uint64_t at = map_at;
        size_t done = 0;
        while (rc == 0 && done < bytes.size()) {
          ssize_t n = ::pwrite(map_fd_.get(), bytes.data() + done, bytes.size() - done, static_cast<off_t>(at + done));
          if (n < 0 && errno != EINTR) rc = io_errno(errno);
          if (n > 0) done += static_cast<size_t>(n);
        }
        if (rc == 0 && ::fdatasync(map_fd_.get()) != 0) rc = io_errno(errno);
        if (rc == 0) map_records_ += records.size();
      }
    } catch (const util::Error& e) {
      rc = io_error("write cache map " + map_path_, snapshot ? "snapshot" : "append", map_at,
                    records.size() * kMapRecord, e);
    }
  }
  std::unique_lock lock(mutex_);
  if (rc != 0) {
    // Nothing is lost: the same changes go with the next commit. (A record
    // half-appended is cut at the next open or overwritten by the next try.)
    for (const auto& [c, v] : records) dirty_.insert(c);
    pending_free_.insert(pending_free_.end(), freeing.begin(), freeing.end());
    for (size_t i : chunks) chunk_dirty_[i] = 1;
    return rc;
  }
  if (!freeing.empty()) {
    free_.insert(free_.end(), freeing.begin(), freeing.end());
    std::sort(free_.begin(), free_.end(), std::greater<>());
  }
  return 0;
}

// --- reporting and export ---

std::vector<uint32_t> WriteCache::touched_blocks(uint32_t block_size) const {
  std::shared_lock lock(mutex_);
  const uint64_t block_clusters = block_size / kCluster;
  std::vector<uint32_t> out;
  for (const auto& [t, table] : tables_)
    for (uint32_t i = 0; i < kTableClusters; ++i)
      if (table[i] != kBelow) out.push_back(static_cast<uint32_t>((t * kTableClusters + i) / block_clusters));
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
  return out;
}

uint64_t WriteCache::data_bytes() const {
  std::shared_lock lock(mutex_);
  return uint64_t{held_} * kCluster;
}

uint64_t WriteCache::file_bytes() const {
  std::shared_lock lock(mutex_);
  return uint64_t{next_slot_} * kCluster;
}

size_t WriteCache::cluster_count() const {
  std::shared_lock lock(mutex_);
  return held_ + zeroed_;
}

uint64_t WriteCache::map_bytes() const {
  std::shared_lock lock(mutex_);
  // A table is a hash node (next pointer, key, 64 bytes, allocator
  // overhead: 96 bytes with glibc) plus its bucket pointer.
  return tables_.size() * 104 + tables_.bucket_count() * 8 + (free_.capacity() + pending_free_.capacity()) * 4 +
         dirty_.size() * 40;
}

uint64_t WriteCache::ram_bytes() const {
  std::shared_lock lock(mutex_);
  uint64_t n = 0;
  for (const auto& c : chunks_) n += c ? kRamChunk : 0;
  return n;
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
  for (const auto& [t, table] : tables_)
    for (uint32_t i = 0; i < kTableClusters; ++i)
      if (table[i] != kBelow) blocks.insert(static_cast<uint32_t>((t * kTableClusters + i) * kSectorsPerCluster / block_sectors));
  std::vector<uint8_t> data(writer.block_size());
  std::vector<uint8_t> bitmap(vhd::bitmap_bytes(writer.block_size()));
  static_assert(kSectorsPerCluster % vhd::kSectorsPerBitmapByte == 0, "a cluster marks whole bitmap bytes");
  for (uint32_t b : blocks) {
    uint32_t len = writer.block_length(b);
    uint64_t start = uint64_t{b} * block_sectors, stop = start + len / kSector;
    std::fill(bitmap.begin(), bitmap.end(), 0);
    // Every sector of a held or zeroed cluster is marked; its content is
    // what the session reads.
    for (uint64_t s = start; s < stop; s += kSectorsPerCluster) {
      if (entry(s / kSectorsPerCluster) == kBelow) continue;
      for (uint64_t x = s; x < std::min(stop, s + kSectorsPerCluster); ++x)
        vhd::bitmap_set(bitmap, static_cast<uint32_t>(x - start));
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
