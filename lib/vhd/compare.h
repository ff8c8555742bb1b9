// Compares the guest-visible content of two disks. Like `qemu-img compare`
// (not strict), disks of different sizes are equal when the longer one's
// extra part reads as zeros.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>

#include "vhd/disk.h"

namespace bootfleet::vhd {

struct CompareResult {
  bool identical = false;
  std::optional<uint64_t> first_difference;  // byte offset, when they differ
};

CompareResult compare(const Disk& a, const Disk& b,
                      const std::function<void(uint64_t, uint64_t)>& progress = {});

}  // namespace bootfleet::vhd
