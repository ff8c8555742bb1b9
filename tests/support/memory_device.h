// A block::Device in a std::vector, for tests and fuzzers that drive the
// protocol servers (NBD, iSCSI) without files. Counts what it is asked to
// do, and can pretend part of it is not in the page cache.
#pragma once

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <mutex>
#include <thread>
#include <vector>

#include "block/device.h"

namespace bootfleet::test {

// A device in a std::vector. Extents: alternately data and zeros every
// 64 KiB, so block status has several extents to report.
class MemoryDevice : public block::Device {
 public:
  MemoryDevice(uint64_t size, bool read_only, bool shared) : data_(size), read_only_(read_only), shared_(shared) {
    for (size_t i = 0; i < data_.size(); ++i) data_[i] = static_cast<uint8_t>(i * 7 + i / 4096);
  }
  uint64_t size() const override { return data_.size(); }
  bool read_only() const override { return read_only_; }
  bool shared_between_connections() const override { return shared_; }
  int read(uint64_t offset, uint32_t length, uint8_t* buf) override {
    if (offset + length > data_.size()) return EIO;  // the protocol layer must never let this happen
    if (offset + length > cached_below) {
      ++slow_reads;
      while (hold_slow_reads) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    std::lock_guard lock(mutex_);
    std::memcpy(buf, data_.data() + offset, length);
    return 0;
  }
  // Reads reaching `cached_below` or past are "not in the page cache":
  // try_read refuses them, and read() waits while hold_slow_reads is set.
  int try_read(uint64_t offset, uint32_t length, uint8_t* buf) override {
    if (offset + length > cached_below) return EAGAIN;
    return read(offset, length, buf);
  }
  uint64_t cached_below = UINT64_MAX;
  std::atomic<bool> hold_slow_reads{false};
  std::atomic<int> slow_reads{0};

  int write(uint64_t offset, uint32_t length, const uint8_t* buf, bool fua) override {
    if (read_only_ || offset + length > data_.size()) return EIO;
    std::lock_guard lock(mutex_);
    std::memcpy(data_.data() + offset, buf, length);
    ++writes;
    if (fua) ++fua_writes;
    return 0;
  }
  int flush() override {
    ++flushes;
    return 0;
  }
  int trim(uint64_t offset, uint32_t length, bool) override {
    ++trims;
    return zero(offset, length);
  }
  int write_zeroes(uint64_t offset, uint32_t length, bool) override {
    ++zeroings;
    return zero(offset, length);
  }
  int extents(uint64_t offset, uint32_t length, std::vector<vhd::Extent>& out) override {
    // Deliberately reports whole 64 KiB extents, starting before and ending
    // after the range asked for: the server must clip them.
    for (uint64_t at = offset / 65536 * 65536; at < offset + length; at += 65536) {
      vhd::append_extent(out, {at, 65536, (at / 65536) % 2 == 0});
    }
    return 0;
  }
  std::vector<uint8_t> bytes(uint64_t offset, size_t length) {
    std::lock_guard lock(mutex_);
    return {data_.begin() + static_cast<long>(offset), data_.begin() + static_cast<long>(offset + length)};
  }

  std::atomic<int> writes{0}, fua_writes{0}, flushes{0}, trims{0}, zeroings{0};

 private:
  int zero(uint64_t offset, uint32_t length) {
    if (read_only_ || offset + length > data_.size()) return EIO;
    std::lock_guard lock(mutex_);
    std::memset(data_.data() + offset, 0, length);
    return 0;
  }
  std::mutex mutex_;
  std::vector<uint8_t> data_;
  bool read_only_, shared_;
};

}  // namespace bootfleet::test
