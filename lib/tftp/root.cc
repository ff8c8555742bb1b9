#include "tftp/root.h"

#include <fcntl.h>
#include <linux/openat2.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstdlib>
#include <cstring>

#include "util/error.h"

namespace bootfleet::tftp {

namespace {

constexpr size_t kMaxNameLength = 1024;

std::variant<Refusal, util::UniqueFd> refusal_for_errno(int err, const std::string& name) {
  switch (err) {
    case ENOENT:
    case ENOTDIR:
    case ENAMETOOLONG:
      return Refusal{ErrorCode::file_not_found, "file not found: " + name};
    case EXDEV:  // RESOLVE_BENEATH: the path or a symlink leaves the root
    case ELOOP:
      return Refusal{ErrorCode::access_violation, "access violation: " + name + " leads outside the served directory"};
    case EACCES:
    case EPERM:
      return Refusal{ErrorCode::access_violation, "access violation: " + name + ": permission denied"};
    default:
      return Refusal{ErrorCode::not_defined, name + ": " + std::strerror(err)};
  }
}

int open_beneath(int dir_fd, const std::string& relative) {
  open_how how{};
  // O_NONBLOCK: a FIFO planted in the root must not hang the transfer; it
  // is refused below as not a regular file.
  how.flags = O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK;
  how.resolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS;
  return static_cast<int>(::syscall(SYS_openat2, dir_fd, relative.c_str(), &how, sizeof how));
}

}  // namespace

Root::Root(const std::string& directory) {
  char resolved[PATH_MAX];
  if (!::realpath(directory.c_str(), resolved)) throw util::errno_error("TFTP root " + directory);
  real_path_ = resolved;
  dir_fd_ = util::open_file(real_path_, O_RDONLY | O_DIRECTORY);
}

std::variant<Refusal, std::string> Root::normalize(const std::string& name, const std::string& root_path) {
  if (name.empty()) return Refusal{ErrorCode::file_not_found, "empty file name"};
  if (name.size() > kMaxNameLength) return Refusal{ErrorCode::file_not_found, "file name longer than 1024 bytes"};
  for (unsigned char c : name) {
    if (c < 0x20 || c == 0x7f) return Refusal{ErrorCode::access_violation, "control character in the file name"};
  }
  std::string rest = name;
  // Clients configured with the server's full path ("/usr/lib/ipxe/x")
  // mean the file in the root; any other absolute name is taken relative
  // to the root, as a chrooted tftpd would.
  if (!root_path.empty() && root_path != "/" && rest.compare(0, root_path.size(), root_path) == 0 &&
      rest.size() > root_path.size() && rest[root_path.size()] == '/') {
    rest = rest.substr(root_path.size());
  }
  std::string out;
  size_t at = 0;
  while (at <= rest.size()) {
    size_t slash = rest.find('/', at);
    if (slash == std::string::npos) slash = rest.size();
    std::string part = rest.substr(at, slash - at);
    at = slash + 1;
    if (part.empty() || part == ".") continue;
    if (part == "..") return Refusal{ErrorCode::access_violation, "access violation: '..' in " + name};
    if (!out.empty()) out += '/';
    out += part;
  }
  if (out.empty()) return Refusal{ErrorCode::file_not_found, "file not found: " + name + " names the directory"};
  return out;
}

std::variant<Refusal, util::UniqueFd> Root::open(const std::string& relative) const {
  int fd = open_beneath(dir_fd_.get(), relative);
  if (fd < 0 && (errno == ENOSYS || errno == EPERM)) {
    // No openat2: resolve every symlink ourselves and check where it lands.
    std::string full = real_path_ + (real_path_ == "/" ? "" : "/") + relative;
    char resolved[PATH_MAX];
    if (!::realpath(full.c_str(), resolved)) return refusal_for_errno(errno, relative);
    std::string target = resolved;
    bool inside = real_path_ == "/" || (target.compare(0, real_path_.size(), real_path_) == 0 &&
                                        target.size() > real_path_.size() && target[real_path_.size()] == '/');
    if (!inside) return refusal_for_errno(EXDEV, relative);
    fd = ::open(resolved, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK | O_NOFOLLOW);
  }
  if (fd < 0) return refusal_for_errno(errno, relative);
  util::UniqueFd file(fd);
  struct stat st {};
  if (::fstat(fd, &st) != 0) return refusal_for_errno(errno, relative);
  if (!S_ISREG(st.st_mode)) {
    return Refusal{ErrorCode::access_violation, "access violation: " + relative + " is not a regular file"};
  }
  return file;
}

}  // namespace bootfleet::tftp
