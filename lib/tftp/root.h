// The directory a TFTP server serves, and the only way files leave it.
//
// A client's file name is untrusted. It is first normalized lexically
// (normalize(): any ".." component is refused outright, an absolute name is
// taken relative to the root), then opened with openat2(RESOLVE_BENEATH) on
// a descriptor of the root, so that the kernel refuses every symlink whose
// target lies outside the root, whatever its depth; symlinks that stay inside
// are followed. Where openat2 is missing (kernels before 5.6, some seccomp
// sandboxes), the fallback resolves the name with realpath() and checks the
// prefix, then opens the resolved path with O_NOFOLLOW. That leaves a race
// only for someone who can already write inside the root.
//
// One exception lets the root serve what a package installed there, like
// Debian's /usr/lib/ipxe/ipxe.efi -> /boot/ipxe.efi: a symlink that leaves the
// root is followed when nobody but root could have planted it, that is when
// the symlink, the root and every directory between them are owned by root
// and not writable by group or others. That is decided on every request
// from the directories as they are then, never remembered from the start: a
// root made group-writable while the server runs stops the links at once.
// A root writable by every user serves nothing at all (and is refused at
// start): anyone on the machine could put a loader there for every client. Its target is opened as written,
// following no further symlink (openat2 RESOLVE_NO_SYMLINKS; without openat2,
// O_NOFOLLOW on the last component), and must be a regular file. A directory
// on the way that is itself a symlink out of the root is never followed.
#pragma once

#include <optional>
#include <string>
#include <variant>

#include "tftp/packet.h"
#include "util/file.h"

namespace bootfleet::tftp {

struct Refusal {
  ErrorCode code;
  std::string message;
};

class Root {
 public:
  // Throws util::Error naming `directory` when it cannot be opened.
  explicit Root(const std::string& directory);

  const std::string& path() const { return real_path_; }

  // The client's name as a path relative to the root ("a/b"), or why not.
  // Pure: touches no file system.
  static std::variant<Refusal, std::string> normalize(const std::string& name, const std::string& root_path);

  // Opens a normalized relative path for reading: a regular file beneath
  // the root, or a Refusal (file not found, access violation).
  std::variant<Refusal, util::UniqueFd> open(const std::string& relative) const;

 private:
  // A symlink out of the root, allowed only if root alone could have made it.
  std::variant<Refusal, util::UniqueFd> open_trusted_link(const std::string& relative, bool have_openat2) const;

  // Why the root must not be served from now (writable by every user), or
  // nullopt. Looked at on every request.
  std::optional<std::string> writable_by_others() const;

  std::string real_path_;
  util::UniqueFd dir_fd_;
};

}  // namespace bootfleet::tftp
