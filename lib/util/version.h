// The version both programs report (--version, the API's /healthz, the
// package): CMake's project version, plus `git describe` of the source tree
// when it was built from a git checkout, e.g. "0.1.0 (git f33510c-dirty)".
//
// The definition is generated at build time (cmake/BootfleetVersion.cmake)
// into the `bootfleet_version` library, which only executables link: a new
// commit relinks imgtool and bootsrv without recompiling any library.
#pragma once

namespace bootfleet::util {

const char* version();

}  // namespace bootfleet::util
