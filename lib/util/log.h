// One-line log records on stderr: "2026-11-25T04:21:03.123Z bootsrv[123]: message".
// Servers log one line per connection event and per error.
#pragma once

#include <string>

namespace bootfleet::util {

void set_log_program(const std::string& name);
// Fuzzers and benchmarks turn logging off; servers never do.
void set_log_enabled(bool enabled);
void log_line(const std::string& message);

}  // namespace bootfleet::util
