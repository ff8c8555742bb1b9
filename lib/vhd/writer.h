// Writes a new VHD file: fixed, dynamic or differencing.
//
// Design note. Files are only ever created, never updated in place: a
// version is immutable, so a writer streams blocks into a fresh file and
// finish() seals it. The order makes a crash harmless: block data first,
// then the BAT and the dynamic header, fsync, and only then the footer at
// the end and its copy at the start, fsync. Until the footer is written the
// file is not a VHD at all, so it can never claim data it does not hold.
//
// Layout of a dynamic or differencing file we write:
//   0     footer copy (512)
//   512   dynamic header (1024)
//   1536  BAT (4 bytes an entry, padded to 512)
//         parent locator data, W2ru then W2ku (each padded to 512)
//         blocks: sector bitmap (512 for 2 MiB blocks) + data, each block's
//         data starting on a 4 KiB boundary so client reads stay page-aligned
//   end   footer (512)
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "util/file.h"
#include "vhd/format.h"

namespace bootfleet::vhd {

class VhdFile;

struct WriterOptions {
  DiskType type = DiskType::kDynamic;
  // Rounded up to whole CHS cylinders (round_up_to_geometry) for fixed and
  // dynamic files; a differencing file takes its parent's size.
  uint64_t size = 0;
  uint32_t block_size = kDefaultBlockSize;
  // Differencing only: the parent file (its footer gives id and size; the
  // locators record its path relative to the new file and absolute).
  const VhdFile* parent = nullptr;
  // Where the file will finally live, when it is written elsewhere first
  // (a temporary file renamed into place): the relative parent locator is
  // computed from there, so it stays right after the rename. "" = the path
  // written to.
  std::string final_path;
};

class Writer {
 public:
  // Creates (or truncates) `path`. Throws util::Error naming the path.
  Writer(const std::string& path, const WriterOptions& options);
  ~Writer();
  Writer(const Writer&) = delete;
  Writer& operator=(const Writer&) = delete;

  uint64_t size() const { return footer_.current_size; }
  uint32_t block_size() const { return block_size_; }
  uint32_t block_count() const { return static_cast<uint32_t>(bat_.size()); }
  const Footer& footer() const { return footer_; }
  // Bytes of the block (block_size, shorter for the last block).
  uint32_t block_length(uint32_t block) const;

  // Stores one block. `data` holds block_length(block) bytes. For fixed and
  // dynamic files an all-zero block is not stored (a hole, or no BAT entry).
  // For differencing files `present` (bitmap_bytes(block_size) bytes, VHD bit
  // order: bit 7 of byte 0 is sector 0) marks the sectors this file holds;
  // a block with no sector marked is not stored, while a marked all-zero
  // sector is (it hides the parent's data). Blocks may come in any order,
  // each at most once.
  void write_block(uint32_t block, std::span<const uint8_t> data,
                   std::span<const uint8_t> present = {});

  // Seals the file as described above. Without finish() the file is left
  // without a footer; callers write under a temporary name.
  void finish();

  // Bytes of disk data stored so far (for a differencing file, the sectors
  // its bitmaps mark).
  uint64_t stored_bytes() const { return stored_; }

 private:
  void write_locators(const VhdFile& parent);

  std::string path_;
  std::string final_path_;  // WriterOptions::final_path
  util::UniqueFd fd_;
  Footer footer_;
  DynamicHeader header_;
  uint32_t block_size_ = 0;
  std::vector<uint32_t> bat_;
  uint64_t next_block_offset_ = 0;
  uint64_t stored_ = 0;
  bool finished_ = false;
};

// Differencing files mark sectors in groups of 8, one bitmap byte (4 KiB),
// as Hyper-V's 4 KiB-aligned writes do: libvhdi (20210425) misreads a byte
// that is only partly set, taking all eight sectors from the child.
constexpr uint32_t kSectorsPerBitmapByte = 8;

// Marks in `bitmap` every 8-sector group of a block where `data` differs
// from `base`; returns whether any did.
bool mark_differences(const uint8_t* data, const uint8_t* base, uint32_t length, std::span<uint8_t> bitmap);

// Sets/tests a sector's bit in a VHD sector bitmap.
inline void bitmap_set(std::span<uint8_t> bitmap, uint32_t sector) {
  bitmap[sector >> 3] = static_cast<uint8_t>(bitmap[sector >> 3] | (0x80 >> (sector & 7)));
}
inline bool bitmap_test(std::span<const uint8_t> bitmap, uint32_t sector) {
  return (bitmap[sector >> 3] & (0x80 >> (sector & 7))) != 0;
}

}  // namespace bootfleet::vhd
