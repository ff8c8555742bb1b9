#include "util/progress.h"

#include <unistd.h>

#include <cstdio>

#include "util/size.h"

namespace bootfleet::util {

Progress::Progress(std::string label, uint64_t total, bool enabled)
    : label_(std::move(label)), total_(total), enabled_(enabled),
      start_(std::chrono::steady_clock::now()), last_draw_(start_) {}

Progress Progress::for_terminal(std::string label, uint64_t total) {
  return Progress(std::move(label), total, ::isatty(STDERR_FILENO) == 1);
}

Progress::~Progress() {
  if (enabled_ && !finished_ && done_ > 0) std::fputc('\n', stderr);
}

void Progress::update(uint64_t done) {
  done_ = done;
  if (!enabled_) return;
  auto now = std::chrono::steady_clock::now();
  if (now - last_draw_ < std::chrono::milliseconds(100)) return;
  last_draw_ = now;
  draw(false);
}

void Progress::finish() {
  if (!enabled_ || finished_) return;
  done_ = total_;
  draw(true);
  finished_ = true;
}

void Progress::draw(bool final_line) {
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  int pct = total_ ? static_cast<int>(done_ * 100 / total_) : 100;
  std::string rate = secs > 0 ? format_size(static_cast<uint64_t>(static_cast<double>(done_) / secs)) + "/s" : "";
  std::fprintf(stderr, "\r%s %3d%% %s/%s %s\033[K%s", label_.c_str(), pct,
               format_size(done_).c_str(), format_size(total_).c_str(), rate.c_str(),
               final_line ? "\n" : "");
  std::fflush(stderr);
}

}  // namespace bootfleet::util
