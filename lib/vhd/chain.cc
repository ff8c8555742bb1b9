#include "vhd/chain.h"

#include <sys/stat.h>

#include <algorithm>
#include <cstring>
#include <set>

#include "util/error.h"

namespace bootfleet::vhd {

using util::Error;

std::unique_ptr<Chain> Chain::open(const std::string& path, ChainOptions options) {
  return from_file(VhdFile::open(path), options);
}

std::unique_ptr<Chain> Chain::from_file(std::shared_ptr<VhdFile> top, ChainOptions options) {
  std::unique_ptr<Chain> chain(new Chain());
  std::set<std::pair<dev_t, ino_t>> seen;
  auto identity = [](const VhdFile& f) {
    struct stat st {};
    ::fstat(f.fd(), &st);
    return std::make_pair(st.st_dev, st.st_ino);
  };
  seen.insert(identity(*top));
  chain->layers_.push_back(std::move(top));

  while (chain->layers_.back()->type() == DiskType::kDifferencing) {
    const VhdFile& child = *chain->layers_.back();
    if (chain->layers_.size() >= options.max_depth) {
      throw Error(chain->layers_.front()->path() + ": chain is deeper than " +
                  std::to_string(options.max_depth) + " files (at " + child.path() + ")");
    }
    std::string tried;
    std::shared_ptr<VhdFile> parent;
    for (const std::string& candidate : child.parent_candidates()) {
      struct stat st {};
      if (::stat(candidate.c_str(), &st) != 0) {
        tried += "\n  " + candidate + ": does not exist";
        continue;
      }
      auto f = VhdFile::open(candidate);
      if (f->footer().unique_id != child.header().parent_unique_id) {
        tried += "\n  " + candidate + ": unique id " + util::uuid_to_string(f->footer().unique_id) +
                 " is not the parent's " + util::uuid_to_string(child.header().parent_unique_id);
        continue;
      }
      parent = std::move(f);
      break;
    }
    if (!parent) {
      throw Error(child.path() + ": parent '" + child.header().parent_name() + "' (unique id " +
                  util::uuid_to_string(child.header().parent_unique_id) + ") not found; tried:" +
                  (tried.empty() ? std::string("\n  (the file has no parent locators)") : tried));
    }
    if (!seen.insert(identity(*parent)).second) {
      throw Error(chain->layers_.front()->path() + ": the parent chain loops back to " +
                  parent->path());
    }
    if (parent->size() != child.size()) {
      throw Error(child.path() + ": disk size " + std::to_string(child.size()) +
                  " differs from its parent " + parent->path() + " (" +
                  std::to_string(parent->size()) + ")");
    }
    chain->layers_.push_back(std::move(parent));
  }
  chain->size_ = chain->layers_.front()->size();
  chain->build_map();
  return chain;
}

std::unique_ptr<Chain> Chain::over_parent(std::shared_ptr<VhdFile> top, const Chain& parent) {
  if (top->type() != DiskType::kDifferencing) throw Error(top->path() + ": not a differencing VHD");
  if (top->size() != parent.size()) {
    throw Error(top->path() + ": disk size " + std::to_string(top->size()) + " differs from its parent " +
                parent.layers().front()->path() + " (" + std::to_string(parent.size()) + ")");
  }
  std::unique_ptr<Chain> chain(new Chain());
  chain->layers_.push_back(std::move(top));
  for (const auto& layer : parent.layers()) chain->layers_.push_back(layer);
  chain->size_ = chain->layers_.front()->size();
  chain->build_map();
  return chain;
}

namespace {

using Run = Chain::Run;

// Runs of one layer, sorted by offset, with the layer index filled in.
std::vector<Run> layer_runs(const VhdFile& f, int32_t layer) {
  std::vector<Run> out;
  if (f.type() == DiskType::kFixed) {
    if (f.size() > 0) out.push_back({0, f.size(), layer, 0});
    return out;
  }
  for (uint32_t b = 0; b < f.block_count(); ++b) {
    auto data = f.block_data_offset(b);
    if (!data) continue;
    uint64_t block_start = uint64_t{b} * f.block_size();
    for (const SectorRun& r : f.present_runs(b)) {
      uint64_t off = uint64_t{r.first} * kSectorSize;
      Run run{block_start + off, uint64_t{r.count} * kSectorSize, layer, *data + off};
      if (!out.empty() && out.back().layer == layer &&
          out.back().offset + out.back().length == run.offset &&
          out.back().file_offset + out.back().length == run.file_offset) {
        out.back().length += run.length;
      } else {
        out.push_back(run);
      }
    }
  }
  return out;
}

void push_run(std::vector<Run>& out, Run r) {
  if (r.length == 0) return;
  if (!out.empty()) {
    Run& last = out.back();
    bool contiguous = last.offset + last.length == r.offset && last.layer == r.layer &&
                      (r.layer < 0 || last.file_offset + last.length == r.file_offset);
    if (contiguous) {
      last.length += r.length;
      return;
    }
  }
  out.push_back(r);
}

// `upper` runs win over `lower` (which covers the whole disk).
std::vector<Run> overlay(const std::vector<Run>& lower, const std::vector<Run>& upper) {
  std::vector<Run> out;
  out.reserve(lower.size() + 2 * upper.size());
  size_t li = 0;
  uint64_t pos = 0;
  auto emit_lower_until = [&](uint64_t end) {
    while (pos < end && li < lower.size()) {
      const Run& l = lower[li];
      uint64_t l_end = l.offset + l.length;
      if (l_end <= pos) {
        ++li;
        continue;
      }
      uint64_t take_end = std::min(end, l_end);
      uint64_t skip = pos - l.offset;
      push_run(out, {pos, take_end - pos, l.layer, l.layer < 0 ? 0 : l.file_offset + skip});
      pos = take_end;
    }
  };
  for (const Run& u : upper) {
    emit_lower_until(u.offset);
    push_run(out, u);
    pos = u.offset + u.length;
  }
  emit_lower_until(UINT64_MAX);
  return out;
}

}  // namespace

void Chain::build_map() {
  std::vector<Run> map;
  if (size_ > 0) map.push_back({0, size_, -1, 0});
  for (size_t i = layers_.size(); i-- > 0;) {
    map = overlay(map, layer_runs(*layers_[i], static_cast<int32_t>(i)));
  }
  runs_ = std::move(map);
}

void Chain::read(uint64_t offset, void* buf, size_t length) const { read_runs(offset, buf, length, false); }

bool Chain::try_read(uint64_t offset, void* buf, size_t length) const { return read_runs(offset, buf, length, true); }

bool Chain::map(uint64_t offset, uint64_t length, std::vector<util::FileSpan>& out) const {
  if (offset > size_ || length > size_ - offset) return false;
  auto it = std::upper_bound(runs_.begin(), runs_.end(), offset,
                             [](uint64_t o, const Run& r) { return o < r.offset; });
  --it;  // as in read_runs
  while (length > 0) {
    uint64_t within = offset - it->offset;
    uint64_t n = std::min<uint64_t>(length, it->length - within);
    if (it->layer < 0) util::append_span(out, {-1, 0, n});
    else util::append_span(out, {layers_[static_cast<size_t>(it->layer)]->fd(), it->file_offset + within, n});
    offset += n;
    length -= n;
    ++it;
  }
  return true;
}

bool Chain::read_runs(uint64_t offset, void* buf, size_t length, bool if_cached) const {
  if (offset > size_ || length > size_ - offset) {
    throw Error(layers_.front()->path() + ": read of " + std::to_string(length) + " bytes at " +
                std::to_string(offset) + " is past the end of the disk (" + std::to_string(size_) + ")");
  }
  auto* out = static_cast<uint8_t*>(buf);
  auto it = std::upper_bound(runs_.begin(), runs_.end(), offset,
                             [](uint64_t o, const Run& r) { return o < r.offset; });
  --it;  // runs_ starts at 0, so upper_bound never returns begin() for offset < size
  while (length > 0) {
    uint64_t within = offset - it->offset;
    size_t n = static_cast<size_t>(std::min<uint64_t>(length, it->length - within));
    if (it->layer < 0) {
      std::memset(out, 0, n);
    } else {
      const VhdFile& f = *layers_[static_cast<size_t>(it->layer)];
      if (!if_cached) util::pread_full(f.fd(), out, n, it->file_offset + within, f.path());
      else if (!util::pread_if_cached(f.fd(), out, n, it->file_offset + within, f.path())) return false;
    }
    out += n;
    offset += n;
    length -= n;
    ++it;
  }
  return true;
}

std::vector<Extent> Chain::extents(uint64_t offset, uint64_t length) const {
  std::vector<Extent> out;
  uint64_t end = std::min(size_, offset + length);
  auto it = std::upper_bound(runs_.begin(), runs_.end(), offset,
                             [](uint64_t o, const Run& r) { return o < r.offset; });
  if (it != runs_.begin()) --it;
  for (; it != runs_.end() && it->offset < end; ++it) {
    uint64_t s = std::max(offset, it->offset);
    uint64_t e = std::min(end, it->offset + it->length);
    if (e > s) append_extent(out, {s, e - s, it->layer >= 0});
  }
  return out;
}

std::string Chain::format_name() const {
  std::string name = std::string("VHD ") + disk_type_name(layers_.front()->type());
  if (layers_.size() > 1) name += " (chain of " + std::to_string(layers_.size()) + " files)";
  return name;
}

}  // namespace bootfleet::vhd
