#include "vhd/convert.h"

#include <fcntl.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <memory>
#include <optional>
#include <vector>

#include "util/bytes.h"
#include "util/error.h"
#include "util/file.h"
#include "vhd/chain.h"
#include "vhd/writer.h"

namespace bootfleet::vhd {

using util::Error;

OutputFormat parse_output_format(const std::string& text) {
  if (text == "raw") return OutputFormat::kRaw;
  if (text == "vhd-fixed") return OutputFormat::kVhdFixed;
  if (text == "vhd-dynamic") return OutputFormat::kVhdDynamic;
  if (text == "vhd-diff") return OutputFormat::kVhdDiff;
  throw Error("--to: '" + text + "' is not an output format; use raw, vhd-fixed, vhd-dynamic or vhd-diff");
}

const char* output_format_name(OutputFormat format) {
  switch (format) {
    case OutputFormat::kRaw: return "raw";
    case OutputFormat::kVhdFixed: return "vhd-fixed";
    case OutputFormat::kVhdDynamic: return "vhd-dynamic";
    case OutputFormat::kVhdDiff: return "vhd-diff";
  }
  return "?";
}

namespace {

// Reads [offset, offset+length) of `disk` into buf, zero past its end and in
// extents known to be zero (which are not read at all). Returns false when
// the whole range is known zero without reading.
bool read_range(const Disk& disk, uint64_t offset, uint8_t* buf, size_t length) {
  uint64_t size = disk.size();
  if (offset >= size) {
    std::memset(buf, 0, length);
    return false;
  }
  size_t inside = static_cast<size_t>(std::min<uint64_t>(length, size - offset));
  if (inside < length) std::memset(buf + inside, 0, length - inside);
  bool any = false;
  for (const Extent& e : disk.extents(offset, inside)) {
    uint8_t* dst = buf + (e.offset - offset);
    if (e.data) {
      disk.read(e.offset, dst, static_cast<size_t>(e.length));
      any = true;
    } else {
      std::memset(dst, 0, static_cast<size_t>(e.length));
    }
  }
  return any;
}

ConvertResult convert_to_raw(const Disk& in, const std::string& path, const ConvertOptions& options) {
  util::UniqueFd fd = util::open_file(path, O_RDWR | O_CREAT | O_TRUNC, 0644);
  uint64_t size = in.size();
  if (::ftruncate(fd.get(), static_cast<off_t>(size)) != 0) throw util::errno_error(path + ": ftruncate");
  constexpr size_t kChunk = 2u << 20;
  std::vector<uint8_t> buf(kChunk);
  ConvertResult result{size, 0};
  for (uint64_t off = 0; off < size; off += kChunk) {
    size_t n = static_cast<size_t>(std::min<uint64_t>(kChunk, size - off));
    if (read_range(in, off, buf.data(), n) && !util::is_all_zero(buf.data(), n)) {
      util::pwrite_full(fd.get(), buf.data(), n, off, path);
      result.stored_bytes += n;
    }
    if (options.progress) options.progress(off + n, size);
  }
  util::fsync_file(fd.get(), path);
  return result;
}

ConvertResult convert_to_vhd(const Disk& in, const std::string& path, const ConvertOptions& options) {
  WriterOptions wo;
  wo.size = options.size ? options.size : in.size();
  if (wo.size < in.size()) {
    throw Error("output size " + std::to_string(wo.size) + " is smaller than the input's " +
                std::to_string(in.size()) + " bytes");
  }
  wo.block_size = options.block_size;
  wo.final_path = options.final_path;
  std::unique_ptr<Chain> parent;
  switch (options.to) {
    case OutputFormat::kVhdFixed: wo.type = DiskType::kFixed; break;
    case OutputFormat::kVhdDynamic: wo.type = DiskType::kDynamic; break;
    default:
      wo.type = DiskType::kDifferencing;
      if (options.parent.empty()) throw Error("--to vhd-diff needs --parent PARENT.vhd");
      parent = Chain::open(options.parent);
      wo.parent = parent->layers().front().get();
      if (in.size() > parent->size()) {
        throw Error("input is " + std::to_string(in.size()) + " bytes, larger than the parent " +
                    options.parent + " (" + std::to_string(parent->size()) +
                    " bytes); a differencing disk has its parent's size");
      }
      break;
  }
  Writer writer(path, wo);
  uint32_t bs = writer.block_size();
  std::vector<uint8_t> data(bs), base(parent ? bs : 0);
  std::vector<uint8_t> bitmap(bitmap_bytes(bs));
  uint64_t size = writer.size();
  for (uint32_t b = 0; b < writer.block_count(); ++b) {
    uint64_t off = uint64_t{b} * bs;
    uint32_t len = writer.block_length(b);
    if (parent && options.same_as_parent && options.same_as_parent(b)) {
      if (options.progress) options.progress(off + len, size);
      continue;
    }
    bool in_data = read_range(in, off, data.data(), len);
    bool known_same = false;
    if (in_data && options.on_block) known_same = options.on_block(b, {data.data(), len});
    if (known_same && parent) {
      // identical to the parent's block: nothing to store
    } else if (!parent) {
      if (in_data) writer.write_block(b, {data.data(), len});
    } else {
      bool base_data = read_range(*parent, off, base.data(), len);
      if (in_data || base_data) {
        std::fill(bitmap.begin(), bitmap.end(), 0);
        bool any = mark_differences(data.data(), base.data(), len, bitmap);
        if (any) {
          // Sectors the bitmap does not mark are never read from this file;
          // zeroing them lets the writer leave them as holes, so the file's
          // real size follows the change, not the blocks it touches.
          for (uint32_t s = 0; s < len / kSectorSize; ++s) {
            if (!bitmap_test(bitmap, s)) std::memset(data.data() + size_t{s} * kSectorSize, 0, kSectorSize);
          }
          writer.write_block(b, {data.data(), len}, bitmap);
        }
      }
    }
    if (options.progress) options.progress(off + len, size);
  }
  writer.finish();
  return {size, writer.stored_bytes()};
}

}  // namespace

ConvertResult convert(const Disk& in, const std::string& out_path, const ConvertOptions& options) {
  util::AtomicOutput out(out_path);
  ConvertResult result = options.to == OutputFormat::kRaw ? convert_to_raw(in, out.path(), options)
                                                          : convert_to_vhd(in, out.path(), options);
  out.commit(options.replace);
  return result;
}

}  // namespace bootfleet::vhd
