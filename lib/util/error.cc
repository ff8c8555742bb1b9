#include "util/error.h"

#include <cerrno>
#include <cstring>

namespace bootfleet::util {

Error errno_error(const std::string& what, int err) {
  return Error(what + ": " + std::strerror(err));
}

Error errno_error(const std::string& what) { return errno_error(what, errno); }

}  // namespace bootfleet::util
