// Block digests of a version: the SHA-256 of every 2 MiB block of the
// virtual disk that is not all zeros. Blocks absent from the list read as
// zeros. The disk digest is the SHA-256 of all block digests in order (zero
// blocks contribute the digest of a zero block), so it identifies the whole
// disk's content yet is computed without reading any data.
//
// Two versions differ exactly where their block digests differ, which is how
// `imgtool diff` answers without reading block data.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <vector>

#include "util/sha256.h"

namespace bootfleet::store {

constexpr uint32_t kDigestBlockSize = 2u << 20;

class BlockDigests {
 public:
  BlockDigests() = default;
  explicit BlockDigests(uint64_t disk_size) : disk_size_(disk_size) {}

  uint64_t disk_size() const { return disk_size_; }
  uint32_t block_count() const {
    return static_cast<uint32_t>((disk_size_ + kDigestBlockSize - 1) / kDigestBlockSize);
  }
  uint32_t block_length(uint32_t block) const;

  // Records the content of a block; an all-zero block is recorded as absent.
  void set_from_data(uint32_t block, std::span<const uint8_t> data);
  void set(uint32_t block, const util::Digest& digest);
  void clear(uint32_t block);
  // nullopt: the block is all zeros.
  std::optional<util::Digest> get(uint32_t block) const;
  size_t nonzero_blocks() const { return entries_.size(); }

  util::Digest disk_digest() const;

  // Serialized form kept in the catalog: (u32 big-endian block, 32-byte
  // digest) for each non-zero block, ascending.
  std::vector<uint8_t> encode() const;
  static BlockDigests decode(uint64_t disk_size, std::span<const uint8_t> blob);

  // Blocks whose content differs between two disks (of any sizes; the
  // shorter one reads as zeros past its end).
  static std::vector<uint32_t> changed_blocks(const BlockDigests& a, const BlockDigests& b);

  bool operator==(const BlockDigests&) const = default;

 private:
  struct Entry {
    uint32_t block;
    util::Digest digest;
    bool operator==(const Entry&) const = default;
  };
  std::vector<Entry> entries_;  // sorted by block
  uint64_t disk_size_ = 0;
};

}  // namespace bootfleet::store
