// Import of VHDX (and, if asked, VHD) through libvhdi, including VHDX
// differencing files whose parents are found beside them. Our own reader
// serves VHD on the hot path; libvhdi is the door for formats we do not
// write ourselves.
#pragma once

#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "vhd/disk.h"

namespace bootfleet::vhd {

class VhdiDisk : public Disk {
 public:
  static std::unique_ptr<VhdiDisk> open(const std::string& path);
  ~VhdiDisk() override;

  uint64_t size() const override { return size_; }
  void read(uint64_t offset, void* buf, size_t length) const override;
  std::vector<Extent> extents(uint64_t offset, uint64_t length) const override;
  std::string format_name() const override { return format_; }

 private:
  VhdiDisk() = default;
  std::string path_;
  std::string format_;
  uint64_t size_ = 0;
  // libvhdi file handles, child first; each parent is attached to its child.
  std::vector<void*> files_;
  mutable std::mutex mutex_;  // libvhdi handles are not safe for concurrent reads
};

}  // namespace bootfleet::vhd
