#include "vhd/open_disk.h"

#include <fcntl.h>

#include <cstring>

#include "util/error.h"
#include "util/file.h"
#include "vhd/chain.h"
#include "vhd/format.h"
#include "vhd/raw_disk.h"
#include "vhd/vhdi_disk.h"

namespace bootfleet::vhd {

InputFormat parse_input_format(const std::string& text) {
  if (text == "auto") return InputFormat::kAuto;
  if (text == "raw") return InputFormat::kRaw;
  if (text == "vhd") return InputFormat::kVhd;
  if (text == "vhdx") return InputFormat::kVhdx;
  throw util::Error("--from: '" + text + "' is not a format; use auto, raw, vhd or vhdx");
}

InputFormat detect_format(const std::string& path) {
  util::UniqueFd fd = util::open_file(path, O_RDONLY);
  uint64_t size = util::file_size(fd.get(), path);
  uint8_t head[8] = {};
  if (util::pread_some(fd.get(), head, 8, 0, path) == 8 && std::memcmp(head, "vhdxfile", 8) == 0) {
    return InputFormat::kVhdx;
  }
  for (uint64_t tail : {uint64_t{kFooterSize}, uint64_t{kFooterSize - 1}}) {
    uint8_t cookie[8] = {};
    if (size >= tail && util::pread_some(fd.get(), cookie, 8, size - tail, path) == 8 &&
        std::memcmp(cookie, "conectix", 8) == 0) {
      return InputFormat::kVhd;
    }
  }
  // A dynamic VHD whose trailing footer was lost still starts with its copy;
  // open it as VHD so the error explains the damage instead of serving the
  // metadata as disk content.
  if (std::memcmp(head, "conectix", 8) == 0) return InputFormat::kVhd;
  return InputFormat::kRaw;
}

std::unique_ptr<Disk> open_disk(const std::string& path, InputFormat format) {
  if (format == InputFormat::kAuto) format = detect_format(path);
  switch (format) {
    case InputFormat::kVhd: return Chain::open(path);
    case InputFormat::kVhdx: return VhdiDisk::open(path);
    default: return RawDisk::open(path);
  }
}

}  // namespace bootfleet::vhd
