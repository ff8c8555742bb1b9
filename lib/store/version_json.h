// A version's catalog record as JSON: the one shape `imgtool versions
// --json`, `imgtool build --json` and bootsrv's control API all start from
// (each adds fields of its own), so the same field has the same name and
// meaning everywhere.
#pragma once

#include <nlohmann/json.hpp>

#include "store/store.h"

namespace bootfleet::store {

// image, number, parent (null for a base), depth, virtual_size, file,
// file_size, stored_bytes, unique_id, created (UTC, ISO 8601), created_at
// (Unix seconds), created_by, message, source, recipe, recipe_hash (null
// when absent), disk_digest.
nlohmann::json version_json(const VersionInfo& v);

}  // namespace bootfleet::store
