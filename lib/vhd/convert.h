// Copies any Disk into a new file: raw, fixed VHD, dynamic VHD, or a
// differencing VHD that holds only the sectors differing from a parent.
// The output is written under a temporary name beside OUT, fsynced and
// renamed into place, so OUT is either the old file or the whole new one.
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <string>

#include "vhd/disk.h"
#include "vhd/format.h"

namespace bootfleet::vhd {

enum class OutputFormat { kRaw, kVhdFixed, kVhdDynamic, kVhdDiff };
// "raw", "vhd-fixed", "vhd-dynamic", "vhd-diff"
OutputFormat parse_output_format(const std::string& text);
const char* output_format_name(OutputFormat format);

struct ConvertOptions {
  OutputFormat to = OutputFormat::kVhdDynamic;
  uint32_t block_size = kDefaultBlockSize;
  // Virtual size of a fixed or dynamic output; 0 means the input's. A larger
  // size zero-extends the input; a smaller one is refused.
  uint64_t size = 0;
  std::string parent;  // kVhdDiff: the parent VHD (its whole chain is read)
  bool replace = false;  // replace an existing output file
  std::string final_path;  // see WriterOptions::final_path
  // Sees the content of every VHD output block that may hold data (blocks
  // known to be zero are not read and not shown). For kVhdDiff, returning
  // true declares the block identical to the parent's, so the parent is not
  // read and nothing is stored for it; the store answers this from block
  // digests, which halves the reads of an import.
  std::function<bool(uint32_t block, std::span<const uint8_t> data)> on_block;
  // kVhdDiff: asked before a block is read; true declares it identical to
  // the parent's without reading it (a build knows which blocks it wrote).
  std::function<bool(uint32_t block)> same_as_parent;
  // Called after each block with bytes done and total.
  std::function<void(uint64_t, uint64_t)> progress;
};

struct ConvertResult {
  uint64_t size = 0;          // virtual size of the output
  uint64_t stored_bytes = 0;  // disk data actually written
};

ConvertResult convert(const Disk& in, const std::string& out_path, const ConvertOptions& options);

}  // namespace bootfleet::vhd
