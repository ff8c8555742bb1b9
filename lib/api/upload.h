// The wire types of an upload (docs/api.md, "Uploads"): what `imgtool push`
// declares when it starts one, and what bootsrv says about an open one.
// Both sides build and read them here, so a field added to one side is a
// field of the other.
//
// Design note. from_json is the server's parser of an untrusted body: it
// checks every field before anything is allocated for the upload (block
// numbers inside the disk and ascending, digests 64 lower-case hex digits,
// artifact names by util/names.h, the parent exactly N-1 with its digest)
// and throws ApiError(400) naming the field and what would be right, never
// repeating a refused value (fields.h). to_json is what the client sends
// and what the server keeps in UPLOAD_DIR/ID/upload.json.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace bootfleet::api {

// POST /api/v1/images/IMAGE/uploads: version N as the client's store knows it.
struct UploadDeclaration {
  std::string image;
  int64_t version = 0;
  std::optional<int64_t> parent;
  std::optional<std::string> parent_digest;
  uint64_t size = 0;       // virtual disk bytes
  uint64_t file_size = 0;  // bytes of the VHD file to upload
  std::string disk_digest;
  std::vector<std::pair<uint32_t, std::string>> block_digests;  // every non-zero 2 MiB block, ascending
  struct Artifact {
    std::string name;
    uint64_t size = 0;
    std::string sha256;
  };
  std::vector<Artifact> artifacts;
  std::string message, created_by;
  std::optional<std::string> source, recipe, recipe_hash;

  // `image` is the path's; the body's "image", if any, is not trusted.
  // Throws ApiError(400) naming the field that is missing or wrong.
  static UploadDeclaration from_json(const std::string& image, const nlohmann::json& j);
  nlohmann::json to_json() const;
  // Same image, version and disk digest: a retry of the same push.
  bool same_push(const UploadDeclaration& other) const {
    return image == other.image && version == other.version && disk_digest == other.disk_digest;
  }
};

// An open upload: the answer of create (201 new, 200 resumed), of GET
// /api/v1/uploads/ID and of each PUT of the disk or an artifact.
struct UploadState {
  std::string upload;  // its id
  std::string image;
  int64_t version = 0;
  uint64_t received = 0;  // bytes of the file so far; the next PUT starts here
  uint64_t file_size = 0;
  std::vector<std::string> artifacts_received;  // sorted
  int64_t expires_at = 0;  // Unix seconds, if untouched until then

  nlohmann::json to_json() const;
  // Throws ApiError(400) naming a missing or wrong field (a client reading
  // an answer it cannot use says so).
  static UploadState from_json(const nlohmann::json& j);
};

}  // namespace bootfleet::api
