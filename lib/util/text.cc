#include "util/text.h"

#include <algorithm>
#include <cstdio>

namespace bootfleet::util {

size_t edit_distance(const std::string& a, const std::string& b) {
  std::vector<size_t> prev(b.size() + 1), cur(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) prev[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    cur[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      size_t sub = prev[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1);
      cur[j] = std::min({prev[j] + 1, cur[j - 1] + 1, sub});
    }
    std::swap(prev, cur);
  }
  return prev[b.size()];
}

std::string did_you_mean(const std::string& word, const std::vector<std::string>& known) {
  if (word.size() > 64) return "";  // quadratic cost; no key is that long
  std::string best;
  size_t best_distance = 3;
  for (const auto& k : known) {
    size_t d = edit_distance(word, k);
    if (d < best_distance && d < k.size()) {
      best = k;
      best_distance = d;
    }
  }
  return best.empty() ? "" : " (did you mean '" + best + "'?)";
}

std::string yaml_tab_hint(const std::string& text, int line) {
  int n = 1;
  size_t start = 0;
  while (start <= text.size() && n <= line) {
    size_t end = text.find('\n', start);
    if (end == std::string::npos) end = text.size();
    for (size_t i = start; i < end && (text[i] == ' ' || text[i] == '\t'); ++i) {
      if (text[i] == '\t') {
        return "; YAML forbids tabs for indentation and line " + std::to_string(n) +
               " is indented with one (indent with spaces)";
      }
    }
    start = end + 1;
    ++n;
  }
  return "";
}

std::string format_mode(uint32_t mode) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "0%03o", mode);
  return buf;
}

}  // namespace bootfleet::util
