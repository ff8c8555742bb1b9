#include "tftp/root.h"

#include <fcntl.h>
#include <linux/openat2.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstdlib>
#include <cstdio>
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

// O_NONBLOCK: a FIFO planted in the root must not hang the transfer; it is
// refused below as not a regular file.
constexpr int kOpenFlags = O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK;

int openat2_with(int dir_fd, const std::string& path, uint64_t resolve) {
  open_how how{};
  how.flags = kOpenFlags;
  how.resolve = resolve;
  return static_cast<int>(::syscall(SYS_openat2, dir_fd, path.c_str(), &how, sizeof how));
}

int open_beneath(int dir_fd, const std::string& relative) {
  return openat2_with(dir_fd, relative, RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS);
}

// Owned by root and writable by nobody else: only root can have put
// anything here.
bool root_only(const struct stat& st) { return st.st_uid == 0 && (st.st_mode & (S_IWGRP | S_IWOTH)) == 0; }

std::string mode_text(mode_t mode) {
  char text[8];
  std::snprintf(text, sizeof text, "%04o", static_cast<unsigned>(mode & 07777));
  return text;
}

Refusal untrusted_link(const std::string& name, const std::string& why) {
  return Refusal{ErrorCode::access_violation, "access violation: " + name +
                                                  " leads outside the served directory (" + why + ")"};
}

}  // namespace

Root::Root(const std::string& directory) {
  char resolved[PATH_MAX];
  if (!::realpath(directory.c_str(), resolved)) throw util::errno_error("TFTP root " + directory);
  real_path_ = resolved;
  dir_fd_ = util::open_file(real_path_, O_RDONLY | O_DIRECTORY);
  if (auto why = writable_by_others()) throw util::Error("TFTP root " + real_path_ + ": " + *why);
}

// Asked on every request, not once at start: the root's owner and mode may
// change while the server runs (a `chmod 775` after start must not leave
// root's links trusted, nor a `chmod 777` leave the root served).
std::optional<std::string> Root::writable_by_others() const {
  struct stat st {};
  if (::fstat(dir_fd_.get(), &st) != 0) return std::string("cannot stat the directory: ") + std::strerror(errno);
  if (st.st_mode & S_IWOTH) {
    return std::string("the directory is writable by every user (mode ") + mode_text(st.st_mode) +
           "), so anyone on this machine could put files in it for every client to boot; "
           "make it writable by its owner only (chmod o-w)";
  }
  return std::nullopt;
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

std::variant<Refusal, util::UniqueFd> Root::open_trusted_link(const std::string& relative, bool have_openat2) const {
  struct stat root {};
  if (::fstat(dir_fd_.get(), &root) != 0 || !root_only(root)) {
    return untrusted_link(relative, "the root is not owned by root or is writable by group or others");
  }
  // Walk the directories beneath the root without following symlinks; each
  // must be root's alone, like the root.
  util::UniqueFd dir;
  int at = dir_fd_.get();
  size_t start = 0;
  for (size_t slash; (slash = relative.find('/', start)) != std::string::npos; start = slash + 1) {
    std::string part = relative.substr(start, slash - start);
    int fd = ::openat(at, part.c_str(), O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) return untrusted_link(relative, "a directory on the way is a symlink");
    dir = util::UniqueFd(fd);
    at = fd;
    struct stat st {};
    if (::fstat(at, &st) != 0 || !root_only(st)) {
      return untrusted_link(relative, part + " is not owned by root or is writable by group or others");
    }
  }
  std::string leaf = relative.substr(start);
  struct stat link {};
  if (::fstatat(at, leaf.c_str(), &link, AT_SYMLINK_NOFOLLOW) != 0) return refusal_for_errno(errno, relative);
  if (!S_ISLNK(link.st_mode)) return untrusted_link(relative, "not a symlink of root's");
  if (link.st_uid != 0) return untrusted_link(relative, "the symlink is not owned by root");
  char target[PATH_MAX];
  ssize_t n = ::readlinkat(at, leaf.c_str(), target, sizeof target - 1);
  if (n <= 0) return refusal_for_errno(n < 0 ? errno : ENOENT, relative);
  target[n] = '\0';
  // The target is taken as it stands: no further symlink is followed on
  // its way (without openat2, only its last component is checked).
  int fd = have_openat2 ? openat2_with(at, target, RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS)
                        : ::openat(at, target, kOpenFlags | O_NOFOLLOW);
  if (fd < 0) {
    if (errno == ELOOP) return untrusted_link(relative, "its target passes through another symlink");
    return refusal_for_errno(errno, relative);
  }
  return util::UniqueFd(fd);
}

std::variant<Refusal, util::UniqueFd> Root::open(const std::string& relative) const {
  if (auto why = writable_by_others()) {
    return Refusal{ErrorCode::access_violation, "access violation: the served directory is writable by every user; nothing is served from it"};
  }
  int fd = open_beneath(dir_fd_.get(), relative);
  if (fd < 0 && errno == EXDEV) {
    auto trusted = open_trusted_link(relative, true);
    if (std::holds_alternative<Refusal>(trusted)) return trusted;
    fd = std::get<util::UniqueFd>(trusted).release();
  } else if (fd < 0 && (errno == ENOSYS || errno == EPERM)) {
    // No openat2: resolve every symlink ourselves and check where it lands.
    std::string full = real_path_ + (real_path_ == "/" ? "" : "/") + relative;
    char resolved[PATH_MAX];
    if (!::realpath(full.c_str(), resolved)) return refusal_for_errno(errno, relative);
    std::string target = resolved;
    bool inside = real_path_ == "/" || (target.compare(0, real_path_.size(), real_path_) == 0 &&
                                        target.size() > real_path_.size() && target[real_path_.size()] == '/');
    if (inside) {
      fd = ::open(resolved, kOpenFlags | O_NOFOLLOW);
    } else {
      auto trusted = open_trusted_link(relative, false);
      if (std::holds_alternative<Refusal>(trusted)) return trusted;
      fd = std::get<util::UniqueFd>(trusted).release();
    }
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
