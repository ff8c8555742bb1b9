// bootsrv's read-only views for people and for Prometheus, on its HTTP and
// HTTPS listeners (docs/status.md):
//
//   GET /status              the status page (HTML; app.js and style.css beside it)
//   GET /status/app.js, /status/style.css
//   GET /status/data         what the page shows, as JSON (polled every 2 s)
//   GET /metrics             Prometheus text format 0.0.4
//
// Design note. Who may see what: the page's HTML, script and style hold no
// data and are served to anyone (a browser must load them before it can
// present a token). /status/data and /metrics go through the API's gates
// (api.h), read-only: a loopback peer needs nothing; any other peer needs
// TLS (https_listen) or api_plain_http, and a bearer token from
// status_tokens (read-only tokens) or api_tokens. The page takes a token
// from its URL's fragment (/status#token=T), which browsers never send
// to a server nor write to its logs, and presents it as a bearer token.
// Everything the page shows is computed per request from the sessions,
// the catalog, the metrics registry and BootEvents: nothing here is state
// that could disagree with them.
#pragma once

#include <chrono>
#include <memory>
#include <mutex>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "boot_events.h"
#include "http/server.h"
#include "serve/exports.h"
#include "tokens.h"

namespace bootfleet::bootsrv {

struct StatusOptions {
  std::string api_tokens_file;     // empty: no API tokens
  std::string status_tokens_file;  // empty: no read-only tokens
  bool plain_http = false;         // api_plain_http: tokens over plain HTTP from other hosts
  std::string version;             // bootsrv's, for bootfleet_build_info
  std::string store_dir, cache_dir;
};

// The decision for one request to a guarded route: status 0 lets it in
// (`who` then names the caller: "loopback" or the token's name), else the
// HTTP status to answer and why.
struct StatusAccess {
  int status = 0;
  std::string message;
  std::string who;
};
StatusAccess check_status_access(const http::Request& request, const http::Connection& connection,
                                 const TokenSet* status_tokens, const TokenSet* api_tokens, bool plain_http);

class StatusPage {
 public:
  // Reads the token files (throws util::Error "FILE:LINE: …").
  StatusPage(serve::StoreExports& exports, BootEvents& events, StatusOptions options);

  // Whether `target` is one of the routes above.
  static bool owns(const std::string& target);
  http::Response handle(const http::Request& request, const http::Connection& connection);
  // SIGHUP: re-reads both token files; on error keeps the old ones and throws.
  void reload_tokens();

  // The JSON of /status/data and the text of /metrics (for tests).
  nlohmann::json data();
  std::string metrics_text();

 private:
  serve::StoreExports& exports_;
  BootEvents& events_;
  StatusOptions options_;
  std::chrono::system_clock::time_point started_ = std::chrono::system_clock::now();
  std::mutex tokens_mutex_;
  std::shared_ptr<const TokenSet> status_tokens_, api_tokens_;  // null: none
};

}  // namespace bootfleet::bootsrv
