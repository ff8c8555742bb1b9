#include "vhd/check.h"

#include <sys/stat.h>

#include <algorithm>
#include <set>

#include "util/error.h"
#include "vhd/vhd_file.h"

namespace bootfleet::vhd {

bool CheckReport::clean() const {
  for (const auto& f : files)
    if (!f.problems.empty()) return false;
  return true;
}

namespace {

// Sector bits set past the end of the disk in the last block's bitmap are
// harmless to readers but mean the writer miscounted.
void check_bitmaps(const VhdFile& f, std::vector<std::string>& problems) {
  if (f.type() != DiskType::kDifferencing) return;
  for (uint32_t b = 0; b < f.block_count(); ++b) {
    std::vector<uint8_t> bitmap = f.read_bitmap(b);
    if (bitmap.empty()) continue;
    const uint32_t sectors = f.block_length(b) / kSectorSize;
    for (uint32_t s = 0; s < bitmap.size() * 8; ++s) {
      bool set = (bitmap[s >> 3] & (0x80 >> (s & 7))) != 0;
      if (set && s >= sectors) {
        problems.push_back("block " + std::to_string(b) + ": sector bitmap marks sector " +
                           std::to_string(s) + ", past the end of the disk");
        break;
      }
    }
  }
}

}  // namespace

CheckedFile check_file(const std::string& path) {
  auto inspection = VhdFile::inspect(path);
  CheckedFile checked{path, inspection.type, std::move(inspection.problems)};
  if (inspection.file) check_bitmaps(*inspection.file, checked.problems);
  return checked;
}

CheckReport check(const std::string& path) {
  CheckReport report;
  std::set<std::pair<dev_t, ino_t>> seen;
  std::string current = path;
  const VhdFile* child = nullptr;
  std::shared_ptr<VhdFile> keep_child;
  for (int depth = 0; depth < 256; ++depth) {
    auto inspection = VhdFile::inspect(current);
    CheckedFile checked{current, inspection.type, std::move(inspection.problems)};
    auto file = inspection.file;
    if (file) {
      struct stat st {};
      ::fstat(file->fd(), &st);
      if (!seen.insert({st.st_dev, st.st_ino}).second) {
        report.files.back().problems.push_back("the parent chain loops back to " + current);
        return report;
      }
      check_bitmaps(*file, checked.problems);
      if (child && file->size() != child->size()) {
        checked.problems.push_back("disk size " + std::to_string(file->size()) + " differs from its child " +
                                   child->path() + " (" + std::to_string(child->size()) + ")");
      }
    }
    report.files.push_back(std::move(checked));
    if (!file || file->type() != DiskType::kDifferencing) return report;

    // Find the parent the way the reader does, but report instead of throw.
    std::string found;
    std::string why;
    std::vector<std::string> candidates;
    try {
      candidates = file->parent_candidates();
    } catch (const util::Error& e) {
      report.files.back().problems.push_back(std::string("parent locators cannot be read: ") + e.what());
      return report;
    }
    for (const std::string& candidate : candidates) {
      struct stat st {};
      if (::stat(candidate.c_str(), &st) != 0) {
        why += "; " + candidate + " does not exist";
        continue;
      }
      auto parent = VhdFile::inspect(candidate);
      if (parent.file && parent.file->footer().unique_id != file->header().parent_unique_id) {
        why += "; " + candidate + " has unique id " + util::uuid_to_string(parent.file->footer().unique_id);
        continue;
      }
      found = candidate;
      break;
    }
    if (found.empty()) {
      report.files.back().problems.push_back(
          "parent '" + file->header().parent_name() + "' with unique id " +
          util::uuid_to_string(file->header().parent_unique_id) + " not found" +
          (why.empty() ? std::string(" (no parent locators)") : why));
      return report;
    }
    keep_child = file;
    child = keep_child.get();
    current = found;
  }
  report.files.back().problems.push_back("the chain is deeper than 256 files");
  return report;
}

}  // namespace bootfleet::vhd
