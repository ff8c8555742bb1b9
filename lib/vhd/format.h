// The VHD on-disk structures, per Microsoft's "Virtual Hard Disk Image Format
// Specification" (2006, v1.0): the 512-byte footer, the 1024-byte dynamic
// header with its parent locators, and the arithmetic around them (checksum,
// CHS geometry, timestamps). docs/formats.md describes what we write into
// every field and what we accept on read.
//
// Parsing is split from validation on purpose: parse_*() decodes any 512 or
// 1024 bytes into a struct (it never fails), and validate_*() lists every
// problem it finds. The reader throws on the first problem; `imgtool check`
// reports them all.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "util/uuid.h"

namespace bootfleet::vhd {

constexpr uint32_t kSectorSize = 512;
constexpr uint32_t kFooterSize = 512;
constexpr uint32_t kHeaderSize = 1024;
constexpr uint32_t kDefaultBlockSize = 2u << 20;
constexpr uint32_t kBatUnused = 0xFFFFFFFFu;
// The largest disk the format allows (Microsoft documents 2040 GiB).
constexpr uint64_t kMaxDiskSize = 2040ull << 30;
constexpr uint64_t kNoDataOffset = 0xFFFFFFFFFFFFFFFFull;
// Seconds between the Unix epoch and VHD's (2000-01-01 00:00:00 UTC).
constexpr int64_t kVhdEpochOffset = 946684800;

enum class DiskType : uint32_t { kNone = 0, kFixed = 2, kDynamic = 3, kDifferencing = 4 };
const char* disk_type_name(DiskType type);

struct Geometry {
  uint16_t cylinders = 0;
  uint8_t heads = 0;
  uint8_t sectors_per_track = 0;
  uint64_t total_sectors() const {
    return uint64_t{cylinders} * heads * sectors_per_track;
  }
  bool operator==(const Geometry&) const = default;
};

// The spec's algorithm (appendix "CHS calculation").
Geometry geometry_for_sectors(uint64_t total_sectors);
// The smallest size >= `bytes` whose spec geometry covers it exactly, so that
// readers which size a disk by its geometry (Virtual PC, qemu for most
// creator codes) see the same disk as those that read current_size. Above
// 65535*16*255 sectors the geometry saturates and current_size rules.
uint64_t round_up_to_geometry(uint64_t bytes);

struct Footer {
  std::array<uint8_t, 8> cookie{};
  uint32_t features = 2;
  uint32_t format_version = 0x00010000;
  uint64_t data_offset = kNoDataOffset;
  uint32_t timestamp = 0;
  std::array<uint8_t, 4> creator_app{};
  uint32_t creator_version = 0;
  std::array<uint8_t, 4> creator_host_os{};
  uint64_t original_size = 0;
  uint64_t current_size = 0;
  Geometry geometry;
  uint32_t disk_type = 0;
  uint32_t checksum = 0;
  util::Uuid unique_id{};
  uint8_t saved_state = 0;

  DiskType type() const { return static_cast<DiskType>(disk_type); }
  bool cookie_ok() const;
};

// A footer with our defaults: cookie, version, creator "bflt", host "Lnux",
// now as timestamp, a fresh UUID, size rounded as round_up_to_geometry says.
Footer make_footer(DiskType type, uint64_t size);

Footer parse_footer(const uint8_t* bytes);  // 512 bytes
// Serializes with a freshly computed checksum.
std::array<uint8_t, kFooterSize> serialize_footer(const Footer& footer);
// One's complement of the byte sum, the checksum field counted as zero.
uint32_t checksum_of(const uint8_t* bytes, size_t length, size_t checksum_offset);
uint32_t footer_checksum(const uint8_t* bytes);  // of raw 512 bytes

struct ParentLocator {
  std::array<uint8_t, 4> platform_code{};
  uint32_t data_space = 0;   // spec: sectors; Windows writes bytes
  uint32_t data_length = 0;  // bytes
  uint64_t data_offset = 0;
  bool empty() const;
  std::string code() const;  // "W2ru", "W2ku", …
  // data_space in bytes, reading sectors or bytes as files in the wild do.
  uint64_t space_bytes() const;
};

struct DynamicHeader {
  std::array<uint8_t, 8> cookie{};
  uint64_t data_offset = kNoDataOffset;
  uint64_t table_offset = 0;
  uint32_t header_version = 0x00010000;
  uint32_t max_table_entries = 0;
  uint32_t block_size = kDefaultBlockSize;
  uint32_t checksum = 0;
  util::Uuid parent_unique_id{};
  uint32_t parent_timestamp = 0;
  std::array<uint8_t, 512> parent_unicode_name{};  // UTF-16 BE
  std::array<ParentLocator, 8> locators{};

  bool cookie_ok() const;
  std::string parent_name() const;
  void set_parent_name(const std::string& utf8);
};

DynamicHeader parse_header(const uint8_t* bytes);  // 1024 bytes
std::array<uint8_t, kHeaderSize> serialize_header(const DynamicHeader& header);
uint32_t header_checksum(const uint8_t* bytes);  // of raw 1024 bytes

// Every problem with a footer read from a file of `file_size` bytes. Empty
// means usable. Each message names the field and what would be right.
std::vector<std::string> validate_footer(const Footer& footer, const uint8_t* raw,
                                         uint64_t file_size);
std::vector<std::string> validate_header(const DynamicHeader& header, const uint8_t* raw,
                                         const Footer& footer, uint64_t file_size);

// Whether [offset, offset + length) lies within [0, size), written so that
// hostile offsets and lengths near 2^64 cannot wrap around.
inline bool range_fits(uint64_t offset, uint64_t length, uint64_t size) {
  return offset <= size && length <= size - offset;
}

// Bytes of a block's sector bitmap, padded to whole sectors as the spec says.
uint32_t bitmap_bytes(uint32_t block_size);

uint32_t vhd_timestamp_now();
std::string format_vhd_timestamp(uint32_t timestamp);  // ISO 8601 UTC

}  // namespace bootfleet::vhd
