// libFuzzer target for what the status page and /metrics take from the
// network: the Authorization header and request target of a status request
// (check_status_access, StatusPage::owns) and a label value as a block
// client names its export (the metrics registry's escaping). The input is
// "HEADER\nTARGET\nLABEL". A token is accepted only when it is exactly one
// the sets hold; a label value renders on one line, and unescaping it gives
// the value back.
#include <cstdint>
#include <string>
#include <string_view>

#include "status_page.h"
#include "tokens.h"
#include "util/metrics.h"

using namespace bootfleet;

namespace {

std::string unescape(std::string_view v) {
  std::string out;
  for (size_t i = 0; i < v.size(); ++i) {
    if (v[i] == '\\' && i + 1 < v.size()) {
      char c = v[++i];
      out += c == 'n' ? '\n' : c;
    } else {
      out += v[i];
    }
  }
  return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view input(reinterpret_cast<const char*>(data), size);
  size_t a = input.find('\n');
  size_t b = a == std::string_view::npos ? a : input.find('\n', a + 1);
  std::string header(input.substr(0, a));
  std::string target = a == std::string_view::npos ? "/metrics" : std::string(input.substr(a + 1, b - a - 1));
  std::string label = b == std::string_view::npos ? "" : std::string(input.substr(b + 1));

  static const bootsrv::TokenSet status = bootsrv::TokenSet::parse("viewer status-token-0123456789\n", "s");
  static const bootsrv::TokenSet api = bootsrv::TokenSet::parse("ci api-token-0123456789abc\n", "a");
  http::Request request;
  request.method = "GET";
  request.target = target;
  request.headers.emplace_back("authorization", header);
  http::Connection remote{"10.0.0.9:5000", "10.0.0.9", "10.0.0.1", 8443, true};
  bootsrv::StatusAccess access = bootsrv::check_status_access(request, remote, &status, &api, false);
  if (access.status == 0) {
    std::string token = header.substr(7);
    while (!token.empty() && token.front() == ' ') token.erase(0, 1);
    if (token != "status-token-0123456789" && token != "api-token-0123456789abc") __builtin_trap();
  } else if (access.status != 401 && access.status != 403) {
    __builtin_trap();
  }
  (void)bootsrv::StatusPage::owns(target);

  util::metrics::Registry registry;
  registry.counter("fuzz_total", "x", {{"export", label}}).add(7);
  std::string text;
  registry.render(text);
  const std::string prefix = "fuzz_total{export=\"";
  size_t at = text.find(prefix);
  if (at == std::string::npos) __builtin_trap();
  size_t end = text.find('\n', at);
  std::string_view line(text.data() + at, end - at);
  const std::string suffix = "\"} 7";
  if (line.size() < prefix.size() + suffix.size() || line.substr(line.size() - suffix.size()) != suffix) __builtin_trap();
  std::string_view escaped = line.substr(prefix.size(), line.size() - prefix.size() - suffix.size());
  if (unescape(escaped) != label) __builtin_trap();
  return 0;
}
