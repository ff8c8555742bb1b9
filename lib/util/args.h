// Global options before the command, as `git -C DIR`, `restic -r REPO`:
// `imgtool --store DIR versions lab` is `imgtool versions --store DIR lab`.
#pragma once

#include <string>
#include <vector>

namespace bootfleet::util {

// Moves the options named in `global` (each takes a value: "--store DIR" or
// "--store=DIR") from before the command to just after it, so the command's
// own parser sees them. Stops at the first word that is not one of them:
// that is the command (or --help, --version). Throws util::Error when one
// lacks its value. Returns `args` unchanged when none leads.
std::vector<std::string> move_global_options(const std::vector<std::string>& args,
                                             const std::vector<std::string>& global);

}  // namespace bootfleet::util
