#include "store/version_json.h"

#include "util/time.h"

namespace bootfleet::store {

namespace {
template <typename T>
nlohmann::json or_null(const std::optional<T>& v) {
  return v ? nlohmann::json(*v) : nlohmann::json(nullptr);
}
}  // namespace

nlohmann::json version_json(const VersionInfo& v) {
  return {{"image", v.image},
          {"number", v.number},
          {"parent", or_null(v.parent)},
          {"depth", v.depth},
          {"virtual_size", v.size},
          {"file", v.file},
          {"file_size", v.file_size},
          {"stored_bytes", v.stored_bytes},
          {"unique_id", v.unique_id},
          {"created", util::format_utc(v.created_at)},
          {"created_at", v.created_at},
          {"created_by", v.created_by},
          {"message", v.message},
          {"source", or_null(v.source)},
          {"recipe", or_null(v.recipe)},
          {"recipe_hash", or_null(v.recipe_hash)},
          {"disk_digest", v.disk_digest}};
}

}  // namespace bootfleet::store
