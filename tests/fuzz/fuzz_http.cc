// libFuzzer target for what bootsrv parses from HTTP peers: the request
// head, the path and query of its target, the body's framing
// (Content-Length, Transfer-Encoding, Expect), the Range header against a
// file size, the Host header and the MAC in /boot/MAC.ipxe. Nothing may crash; the
// invariants that keep clients inside the store are checked: a split path
// never yields a segment that could leave a directory, a partial range lies
// inside the file, a parsed MAC is in the one normalized form.
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

#include "http/request.h"
#include "util/mac.h"

using namespace bootfleet;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view input(reinterpret_cast<const char*>(data), size);
  try {
    http::Request r = http::parse_request_head(input);
    if (r.target.empty() || r.headers.size() > http::kMaxHeaders) __builtin_trap();
    // A body length is never above the limit it was read against, and is
    // refused (never guessed) when the head frames it any other way.
    for (uint64_t limit : {uint64_t{0}, uint64_t{1} << 20, uint64_t{4} << 40}) {
      try {
        uint64_t length = http::body_length(r, limit);
        if (length > limit || (length > 0 && r.header("transfer-encoding"))) __builtin_trap();
      } catch (const http::BadRequest& e) {
        if (e.status() != 400 && e.status() != 411 && e.status() != 413) __builtin_trap();
      }
    }
    (void)http::expects_continue(r);
    if (auto offset = http::query_param(r.target, "offset")) {
      if (offset->size() > r.target.size()) __builtin_trap();
    }
    if (auto segments = http::split_path(r.target)) {
      for (const auto& s : *segments) {
        if (s.empty() || s == "." || s == ".." || s.find('/') != std::string::npos ||
            s.find('\\') != std::string::npos || s.find('\0') != std::string::npos) {
          __builtin_trap();
        }
      }
    }
    for (const auto& [name, value] : r.headers) {
      if (name == "range") {
        for (uint64_t file_size : {uint64_t{0}, uint64_t{1}, uint64_t{4096}, uint64_t{37668295}}) {
          http::RangeRequest range = http::parse_range(value, file_size);
          if (range.kind == http::RangeRequest::kPartial &&
              (range.first > range.last || range.last >= file_size)) {
            __builtin_trap();
          }
        }
      }
      if (name == "host" && http::valid_host(value)) {
        std::string host = http::host_without_port(value);
        if (host.empty() || host.find('/') != std::string::npos) __builtin_trap();
      }
    }
  } catch (const http::BadRequest& e) {
    if (e.status() < 400 || e.status() > 599) __builtin_trap();
  }
  // The raw bytes as a path, a range and a MAC too, so that short inputs
  // reach each parser without a request line around them.
  if (auto segments = http::split_path(input)) {
    for (const auto& s : *segments)
      if (s == ".." || s.find('/') != std::string::npos) __builtin_trap();
  }
  if (size >= 8) {
    uint64_t file_size;
    std::memcpy(&file_size, data, 8);
    http::RangeRequest range = http::parse_range(input.substr(8), file_size);
    if (range.kind == http::RangeRequest::kPartial && (range.first > range.last || range.last >= file_size)) {
      __builtin_trap();
    }
  }
  if (auto mac = util::parse_mac(input)) {
    if (mac->size() != 17 || util::parse_mac(*mac) != *mac) __builtin_trap();
  }
  return 0;
}
