#include "util/log.h"

#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <mutex>

#include "util/time.h"

namespace bootfleet::util {

namespace {
std::mutex log_mutex;
std::string program = "bootfleet";
bool enabled = true;
std::function<void(const std::string&)> sink;
std::function<void(const std::string&)> observer;
}  // namespace

void set_log_program(const std::string& name) {
  std::lock_guard lock(log_mutex);
  program = name;
}

void set_log_enabled(bool on) {
  std::lock_guard lock(log_mutex);
  enabled = on;
}

void set_log_sink(std::function<void(const std::string&)> s) {
  std::lock_guard lock(log_mutex);
  sink = std::move(s);
}

void set_log_observer(std::function<void(const std::string&)> o) {
  std::lock_guard lock(log_mutex);
  observer = std::move(o);
}

void log_line(const std::string& message) {
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
                .count();
  std::lock_guard lock(log_mutex);
  if (!enabled) return;
  if (observer) observer(message);
  if (sink) {
    sink(message);
    return;
  }
  std::fprintf(stderr, "%s %s[%d]: %s\n", format_utc_ms(ms).c_str(), program.c_str(), static_cast<int>(::getpid()),
               message.c_str());
  std::fflush(stderr);
}

}  // namespace bootfleet::util
