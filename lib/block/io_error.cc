#include "block/io_error.h"

#include <cerrno>

#include "util/log.h"

namespace bootfleet::block {

int io_error(const std::string& what, const char* op, uint64_t offset, uint64_t length, const util::Error& e) {
  util::log_line(what + ": " + op + " of " + std::to_string(length) + " bytes at offset " + std::to_string(offset) +
                 " failed: " + e.what() + "; the client gets EIO");
  return EIO;
}

}  // namespace bootfleet::block
