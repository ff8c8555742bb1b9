#include "util/file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>

#include "util/error.h"

namespace bootfleet::util {

namespace {
Error read_error(const std::string& path, size_t length, uint64_t offset) {
  return errno_error(path + ": read of " + std::to_string(length) + " bytes at offset " + std::to_string(offset));
}
}  // namespace

void UniqueFd::reset(int fd) {
  if (fd_ >= 0) ::close(fd_);
  fd_ = fd;
}

UniqueFd open_file(const std::string& path, int flags, mode_t mode) {
  int fd = ::open(path.c_str(), flags | O_CLOEXEC, mode);
  if (fd < 0) throw errno_error(path);
  return UniqueFd(fd);
}

size_t pread_some(int fd, void* buf, size_t length, uint64_t offset, const std::string& path) {
  size_t done = 0;
  auto* p = static_cast<uint8_t*>(buf);
  while (done < length) {
    ssize_t n = ::pread(fd, p + done, length - done, static_cast<off_t>(offset + done));
    if (n < 0) {
      if (errno == EINTR) continue;
      throw read_error(path, length, offset);
    }
    if (n == 0) break;
    done += static_cast<size_t>(n);
  }
  return done;
}

void pread_full(int fd, void* buf, size_t length, uint64_t offset, const std::string& path) {
  size_t got = pread_some(fd, buf, length, offset, path);
  if (got != length) {
    throw Error(path + ": file ends at offset " + std::to_string(offset + got) +
                " but " + std::to_string(length) + " bytes were needed at offset " +
                std::to_string(offset) + " (truncated file?)");
  }
}

bool pread_if_cached(int fd, void* buf, size_t length, uint64_t offset, const std::string& path) {
  // EOPNOTSUPP (an old kernel, a file system without nowait reads) is the
  // same for every file we serve, so one refusal turns the probe off.
  static std::atomic<bool> unsupported{false};
  if (unsupported.load(std::memory_order_relaxed)) return false;
  iovec iov{buf, length};
  while (true) {
    ssize_t n = ::preadv2(fd, &iov, 1, static_cast<off_t>(offset), RWF_NOWAIT);
    if (n == static_cast<ssize_t>(length)) return true;
    if (n >= 0) {
      // Short: part is not cached, or the file ends early; the blocking read
      // that follows tells which.
      return false;
    }
    if (errno == EINTR) continue;
    if (errno == EAGAIN) return false;
    if (errno == EOPNOTSUPP || errno == EINVAL || errno == ENOSYS) {
      unsupported = true;
      return false;
    }
    throw read_error(path, length, offset);
  }
}

void pwrite_full(int fd, const void* buf, size_t length, uint64_t offset, const std::string& path) {
  size_t done = 0;
  auto* p = static_cast<const uint8_t*>(buf);
  while (done < length) {
    ssize_t n = ::pwrite(fd, p + done, length - done, static_cast<off_t>(offset + done));
    if (n < 0) {
      if (errno == EINTR) continue;
      throw errno_error(path + ": write of " + std::to_string(length) + " bytes at offset " +
                        std::to_string(offset));
    }
    done += static_cast<size_t>(n);
  }
}

uint64_t file_size(int fd, const std::string& path) {
  struct stat st {};
  if (::fstat(fd, &st) != 0) throw errno_error(path);
  if (S_ISBLK(st.st_mode)) {
    off_t end = ::lseek(fd, 0, SEEK_END);
    if (end < 0) throw errno_error(path);
    return static_cast<uint64_t>(end);
  }
  return static_cast<uint64_t>(st.st_size);
}

void fsync_file(int fd, const std::string& path) {
  if (::fsync(fd) != 0) throw errno_error(path + ": fsync");
}

void fsync_parent_dir(const std::string& path) {
  std::string dir = dir_name(path);
  UniqueFd fd = open_file(dir, O_RDONLY | O_DIRECTORY);
  if (::fsync(fd.get()) != 0) throw errno_error(dir + ": fsync");
}

std::vector<std::pair<uint64_t, uint64_t>> data_ranges(int fd, uint64_t start, uint64_t end,
                                                       const std::string& path) {
  std::vector<std::pair<uint64_t, uint64_t>> out;
  uint64_t pos = start;
  while (pos < end) {
    off_t data = ::lseek(fd, static_cast<off_t>(pos), SEEK_DATA);
    if (data < 0) {
      if (errno == ENXIO) break;  // only a hole remains
      if (errno == EINVAL || errno == EOPNOTSUPP) {
        out.assign(1, {start, end});
        return out;
      }
      throw errno_error(path + ": SEEK_DATA");
    }
    if (static_cast<uint64_t>(data) >= end) break;
    off_t hole = ::lseek(fd, data, SEEK_HOLE);
    if (hole < 0) throw errno_error(path + ": SEEK_HOLE");
    uint64_t stop = std::min<uint64_t>(static_cast<uint64_t>(hole), end);
    out.emplace_back(static_cast<uint64_t>(data), stop);
    pos = stop;
  }
  return out;
}

AtomicOutput::AtomicOutput(std::string final_path)
    : final_(std::move(final_path)),
      temp_(join_path(dir_name(final_), "." + base_name(final_) + ".tmp-" + std::to_string(::getpid()))) {}

AtomicOutput::~AtomicOutput() {
  if (!committed_) ::unlink(temp_.c_str());
}

void AtomicOutput::commit(bool replace) {
  if (replace) {
    if (::rename(temp_.c_str(), final_.c_str()) != 0) {
      throw errno_error("rename " + temp_ + " to " + final_);
    }
  } else {
    // link(2) fails with EEXIST instead of replacing: no window where a
    // concurrent writer's file is overwritten.
    if (::link(temp_.c_str(), final_.c_str()) != 0) {
      if (errno == EEXIST) throw Error(final_ + ": already exists (use --force to replace it)");
      throw errno_error("link " + temp_ + " to " + final_);
    }
    ::unlink(temp_.c_str());
  }
  committed_ = true;
  fsync_parent_dir(final_);
}

std::string dir_name(const std::string& path) {
  auto slash = path.find_last_of('/');
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return path.substr(0, slash);
}

std::string base_name(const std::string& path) {
  auto slash = path.find_last_of('/');
  return slash == std::string::npos ? path : path.substr(slash + 1);
}

std::string join_path(const std::string& dir, const std::string& rel) {
  if (!rel.empty() && rel[0] == '/') return rel;
  if (dir.empty() || dir == ".") return rel;
  if (dir.back() == '/') return dir + rel;
  return dir + "/" + rel;
}

}  // namespace bootfleet::util
