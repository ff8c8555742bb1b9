#include "vhd/vhd_file.h"

#include <fcntl.h>

#include <algorithm>
#include <cstring>

#include "util/bytes.h"
#include "util/error.h"

namespace bootfleet::vhd {

using util::Error;

std::shared_ptr<VhdFile> VhdFile::open(const std::string& path) {
  return open_fd(util::open_file(path, O_RDONLY), path);
}

std::shared_ptr<VhdFile> VhdFile::open_fd(util::UniqueFd fd, const std::string& path) {
  std::shared_ptr<VhdFile> f(new VhdFile());
  f->path_ = path;
  f->fd_ = std::move(fd);
  f->load(/*strict=*/true);
  return f;
}

VhdFile::Inspection VhdFile::inspect(const std::string& path) {
  Inspection out;
  std::shared_ptr<VhdFile> f(new VhdFile());
  f->path_ = path;
  try {
    f->fd_ = util::open_file(path, O_RDONLY);
    bool usable = f->load(/*strict=*/false);
    out.problems = std::move(f->problems_);
    DiskType t = f->type();
    if (f->footer_.cookie_ok() && (t == DiskType::kFixed || t == DiskType::kDynamic || t == DiskType::kDifferencing)) {
      out.type = disk_type_name(t);
    }
    if (usable) out.file = std::move(f);
  } catch (const Error& e) {  // I/O errors: the file cannot be read at all
    out.problems.push_back(e.what());
  }
  return out;
}

bool VhdFile::problem(bool strict, const std::string& message, bool fatal) {
  if (strict) throw Error(path_ + ": " + message);
  problems_.push_back(message);
  return !fatal;
}

bool VhdFile::load(bool strict) {
  file_size_ = util::file_size(fd_.get(), path_);
  if (file_size_ < kFooterSize - 1) {
    return problem(strict, std::to_string(file_size_) +
                   " bytes is too short for a VHD (a footer alone is 512 bytes)", true);
  }
  uint8_t raw[kFooterSize] = {};
  footer_offset_ = file_size_ - kFooterSize;
  if (file_size_ >= kFooterSize) util::pread_full(fd_.get(), raw, kFooterSize, footer_offset_, path_);
  if (file_size_ < kFooterSize || std::memcmp(raw, "conectix", 8) != 0) {
    // Some old tools wrote a 511-byte footer; the spec's checksum still holds
    // with the missing reserved byte read as zero.
    uint8_t alt[kFooterSize] = {};
    util::pread_full(fd_.get(), alt, kFooterSize - 1, file_size_ - (kFooterSize - 1), path_);
    if (std::memcmp(alt, "conectix", 8) == 0) {
      std::memcpy(raw, alt, kFooterSize);
      footer_offset_ = file_size_ - (kFooterSize - 1);
    }
  }
  footer_ = parse_footer(raw);
  if (!footer_.cookie_ok()) {
    uint8_t copy[8] = {};
    util::pread_some(fd_.get(), copy, 8, 0, path_);
    std::string hint = std::memcmp(copy, "conectix", 8) == 0
                           ? " (the footer copy at offset 0 is there: the file was truncated or its end overwritten)"
                           : " (not a VHD file?)";
    return problem(strict, "no VHD footer at the end of the file" + hint, true);
  }
  auto problems = validate_footer(footer_, raw, footer_offset_ + kFooterSize);
  DiskType t = type();
  bool known_type = t == DiskType::kFixed || t == DiskType::kDynamic || t == DiskType::kDifferencing;
  for (const auto& p : problems) problem(strict, p, false);
  if (!known_type) return false;

  if (t == DiskType::kFixed) {
    if (footer_offset_ < footer_.current_size) {
      return problem(strict, "fixed disk of " + std::to_string(footer_.current_size) +
                     " bytes but only " + std::to_string(footer_offset_) +
                     " bytes of data precede the footer (truncated?)", true);
    }
    return true;
  }
  if (footer_.data_offset == kNoDataOffset || !range_fits(footer_.data_offset, kHeaderSize, file_size_)) return false;
  if (footer_.current_size > kMaxDiskSize) return false;  // a BAT for it would be absurd

  // The copy of the footer at the start must match the one at the end.
  uint8_t copy[kFooterSize];
  util::pread_full(fd_.get(), copy, kFooterSize, 0, path_);
  if (std::memcmp(copy, raw, kFooterSize) != 0) {
    problem(strict, "the footer copy at offset 0 differs from the footer at the end", false);
  }

  uint8_t hraw[kHeaderSize];
  util::pread_full(fd_.get(), hraw, kHeaderSize, footer_.data_offset, path_);
  header_ = parse_header(hraw);
  problems = validate_header(header_, hraw, footer_, file_size_);
  for (const auto& p : problems) problem(strict, p, false);
  if (!header_.cookie_ok() || header_.block_size < kSectorSize ||
      (header_.block_size & (header_.block_size - 1)) != 0 || header_.block_size > (256u << 20)) {
    return false;
  }

  uint64_t blocks = (footer_.current_size + header_.block_size - 1) / header_.block_size;
  // Checked without wrapping: a table offset near 2^64 must not pass, or a
  // tiny file would have us allocate a BAT for the largest disk (16 GiB).
  if (header_.max_table_entries < blocks || !range_fits(header_.table_offset, blocks * 4, file_size_)) {
    return false;  // already reported by validate_header
  }
  std::vector<uint8_t> raw_bat(blocks * 4);
  if (!raw_bat.empty()) util::pread_full(fd_.get(), raw_bat.data(), raw_bat.size(), header_.table_offset, path_);
  bat_.resize(blocks);
  for (uint64_t i = 0; i < blocks; ++i) bat_[i] = util::load_be32(&raw_bat[i * 4]);

  // Every allocated block must lie inside the file, after the metadata and
  // before the footer, and no two may overlap: otherwise a read could return
  // another block's data, or the footer, as disk content.
  uint64_t meta_end = std::max<uint64_t>(footer_.data_offset + kHeaderSize,
                                         header_.table_offset + uint64_t{header_.max_table_entries} * 4);
  struct Placed {
    uint64_t start, end;
    std::string what;
  };
  std::vector<Placed> placed;
  bool layout_ok = true;
  for (const ParentLocator& l : header_.locators) {
    if (l.empty()) continue;
    uint64_t length = std::max<uint64_t>(l.space_bytes(), l.data_length);
    if (l.data_offset < meta_end || l.data_offset > footer_offset_ || length > footer_offset_ - l.data_offset) {
      problem(strict, "parent locator " + l.code() + " data at offset " + std::to_string(l.data_offset) +
              " (" + std::to_string(l.data_length) + " bytes) lies outside the file's data area", false);
      continue;
    }
    placed.push_back({l.data_offset, l.data_offset + length, "parent locator " + l.code()});
  }
  for (uint32_t i = 0; i < bat_.size(); ++i) {
    if (bat_[i] == kBatUnused) continue;
    uint64_t start = uint64_t{bat_[i]} * kSectorSize;
    uint64_t end = start + bitmap_size() + block_length(i);
    if (start < meta_end) {
      problem(strict, "BAT entry " + std::to_string(i) + " points at offset " +
                          std::to_string(start) + ", inside the header and BAT (which end at " +
                          std::to_string(meta_end) + ")", false);
      layout_ok = false;
      continue;
    }
    if (end > footer_offset_) {
      problem(strict, "BAT entry " + std::to_string(i) + " points at offset " +
                          std::to_string(start) + ", its block would end at " + std::to_string(end) +
                          " past the footer at " + std::to_string(footer_offset_) + " (truncated file?)",
                          false);
      layout_ok = false;
      continue;
    }
    placed.push_back({start, end, "block " + std::to_string(i)});
  }
  std::sort(placed.begin(), placed.end(), [](const Placed& a, const Placed& b) { return a.start < b.start; });
  for (size_t k = 1; k < placed.size(); ++k) {
    if (placed[k].start < placed[k - 1].end) {
      problem(strict, placed[k - 1].what + " and " + placed[k].what +
                          " overlap in the file (offsets " + std::to_string(placed[k - 1].start) +
                          " and " + std::to_string(placed[k].start) + ")", false);
      layout_ok = false;
    }
  }
  return layout_ok;
}

std::optional<uint64_t> VhdFile::block_data_offset(uint32_t block) const {
  if (block >= bat_.size() || bat_[block] == kBatUnused) return std::nullopt;
  return uint64_t{bat_[block]} * kSectorSize + bitmap_size();
}

uint32_t VhdFile::block_length(uint32_t block) const {
  return static_cast<uint32_t>(
      std::min<uint64_t>(header_.block_size, footer_.current_size - uint64_t{block} * header_.block_size));
}

std::vector<SectorRun> VhdFile::present_runs(uint32_t block) const {
  std::vector<SectorRun> runs;
  if (type() == DiskType::kFixed) return runs;
  auto data = block_data_offset(block);
  if (!data) return runs;
  const uint32_t sectors = block_length(block) / kSectorSize;
  // A damaged footer (inspect() goes on past it) may give a size that ends
  // a few bytes into the last block: that block then holds no whole sector,
  // and an empty run would make callers loop on nothing.
  if (sectors == 0) return runs;
  if (type() == DiskType::kDynamic) {
    runs.push_back({0, sectors});
    return runs;
  }
  std::vector<uint8_t> bitmap = read_bitmap(block);
  uint32_t i = 0;
  while (i < sectors) {
    // Skip whole clear bytes quickly; bitmaps are mostly all-set or all-clear.
    if ((i & 7) == 0 && bitmap[i >> 3] == 0) {
      i += 8;
      continue;
    }
    if (!(bitmap[i >> 3] & (0x80 >> (i & 7)))) {
      ++i;
      continue;
    }
    uint32_t first = i;
    while (i < sectors) {
      if ((i & 7) == 0 && bitmap[i >> 3] == 0xFF && i + 8 <= sectors) {
        i += 8;
        continue;
      }
      if (!(bitmap[i >> 3] & (0x80 >> (i & 7)))) break;
      ++i;
    }
    runs.push_back({first, i - first});
  }
  return runs;
}

std::vector<uint8_t> VhdFile::read_bitmap(uint32_t block) const {
  auto data = block_data_offset(block);
  if (!data) return {};
  std::vector<uint8_t> bitmap(bitmap_size());
  util::pread_full(fd_.get(), bitmap.data(), bitmap.size(), *data - bitmap_size(), path_);
  return bitmap;
}

uint64_t VhdFile::allocated_bytes() const {
  if (type() == DiskType::kFixed) return footer_.current_size;
  uint64_t n = 0;
  for (uint32_t i = 0; i < bat_.size(); ++i) {
    if (bat_[i] == kBatUnused) continue;
    n += block_length(i);
  }
  return n;
}

std::string read_locator_path(const VhdFile& file, const ParentLocator& l) {
  if (l.empty() || l.data_length == 0 || l.data_length > 64 * 1024) return {};
  // Written so that a hostile offset near 2^64 cannot wrap around.
  if (l.data_offset > file.file_size() || l.data_length > file.file_size() - l.data_offset) return {};
  std::vector<uint8_t> data(l.data_length);
  util::pread_full(file.fd(), data.data(), data.size(), l.data_offset, file.path());
  std::string code = l.code();
  std::string text;
  if (code == "W2ru" || code == "W2ku") {
    text = util::utf16_to_utf8(data, /*big_endian=*/false);
  } else if (code == "Wi2r" || code == "Wi2k" || code == "Mac " || code == "MacX") {
    text.assign(data.begin(), std::find(data.begin(), data.end(), uint8_t{0}));
  } else {
    return {};
  }
  if (text.rfind("file://", 0) == 0) text = text.substr(7);
  std::replace(text.begin(), text.end(), '\\', '/');
  if (text.rfind("./", 0) == 0) text = text.substr(2);
  return text;
}

std::vector<std::string> VhdFile::parent_candidates() const {
  std::vector<std::string> out;
  auto add = [&](const std::string& p) {
    if (!p.empty() && std::find(out.begin(), out.end(), p) == out.end()) out.push_back(p);
  };
  std::string dir = util::dir_name(path_);
  const char* order[] = {"W2ru", "Wi2r", "W2ku", "Wi2k", "MacX", "Mac "};
  for (const char* code : order) {
    for (const auto& l : header_.locators) {
      if (l.code() != code) continue;
      std::string p = read_locator_path(*this, l);
      if (p.empty()) continue;
      bool absolute = p[0] == '/' || (p.size() > 2 && p[1] == ':');
      if (absolute) {
        add(p);
        add(util::join_path(dir, util::base_name(p)));  // moved together with its child
      } else {
        add(util::join_path(dir, p));
      }
    }
  }
  std::string name = header_.parent_name();
  std::replace(name.begin(), name.end(), '\\', '/');
  if (!name.empty()) add(util::join_path(dir, util::base_name(name)));
  return out;
}

}  // namespace bootfleet::vhd
