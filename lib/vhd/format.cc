#include "vhd/format.h"

#include <algorithm>
#include <cstring>
#include <ctime>

#include "util/bytes.h"
#include "util/time.h"

namespace bootfleet::vhd {

using util::load_be16;
using util::load_be32;
using util::load_be64;
using util::store_be16;
using util::store_be32;
using util::store_be64;

namespace {
constexpr char kFooterCookie[] = "conectix";
constexpr char kHeaderCookie[] = "cxsparse";
constexpr size_t kFooterChecksumAt = 64;
constexpr size_t kHeaderChecksumAt = 36;
}  // namespace

const char* disk_type_name(DiskType type) {
  switch (type) {
    case DiskType::kFixed: return "fixed";
    case DiskType::kDynamic: return "dynamic";
    case DiskType::kDifferencing: return "differencing";
    default: return "unknown";
  }
}

Geometry geometry_for_sectors(uint64_t total_sectors) {
  uint64_t sectors = std::min<uint64_t>(total_sectors, 65535ull * 16 * 255);
  uint64_t spt, heads, cyl_times_heads;
  if (sectors >= 65535ull * 16 * 63) {
    spt = 255;
    heads = 16;
    cyl_times_heads = sectors / spt;
  } else {
    spt = 17;
    cyl_times_heads = sectors / spt;
    heads = (cyl_times_heads + 1023) / 1024;
    if (heads < 4) heads = 4;
    if (cyl_times_heads >= heads * 1024 || heads > 16) {
      spt = 31;
      heads = 16;
      cyl_times_heads = sectors / spt;
    }
    if (cyl_times_heads >= heads * 1024) {
      spt = 63;
      heads = 16;
      cyl_times_heads = sectors / spt;
    }
  }
  Geometry g;
  g.cylinders = static_cast<uint16_t>(cyl_times_heads / heads);
  g.heads = static_cast<uint8_t>(heads);
  g.sectors_per_track = static_cast<uint8_t>(spt);
  return g;
}

uint64_t round_up_to_geometry(uint64_t bytes) {
  uint64_t sectors = (bytes + kSectorSize - 1) / kSectorSize;
  if (sectors >= 65535ull * 16 * 255) return sectors * kSectorSize;
  // The geometry of a larger size never covers fewer sectors, so the first
  // exact fit at or above `sectors` is found by stepping to the next cylinder
  // boundary of the geometry at hand; a few steps at most.
  for (uint64_t s = sectors;;) {
    Geometry g = geometry_for_sectors(s);
    uint64_t covered = g.total_sectors();
    if (covered >= sectors) return covered * kSectorSize;
    uint64_t per_cylinder = uint64_t{g.heads} * g.sectors_per_track;
    uint64_t next = (sectors + per_cylinder - 1) / per_cylinder * per_cylinder;
    s = next > s ? next : s + 1;
    if (s >= 65535ull * 16 * 255) return sectors * kSectorSize;
  }
}

bool Footer::cookie_ok() const { return std::memcmp(cookie.data(), kFooterCookie, 8) == 0; }

Footer make_footer(DiskType type, uint64_t size) {
  Footer f;
  std::memcpy(f.cookie.data(), kFooterCookie, 8);
  f.data_offset = type == DiskType::kFixed ? kNoDataOffset : kFooterSize;
  f.timestamp = vhd_timestamp_now();
  std::memcpy(f.creator_app.data(), "bflt", 4);
  f.creator_version = 0x00010000;
  std::memcpy(f.creator_host_os.data(), "Lnux", 4);
  f.original_size = size;
  f.current_size = size;
  f.geometry = geometry_for_sectors(size / kSectorSize);
  f.disk_type = static_cast<uint32_t>(type);
  f.unique_id = util::random_uuid();
  return f;
}

uint32_t checksum_of(const uint8_t* bytes, size_t length, size_t checksum_offset) {
  uint32_t sum = 0;
  for (size_t i = 0; i < length; ++i) {
    if (i >= checksum_offset && i < checksum_offset + 4) continue;
    sum += bytes[i];
  }
  return ~sum;
}

uint32_t footer_checksum(const uint8_t* bytes) {
  return checksum_of(bytes, kFooterSize, kFooterChecksumAt);
}
uint32_t header_checksum(const uint8_t* bytes) {
  return checksum_of(bytes, kHeaderSize, kHeaderChecksumAt);
}

Footer parse_footer(const uint8_t* b) {
  Footer f;
  std::memcpy(f.cookie.data(), b, 8);
  f.features = load_be32(b + 8);
  f.format_version = load_be32(b + 12);
  f.data_offset = load_be64(b + 16);
  f.timestamp = load_be32(b + 24);
  std::memcpy(f.creator_app.data(), b + 28, 4);
  f.creator_version = load_be32(b + 32);
  std::memcpy(f.creator_host_os.data(), b + 36, 4);
  f.original_size = load_be64(b + 40);
  f.current_size = load_be64(b + 48);
  f.geometry.cylinders = load_be16(b + 56);
  f.geometry.heads = b[58];
  f.geometry.sectors_per_track = b[59];
  f.disk_type = load_be32(b + 60);
  f.checksum = load_be32(b + 64);
  std::memcpy(f.unique_id.data(), b + 68, 16);
  f.saved_state = b[84];
  return f;
}

std::array<uint8_t, kFooterSize> serialize_footer(const Footer& f) {
  std::array<uint8_t, kFooterSize> out{};
  uint8_t* b = out.data();
  std::memcpy(b, f.cookie.data(), 8);
  store_be32(b + 8, f.features);
  store_be32(b + 12, f.format_version);
  store_be64(b + 16, f.data_offset);
  store_be32(b + 24, f.timestamp);
  std::memcpy(b + 28, f.creator_app.data(), 4);
  store_be32(b + 32, f.creator_version);
  std::memcpy(b + 36, f.creator_host_os.data(), 4);
  store_be64(b + 40, f.original_size);
  store_be64(b + 48, f.current_size);
  store_be16(b + 56, f.geometry.cylinders);
  b[58] = f.geometry.heads;
  b[59] = f.geometry.sectors_per_track;
  store_be32(b + 60, f.disk_type);
  std::memcpy(b + 68, f.unique_id.data(), 16);
  b[84] = f.saved_state;
  store_be32(b + 64, footer_checksum(b));
  return out;
}

bool ParentLocator::empty() const {
  return load_be32(platform_code.data()) == 0;
}

std::string ParentLocator::code() const {
  return util::printable_code(platform_code.data(), 4);
}

uint64_t ParentLocator::space_bytes() const {
  // The spec says sectors; Windows writes bytes. A value below one sector's
  // worth of bytes can only be sectors.
  if (data_space < kSectorSize) return uint64_t{data_space} * kSectorSize;
  return data_space;
}

bool DynamicHeader::cookie_ok() const { return std::memcmp(cookie.data(), kHeaderCookie, 8) == 0; }

std::string DynamicHeader::parent_name() const {
  return util::utf16_to_utf8(parent_unicode_name, /*big_endian=*/true);
}

void DynamicHeader::set_parent_name(const std::string& utf8) {
  parent_unicode_name.fill(0);
  std::string utf16 = util::utf8_to_utf16(utf8, /*big_endian=*/true);
  std::memcpy(parent_unicode_name.data(), utf16.data(),
              std::min(utf16.size(), parent_unicode_name.size()));
}

DynamicHeader parse_header(const uint8_t* b) {
  DynamicHeader h;
  std::memcpy(h.cookie.data(), b, 8);
  h.data_offset = load_be64(b + 8);
  h.table_offset = load_be64(b + 16);
  h.header_version = load_be32(b + 24);
  h.max_table_entries = load_be32(b + 28);
  h.block_size = load_be32(b + 32);
  h.checksum = load_be32(b + 36);
  std::memcpy(h.parent_unique_id.data(), b + 40, 16);
  h.parent_timestamp = load_be32(b + 56);
  std::memcpy(h.parent_unicode_name.data(), b + 64, 512);
  for (size_t i = 0; i < 8; ++i) {
    const uint8_t* e = b + 576 + 24 * i;
    ParentLocator& l = h.locators[i];
    std::memcpy(l.platform_code.data(), e, 4);
    l.data_space = load_be32(e + 4);
    l.data_length = load_be32(e + 8);
    l.data_offset = load_be64(e + 16);
  }
  return h;
}

std::array<uint8_t, kHeaderSize> serialize_header(const DynamicHeader& h) {
  std::array<uint8_t, kHeaderSize> out{};
  uint8_t* b = out.data();
  std::memcpy(b, h.cookie.data(), 8);
  store_be64(b + 8, h.data_offset);
  store_be64(b + 16, h.table_offset);
  store_be32(b + 24, h.header_version);
  store_be32(b + 28, h.max_table_entries);
  store_be32(b + 32, h.block_size);
  std::memcpy(b + 40, h.parent_unique_id.data(), 16);
  store_be32(b + 56, h.parent_timestamp);
  std::memcpy(b + 64, h.parent_unicode_name.data(), 512);
  for (size_t i = 0; i < 8; ++i) {
    uint8_t* e = b + 576 + 24 * i;
    const ParentLocator& l = h.locators[i];
    std::memcpy(e, l.platform_code.data(), 4);
    store_be32(e + 4, l.data_space);
    store_be32(e + 8, l.data_length);
    store_be64(e + 16, l.data_offset);
  }
  store_be32(b + 36, header_checksum(b));
  return out;
}

std::vector<std::string> validate_footer(const Footer& f, const uint8_t* raw, uint64_t file_size) {
  std::vector<std::string> problems;
  if (!f.cookie_ok()) {
    problems.push_back("footer cookie is '" + util::printable_code(f.cookie.data(), 8) +
                       "', expected 'conectix' (not a VHD file?)");
    return problems;
  }
  uint32_t sum = footer_checksum(raw);
  if (sum != f.checksum) {
    char buf[96];
    std::snprintf(buf, sizeof buf, "footer checksum is 0x%08x, the footer's bytes sum to 0x%08x",
                  f.checksum, sum);
    problems.emplace_back(buf);
  }
  if ((f.format_version >> 16) != 1) {
    problems.push_back("footer file format version is " + std::to_string(f.format_version >> 16) +
                       "." + std::to_string(f.format_version & 0xFFFF) + ", only 1.x is defined");
  }
  DiskType t = f.type();
  if (t != DiskType::kFixed && t != DiskType::kDynamic && t != DiskType::kDifferencing) {
    problems.push_back("footer disk type is " + std::to_string(f.disk_type) +
                       ", expected 2 (fixed), 3 (dynamic) or 4 (differencing)");
    return problems;
  }
  if (f.current_size % kSectorSize != 0) {
    problems.push_back("footer current size " + std::to_string(f.current_size) +
                       " is not a multiple of 512");
  }
  if (f.current_size > kMaxDiskSize) {
    problems.push_back("footer current size " + std::to_string(f.current_size) +
                       " exceeds the VHD limit of 2040 GiB (" + std::to_string(kMaxDiskSize) + " bytes)");
  }
  if (t == DiskType::kFixed) {
    if (!range_fits(f.current_size, kFooterSize - 1, file_size)) {
      problems.push_back("fixed disk of " + std::to_string(f.current_size) +
                         " bytes needs a file of at least " +
                         std::to_string(f.current_size + kFooterSize) + " bytes, the file has " +
                         std::to_string(file_size) + " (truncated?)");
    }
  } else {
    if (f.data_offset == kNoDataOffset || f.data_offset % kSectorSize != 0 ||
        !range_fits(f.data_offset, kHeaderSize, file_size)) {
      problems.push_back("footer data offset " + std::to_string(f.data_offset) +
                         " does not point at a dynamic header inside the file (" +
                         std::to_string(file_size) + " bytes)");
    }
  }
  return problems;
}

std::vector<std::string> validate_header(const DynamicHeader& h, const uint8_t* raw,
                                         const Footer& footer, uint64_t file_size) {
  std::vector<std::string> problems;
  if (!h.cookie_ok()) {
    problems.push_back("dynamic header cookie is '" + util::printable_code(h.cookie.data(), 8) +
                       "', expected 'cxsparse'");
    return problems;
  }
  uint32_t sum = header_checksum(raw);
  if (sum != h.checksum) {
    char buf[112];
    std::snprintf(buf, sizeof buf,
                  "dynamic header checksum is 0x%08x, the header's bytes sum to 0x%08x", h.checksum,
                  sum);
    problems.emplace_back(buf);
  }
  if (h.data_offset != kNoDataOffset) {
    problems.push_back("dynamic header data offset should be all ones (0xFFFFFFFFFFFFFFFF)");
  }
  if (h.block_size < kSectorSize || (h.block_size & (h.block_size - 1)) != 0 ||
      h.block_size > (256u << 20)) {
    problems.push_back("dynamic header block size " + std::to_string(h.block_size) +
                       " is not a power of two between 512 bytes and 256 MiB");
    return problems;
  }
  uint64_t needed = (footer.current_size + h.block_size - 1) / h.block_size;
  if (h.max_table_entries < needed) {
    problems.push_back("dynamic header has " + std::to_string(h.max_table_entries) +
                       " BAT entries, a disk of " + std::to_string(footer.current_size) +
                       " bytes in blocks of " + std::to_string(h.block_size) + " needs " +
                       std::to_string(needed));
  }
  if (h.table_offset % kSectorSize != 0 ||
      !range_fits(h.table_offset, uint64_t{h.max_table_entries} * 4, file_size)) {
    problems.push_back("BAT at offset " + std::to_string(h.table_offset) + " with " +
                       std::to_string(h.max_table_entries) + " entries does not fit in the file (" +
                       std::to_string(file_size) + " bytes)");
  }
  if (footer.type() == DiskType::kDifferencing && util::uuid_is_nil(h.parent_unique_id)) {
    problems.push_back("differencing disk has no parent unique id");
  }
  return problems;
}

uint32_t bitmap_bytes(uint32_t block_size) {
  uint32_t bits = block_size / kSectorSize;
  uint32_t bytes = (bits + 7) / 8;
  return (bytes + kSectorSize - 1) / kSectorSize * kSectorSize;
}

uint32_t vhd_timestamp_now() {
  int64_t now = static_cast<int64_t>(std::time(nullptr)) - kVhdEpochOffset;
  return now < 0 ? 0 : static_cast<uint32_t>(now);
}

std::string format_vhd_timestamp(uint32_t timestamp) {
  return util::format_utc(int64_t{timestamp} + kVhdEpochOffset);
}

}  // namespace bootfleet::vhd
