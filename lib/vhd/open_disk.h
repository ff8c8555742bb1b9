// Opens any disk file we can read, by looking at its bytes: VHDX (signature
// "vhdxfile" at offset 0) through libvhdi, VHD (a "conectix" footer at the
// end) with our own chain reader, anything else as raw.
#pragma once

#include <memory>
#include <string>

#include "vhd/disk.h"

namespace bootfleet::vhd {

enum class InputFormat { kAuto, kRaw, kVhd, kVhdx };
InputFormat parse_input_format(const std::string& text);  // "auto|raw|vhd|vhdx"
InputFormat detect_format(const std::string& path);
std::unique_ptr<Disk> open_disk(const std::string& path, InputFormat format = InputFormat::kAuto);

}  // namespace bootfleet::vhd
