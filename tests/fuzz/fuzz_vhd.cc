// libFuzzer target for the VHD parser: the input is a whole VHD file.
//
// It goes into a memfd and is opened strictly (VhdFile::open_fd, then
// Chain::from_file: a differencing file finds no parent there, an error like
// any other), inspected leniently (VhdFile::inspect, vhd::check on
// /proc/self/fd/N), and, when it opens, read through Chain::read and
// Chain::extents: the first and last few MiB in 1 MiB chunks plus a small
// unaligned read across every run boundary, so each run stays fast whatever
// size the footer claims. The run map is checked against the invariants the
// reader promises (runs tile the disk, data runs lie inside their file).
//
// A differencing input is also given a parent: it is written as child.vhd in
// a private directory, and a sparse fixed VHD with the unique id and size the
// child asks for is put where the child's first relative locator (or its
// parent name) points, so the chain code (bitmaps, overlaying layers) is
// fuzzed too.
//
// Inputs whose footer or header checksum is wrong are run a second time with
// the checksums fixed up, so mutations get past them.
//
// Errors (util::Error) are expected; crashes, hangs, leaks, UB and broken
// invariants are not.
#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "util/bytes.h"
#include "util/error.h"
#include "util/file.h"
#include "vhd/chain.h"
#include "vhd/check.h"
#include "vhd/format.h"
#include "vhd/vhd_file.h"

using namespace bootfleet;

namespace {

constexpr uint64_t kEdge = 4u << 20;  // read this much at either end of the disk
constexpr size_t kChunk = 1u << 20;
constexpr size_t kMaxBoundaries = 256;
constexpr uint32_t kMaxBlocksWalked = 4096;

[[noreturn]] void broken(const char* what) {
  std::fprintf(stderr, "fuzz_vhd: invariant broken: %s\n", what);
  std::abort();
}

void write_all(int fd, const uint8_t* data, size_t size) {
  util::pwrite_full(fd, data, size, 0, "fuzz input");
}

// Per-block accessors of one opened file.
void exercise_file(const vhd::VhdFile& f) {
  (void)f.allocated_bytes();
  try {
    (void)f.parent_candidates();
  } catch (const util::Error&) {
  }
  if (f.type() == vhd::DiskType::kFixed) return;
  uint32_t blocks = std::min(f.block_count(), kMaxBlocksWalked);
  for (uint32_t b = 0; b < blocks; ++b) {
    auto data = f.block_data_offset(b);
    auto runs = f.present_runs(b);
    if (!data && !runs.empty()) broken("an unallocated block has present sectors");
    uint64_t block_start = uint64_t{b} * f.block_size();
    uint64_t sectors = std::min<uint64_t>(f.block_size(), f.size() - block_start) / vhd::kSectorSize;
    for (const auto& r : runs) {
      if (r.count == 0 || uint64_t{r.first} + r.count > sectors) broken("a sector run leaves its block");
    }
    if (data && f.read_bitmap(b).size() != f.bitmap_size()) broken("bitmap of the wrong size");
  }
}

void exercise_chain(const vhd::Chain& chain) {
  const uint64_t disk = chain.size();
  // The map tiles [0, disk) and every data run lies inside its file.
  uint64_t pos = 0;
  for (const auto& r : chain.runs()) {
    if (r.offset != pos || r.length == 0) broken("runs do not tile the disk");
    if (r.layer >= 0) {
      if (static_cast<size_t>(r.layer) >= chain.depth()) broken("run names a missing layer");
      const auto& f = *chain.layers()[static_cast<size_t>(r.layer)];
      if (r.file_offset > f.footer_offset() || r.length > f.footer_offset() - r.file_offset) {
        broken("a data run reaches past the file's data area");
      }
    }
    pos += r.length;
  }
  if (pos != disk) broken("runs do not cover the disk");

  uint64_t covered = 0;
  for (const auto& e : chain.extents(0, disk)) {
    if (e.offset != covered) broken("extents leave a gap");
    covered += e.length;
  }
  if (covered != disk) broken("extents do not cover the disk");
  (void)chain.extents(disk / 3, disk / 2);
  (void)chain.format_name();

  std::vector<uint8_t> buf(kChunk);
  for (uint64_t start : {uint64_t{0}, disk > kEdge ? disk - kEdge : 0}) {
    for (uint64_t at = start; at < disk && at < start + kEdge; at += kChunk) {
      size_t n = static_cast<size_t>(std::min<uint64_t>(kChunk, disk - at));
      chain.read(at, buf.data(), n);
    }
  }
  // Unaligned reads straddling run boundaries, and empty reads at both ends.
  size_t seen = 0;
  for (const auto& r : chain.runs()) {
    if (++seen > kMaxBoundaries) break;
    uint64_t from = r.offset > 700 ? r.offset - 700 : 0;
    size_t n = static_cast<size_t>(std::min<uint64_t>(1401, disk - from));
    chain.read(from, buf.data(), n);
  }
  chain.read(0, buf.data(), 0);
  chain.read(disk, buf.data(), 0);
}

// A private directory for the child/parent pair, removed at exit.
const std::string& scratch_dir() {
  static const std::string dir = [] {
    std::string tmpl = (std::filesystem::temp_directory_path() / "fuzz_vhd-XXXXXX").string();
    if (!::mkdtemp(tmpl.data())) {
      std::perror("fuzz_vhd: mkdtemp");
      std::abort();
    }
    return tmpl;
  }();
  static const bool cleanup = [] {
    std::atexit([] {
      std::error_code ec;
      std::filesystem::remove_all(scratch_dir(), ec);
    });
    return true;
  }();
  (void)cleanup;
  return dir;
}

// Writes the input as child.vhd next to a parent made to match it and reads
// the whole chain.
void with_parent(const uint8_t* data, size_t size, const vhd::VhdFile& child_in_memfd) {
  const std::string& dir = scratch_dir();
  const std::string child = dir + "/child.vhd";
  std::string parent;
  // Nothing is left behind for the next input, however this one ends.
  struct Remove {
    const std::string& a;
    const std::string& b;
    ~Remove() {
      ::unlink(a.c_str());
      if (!b.empty()) ::unlink(b.c_str());
    }
  } remove{child, parent};
  {
    util::UniqueFd fd = util::open_file(child, O_RDWR | O_CREAT | O_TRUNC, 0600);
    write_all(fd.get(), data, size);
    auto file = vhd::VhdFile::open_fd(std::move(fd), child);
    for (const std::string& candidate : file->parent_candidates()) {
      std::string name = util::base_name(candidate);
      if (util::dir_name(candidate) == dir && name != "child.vhd" && name != "." && name != ".." &&
          !name.empty()) {
        parent = candidate;
        break;
      }
    }
  }
  if (!parent.empty()) {
    // A sparse fixed VHD: zeros, then the footer.
    vhd::Footer footer = vhd::make_footer(vhd::DiskType::kFixed, child_in_memfd.size());
    footer.unique_id = child_in_memfd.header().parent_unique_id;
    auto raw = vhd::serialize_footer(footer);
    util::UniqueFd fd = util::open_file(parent, O_RDWR | O_CREAT | O_TRUNC, 0600);
    if (::ftruncate(fd.get(), static_cast<off_t>(footer.current_size)) != 0) {
      throw util::errno_error(parent + ": ftruncate");
    }
    util::pwrite_full(fd.get(), raw.data(), raw.size(), footer.current_size, parent);
    try {
      auto chain = vhd::Chain::open(child);
      if (chain->depth() != 2) broken("child and parent make a chain of depth != 2");
      exercise_chain(*chain);
    } catch (const util::Error&) {
    }
    vhd::CheckReport report = vhd::check(child);
    if (report.files.size() < 2 && report.clean()) broken("check finds no parent but says clean");
  }
}

// The input with valid footer and header checksums. Mutations nearly always
// break a checksum, and the strict reader stops there; running this copy too
// lets the fuzzer reach everything behind the checksums. Empty when the input
// has no footer to fix or its checksums are already right.
std::vector<uint8_t> with_checksums_fixed(const uint8_t* data, size_t size) {
  if (size < vhd::kFooterSize || std::memcmp(data + size - vhd::kFooterSize, "conectix", 8) != 0) return {};
  std::vector<uint8_t> out(data, data + size);
  uint8_t* footer = out.data() + size - vhd::kFooterSize;
  util::store_be32(footer + 64, vhd::footer_checksum(footer));
  if (size >= 2 * vhd::kFooterSize && std::memcmp(out.data(), "conectix", 8) == 0) {
    util::store_be32(out.data() + 64, vhd::footer_checksum(out.data()));
  }
  uint64_t header = util::load_be64(footer + 16);
  if (vhd::range_fits(header, vhd::kHeaderSize, size) && std::memcmp(out.data() + header, "cxsparse", 8) == 0) {
    util::store_be32(out.data() + header + 36, vhd::header_checksum(out.data() + header));
  }
  if (std::memcmp(out.data(), data, size) == 0) return {};
  return out;
}

void run_one(const uint8_t* data, size_t size) {
  int raw_fd = ::memfd_create("fuzz.vhd", MFD_CLOEXEC);
  if (raw_fd < 0) return;
  util::UniqueFd memfd(raw_fd);
  if (size) write_all(memfd.get(), data, size);
  const std::string path = "/proc/self/fd/" + std::to_string(memfd.get());

  std::shared_ptr<vhd::VhdFile> file;
  try {
    util::UniqueFd dup(::fcntl(memfd.get(), F_DUPFD_CLOEXEC, 0));
    file = vhd::VhdFile::open_fd(std::move(dup), path);
  } catch (const util::Error&) {
  }
  if (file) {
    exercise_file(*file);
    try {
      auto chain = vhd::Chain::from_file(file);
      exercise_chain(*chain);
    } catch (const util::Error&) {
    }
    if (file->type() == vhd::DiskType::kDifferencing) {
      try {
        with_parent(data, size, *file);
      } catch (const util::Error&) {
      }
    }
  }

  // The lenient paths never throw: every problem becomes part of the answer.
  vhd::VhdFile::Inspection inspection = vhd::VhdFile::inspect(path);
  if (inspection.file) exercise_file(*inspection.file);
  if (file && !inspection.file) broken("inspect refuses a file that opens strictly");
  vhd::CheckReport report = vhd::check(path);
  if (report.files.empty()) broken("check reports no file");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  run_one(data, size);
  std::vector<uint8_t> fixed = with_checksums_fixed(data, size);
  if (!fixed.empty()) run_one(fixed.data(), fixed.size());
  return 0;
}
