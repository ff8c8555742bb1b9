// bootsrv's control API: JSON over HTTP(S) under /api/v1/, and /healthz.
// docs/api.md is the reference for every route, status and field.
//
// Design note. Every /api/ request passes three gates before a route runs,
// in this order: the API is on (a token file is configured; else 404 saying
// how to turn it on), the transport is acceptable (TLS, or a loopback peer,
// or api_plain_http; else 403), and the bearer token is known (none: 401,
// unknown: 403; both logged with the peer). The token's NAME then stands for
// the caller in every log line of a mutation and in the activation history
// ("api:NAME"). Reads go through StoreExports::with_store (the shared,
// serialised catalog connection); imports of uploads use a connection of
// their own (uploads.h). Errors are ApiError exceptions, turned into
// {"error":{"status":N,"message":"…"}} in one place. Which handler answers
// which method and path is one table, Api::routes (api_routes.h says how it
// answers 404 and 405).
#pragma once

#include <chrono>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "api_routes.h"
#include "http/server.h"
#include "serve/exports.h"
#include "tokens.h"
#include "uploads.h"

namespace bootfleet::bootsrv {

struct ApiOptions {
  std::string tokens_file;  // empty: the API is off
  bool plain_http = false;  // allow plain HTTP from peers other than loopback
  std::string version;      // bootsrv's, for /api/v1/healthz
  UploadOptions uploads;
};

class Api {
 public:
  // Reads the token file (throws util::Error "FILE:LINE: …").
  Api(serve::StoreExports& exports, ApiOptions options);

  // Whether `target` is the API's (/healthz or under /api/).
  static bool owns(const std::string& target);
  http::Response handle(const http::Request& request, const http::Connection& connection, http::Body& body);
  // SIGHUP: re-reads the token file; on error keeps the old tokens and throws.
  void reload_tokens();
  // Removes expired uploads.
  void housekeeping();

 // Every route: (method, pattern of api/paths.h), in docs/api.md's order.
  static std::vector<std::pair<std::string, std::string>> route_list();

 private:
  struct Route;
  static const std::vector<Route>& routes();
  http::Response route(const http::Request& request, const std::vector<std::string>& path, const std::string& who,
                       const http::Connection& connection, http::Body& body);

  // The handlers of the table (api.cc, api_channels.cc; maintenance_api.h).
  ApiAnswer healthz(ApiCall& c);
  ApiAnswer status(ApiCall& c);
  ApiAnswer images(ApiCall& c);
  ApiAnswer versions(ApiCall& c);
  ApiAnswer version(ApiCall& c);
  ApiAnswer history(ApiCall& c);
  ApiAnswer publish(ApiCall& c);
  ApiAnswer rollback(ApiCall& c);
  ApiAnswer promote(ApiCall& c);
  ApiAnswer channels(ApiCall& c);
  ApiAnswer groups(ApiCall& c);
  ApiAnswer group_add(ApiCall& c);
  ApiAnswer group(ApiCall& c);
  ApiAnswer group_change(ApiCall& c);
  ApiAnswer group_remove(ApiCall& c);
  ApiAnswer clients(ApiCall& c);
  ApiAnswer client(ApiCall& c);
  ApiAnswer client_change(ApiCall& c);
  ApiAnswer schedules(ApiCall& c);
  ApiAnswer schedule_cancel(ApiCall& c);
  ApiAnswer sessions(ApiCall& c);
  ApiAnswer session_reset(ApiCall& c);
  ApiAnswer upload_create(ApiCall& c);
  ApiAnswer upload_state(ApiCall& c);
  ApiAnswer upload_disk(ApiCall& c);
  ApiAnswer upload_artifact(ApiCall& c);
  ApiAnswer upload_commit(ApiCall& c);
  ApiAnswer upload_abort(ApiCall& c);
  // The image of the path after its name is checked: 404 listing those there are.
  store::ImageInfo image_info(const std::string& image);
  nlohmann::json version_json(const store::VersionInfo& v, std::optional<int64_t> active);
  std::string artifact_sha256(const std::string& path);

  serve::StoreExports& exports_;
  ApiOptions options_;
  std::chrono::steady_clock::time_point started_ = std::chrono::steady_clock::now();
  std::mutex tokens_mutex_;
  std::shared_ptr<const TokenSet> tokens_;  // null: API off
  std::unique_ptr<Uploads> uploads_;
  std::mutex sha_mutex_;
  struct CachedSha {
    uint64_t size;
    int64_t mtime_ns;
    std::string hex;
  };
  std::map<std::string, CachedSha> sha_cache_;  // artifact path -> its sha256
};

// Publishes what is scheduled and due (api_channels.cc); bootsrv runs it at
// start and from housekeeping.
void apply_due_schedules(serve::StoreExports& exports);

}  // namespace bootfleet::bootsrv
