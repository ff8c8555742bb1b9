// Advisory whole-file locks (flock), released when the holder exits or dies.
// The store uses them so that one writer works on an image at a time and so
// that crash cleanup never touches a file another live process is writing.
#pragma once

#include <string>

#include "util/file.h"

namespace bootfleet::util {

class FileLock {
 public:
  FileLock() = default;
  // Blocks until the exclusive lock on `path` (created if missing) is held.
  static FileLock acquire(const std::string& path);
  // Returns an unlocked FileLock (check held()) instead of waiting.
  static FileLock try_acquire(const std::string& path);
  // Locks an already open descriptor without waiting.
  static bool try_lock_fd(int fd);

  bool held() const { return static_cast<bool>(fd_); }

 private:
  UniqueFd fd_;
};

// A named point where a test may ask the process to die: when the
// environment variable BOOTFLEET_CRASH_AT equals `name`, the process sends
// itself SIGKILL. Crash-safety tests use this to stop an import at each step.
void crash_point(const char* name);

}  // namespace bootfleet::util
