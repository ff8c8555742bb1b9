// Progress of long work on a terminal: "convert  43% 1.7 GiB/4.0 GiB 812 MiB/s".
// Silent when stderr is not a terminal (scripts and logs get no noise), and
// redrawn at most ten times a second so it costs nothing on the hot path.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

namespace bootfleet::util {

class Progress {
 public:
  Progress(std::string label, uint64_t total, bool enabled);
  static Progress for_terminal(std::string label, uint64_t total);
  ~Progress();

  void update(uint64_t done);
  void finish();

 private:
  void draw(bool final_line);

  std::string label_;
  uint64_t total_;
  uint64_t done_ = 0;
  bool enabled_;
  bool finished_ = false;
  std::chrono::steady_clock::time_point start_;
  std::chrono::steady_clock::time_point last_draw_;
};

}  // namespace bootfleet::util
