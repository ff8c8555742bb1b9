#include "util/lock.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>

#include "util/error.h"

namespace bootfleet::util {

FileLock FileLock::acquire(const std::string& path) {
  FileLock lock;
  UniqueFd fd = open_file(path, O_RDWR | O_CREAT, 0644);
  while (::flock(fd.get(), LOCK_EX) != 0) {
    if (errno != EINTR) throw errno_error(path + ": lock");
  }
  lock.fd_ = std::move(fd);
  return lock;
}

FileLock FileLock::try_acquire(const std::string& path) {
  FileLock lock;
  UniqueFd fd = open_file(path, O_RDWR | O_CREAT, 0644);
  if (try_lock_fd(fd.get())) lock.fd_ = std::move(fd);
  return lock;
}

bool FileLock::try_lock_fd(int fd) {
  if (::flock(fd, LOCK_EX | LOCK_NB) == 0) return true;
  if (errno == EWOULDBLOCK) return false;
  throw errno_error("flock");
}

void crash_point(const char* name) {
  static const char* wanted = std::getenv("BOOTFLEET_CRASH_AT");
  if (wanted && std::strcmp(wanted, name) == 0) ::kill(::getpid(), SIGKILL);
}

}  // namespace bootfleet::util
