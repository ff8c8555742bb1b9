// One-line log records on stderr: "2026-11-25T04:21:03.123Z bootsrv[123]: message".
// Servers log one line per connection event and per error.
#pragma once

#include <functional>
#include <string>

namespace bootfleet::util {

void set_log_program(const std::string& name);
// Fuzzers and benchmarks turn logging off; servers never do.
void set_log_enabled(bool enabled);
// Sends every line (the message only, no time or program) to `sink` instead
// of stderr; an empty function restores stderr. A command that runs a server
// in-process (imgtool boot-test) keeps its log for when something fails.
void set_log_sink(std::function<void(const std::string&)> sink);
// Also shows every line (the message only) to `observer`, wherever it goes
// (bootsrv's status page keeps the recent errors); an empty function
// removes it. Called with the log's lock held: it must not log.
void set_log_observer(std::function<void(const std::string&)> observer);
void log_line(const std::string& message);

}  // namespace bootfleet::util
