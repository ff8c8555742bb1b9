// The names every layer spells the same way: image names, the "IMAGE",
// "IMAGE@N", "IMAGE@active" references commands and export names use, and
// artifact names.
//
// Design note. These are words of the store (DESIGN.md section 2), but the
// recipe parser must check a `base: IMAGE@N` without reaching the store
// (DESIGN.md section 3: recipe parsing touches neither guests nor the
// store), and bootsrv checks the same names arriving over HTTP. So the
// syntax lives at the floor every layer may include; what a name refers to
// (whether the image exists, which version is active) stays in the store.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

namespace bootfleet::util {

struct VersionRef {
  std::string image;
  std::optional<int64_t> number;  // nullopt: the active version
  bool explicit_active = false;   // written as @active
  std::string text() const;
};

// Throws util::Error naming the column of the mistake, e.g.
// "lab@x: column 5: expected a version number or 'active' after '@'".
VersionRef parse_version_ref(const std::string& text, bool version_required = false);

// Image names become directory names and export names: 1-64 characters of
// a-z, 0-9, '.', '_', '-', starting with a letter or digit. Throws otherwise.
void validate_image_name(const std::string& name);

// Artifacts are files kept beside a version and served at
// /artifacts/IMAGE@N/NAME: a recipe's copy-out names them, a push declares
// them. kArtifactNameRule says what is allowed, for messages.
bool is_artifact_name(const std::string& name);
extern const char* const kArtifactNameRule;

}  // namespace bootfleet::util
