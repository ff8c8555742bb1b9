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

std::string file_digest(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw util::errno_error(path, errno);
  util::Sha256 h;
  std::vector<uint8_t> buf(1 << 20);
  while (true) {
    ssize_t n = ::read(fd, buf.data(), buf.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      int err = errno;
      ::close(fd);
      throw util::errno_error("read " + path, err);
    }
    if (n == 0) break;
    h.update({buf.data(), static_cast<size_t>(n)});
  }
  ::close(fd);
  return util::digest_hex(h.finish());
}

std::string build_key(const Recipe& recipe, const std::string& base_identity) {
  util::Sha256 h;
  add(h, "bootfleet-build-1");
  add(h, base_identity);
  add(h, recipe.canonical);
  for (const auto& f : recipe.input_files) {
    add(h, f);
    add(h, file_digest(f));
  }
  return util::digest_hex(h.finish());
}

}  // namespace bootfleet::recipe
