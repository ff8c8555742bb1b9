#include "api/upload.h"

#include <algorithm>

#include "api/error.h"
#include "api/fields.h"
#include "store/digests.h"
#include "util/names.h"
#include "vhd/format.h"

namespace bootfleet::api {

using nlohmann::json;

namespace {

bool is_digest_hex(const std::string& s) {
  return s.size() == 64 && std::all_of(s.begin(), s.end(), [](char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); });
}

std::string digest_field(const json& v, const std::string& what) {
  if (!v.is_string() || !is_digest_hex(v.get<std::string>())) {
    throw ApiError(400, what + " must be 64 lower-case hex digits (a SHA-256), not " + json_kind(v));
  }
  return v.get<std::string>();
}

void validate_artifact_name(const std::string& name) {
  // Not echoed: it is what was refused (it may come from a JSON body).
  if (!util::is_artifact_name(name)) {
    throw ApiError(400, "an artifact name (" + std::to_string(name.size()) + " bytes) is not allowed: " +
                            util::kArtifactNameRule);
  }
}

json optional(const std::optional<std::string>& s) { return s ? json(*s) : json(nullptr); }

}  // namespace

UploadDeclaration UploadDeclaration::from_json(const std::string& image, const json& j) {
  if (!j.is_object()) throw ApiError(400, "the upload declaration must be a JSON object");
  UploadDeclaration d;
  d.image = image;
  d.version = required_positive(j, "version");
  std::string ref = image + "@" + std::to_string(d.version);
  d.parent = optional_positive(j, "parent");
  if (d.version == 1 && d.parent) throw ApiError(400, ref + " has no parent: send \"parent\": null");
  if (d.version > 1 && d.parent != d.version - 1) {
    throw ApiError(400, ref + " is pushed over @" + std::to_string(d.version - 1) + ": send \"parent\": " +
                            std::to_string(d.version - 1));
  }
  if (j.contains("parent_digest") && !j.at("parent_digest").is_null()) {
    d.parent_digest = digest_field(j.at("parent_digest"), "the field 'parent_digest'");
  }
  if (d.version > 1 && !d.parent_digest) {
    throw ApiError(400, ref + ": the field 'parent_digest' (the disk digest of @" + std::to_string(d.version - 1) +
                            ") is missing");
  }
  d.size = required_bytes(j, "size");
  d.file_size = required_bytes(j, "file_size");
  if (d.size == 0 || d.file_size < 512) throw ApiError(400, ref + ": 'size' and 'file_size' must not be empty");
  if (d.size > vhd::kMaxDiskSize) {
    throw ApiError(400, ref + ": 'size' " + std::to_string(d.size) + " is larger than a VHD can be");
  }
  d.disk_digest = digest_field(required_field(j, "disk_digest"), "the field 'disk_digest'");
  const json& blocks = required_field(j, "block_digests");
  if (!blocks.is_array()) throw ApiError(400, "the field 'block_digests' must be a list of [block, digest] pairs");
  uint64_t block_count = (d.size + store::kDigestBlockSize - 1) / store::kDigestBlockSize;
  for (const auto& pair : blocks) {
    if (!pair.is_array() || pair.size() != 2 || !pair[0].is_number_integer()) {
      throw ApiError(400, "block_digests: an entry is " + json_kind(pair) + ", not a [block, digest] pair");
    }
    int64_t block = pair[0].get<int64_t>();
    if (block < 0 || static_cast<uint64_t>(block) >= block_count) {
      throw ApiError(400, "block_digests: block " + std::to_string(block) + " is outside the disk (blocks 0 to " +
                              std::to_string(block_count - 1) + ")");
    }
    if (!d.block_digests.empty() && static_cast<uint32_t>(block) <= d.block_digests.back().first) {
      throw ApiError(400, "block_digests: block " + std::to_string(block) + " is out of order or repeated");
    }
    d.block_digests.emplace_back(static_cast<uint32_t>(block),
                                 digest_field(pair[1], "block_digests: the digest of block " + std::to_string(block)));
  }
  if (j.contains("artifacts") && !j.at("artifacts").is_null()) {
    if (!j.at("artifacts").is_array()) throw ApiError(400, "the field 'artifacts' must be a list");
    for (const auto& a : j.at("artifacts")) {
      if (!a.is_object()) throw ApiError(400, "artifacts: an entry is " + json_kind(a) + ", not an object");
      Artifact art;
      const json& name = required_field(a, "name");
      if (!name.is_string()) throw ApiError(400, "artifacts: a name must be a string, not " + json_kind(name));
      art.name = name.get<std::string>();
      validate_artifact_name(art.name);
      art.size = required_bytes(a, "size");
      art.sha256 = digest_field(required_field(a, "sha256"), "artifact '" + art.name + "': sha256");
      for (const auto& other : d.artifacts) {
        if (other.name == art.name) throw ApiError(400, "artifacts: '" + art.name + "' is declared twice");
      }
      d.artifacts.push_back(art);
    }
  }
  d.message = optional_string(j, "message").value_or("");
  d.created_by = optional_string(j, "created_by").value_or("");
  d.source = optional_string(j, "source");
  d.recipe = optional_string(j, "recipe");
  d.recipe_hash = optional_string(j, "recipe_hash");
  return d;
}

json UploadDeclaration::to_json() const {
  json blocks = json::array();
  for (const auto& [b, d] : block_digests) blocks.push_back({b, d});
  json arts = json::array();
  for (const auto& a : artifacts) arts.push_back({{"name", a.name}, {"size", a.size}, {"sha256", a.sha256}});
  return {{"image", image},
          {"version", version},
          {"parent", parent ? json(*parent) : json(nullptr)},
          {"parent_digest", optional(parent_digest)},
          {"size", size},
          {"file_size", file_size},
          {"disk_digest", disk_digest},
          {"block_digests", blocks},
          {"artifacts", arts},
          {"message", message},
          {"created_by", created_by},
          {"source", optional(source)},
          {"recipe", optional(recipe)},
          {"recipe_hash", optional(recipe_hash)}};
}

json UploadState::to_json() const {
  return {{"upload", upload},
          {"image", image},
          {"version", version},
          {"received", received},
          {"file_size", file_size},
          {"artifacts_received", artifacts_received},
          {"expires_at", expires_at}};
}

UploadState UploadState::from_json(const json& j) {
  if (!j.is_object()) throw ApiError(400, "an upload's state must be a JSON object, not " + json_kind(j));
  UploadState s;
  s.upload = required_string(j, "upload");
  s.image = optional_string(j, "image").value_or("");
  s.version = optional_positive(j, "version").value_or(0);
  s.received = required_bytes(j, "received");
  s.file_size = j.contains("file_size") ? required_bytes(j, "file_size") : 0;
  if (j.contains("artifacts_received") && !j.at("artifacts_received").is_null()) {
    const json& names = j.at("artifacts_received");
    if (!names.is_array()) throw ApiError(400, "the field 'artifacts_received' must be a list, not " + json_kind(names));
    for (const auto& n : names) {
      if (!n.is_string()) throw ApiError(400, "artifacts_received: an entry is " + json_kind(n) + ", not a name");
      s.artifacts_received.push_back(n.get<std::string>());
    }
  }
  if (j.contains("expires_at") && j.at("expires_at").is_number_integer()) s.expires_at = j.at("expires_at").get<int64_t>();
  return s;
}

}  // namespace bootfleet::api
