// Structural check of a VHD file and the chain under it: checksums, cookies,
// BAT entries inside the file and not overlapping, parent locators, bitmaps,
// parent ids and sizes, loops. Every problem is listed, each naming its file.
#pragma once

#include <string>
#include <vector>

namespace bootfleet::vhd {

struct CheckedFile {
  std::string path;
  std::string type;  // "fixed", "dynamic", "differencing", or "" if unreadable
  std::vector<std::string> problems;
};

struct CheckReport {
  std::vector<CheckedFile> files;  // the file asked for first, then its parents
  bool clean() const;
};

CheckReport check(const std::string& path);
// The same checks for one file alone, without looking for its parent (an
// uploaded differencing file whose parent the caller supplies).
CheckedFile check_file(const std::string& path);

}  // namespace bootfleet::vhd
