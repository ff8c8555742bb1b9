// A write cache over any disk, seen two ways: as a Device a block protocol
// serves (bootsrv sessions, the in-process NBD export of `imgtool build`),
// and as a vhd::Disk the store can import (a build becoming a version).
#pragma once

#include <memory>
#include <string>

#include "block/device.h"
#include "block/write_cache.h"

namespace bootfleet::block {

class CacheDevice : public Device {
 public:
  CacheDevice(std::shared_ptr<const vhd::Disk> below, const std::string& cache_dir,
              std::shared_ptr<RamBudget> ram = nullptr, CacheStorage storage = {})
      : cache_(std::move(below), cache_dir, std::move(ram), std::move(storage)) {}

  const WriteCache& cache() const { return cache_; }
  WriteCache& cache() { return cache_; }

  uint64_t size() const override { return cache_.size(); }
  bool read_only() const override { return false; }
  bool shared_between_connections() const override { return true; }
  int read(uint64_t offset, uint32_t length, uint8_t* buf) override { return cache_.read(offset, length, buf); }
  int try_read(uint64_t offset, uint32_t length, uint8_t* buf) override { return cache_.try_read(offset, length, buf); }
  int map_read(uint64_t offset, uint32_t length, std::vector<util::FileSpan>& out) override {
    return cache_.map_read(offset, length, out);
  }
  int write(uint64_t offset, uint32_t length, const uint8_t* buf, bool fua) override {
    return cache_.write(offset, length, buf, fua);
  }
  int flush() override { return cache_.flush(); }
  // TRIM is recorded as zeros: what a client discards reads back as zeros,
  // which every client accepts and which keeps builds reproducible.
  int trim(uint64_t offset, uint32_t length, bool fua) override { return cache_.write_zeroes(offset, length, fua); }
  int write_zeroes(uint64_t offset, uint32_t length, bool fua) override {
    return cache_.write_zeroes(offset, length, fua);
  }
  int extents(uint64_t offset, uint32_t length, std::vector<vhd::Extent>& out) override {
    return cache_.extents(offset, length, out);
  }

 protected:
  WriteCache cache_;
};

// The disk a write cache presents (its writes over what is below), read-only.
class CacheDisk : public vhd::Disk {
 public:
  explicit CacheDisk(const WriteCache& cache) : cache_(cache) {}
  uint64_t size() const override { return cache_.size(); }
  void read(uint64_t offset, void* buf, size_t length) const override;
  std::vector<vhd::Extent> extents(uint64_t offset, uint64_t length) const override;
  std::string format_name() const override { return "write cache"; }

 private:
  const WriteCache& cache_;
};

}  // namespace bootfleet::block
