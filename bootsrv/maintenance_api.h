// The control API's maintenance routes (docs/api.md, "Maintenance sessions"):
//
//   GET    /api/v1/maintenance                     every image's session
//   GET    /api/v1/images/IMAGE/maintenance        IMAGE's (404 naming those there are)
//   POST   /api/v1/images/IMAGE/maintenance        start: {"client": NAME|MAC, "from": N}
//   POST   /api/v1/images/IMAGE/maintenance/commit {"message": M, "force": B, "publish": B}
//   DELETE /api/v1/images/IMAGE/maintenance        discard
//
// Design note. The catalog record is read and changed through the
// server's shared store connection; a commit, which reads the whole cache
// and writes a version file, uses a store connection of its own (as upload
// commits do), so boots and other API calls are not held up behind it.
// The session's cache is the server's own (StoreExports::sessions()): only
// the server that holds the cache directory can commit it.
#pragma once

#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "http/server.h"
#include "serve/exports.h"

namespace bootfleet::bootsrv {

struct ApiAnswer {
  int status = 200;
  nlohmann::json body;
};

// Answers `p` (the path after /api/v1/) if it is a maintenance route, else
// nullopt. `method` is GET for HEAD. Errors are ApiError (400 bad body, 404
// unknown image, client, version or session, 405, 409 conflicts).
std::optional<ApiAnswer> maintenance_route(serve::StoreExports& exports, const std::string& store_dir,
                                           const std::string& method, const std::vector<std::string>& p,
                                           const std::string& who, http::Body& body);

}  // namespace bootfleet::bootsrv
