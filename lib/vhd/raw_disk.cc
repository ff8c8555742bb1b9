#include "vhd/raw_disk.h"

#include <fcntl.h>

#include "util/error.h"

namespace bootfleet::vhd {

std::unique_ptr<RawDisk> RawDisk::open(const std::string& path) {
  auto d = std::make_unique<RawDisk>();
  d->path_ = path;
  d->fd_ = util::open_file(path, O_RDONLY);
  d->size_ = util::file_size(d->fd_.get(), path);
  return d;
}

void RawDisk::read(uint64_t offset, void* buf, size_t length) const {
  util::pread_full(fd_.get(), buf, length, offset, path_);
}

std::vector<Extent> RawDisk::extents(uint64_t offset, uint64_t length) const {
  std::vector<Extent> out;
  uint64_t end = std::min(size_, offset + length);
  uint64_t pos = offset;
  for (auto [s, e] : util::data_ranges(fd_.get(), offset, end, path_)) {
    append_extent(out, {pos, s - pos, false});
    append_extent(out, {s, e - s, true});
    pos = e;
  }
  append_extent(out, {pos, end - pos, false});
  return out;
}

}  // namespace bootfleet::vhd
