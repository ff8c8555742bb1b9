// A session's write cache: every write of the session lands here; the
// version chain under it is never written.
//
// Design note. Data lives in an append-only file (unlinked at creation, so a
// crashed server leaves nothing behind); an in-memory index maps runs of
// sectors to where their data is in that file, or marks them as zeroed (TRIM
// and WRITE_ZEROES write nothing). Memory grows with the number of written
// runs, never with the disk size. A write that falls inside one run already
// stored overwrites it in place, so a guest rewriting the same metadata block
// does not grow the file. FLUSH, and a write with FUA, fdatasync the file
// before they return: acknowledged data survives a power cut (the index does
// not need to, because a session never outlives its server). Unaligned writes
// are completed to whole sectors with the data underneath.
#pragma once

#include <algorithm>
#include <array>
#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <shared_mutex>
#include <string>
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

class WriteCache {
 public:
  static constexpr uint64_t kRamChunk = 1u << 20;

  // Reads of sectors the cache does not hold go to `below`. With `ram`,
  // data is kept in memory while the budget lasts. Memory-held data is as
  // durable as the session itself, which never outlives the server: FLUSH
  // makes the file-held part durable and costs nothing for the rest.
  WriteCache(std::shared_ptr<const vhd::Disk> below, const std::string& dir,
             std::shared_ptr<RamBudget> ram = nullptr);
  ~WriteCache();
  WriteCache(const WriteCache&) = delete;
  WriteCache& operator=(const WriteCache&) = delete;

  uint64_t size() const { return below_->size(); }
  int read(uint64_t offset, uint32_t length, uint8_t* buf) const;
  // The read, done only if no part of it waits for a disk: EAGAIN when it
  // would (see vhd::Disk::try_read).
  int try_read(uint64_t offset, uint32_t length, uint8_t* buf) const;
  int write(uint64_t offset, uint32_t length, const uint8_t* buf, bool fua);
  int write_zeroes(uint64_t offset, uint32_t length, bool fua);
  int flush();
  int extents(uint64_t offset, uint32_t length, std::vector<vhd::Extent>& out) const;

  // Bytes of data in the cache file, and runs in the index.
  uint64_t data_bytes() const;
  size_t run_count() const;
  uint64_t ram_bytes() const;
  // Indexes of the `block_size` blocks holding any written (or zeroed)
  // sector, ascending: all that can differ from what is below.
  std::vector<uint32_t> touched_blocks(uint32_t block_size) const;

  // Writes the cache as a differencing VHD on `parent_path` (the file of the
  // version under the cache): every sector the cache holds, data or zeros.
  void write_vhd(const std::string& parent_path, const std::string& out_path) const;

 private:
  struct Run {
    uint64_t sectors;     // length in sectors
    int64_t file_offset;  // where its data is, or -1: zeros
  };
  using Index = std::map<uint64_t, Run>;  // first sector -> run

  // Replaces [first, first+count) in the index with one run.
  void put(uint64_t first, uint64_t count, int64_t file_offset);
  int read_locked(uint64_t offset, uint32_t length, uint8_t* buf, bool if_cached) const;
  int write_sectors(uint64_t first, uint64_t count, const uint8_t* buf);
  // The cache's data space: offsets below file_end_, each 1 MiB chunk in
  // RAM or in the file. The caller holds mutex_ (shared to load, exclusive
  // to store into RAM chunks).
  bool load(uint64_t offset, uint8_t* buf, size_t length, bool if_cached) const;
  // Stores into RAM chunks under the lock; returns the parts that go to the
  // file, as (offset, buffer offset, length).
  std::vector<std::array<uint64_t, 3>> store_ram_part(uint64_t offset, const uint8_t* buf, size_t length);
  void reserve_chunks(uint64_t end);

  std::shared_ptr<const vhd::Disk> below_;
  std::string path_;
  util::UniqueFd fd_;
  mutable std::shared_mutex mutex_;
  Index index_;
  uint64_t file_end_ = 0;
  std::shared_ptr<RamBudget> ram_;
  std::vector<std::unique_ptr<uint8_t[]>> chunks_;  // per 1 MiB chunk: RAM, or null for the file
};

}  // namespace bootfleet::block
