// HTTP/1.1 request parsing for bootsrv's small web server: the request head,
// the path and query of the target, the body's framing and the Range header. Everything here
// reads bytes from the network, so it is pure (no I/O), bounded, and fuzzed
// (tests/fuzz/fuzz_http.cc).
//
// Design note. Paths are never joined into file names. A target becomes a
// list of percent-decoded segments, and a segment that could change which
// directory a later join means ("..", ".", one holding '/', '\\' or a control
// byte) makes the whole target invalid; the caller then matches segments
// against names it already knows (routes, the store's artifact list).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "util/error.h"

namespace bootfleet::http {

// A request the server answers with `status` (400, 405, 413, 431, 501, 505)
// and then closes: the message goes into the short text body.
class BadRequest : public util::Error {
 public:
  BadRequest(int status, const std::string& message) : util::Error(message), status_(status) {}
  int status() const { return status_; }

 private:
  int status_;
};

struct Request {
  std::string method;  // "GET", "HEAD", "POST", "PUT", "DELETE" (others are parsed; the server refuses them)
  std::string target;  // as sent, e.g. "/boot/52-54-00-12-34-56.ipxe"
  int minor_version = 1;  // HTTP/1.minor
  std::vector<std::pair<std::string, std::string>> headers;  // names lower-case, values trimmed

  // The value of the first header `name` (lower-case), if present.
  const std::string* header(std::string_view name) const;
  // HTTP/1.1 keeps the connection unless "Connection: close"; 1.0 closes
  // unless "Connection: keep-alive".
  bool keep_alive() const;
};

// Limits that bound what a peer can make us hold.
constexpr size_t kMaxHeadBytes = 16 * 1024;
constexpr size_t kMaxHeaders = 64;
constexpr size_t kMaxTargetBytes = 2048;

// Parses a request head: the request line and header lines, ending with the
// empty line (which `head` may include or not). Throws BadRequest.
Request parse_request_head(std::string_view head);

// The length of the body that follows a request head (RFC 9112 section 6):
// its Content-Length, 0 without one. Bodies are read only when their length
// is declared: Transfer-Encoding (chunked) gets 411; a Content-Length that
// is not a decimal number, or several that differ, 400; one above
// `max_body`, 413 (with max_body 0: any body at all). Throws BadRequest.
uint64_t body_length(const Request& request, uint64_t max_body);

// "Expect: 100-continue": the client waits for a 100 before sending the body.
bool expects_continue(const Request& request);

// The value of query parameter `name` in a target ("/x?offset=5&a=b" ->
// "5"), percent-decoded; nullopt when absent or badly escaped.
std::optional<std::string> query_param(std::string_view target, std::string_view name);

// `target` as logs show it: the path, and of the query only the names
// ("/api/v1/x?token=…&offset=…"). A client may put a secret in a query
// (a token where a header was meant); logs must never keep it.
std::string loggable_target(std::string_view target);

// The decoded segments of an origin-form target's path ("/a/b%20c?x" ->
// {"a", "b c"}), or nullopt when it is not a clean path: not starting with
// '/', a bad percent escape, or a segment that is empty (other than a
// trailing "/" that is the whole path), ".", "..", or holds '/', '\\', NUL or another control byte
// once decoded.
std::optional<std::vector<std::string>> split_path(std::string_view target);

// A Range header against a resource of `size` bytes (RFC 9110 section 14).
struct RangeRequest {
  enum Kind {
    kWhole,          // no usable Range: send everything with 200
    kPartial,        // send [first, last] with 206
    kUnsatisfiable,  // 416 with "Content-Range: bytes */size"
  } kind = kWhole;
  uint64_t first = 0, last = 0;  // inclusive, for kPartial
};

// A single byte range ("bytes=0-99", "bytes=100-", "bytes=-500") is served;
// a syntactically invalid header, another unit, or several ranges are
// ignored (the whole resource, which RFC 9110 allows), and a range starting
// at or past the end is unsatisfiable.
RangeRequest parse_range(std::string_view header, uint64_t size);

// A Host header worth echoing into URLs we hand out: "name", "1.2.3.4",
// "[v6::addr]", each optionally with ":port"; at most 255 characters of
// letters, digits, '.', '-', and ':' only inside brackets.
bool valid_host(std::string_view host);

// The host part of a valid Host value ("10.0.2.2:8080" -> "10.0.2.2",
// "[::1]:80" -> "[::1]").
std::string host_without_port(std::string_view host);

}  // namespace bootfleet::http
