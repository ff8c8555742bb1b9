// A raw disk image file (or block device) as a Disk. Holes of a sparse file
// are reported as zero extents, so conversions skip them without reading.
#pragma once

#include <memory>
#include <string>

#include "util/file.h"
#include "vhd/disk.h"

namespace bootfleet::vhd {

class RawDisk : public Disk {
 public:
  static std::unique_ptr<RawDisk> open(const std::string& path);

  uint64_t size() const override { return size_; }
  void read(uint64_t offset, void* buf, size_t length) const override;
  bool try_read(uint64_t offset, void* buf, size_t length) const override {
    return util::pread_if_cached(fd_.get(), buf, length, offset, path_);
  }
  std::vector<Extent> extents(uint64_t offset, uint64_t length) const override;
  std::string format_name() const override { return "raw"; }

 private:
  std::string path_;
  util::UniqueFd fd_;
  uint64_t size_ = 0;
};

}  // namespace bootfleet::vhd
