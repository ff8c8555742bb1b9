// Errors are exceptions that carry their context: the file, field or thing
// that was wrong and what would have been right. Libraries throw; only the
// command-line front ends decide exit codes.
#pragma once

#include <stdexcept>
#include <string>

namespace bootfleet::util {

// A failure the user can act on: bad input, a missing file, a malformed
// structure. The message is complete and ready to print.
class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& message) : std::runtime_error(message) {}
};

// An Error built from errno: "<what>: <strerror(errno)>".
Error errno_error(const std::string& what, int err);
Error errno_error(const std::string& what);

}  // namespace bootfleet::util
