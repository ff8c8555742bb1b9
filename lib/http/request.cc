#include "http/request.h"

#include "util/bytes.h"

#include <algorithm>
#include <cctype>

namespace bootfleet::http {

namespace {

bool is_token_char(char c) {
  // RFC 9110 tchar
  return std::isalnum(static_cast<unsigned char>(c)) || std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
}

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

// %XX escapes (and '+' as a space in a query); nullopt for a bad escape.
std::optional<std::string> percent_decode(std::string_view raw, bool plus_is_space) {
  std::string out;
  for (size_t i = 0; i < raw.size(); ++i) {
    char c = raw[i];
    if (plus_is_space && c == '+') c = ' ';
    if (c == '%') {
      if (i + 2 >= raw.size()) return std::nullopt;
      int hi = util::hex_value(raw[i + 1]), lo = util::hex_value(raw[i + 2]);
      if (hi < 0 || lo < 0) return std::nullopt;
      c = static_cast<char>(hi * 16 + lo);
      i += 2;
    }
    out.push_back(c);
  }
  return out;
}

// Digits only, no sign, at most 19 of them (fits in uint64_t).
// A decimal number that fits 64 bits (every one of them: 20 digits reach
// 18446744073709551615); nullopt when not digits or too large.
std::optional<uint64_t> parse_u64(std::string_view s) {
  if (s.empty() || s.size() > 20) return std::nullopt;
  uint64_t v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return std::nullopt;
    uint64_t d = static_cast<uint64_t>(c - '0');
    if (v > (UINT64_MAX - d) / 10) return std::nullopt;
    v = v * 10 + d;
  }
  return v;
}

bool all_digits(std::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

}  // namespace

const std::string* Request::header(std::string_view name) const {
  for (const auto& [n, v] : headers)
    if (n == name) return &v;
  return nullptr;
}

bool Request::keep_alive() const {
  const std::string* connection = header("connection");
  std::string value = connection ? lower(*connection) : "";
  if (minor_version >= 1) return value.find("close") == std::string::npos;
  return value.find("keep-alive") != std::string::npos;
}

Request parse_request_head(std::string_view head) {
  if (head.size() > kMaxHeadBytes) throw BadRequest(431, "request head larger than 16 KiB");
  Request r;
  size_t pos = 0;
  auto next_line = [&](std::string_view& line) {
    if (pos >= head.size()) return false;
    size_t end = head.find('\n', pos);
    if (end == std::string_view::npos) end = head.size();
    line = head.substr(pos, end - pos);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    pos = end + 1;
    return true;
  };
  std::string_view line;
  if (!next_line(line) || line.empty()) throw BadRequest(400, "empty request");
  // METHOD SP TARGET SP HTTP/1.x
  size_t sp1 = line.find(' ');
  size_t sp2 = sp1 == std::string_view::npos ? sp1 : line.find(' ', sp1 + 1);
  if (sp2 == std::string_view::npos || line.find(' ', sp2 + 1) != std::string_view::npos) {
    throw BadRequest(400, "malformed request line");
  }
  std::string_view method = line.substr(0, sp1), target = line.substr(sp1 + 1, sp2 - sp1 - 1),
                   version = line.substr(sp2 + 1);
  if (method.empty() || !std::all_of(method.begin(), method.end(), is_token_char)) {
    throw BadRequest(400, "malformed method");
  }
  if (target.empty()) throw BadRequest(400, "empty request target");
  if (target.size() > kMaxTargetBytes) throw BadRequest(414, "request target longer than 2048 bytes");
  for (char c : target) {
    if (static_cast<unsigned char>(c) <= 0x20 || static_cast<unsigned char>(c) >= 0x7f) {
      throw BadRequest(400, "request target holds a control or non-ASCII byte");
    }
  }
  if (version.size() != 8 || version.substr(0, 7) != "HTTP/1." || version[7] < '0' || version[7] > '9') {
    throw BadRequest(505, "only HTTP/1.x is spoken here");
  }
  r.method = std::string(method);
  r.target = std::string(target);
  r.minor_version = version[7] - '0';
  while (next_line(line)) {
    if (line.empty()) break;
    if (line.front() == ' ' || line.front() == '\t') throw BadRequest(400, "obsolete header line folding");
    size_t colon = line.find(':');
    if (colon == std::string_view::npos || colon == 0) throw BadRequest(400, "malformed header line");
    std::string_view name = line.substr(0, colon);
    if (!std::all_of(name.begin(), name.end(), is_token_char)) throw BadRequest(400, "malformed header name");
    std::string_view value = trim(line.substr(colon + 1));
    for (char c : value) {
      if ((static_cast<unsigned char>(c) < 0x20 && c != '\t') || c == 0x7f) {
        throw BadRequest(400, "header value holds a control byte");
      }
    }
    if (r.headers.size() == kMaxHeaders) throw BadRequest(431, "more than 64 header lines");
    r.headers.emplace_back(lower(name), std::string(value));
  }
  return r;
}

uint64_t body_length(const Request& request, uint64_t max_body) {
  if (request.header("transfer-encoding")) {
    throw BadRequest(411, "a request body needs a Content-Length (chunked transfer encoding is not accepted)");
  }
  std::optional<uint64_t> length;
  for (const auto& [name, value] : request.headers) {
    if (name != "content-length") continue;
    auto v = parse_u64(value);
    if (!v) throw BadRequest(400, "Content-Length is not a decimal number of bytes");
    if (length && *length != *v) throw BadRequest(400, "several Content-Length headers that differ");
    length = v;
  }
  if (!length || *length == 0) return 0;
  if (max_body == 0) throw BadRequest(413, "request bodies are not accepted here");
  if (*length > max_body) {
    throw BadRequest(413, "request body of " + std::to_string(*length) + " bytes is larger than the limit of " +
                              std::to_string(max_body) + " bytes");
  }
  return *length;
}

bool expects_continue(const Request& request) {
  const std::string* expect = request.header("expect");
  return expect && lower(trim(*expect)) == "100-continue";
}

std::optional<std::string> query_param(std::string_view target, std::string_view name) {
  size_t q = target.find('?');
  if (q == std::string_view::npos) return std::nullopt;
  std::string_view query = target.substr(q + 1);
  query = query.substr(0, query.find('#'));
  while (!query.empty()) {
    size_t amp = query.find('&');
    std::string_view pair = query.substr(0, amp);
    query = amp == std::string_view::npos ? std::string_view() : query.substr(amp + 1);
    size_t eq = pair.find('=');
    if (pair.substr(0, eq) != name) continue;
    std::string_view raw = eq == std::string_view::npos ? std::string_view() : pair.substr(eq + 1);
    return percent_decode(raw, /*plus_is_space=*/true);
  }
  return std::nullopt;
}

std::optional<std::vector<std::string>> split_path(std::string_view target) {
  if (target.empty() || target.front() != '/') return std::nullopt;
  size_t query = target.find_first_of("?#");
  std::string_view path = target.substr(0, query);
  std::vector<std::string> segments;
  size_t start = 1;
  while (true) {
    size_t end = path.find('/', start);
    std::string_view raw = path.substr(start, end == std::string_view::npos ? std::string_view::npos : end - start);
    bool last = end == std::string_view::npos;
    auto decoded = percent_decode(raw, /*plus_is_space=*/false);
    if (!decoded) return std::nullopt;
    std::string segment = std::move(*decoded);
    for (char c : segment) {
      if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f || c == '/' || c == '\\') return std::nullopt;
    }
    if (segment == "." || segment == "..") return std::nullopt;
    if (segment.empty()) {
      // "//" inside the path, or a trailing "/" after a segment: routes
      // name files and lists, never directories, and "x/" must not answer
      // as "x" (nor reach a handler that reads "x/" as "x" plus nothing).
      if (!last || !segments.empty()) return std::nullopt;
    } else {
      segments.push_back(std::move(segment));
    }
    if (last) break;
    start = end + 1;
  }
  return segments;
}

RangeRequest parse_range(std::string_view header, uint64_t size) {
  RangeRequest whole;
  std::string_view h = trim(header);
  if (h.size() < 6 || lower(h.substr(0, 6)) != "bytes=") return whole;
  std::string_view spec = trim(h.substr(6));
  if (spec.find(',') != std::string_view::npos) return whole;  // several ranges: send everything
  size_t dash = spec.find('-');
  if (dash == std::string_view::npos) return whole;
  std::string_view a = trim(spec.substr(0, dash)), b = trim(spec.substr(dash + 1));
  RangeRequest r;
  if (a.empty()) {
    // Suffix: the last N bytes.
    auto n = parse_u64(b);
    if (!n && all_digits(b)) n = UINT64_MAX;  // more than any file has: all of it
    if (!n) return whole;
    if (*n == 0 || size == 0) return {RangeRequest::kUnsatisfiable, 0, 0};
    r.kind = RangeRequest::kPartial;
    r.first = *n >= size ? 0 : size - *n;
    r.last = size - 1;
    return r;
  }
  auto first = parse_u64(a);
  if (!first) {
    // A first byte past what 64 bits hold is past the end of any file.
    return all_digits(a) ? RangeRequest{RangeRequest::kUnsatisfiable, 0, 0} : whole;
  }
  std::optional<uint64_t> last;
  if (!b.empty()) {
    last = parse_u64(b);
    // RFC 9110 14.1.2: a last byte at or past the end means "to the end",
    // however large the number: clamped, not ignored.
    if (!last && all_digits(b)) last = UINT64_MAX;
    if (!last || *last < *first) return whole;  // invalid: ignored per RFC 9110
  }
  if (*first >= size) return {RangeRequest::kUnsatisfiable, 0, 0};
  r.kind = RangeRequest::kPartial;
  r.first = *first;
  r.last = last ? std::min(*last, size - 1) : size - 1;
  return r;
}

std::string loggable_target(std::string_view target) {
  size_t q = target.find('?');
  std::string out(target.substr(0, std::min(q, target.find('#'))));
  if (q == std::string_view::npos) return out;
  std::string_view query = target.substr(q + 1);
  query = query.substr(0, query.find('#'));
  out += '?';
  size_t start = 0;
  while (start <= query.size()) {
    size_t amp = query.find('&', start);
    std::string_view pair = query.substr(start, amp == std::string_view::npos ? std::string_view::npos : amp - start);
    std::string_view name = pair.substr(0, pair.find('='));
    if (start > 0) out += '&';
    out += name.substr(0, 64);
    if (pair.find('=') != std::string_view::npos) out += "=\xe2\x80\xa6";
    if (amp == std::string_view::npos) break;
    start = amp + 1;
  }
  return out;
}

bool valid_host(std::string_view host) {
  if (host.empty() || host.size() > 255) return false;
  std::string_view name = host, port;
  if (host.front() == '[') {
    size_t close = host.find(']');
    if (close == std::string_view::npos || close < 3) return false;
    for (char c : host.substr(1, close - 1)) {
      if (!std::isxdigit(static_cast<unsigned char>(c)) && c != ':' && c != '.') return false;
    }
    name = {};
    std::string_view rest = host.substr(close + 1);
    if (!rest.empty()) {
      if (rest.front() != ':') return false;
      port = rest.substr(1);
      if (port.empty()) return false;
    }
  } else {
    size_t colon = host.find(':');
    if (colon != std::string_view::npos) {
      name = host.substr(0, colon);
      port = host.substr(colon + 1);
      if (port.empty()) return false;
    }
    if (name.empty()) return false;
    for (char c : name) {
      if (!std::isalnum(static_cast<unsigned char>(c)) && c != '.' && c != '-') return false;
    }
  }
  if (port.size() > 5) return false;
  for (char c : port)
    if (c < '0' || c > '9') return false;
  return port.empty() || std::stoul(std::string(port)) <= 65535;
}

std::string host_without_port(std::string_view host) {
  if (!host.empty() && host.front() == '[') return std::string(host.substr(0, host.find(']') + 1));
  return std::string(host.substr(0, host.find(':')));
}

}  // namespace bootfleet::http
