// A Disk is anything that answers reads of a virtual disk: a raw file, a VHD
// chain, a VHDX through libvhdi. Conversion, comparison and (later) the block
// engine work on this interface and nothing more.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "util/file_send.h"

namespace bootfleet::vhd {

// A range of the virtual disk; `data` false means it is known to read as
// zeros, true that it may hold data.
struct Extent {
  uint64_t offset = 0;
  uint64_t length = 0;
  bool data = false;
  bool operator==(const Extent&) const = default;
};

class Disk {
 public:
  virtual ~Disk() = default;
  virtual uint64_t size() const = 0;
  // Reads [offset, offset+length), which must lie inside the disk. Safe to
  // call from several threads at once.
  virtual void read(uint64_t offset, void* buf, size_t length) const = 0;
  // The same read, done only if nothing has to wait for a disk (all of it
  // is in memory or the page cache): true when done, false when it would
  // have waited (`buf` is undefined then; call read()). Lets a server answer
  // cached reads on the thread that received them and hand the rest to
  // threads that may block. The default never tries.
  virtual bool try_read(uint64_t /*offset*/, void* /*buf*/, size_t /*length*/) const { return false; }
  // Where [offset, offset+length) lives, for sending it without a copy
  // (util/file_send.h): spans of this disk's open files, or of zeros, that
  // hold its bytes in order, appended to `out`. Only files that never
  // change while open may be named. False when the disk cannot say (its
  // bytes are transformed, or held where data may move); `out` is then
  // undefined. The files stay open as long as the disk does.
  virtual bool map(uint64_t /*offset*/, uint64_t /*length*/, std::vector<util::FileSpan>& /*out*/) const { return false; }
  // Sorted, non-overlapping extents covering [offset, offset+length).
  virtual std::vector<Extent> extents(uint64_t offset, uint64_t length) const = 0;
  // "raw file", "VHD dynamic", "VHD differencing (chain of 3)", "VHDX" …
  virtual std::string format_name() const = 0;
};

// A blank disk: every byte reads as zero (the base of a recipe's `create`).
class ZeroDisk : public Disk {
 public:
  explicit ZeroDisk(uint64_t size) : size_(size) {}
  uint64_t size() const override { return size_; }
  void read(uint64_t offset, void* buf, size_t length) const override;
  bool try_read(uint64_t offset, void* buf, size_t length) const override {
    read(offset, buf, length);
    return true;
  }
  bool map(uint64_t, uint64_t length, std::vector<util::FileSpan>& out) const override {
    util::append_span(out, {-1, 0, length});
    return true;
  }
  std::vector<Extent> extents(uint64_t offset, uint64_t length) const override { return {{offset, length, false}}; }
  std::string format_name() const override { return "blank disk"; }

 private:
  uint64_t size_;
};

// Merges neighbouring extents of the same kind.
void append_extent(std::vector<Extent>& out, Extent e);

}  // namespace bootfleet::vhd
