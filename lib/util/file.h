// File helpers: an owning descriptor, positional I/O that never returns
// short, durability (fsync of files and directories) and sparse-file probes.
// Every error names the path.
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace bootfleet::util {

class UniqueFd {
 public:
  UniqueFd() = default;
  explicit UniqueFd(int fd) : fd_(fd) {}
  UniqueFd(UniqueFd&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}
  UniqueFd& operator=(UniqueFd&& other) noexcept {
    if (this != &other) reset(std::exchange(other.fd_, -1));
    return *this;
  }
  UniqueFd(const UniqueFd&) = delete;
  UniqueFd& operator=(const UniqueFd&) = delete;
  ~UniqueFd() { reset(); }

  int get() const { return fd_; }
  explicit operator bool() const { return fd_ >= 0; }
  void reset(int fd = -1);
  int release() { return std::exchange(fd_, -1); }

 private:
  int fd_ = -1;
};

// open(2) with O_CLOEXEC; throws Error naming the path on failure.
UniqueFd open_file(const std::string& path, int flags, mode_t mode = 0644);

// Reads exactly `length` bytes at `offset`; a short read (end of file) is an
// Error naming the path, offset and length.
void pread_full(int fd, void* buf, size_t length, uint64_t offset, const std::string& path);
// Like pread_full but returns how many bytes exist (stops at end of file).
size_t pread_some(int fd, void* buf, size_t length, uint64_t offset, const std::string& path);
void pwrite_full(int fd, const void* buf, size_t length, uint64_t offset, const std::string& path);
// Reads exactly `length` bytes at `offset` only if that needs no wait for a
// disk (preadv2 with RWF_NOWAIT: the data is in the page cache). Returns
// false when it would wait, when only part is cached, or where the kernel or
// file system cannot tell (then it never tries again); `buf` is undefined
// then. Throws like pread_full on a real error.
bool pread_if_cached(int fd, void* buf, size_t length, uint64_t offset, const std::string& path);

uint64_t file_size(int fd, const std::string& path);
void fsync_file(int fd, const std::string& path);
// fsync the directory holding `path`, making a rename or create durable.
void fsync_parent_dir(const std::string& path);

// Data ranges within [start, end) of a possibly sparse file, from
// SEEK_DATA/SEEK_HOLE, as [begin, end) pairs. Where the file system cannot
// tell, the whole window is one range. Costs two syscalls per range found.
std::vector<std::pair<uint64_t, uint64_t>> data_ranges(int fd, uint64_t start, uint64_t end,
                                                       const std::string& path);

// A file written under a temporary name beside its final path and renamed
// into place by commit() (then the directory is fsynced): readers see the old
// file or the whole new one, never half. Removed unless committed. The caller
// fsyncs the file's data before commit().
class AtomicOutput {
 public:
  explicit AtomicOutput(std::string final_path);
  ~AtomicOutput();
  AtomicOutput(const AtomicOutput&) = delete;
  AtomicOutput& operator=(const AtomicOutput&) = delete;
  const std::string& path() const { return temp_; }
  const std::string& final_path() const { return final_; }
  // Refuses to replace an existing file unless `replace` is true.
  void commit(bool replace = true);

 private:
  std::string final_;
  std::string temp_;
  bool committed_ = false;
};

// Directory part and file part of a path ("a/b/c" -> "a/b", "c"; "c" -> ".", "c").
std::string dir_name(const std::string& path);
std::string base_name(const std::string& path);
// Joins a directory and a relative path; absolute `rel` is returned as is.
std::string join_path(const std::string& dir, const std::string& rel);

}  // namespace bootfleet::util
