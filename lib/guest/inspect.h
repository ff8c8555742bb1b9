// What libguestfs inspection sees on a disk, and what differs between the
// files of two disks (`imgtool inspect`, `imgtool diff --files`).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "guest/guest.h"
#include "guest/registry.h"

namespace bootfleet::guest {

struct Filesystem {
  std::string device, type, label;
  uint64_t size = 0;
};

struct OperatingSystem {
  std::string root;  // the root filesystem's device
  std::string type, distro, product_name, hostname, arch, package_format;
  int major = 0, minor = 0;
  std::vector<std::pair<std::string, std::string>> mountpoints;  // mount point, device
  std::vector<std::pair<std::string, std::string>> applications;  // name, version
};

struct Inspection {
  std::vector<Filesystem> filesystems;
  std::vector<OperatingSystem> systems;
};

// Inspects disk `device_index` of a launched appliance (nothing mounted).
// Lists applications where libguestfs can tell (it mounts the system
// read-only to read its package database, and unmounts again).
Inspection inspect(Guest& guest, int device_index = 0);

struct FileChange {
  enum class Kind { kAdded, kRemoved, kChanged, kMetadata };
  Kind kind;
  std::string path;
  std::string type;  // file, directory, symlink, other
  uint64_t old_size = 0, new_size = 0;
  std::string detail;  // what changed for kMetadata and symlinks
};

struct RegistryChangeSeen {
  std::string hive;  // guest path of the hive file
  std::string what;  // "+ key", "- key", "+ key\\value = …", "~ key\\value: … -> …"
};

struct FileDiff {
  std::vector<FileChange> files;
  std::vector<RegistryChangeSeen> registry;
};

// Compares the trees mounted at `a` and `b` (e.g. "/a" and "/b"): added,
// removed and changed files with sizes. Files whose type, size, mode,
// owner and modification time all match are not read; regular files that
// differ in size or time are compared by SHA-256 (equal content: a
// metadata change). Windows registry hives that changed are opened and
// their keys and values compared.
FileDiff diff_trees(Guest& guest, const std::string& a, const std::string& b, const std::string& work_dir);

}  // namespace bootfleet::guest
