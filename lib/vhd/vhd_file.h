// One VHD file opened read-only: its footer, dynamic header and BAT, checked
// well enough that every later read stays inside the file. A VhdFile knows
// nothing of its parent; Chain (chain.h) links files together.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "util/file.h"
#include "vhd/format.h"

namespace bootfleet::vhd {

// A run of sectors inside one block that this file holds: [first, first+count).
struct SectorRun {
  uint32_t first = 0;
  uint32_t count = 0;
};

class VhdFile {
 public:
  // Throws util::Error naming the path and the first thing wrong with it.
  static std::shared_ptr<VhdFile> open(const std::string& path);
  // Opens an already open descriptor (the fuzzer and tests use this).
  static std::shared_ptr<VhdFile> open_fd(util::UniqueFd fd, const std::string& path);

  // For `check`: opens as far as the structure allows and lists every
  // problem instead of stopping at the first. `file` is null when nothing
  // usable could be read (then `problems` says why).
  struct Inspection {
    std::shared_ptr<VhdFile> file;
    std::vector<std::string> problems;
    // The disk type when the footer could be understood ("" when the file
    // is not recognisably a VHD), even if the rest is too damaged to use.
    std::string type;
  };
  static Inspection inspect(const std::string& path);

  const std::string& path() const { return path_; }
  int fd() const { return fd_.get(); }
  const Footer& footer() const { return footer_; }
  // Only meaningful for dynamic and differencing files.
  const DynamicHeader& header() const { return header_; }
  DiskType type() const { return footer_.type(); }
  uint64_t size() const { return footer_.current_size; }
  uint64_t file_size() const { return file_size_; }
  // Offset of the trailing footer (file size - 512, or - 511 for old files).
  uint64_t footer_offset() const { return footer_offset_; }
  uint32_t block_size() const { return header_.block_size; }
  uint32_t block_count() const { return static_cast<uint32_t>(bat_.size()); }
  uint32_t bitmap_size() const { return bitmap_bytes(header_.block_size); }
  const std::vector<uint32_t>& bat() const { return bat_; }
  // Bytes of the virtual disk a block covers: the block size, less for the
  // last block when the disk ends inside it (as Writer::block_length).
  uint32_t block_length(uint32_t block) const;

  // File offset where the data of a block starts (after its sector bitmap),
  // or nullopt when the block is not allocated.
  std::optional<uint64_t> block_data_offset(uint32_t block) const;
  // Sectors of a block that this file holds. A dynamic file holds every
  // sector of an allocated block (the bitmap is not consulted, as Virtual PC
  // and qemu do); a differencing file holds those its bitmap marks.
  std::vector<SectorRun> present_runs(uint32_t block) const;
  // The raw sector bitmap of an allocated block (empty when unallocated).
  std::vector<uint8_t> read_bitmap(uint32_t block) const;
  // Bytes of virtual disk whose data this file stores.
  uint64_t allocated_bytes() const;

  // Where this file's parent may be, in the order to try: the W2ru relative
  // locator, W2ku absolute, Mac locators, then the parent name beside it.
  std::vector<std::string> parent_candidates() const;

 private:
  VhdFile() = default;
  // Reads and validates the structure. Strict: throws at the first problem.
  // Otherwise records problems and returns false when reading cannot go on.
  bool load(bool strict);
  bool problem(bool strict, const std::string& message, bool fatal);

  std::string path_;
  util::UniqueFd fd_;
  uint64_t file_size_ = 0;
  uint64_t footer_offset_ = 0;
  Footer footer_;
  DynamicHeader header_;
  std::vector<uint32_t> bat_;
  std::vector<std::string> problems_;
};

// Decodes the locator data of a parent locator into a host path (backslashes
// become slashes, "file://" and ".\" are stripped). Empty if not readable.
std::string read_locator_path(const VhdFile& file, const ParentLocator& locator);

}  // namespace bootfleet::vhd
