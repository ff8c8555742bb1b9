#include "vhd/writer.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <filesystem>

#include "util/bytes.h"
#include "util/error.h"
#include "vhd/vhd_file.h"

namespace bootfleet::vhd {

using util::Error;

namespace {
constexpr uint64_t kDataAlignment = 4096;

uint64_t round_up(uint64_t v, uint64_t to) { return (v + to - 1) / to * to; }

// The parent's path relative to the child's directory, Windows style
// (".\parent.vhd", "..\base\parent.vhd"), as Hyper-V writes W2ru.
std::string windows_relative(const std::string& child, const std::string& parent) {
  namespace fs = std::filesystem;
  fs::path c = fs::absolute(child).lexically_normal().parent_path();
  fs::path p = fs::absolute(parent).lexically_normal();
  std::string rel = p.lexically_relative(c).string();
  if (rel.empty()) rel = p.filename().string();
  std::replace(rel.begin(), rel.end(), '/', '\\');
  if (rel.rfind("..", 0) != 0) rel = ".\\" + rel;
  return rel;
}
}  // namespace

Writer::Writer(const std::string& path, const WriterOptions& options)
    : path_(path), final_path_(options.final_path) {
  if (options.type != DiskType::kFixed && options.type != DiskType::kDynamic &&
      options.type != DiskType::kDifferencing) {
    throw Error(path + ": cannot write a VHD of type " + disk_type_name(options.type));
  }
  if (options.block_size < kSectorSize || (options.block_size & (options.block_size - 1)) != 0 ||
      options.block_size > (256u << 20)) {
    throw Error(path + ": block size " + std::to_string(options.block_size) +
                " is not a power of two between 512 bytes and 256 MiB");
  }
  uint64_t size;
  if (options.type == DiskType::kDifferencing) {
    if (!options.parent) throw Error(path + ": a differencing disk needs a parent");
    size = options.parent->size();
  } else {
    size = round_up_to_geometry(options.size);
  }
  if (size > kMaxDiskSize) {
    throw Error(path + ": size " + std::to_string(size) + " exceeds the VHD limit of 2040 GiB");
  }
  footer_ = make_footer(options.type, size);
  block_size_ = options.type == DiskType::kFixed ? kDefaultBlockSize : options.block_size;
  bat_.assign((size + block_size_ - 1) / block_size_, kBatUnused);

  fd_ = util::open_file(path, O_RDWR | O_CREAT | O_TRUNC, 0644);
  if (options.type == DiskType::kFixed) return;

  std::memcpy(header_.cookie.data(), "cxsparse", 8);
  header_.table_offset = kFooterSize + kHeaderSize;
  header_.max_table_entries = static_cast<uint32_t>(bat_.size());
  header_.block_size = block_size_;
  next_block_offset_ = header_.table_offset + round_up(bat_.size() * 4, kSectorSize);
  if (options.type == DiskType::kDifferencing) {
    const VhdFile& parent = *options.parent;
    header_.parent_unique_id = parent.footer().unique_id;
    struct stat st {};
    if (::fstat(parent.fd(), &st) == 0 && st.st_mtime > kVhdEpochOffset) {
      header_.parent_timestamp = static_cast<uint32_t>(st.st_mtime - kVhdEpochOffset);
    }
    header_.set_parent_name(util::base_name(parent.path()));
    write_locators(parent);
  }
}

Writer::~Writer() = default;

void Writer::write_locators(const VhdFile& parent) {
  std::string relative = windows_relative(final_path_.empty() ? path_ : final_path_, parent.path());
  std::string absolute = std::filesystem::absolute(parent.path()).lexically_normal().string();
  struct Entry {
    const char* code;
    std::string data;
  } entries[] = {{"W2ru", util::utf8_to_utf16(relative, false)},
                 {"W2ku", util::utf8_to_utf16(absolute, false)}};
  size_t slot = 0;
  for (const Entry& e : entries) {
    ParentLocator& l = header_.locators[slot++];
    std::memcpy(l.platform_code.data(), e.code, 4);
    uint64_t space = round_up(e.data.size(), kSectorSize);
    l.data_space = static_cast<uint32_t>(space / kSectorSize);  // sectors, as the spec says
    l.data_length = static_cast<uint32_t>(e.data.size());
    l.data_offset = next_block_offset_;
    std::vector<uint8_t> padded(space, 0);
    std::memcpy(padded.data(), e.data.data(), e.data.size());
    util::pwrite_full(fd_.get(), padded.data(), padded.size(), l.data_offset, path_);
    next_block_offset_ += space;
  }
}

uint32_t Writer::block_length(uint32_t block) const {
  return static_cast<uint32_t>(
      std::min<uint64_t>(block_size_, footer_.current_size - uint64_t{block} * block_size_));
}

void Writer::write_block(uint32_t block, std::span<const uint8_t> data,
                         std::span<const uint8_t> present) {
  if (finished_) throw Error(path_ + ": write after finish");
  if (block >= bat_.size()) {
    throw Error(path_ + ": block " + std::to_string(block) + " is past the last block (" +
                std::to_string(bat_.size()) + " blocks)");
  }
  uint32_t length = block_length(block);
  if (data.size() != length) {
    throw Error(path_ + ": block " + std::to_string(block) + " needs " + std::to_string(length) +
                " bytes, got " + std::to_string(data.size()));
  }
  DiskType type = footer_.type();
  if (type == DiskType::kFixed) {
    if (util::is_all_zero(data.data(), data.size())) return;  // stays a hole
    util::pwrite_full(fd_.get(), data.data(), data.size(), uint64_t{block} * block_size_, path_);
    stored_ += data.size();
    return;
  }
  if (bat_[block] != kBatUnused) throw Error(path_ + ": block " + std::to_string(block) + " written twice");

  uint32_t bitmap_size = bitmap_bytes(block_size_);
  std::vector<uint8_t> bitmap(bitmap_size, 0);
  if (type == DiskType::kDynamic) {
    if (util::is_all_zero(data.data(), data.size())) return;
    uint32_t sectors = length / kSectorSize;
    std::memset(bitmap.data(), 0xFF, sectors / 8);
    for (uint32_t s = sectors / 8 * 8; s < sectors; ++s) bitmap_set(bitmap, s);
  } else {
    if (present.size() != bitmap_size) {
      throw Error(path_ + ": block " + std::to_string(block) + " of a differencing disk needs a " +
                  std::to_string(bitmap_size) + "-byte sector bitmap");
    }
    if (util::is_all_zero(present.data(), present.size())) return;
    std::memcpy(bitmap.data(), present.data(), bitmap_size);
  }

  // Place the bitmap just before a 4 KiB boundary so the data starts on one.
  uint64_t data_start = round_up(next_block_offset_ + bitmap_size, kDataAlignment);
  uint64_t block_start = data_start - bitmap_size;
  util::pwrite_full(fd_.get(), bitmap.data(), bitmap_size, block_start, path_);
  // Runs of zeros inside the block stay holes in the file: they read as the
  // zeros they are, and a sparsely filled block costs no more than its data.
  // The file always spans the whole block because what follows it (the next
  // block or the footer) is written after it.
  constexpr size_t kGrain = 64 * 1024;
  size_t run_start = 0, run_end = 0;
  auto flush_run = [&] {
    if (run_end > run_start) {
      util::pwrite_full(fd_.get(), data.data() + run_start, run_end - run_start, data_start + run_start, path_);
    }
    run_start = run_end = 0;
  };
  for (size_t at = 0; at < data.size(); at += kGrain) {
    size_t n = std::min(kGrain, data.size() - at);
    if (util::is_all_zero(data.data() + at, n)) {
      flush_run();
    } else {
      if (run_end != at || run_end == 0) {
        flush_run();
        run_start = at;
      }
      run_end = at + n;
    }
  }
  flush_run();
  bat_[block] = static_cast<uint32_t>(block_start / kSectorSize);
  next_block_offset_ = data_start + block_size_;
  if (type == DiskType::kDifferencing) {
    for (uint32_t s = 0; s < length / kSectorSize; ++s) stored_ += bitmap_test(bitmap, s) ? kSectorSize : 0;
  } else {
    stored_ += length;
  }
}

void Writer::finish() {
  if (finished_) return;
  auto footer = serialize_footer(footer_);
  if (footer_.type() == DiskType::kFixed) {
    if (::ftruncate(fd_.get(), static_cast<off_t>(footer_.current_size)) != 0) {
      throw util::errno_error(path_ + ": ftruncate");
    }
    util::fsync_file(fd_.get(), path_);
    util::pwrite_full(fd_.get(), footer.data(), footer.size(), footer_.current_size, path_);
    util::fsync_file(fd_.get(), path_);
    finished_ = true;
    return;
  }
  std::vector<uint8_t> bat(round_up(bat_.size() * 4, kSectorSize), 0xFF);
  for (size_t i = 0; i < bat_.size(); ++i) util::store_be32(&bat[i * 4], bat_[i]);
  util::pwrite_full(fd_.get(), bat.data(), bat.size(), header_.table_offset, path_);
  auto header = serialize_header(header_);
  util::pwrite_full(fd_.get(), header.data(), header.size(), kFooterSize, path_);
  util::fsync_file(fd_.get(), path_);
  util::pwrite_full(fd_.get(), footer.data(), footer.size(), next_block_offset_, path_);
  util::pwrite_full(fd_.get(), footer.data(), footer.size(), 0, path_);
  util::fsync_file(fd_.get(), path_);
  finished_ = true;
}

bool mark_differences(const uint8_t* data, const uint8_t* base, uint32_t length, std::span<uint8_t> bitmap) {
  bool any = false;
  uint32_t sectors = length / kSectorSize;
  for (uint32_t group = 0; group < sectors; group += kSectorsPerBitmapByte) {
    uint32_t n = std::min(kSectorsPerBitmapByte, sectors - group);
    size_t at = size_t{group} * kSectorSize;
    if (std::memcmp(data + at, base + at, size_t{n} * kSectorSize) == 0) continue;
    for (uint32_t s = group; s < group + n; ++s) bitmap_set(bitmap, s);
    any = true;
  }
  return any;
}

}  // namespace bootfleet::vhd
