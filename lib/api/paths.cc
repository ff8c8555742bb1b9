#include "api/paths.h"

#include "util/error.h"

namespace bootfleet::api {

namespace {

std::vector<std::string_view> segments_of(std::string_view pattern) {
  std::vector<std::string_view> out;
  size_t at = 0;
  while (true) {
    size_t slash = pattern.find('/', at);
    out.push_back(pattern.substr(at, slash == std::string_view::npos ? std::string_view::npos : slash - at));
    if (slash == std::string_view::npos) return out;
    at = slash + 1;
  }
}

bool is_field(std::string_view segment) {
  return segment.size() > 2 && segment.front() == '{' && segment.back() == '}';
}

}  // namespace

std::string path(std::string_view pattern, std::initializer_list<std::string_view> values) {
  std::string out(kPrefix);
  auto value = values.begin();
  bool first = true;
  for (std::string_view segment : segments_of(pattern)) {
    if (!first) out += '/';
    first = false;
    if (!is_field(segment)) {
      out += segment;
      continue;
    }
    if (value == values.end()) {
      throw util::Error("API path " + std::string(pattern) + ": no value for " + std::string(segment));
    }
    if (value->empty() || value->find_first_of("/?#%") != std::string_view::npos) {
      throw util::Error("API path " + std::string(pattern) + ": " + std::string(segment) +
                        " must be one non-empty path segment (no '/', '?', '#' or '%')");
    }
    out += *value++;
  }
  if (value != values.end()) {
    throw util::Error("API path " + std::string(pattern) + ": " + std::to_string(values.size()) +
                      " values for fewer fields");
  }
  return out;
}

std::optional<std::vector<std::string>> match(std::string_view pattern, const std::vector<std::string>& segments) {
  std::vector<std::string_view> want = segments_of(pattern);
  if (want.size() != segments.size()) return std::nullopt;
  std::vector<std::string> values;
  for (size_t i = 0; i < want.size(); ++i) {
    if (is_field(want[i])) {
      if (segments[i].empty()) return std::nullopt;
      values.push_back(segments[i]);
    } else if (want[i] != segments[i]) {
      return std::nullopt;
    }
  }
  return values;
}

}  // namespace bootfleet::api
