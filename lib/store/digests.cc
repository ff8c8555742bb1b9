#include "store/digests.h"

#include <algorithm>

#include "util/bytes.h"
#include "util/error.h"

namespace bootfleet::store {

uint32_t BlockDigests::block_length(uint32_t block) const {
  return static_cast<uint32_t>(
      std::min<uint64_t>(kDigestBlockSize, disk_size_ - uint64_t{block} * kDigestBlockSize));
}

void BlockDigests::set_from_data(uint32_t block, std::span<const uint8_t> data) {
  if (util::is_all_zero(data.data(), data.size())) clear(block);
  else set(block, util::sha256(data));
}

void BlockDigests::set(uint32_t block, const util::Digest& digest) {
  auto it = std::lower_bound(entries_.begin(), entries_.end(), block,
                             [](const Entry& e, uint32_t b) { return e.block < b; });
  if (it != entries_.end() && it->block == block) it->digest = digest;
  else entries_.insert(it, Entry{block, digest});
}

void BlockDigests::clear(uint32_t block) {
  auto it = std::lower_bound(entries_.begin(), entries_.end(), block,
                             [](const Entry& e, uint32_t b) { return e.block < b; });
  if (it != entries_.end() && it->block == block) entries_.erase(it);
}

std::optional<util::Digest> BlockDigests::get(uint32_t block) const {
  auto it = std::lower_bound(entries_.begin(), entries_.end(), block,
                             [](const Entry& e, uint32_t b) { return e.block < b; });
  if (it != entries_.end() && it->block == block) return it->digest;
  return std::nullopt;
}

util::Digest BlockDigests::disk_digest() const {
  std::vector<uint8_t> zeros(kDigestBlockSize, 0);
  util::Digest zero_full = util::sha256(zeros);
  util::Sha256 h;
  size_t next = 0;
  for (uint32_t b = 0; b < block_count(); ++b) {
    if (next < entries_.size() && entries_[next].block == b) {
      h.update(entries_[next].digest);
      ++next;
    } else if (block_length(b) == kDigestBlockSize) {
      h.update(zero_full);
    } else {
      h.update(util::sha256(std::span<const uint8_t>(zeros.data(), block_length(b))));
    }
  }
  return h.finish();
}

std::vector<uint8_t> BlockDigests::encode() const {
  std::vector<uint8_t> out(entries_.size() * 36);
  for (size_t i = 0; i < entries_.size(); ++i) {
    util::store_be32(&out[i * 36], entries_[i].block);
    std::copy(entries_[i].digest.begin(), entries_[i].digest.end(), out.begin() + static_cast<long>(i * 36 + 4));
  }
  return out;
}

BlockDigests BlockDigests::decode(uint64_t disk_size, std::span<const uint8_t> blob) {
  if (blob.size() % 36 != 0) {
    throw util::Error("catalog: block digest list of " + std::to_string(blob.size()) +
                      " bytes is not a whole number of 36-byte entries");
  }
  BlockDigests d(disk_size);
  d.entries_.reserve(blob.size() / 36);
  for (size_t i = 0; i < blob.size(); i += 36) {
    Entry e;
    e.block = util::load_be32(&blob[i]);
    std::copy(blob.begin() + static_cast<long>(i + 4), blob.begin() + static_cast<long>(i + 36), e.digest.begin());
    if ((!d.entries_.empty() && d.entries_.back().block >= e.block) || e.block >= d.block_count()) {
      throw util::Error("catalog: block digest list is not sorted or names block " + std::to_string(e.block) +
                        " past the disk's " + std::to_string(d.block_count()) + " blocks");
    }
    d.entries_.push_back(e);
  }
  return d;
}

std::vector<uint32_t> BlockDigests::changed_blocks(const BlockDigests& a, const BlockDigests& b) {
  std::vector<uint32_t> out;
  size_t i = 0, j = 0;
  const auto& ea = a.entries_;
  const auto& eb = b.entries_;
  while (i < ea.size() || j < eb.size()) {
    if (j == eb.size() || (i < ea.size() && ea[i].block < eb[j].block)) {
      out.push_back(ea[i++].block);
    } else if (i == ea.size() || eb[j].block < ea[i].block) {
      out.push_back(eb[j++].block);
    } else {
      if (ea[i].digest != eb[j].digest) out.push_back(ea[i].block);
      ++i;
      ++j;
    }
  }
  // A block present in both but shortened by a size change differs too; the
  // digests already capture that because they hash the block's own length.
  return out;
}

}  // namespace bootfleet::store
