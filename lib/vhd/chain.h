// A chain of VHD files read as one disk: a differencing file, its parent,
// the parent's parent … down to a fixed or dynamic base.
//
// Design note. At open we resolve, once, which file holds every sector of
// the disk and keep the answer as a flat, sorted map of runs (virtual range
// -> file, file offset, or zeros). A read is then a binary search plus one
// pread per run it covers, whatever the chain's depth: depth 32 costs what
// depth 1 does. The map's size grows with the number of allocated blocks
// (tens of bytes each), never with the disk size. After open nothing is
// mutated, so reads from many threads need no lock.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "vhd/disk.h"
#include "vhd/vhd_file.h"

namespace bootfleet::vhd {

struct ChainOptions {
  // Deeper chains are refused: they are almost certainly a loop or a
  // mistake, and store policy squashes long before this.
  size_t max_depth = 256;
};

class Chain : public Disk {
 public:
  // Opens `path` and every parent it names, checking each parent's unique id
  // against the child's record. Throws util::Error naming the file at fault.
  static std::unique_ptr<Chain> open(const std::string& path, ChainOptions options = {});
  // A chain whose top is an already opened file (parents are still found
  // through its locators).
  static std::unique_ptr<Chain> from_file(std::shared_ptr<VhdFile> top, ChainOptions options = {});
  // A differencing file read over a parent chosen by the caller, not by its
  // locators and parent unique id: a file made elsewhere (an upload) whose
  // parent is known to hold the same content here. Throws when `top` is not
  // differencing or the sizes differ.
  static std::unique_ptr<Chain> over_parent(std::shared_ptr<VhdFile> top, const Chain& parent);

  uint64_t size() const override { return size_; }
  void read(uint64_t offset, void* buf, size_t length) const override;
  bool try_read(uint64_t offset, void* buf, size_t length) const override;
  // Version files are never written once made, so every run maps.
  bool map(uint64_t offset, uint64_t length, std::vector<util::FileSpan>& out) const override;
  std::vector<Extent> extents(uint64_t offset, uint64_t length) const override;
  std::string format_name() const override;

  // layers()[0] is the file opened; the last is the base.
  const std::vector<std::shared_ptr<VhdFile>>& layers() const { return layers_; }
  size_t depth() const { return layers_.size(); }

  struct Run {
    uint64_t offset;       // virtual byte offset
    uint64_t length;
    int32_t layer;         // index into layers(), or -1 for zeros
    uint64_t file_offset;  // where the run's first byte sits in that file
  };
  const std::vector<Run>& runs() const { return runs_; }

 private:
  Chain() = default;
  void build_map();
  // read() and try_read(): false only when `if_cached` and a run is not.
  bool read_runs(uint64_t offset, void* buf, size_t length, bool if_cached) const;

  std::vector<std::shared_ptr<VhdFile>> layers_;
  std::vector<Run> runs_;
  uint64_t size_ = 0;
};

}  // namespace bootfleet::vhd
