#include "util/names.h"

#include "util/error.h"

namespace bootfleet::util {

std::string VersionRef::text() const {
  if (number) return image + "@" + std::to_string(*number);
  return image + "@active";
}

namespace {
bool name_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-';
}
}  // namespace

void validate_image_name(const std::string& name) {
  if (name.empty()) throw Error("image name is empty");
  if (name.size() > 64) throw Error("image name '" + name + "' is longer than 64 characters");
  for (size_t i = 0; i < name.size(); ++i) {
    char c = name[i];
    if (!name_char(c) || (i == 0 && (c == '.' || c == '_' || c == '-'))) {
      throw Error("image name '" + name + "': column " + std::to_string(i + 1) + ": '" + std::string(1, c) +
                  "' is not allowed; use a-z, 0-9, '.', '_' and '-', starting with a letter or digit");
    }
  }
}

const char* const kArtifactNameRule = "1-64 letters, digits, '.', '_' or '-', not starting with '.'";

bool is_artifact_name(const std::string& name) {
  if (name.empty() || name.size() > 64 || name[0] == '.') return false;
  for (char c : name) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '_' ||
              c == '-';
    if (!ok) return false;
  }
  return true;
}

VersionRef parse_version_ref(const std::string& text, bool version_required) {
  VersionRef ref;
  auto at = text.find('@');
  ref.image = text.substr(0, at);
  try {
    validate_image_name(ref.image);
  } catch (const Error& e) {
    throw Error(text + ": " + e.what());
  }
  if (at == std::string::npos) {
    if (version_required) {
      throw Error(text + ": column " + std::to_string(text.size() + 1) +
                  ": expected '@N' or '@active' after the image name");
    }
    return ref;
  }
  std::string v = text.substr(at + 1);
  auto column = [&](size_t offset) { return std::to_string(at + 2 + offset); };
  if (v == "active") {
    ref.explicit_active = true;
    return ref;
  }
  if (v.empty()) throw Error(text + ": column " + column(0) + ": expected a version number or 'active' after '@'");
  for (size_t i = 0; i < v.size(); ++i) {
    if (v[i] < '0' || v[i] > '9') {
      throw Error(text + ": column " + column(i) + ": expected a version number or 'active' after '@', found '" +
                  std::string(1, v[i]) + "'");
    }
  }
  if (v.size() > 9) throw Error(text + ": column " + column(0) + ": version number too large");
  ref.number = std::stoll(v);
  if (*ref.number < 1) throw Error(text + ": column " + column(0) + ": versions are numbered from 1");
  return ref;
}

}  // namespace bootfleet::util
