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
// {"error":{"status":N,"message":"…"}} in one place.
#pragma once

#include <chrono>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>

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

 private:
  http::Response route(const http::Request& request, const std::vector<std::string>& path, const std::string& who,
                       const http::Connection& connection, http::Body& body);
  // Channels, groups, pins, schedules (api_channels.cc): a status and body,
  // or nullopt when `p` (the path after /api/v1/) is not one of theirs.
  std::optional<std::pair<int, nlohmann::json>> route_channels(const std::string& method, const std::string& target,
                                                               const std::vector<std::string>& p,
                                                               const std::string& who, const std::string& who_log,
                                                               http::Body& body);
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
