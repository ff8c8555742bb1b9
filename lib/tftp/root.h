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
#pragma once

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
  std::string real_path_;
  util::UniqueFd dir_fd_;
};

}  // namespace bootfleet::tftp
