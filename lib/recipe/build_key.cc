#include "recipe/build_key.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <vector>

#include "util/error.h"
#include "util/sha256.h"

namespace bootfleet::recipe {

namespace {

void add(util::Sha256& h, const std::string& field) {
  // Length-prefixed, so no two different field lists hash alike.
  std::string n = std::to_string(field.size()) + ":";
  h.update({reinterpret_cast<const uint8_t*>(n.data()), n.size()});
  h.update({reinterpret_cast<const uint8_t*>(field.data()), field.size()});
}

}  // namespace

std::string build_key(const Recipe& recipe, const std::string& base_identity) {
  util::Sha256 h;
  add(h, "bootfleet-build-1");
  add(h, base_identity);
  add(h, recipe.canonical);
  for (const auto& f : recipe.input_files) {
    add(h, f);
    add(h, util::file_sha256_hex(f));
  }
  return util::digest_hex(h.finish());
}

}  // namespace bootfleet::recipe
