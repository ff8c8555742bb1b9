// "IMAGE", "IMAGE@N", "IMAGE@active": how commands name a version.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

namespace bootfleet::store {

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

}  // namespace bootfleet::store
