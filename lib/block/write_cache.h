// A session's write cache: every write of the session lands here; the
// version chain under it is never written.
//
// Design note. The disk is cut into 4 KiB clusters. A cluster the session
// wrote is held whole in one 4 KiB *slot* of the cache's data file (a write
// of part of a cluster first reads the rest of it, from the cache or from
// below); a cluster it zeroed (TRIM, WRITE_ZEROES) is marked as zeros and
// holds no slot. Overwriting a held cluster rewrites its slot in place;
// zeroing it frees the slot, and the next new cluster reuses a freed slot
// before the file grows. So the file is bounded by the clusters a session
// touched, never by what it wrote over time (the old design appended every
// write that was not inside an earlier one, and filled a 64 MiB cache disk
// with 8191 alternating 8 KiB writes over a 12 KiB footprint).
//
// The map from cluster to slot is a hash of small tables, one per 64 KiB of
// the disk (16 slot numbers of 4 bytes). Its memory is bounded by the
// clusters touched: about 1.7 MiB per GiB touched where writes are dense,
// at worst 26 MiB per GiB where every 4 KiB write lands in its own 64 KiB
// (see map_bytes()); writing the same sectors again costs nothing more.
//
// Persistence (named sessions, see block/session.h). A persistent cache
// lives in a directory: `data` (the slots) and `map` (a log of map changes:
// a header, then 16-byte records "cluster -> slot or zeros or below", each
// with a CRC32C). The rules that make it crash-consistent:
//   - a slot's data is written before the map entry that points at it is;
//     FLUSH (and FUA) fdatasyncs the data file, then appends the map changes
//     since the last flush and fdatasyncs the map; only then is it answered;
//   - a slot freed by zeroing is not reused until the map change that frees
//     it is durable (else a crash could leave the old entry pointing at
//     another cluster's data);
//   - on open, records are applied in order up to the first one whose CRC
//     fails (a torn tail), and the file is cut there.
// So after a crash a cluster reads as its last flushed content, or as any
// later content written whole to its slot (an in-place overwrite not yet
// flushed), never as another cluster's data or as bytes never written. The
// log is rewritten as a snapshot (temporary file, fsync, rename) when it
// holds more than twice the live entries.
//
// RAM (`--cache-ram`): slots may be held in 1 MiB RAM chunks while the
// shared budget lasts. A persistent cache writes its dirty chunks to the
// data file at every FLUSH, before the map is committed, so RAM changes
// nothing of the above: flushed data is on disk, unflushed data in RAM is
// lost by a crash (as it would be by a power cut). An anonymous cache never
// writes them out: its data ends with its connection anyway.
#pragma once

#include <algorithm>
#include <array>
#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <shared_mutex>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "util/file.h"
#include "vhd/disk.h"

namespace bootfleet::block {

// RAM that write caches may hold data in, shared by all of a server's
// sessions (`--cache-ram`). Taken in 1 MiB chunks; what does not fit goes to
// the cache files.
class RamBudget {
 public:
  explicit RamBudget(uint64_t bytes) : left_(static_cast<int64_t>(bytes)) {}
  bool take(uint64_t bytes);
  void give_back(uint64_t bytes) { left_ += static_cast<int64_t>(bytes); }
  uint64_t left() const { return static_cast<uint64_t>(std::max<int64_t>(0, left_.load())); }

 private:
  std::atomic<int64_t> left_;
};

// How a write cache keeps its data.
struct CacheStorage {
  // Empty: an anonymous file in `dir` (O_TMPFILE), gone with the cache.
  // Set: the persistent cache in that directory (created if `create`,
  // else reopened; util::Error naming the file if it is not one).
  std::string persist_dir;
  bool create = true;
  // Bytes of slots this cache may hold (0: no limit); past it, writes
  // of new clusters get ENOSPC. Overwrites of held clusters never do.
  uint64_t quota = 0;
  // Bytes of the cache file allocated on disk in advance (fallocate), so
  // that this cache can hold that much even when the cache disk fills up;
  // util::Error naming the directory if the disk cannot give it now.
  uint64_t reserve = 0;
};

class WriteCache {
 public:
  static constexpr uint64_t kRamChunk = 1u << 20;
  static constexpr uint32_t kCluster = 4096;
  static constexpr uint32_t kTableClusters = 16;  // one map table per 64 KiB of the disk

  using Storage = CacheStorage;


  // Reads of sectors the cache does not hold go to `below`. With `ram`,
  // data is kept in memory while the budget lasts.
  WriteCache(std::shared_ptr<const vhd::Disk> below, const std::string& dir,
             std::shared_ptr<RamBudget> ram = nullptr, Storage storage = {});
  ~WriteCache();
  WriteCache(const WriteCache&) = delete;
  WriteCache& operator=(const WriteCache&) = delete;

  uint64_t size() const { return below_->size(); }
  int read(uint64_t offset, uint32_t length, uint8_t* buf) const;
  // The read, done only if no part of it waits for a disk: EAGAIN when it
  // would (see vhd::Disk::try_read).
  int try_read(uint64_t offset, uint32_t length, uint8_t* buf) const;
  // Maps a read that touches only clusters below or zeroed (see
  // Device::map_read); ENOTSUP when a cluster has a slot of its own,
  // EAGAIN when what it maps seems not to be cached.
  int map_read(uint64_t offset, uint32_t length, std::vector<util::FileSpan>& out) const;
  int write(uint64_t offset, uint32_t length, const uint8_t* buf, bool fua);
  int write_zeroes(uint64_t offset, uint32_t length, bool fua);
  // Makes every completed write durable (persistent: with the map that
  // finds it). 0, EIO or ENOSPC.
  int flush();
  int extents(uint64_t offset, uint32_t length, std::vector<vhd::Extent>& out) const;

  bool persistent() const { return !storage_.persist_dir.empty(); }
  // The session ended: its files are about to be removed, so nothing more
  // is written to its map (flush only syncs the data file).
  void discard() { discarded_ = true; }
  const std::string& persist_dir() const { return storage_.persist_dir; }
  void set_quota(uint64_t bytes);
  uint64_t quota() const { return storage_.quota; }
  // Bytes of data held (clusters with a slot), slots in the file (held or
  // free: what the cache costs on disk), clusters held or zeroed, and the
  // map's memory (tables and free list).
  uint64_t data_bytes() const;
  uint64_t file_bytes() const;
  size_t cluster_count() const;
  uint64_t map_bytes() const;
  uint64_t ram_bytes() const;
  // Indexes of the `block_size` blocks holding any written (or zeroed)
  // sector, ascending: all that can differ from what is below.
  std::vector<uint32_t> touched_blocks(uint32_t block_size) const;

  // Writes the cache as a differencing VHD on `parent_path` (the file of the
  // version under the cache): every sector the cache holds, data or zeros.
  void write_vhd(const std::string& parent_path, const std::string& out_path) const;

 private:
  // Map entries: kBelow (not held), kZero, or kSlot0 + slot.
  static constexpr uint32_t kBelow = 0, kZero = 1, kSlot0 = 2;
  using Table = std::array<uint32_t, kTableClusters>;

  uint32_t entry(uint64_t cluster) const;
  template <class Same>
  uint64_t end_of_run(uint64_t pos, uint64_t end, Same same) const;
  // Sets a cluster's entry; returns the old one. Caller holds mutex_ exclusively.
  uint32_t set_entry(uint64_t cluster, uint32_t value);
  // Returns a slot to the free list (now, or after the next map commit for
  // a persistent cache, or when its in-flight writers finish).
  void release_slot(uint32_t slot);
  std::optional<uint32_t> allocate_slot();
  int read_locked(uint64_t offset, uint32_t length, uint8_t* buf, bool if_cached) const;
  // Whole clusters [first, first+count) from `buf`.
  int write_clusters(uint64_t first, uint64_t count, const uint8_t* buf);
  int zero_clusters(uint64_t first, uint64_t count);
  // The data space: slot s at byte s*kCluster, each 1 MiB chunk in RAM or
  // in the file. The caller holds mutex_ (shared to load, exclusive to
  // store into RAM chunks).
  bool load(uint64_t offset, uint8_t* buf, size_t length, bool if_cached) const;
  std::vector<std::array<uint64_t, 3>> store_ram_part(uint64_t offset, const uint8_t* buf, size_t length);
  void reserve_chunks(uint64_t end);
  int pwrite_data(uint64_t offset, const uint8_t* buf, size_t length);
  // Persistent caches: the map file.
  void open_persistent();
  void reserve_space();
  void write_map_snapshot(const std::vector<std::pair<uint64_t, uint32_t>>& entries);
  int commit();

  std::shared_ptr<const vhd::Disk> below_;
  Storage storage_;
  std::string path_;  // the data file, for messages
  std::string map_path_;
  util::UniqueFd fd_, map_fd_;
  mutable std::shared_mutex mutex_;
  std::unordered_map<uint64_t, Table> tables_;
  size_t held_ = 0, zeroed_ = 0;           // clusters with a slot, clusters marked zero
  uint32_t next_slot_ = 0;                 // slots below this exist in the file
  std::vector<uint32_t> free_;             // reusable now, popped from the back (lowest last)
  std::vector<uint32_t> pending_free_;     // reusable after the next map commit
  std::unordered_map<uint32_t, int> busy_;  // slots being written outside the lock
  std::unordered_set<uint32_t> orphaned_;   // freed while busy
  std::unordered_set<uint64_t> dirty_;      // clusters whose entry changed since the last commit
  std::mutex commit_mutex_;                 // one commit at a time
  std::mutex partial_mutex_;                // partial-cluster writes read-modify-write one at a time
  uint64_t map_records_ = 0;                // records in the map file
  std::shared_ptr<RamBudget> ram_;
  std::vector<std::unique_ptr<uint8_t[]>> chunks_;  // per 1 MiB chunk: RAM, or null for the file
  std::vector<uint8_t> chunk_dirty_;                // persistent: chunk changed since the last commit
  std::atomic<bool> discarded_{false};
};

}  // namespace bootfleet::block
