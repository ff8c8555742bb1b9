// Uploads of new versions through the control API: what `imgtool push`
// talks to (docs/api.md, "Uploads").
//
//   create   POST   /api/v1/images/IMAGE/uploads      declare version N: digests, sizes, artifacts
//   append   PUT    /api/v1/uploads/ID/disk?offset=K  the next bytes of the VHD file
//   artifact PUT    /api/v1/uploads/ID/artifacts/NAME one whole artifact
//   commit   POST   /api/v1/uploads/ID/commit         check everything, then import as IMAGE@N
//   abort    DELETE /api/v1/uploads/ID
//
// Design note. Nothing half-written ever enters the store: an upload lives
// in UPLOAD_DIR/ID/ (upload.json with the declaration, disk.vhd as it grows,
// artifacts/) until commit has checked the whole file, and then goes in
// through Store::import_disk — the same atomic steps as `imgtool import`,
// with `expect_number` so two racing pushes of N cannot become N and N+1.
// The uploaded file is a differencing VHD whose parent locators are the
// client's and mean nothing here: commit reads it over the server's OWN copy
// of version N-1 (vhd::Chain::over_parent), after proving, block digest by
// block digest, that the result is exactly the declared disk. Bodies are
// streamed to disk in 1 MiB pieces, so an upload of any size costs constant
// memory; a client that drops mid-body leaves `received` at what arrived,
// and continues from there (GET says where). One request at a time may work
// on an upload (a second gets 409). Uploads untouched for upload_ttl are
// removed; a restart of bootsrv removes unfinished ones (clients start
// again), so there is no state to recover and nothing to trust on disk.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "api/upload.h"
#include "http/server.h"
#include "serve/exports.h"
#include "store/store.h"
#include "util/sha256.h"

namespace bootfleet::bootsrv {

struct UploadOptions {
  std::string dir;            // UPLOAD_DIR
  std::string store_dir;      // the store (commit opens its own connection to it)
  std::chrono::seconds ttl{3600};
  size_t max_uploads = 4;
  // The sha256 (hex) of a store file: the parent's artifacts are compared
  // with the declared ones by it. bootsrv passes its cached one.
  std::function<std::string(const std::string& path)> sha256_of = util::file_sha256_hex;
};

// The declaration's wire type is the control API's (api/upload.h), shared
// with imgtool push.
using api::UploadDeclaration;

// Where the next appended bytes must start and how many fit: throws
// ApiError 409 (with "received") when `offset` is not `received`, 400 when
// the body would go past `file_size`.
void check_append(const std::string& upload, uint64_t received, uint64_t file_size, uint64_t offset,
                  uint64_t length);

class Uploads {
 public:
  // Creates UPLOAD_DIR, removing what a previous run left in it.
  Uploads(serve::StoreExports& exports, UploadOptions options);

  struct Created {
    int status = 201;  // 201 new, 200 resumed or already there
    nlohmann::json body;
    std::optional<store::VersionInfo> exists;  // the version is already on the server
  };
  Created create(const UploadDeclaration& declaration, const std::string& by);
  nlohmann::json state(const std::string& id);
  nlohmann::json append(const std::string& id, uint64_t offset, http::Body& body);
  nlohmann::json put_artifact(const std::string& id, const std::string& name, http::Body& body);
  struct Committed {
    int status = 201;  // 201 imported, 200 another push of the same content won the race
    store::VersionInfo version;
  };
  Committed commit(const std::string& id, const std::string& by);
  void abort(const std::string& id);
  // Removes uploads untouched for longer than the TTL; returns their ids.
  std::vector<std::string> expire();
  size_t open_count();

 private:
  struct Upload {
    std::string id;
    UploadDeclaration declaration;
    std::string dir;
    uint64_t received = 0;
    std::set<std::string> artifacts_received;
    std::chrono::steady_clock::time_point touched;
    std::chrono::system_clock::time_point touched_wall;
    std::mutex writer;  // one request working on it at a time
    bool gone = false;  // committed, aborted or expired (under Uploads::mutex_)
  };
  std::shared_ptr<Upload> find(const std::string& id);
  // find(), then this request's turn on it (409 while another has it, 404
  // once it is gone); `writer` holds the turn.
  std::shared_ptr<Upload> take_turn(const std::string& id, std::unique_lock<std::mutex>& writer);
  nlohmann::json state_of(const Upload& u);
  // Throws ApiError 507 when the upload (and its import into the store at
  // `store_dir`) would not fit beside the uploads already open. mutex_ held.
  void check_room(const UploadDeclaration& d, const std::string& ref, const std::string& store_dir);
  void remove(const std::shared_ptr<Upload>& u);
  void touch(Upload& u);
  // The checks of commit; throws ApiError(422) naming what is wrong.
  std::vector<uint32_t> verify(Upload& u, const store::VersionInfo* parent);

  serve::StoreExports& exports_;
  UploadOptions options_;
  std::mutex mutex_;
  std::map<std::string, std::shared_ptr<Upload>> uploads_;
};

}  // namespace bootfleet::bootsrv
