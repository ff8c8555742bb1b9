// The JSON of an image and of a client: one shape whichever door the record
// leaves by (`imgtool images --json`, `imgtool client list --json`, the
// control API's GET /api/v1/images, /clients and /clients/KEY), as
// version_json.h is for versions and channels_json.h for channels, groups,
// schedules and activations. A field added here appears everywhere at once;
// docs/imgtool.md and docs/api.md list the fields.
#pragma once

#include <nlohmann/json.hpp>

#include "store/store.h"

namespace bootfleet::store {

// name, versions (how many), active, previous (the rollback target), latest
// (null for none), virtual_size (of the latest), size (the same; null
// without a version: the API's older name), bytes_on_disk, boot_mode,
// created (UTC, ISO 8601), created_at (Unix seconds).
nlohmann::json image_json(const ImageInfo& i);

// mac, name, image, cmdline, cache_quota, boot_mode (its own, or null),
// effective_boot_mode (what its next boot uses; null when its image is gone
// from the store), created, created_at, group, pin, boots (what its next
// boot gets: resolution_json) or, when it cannot boot, boots null and
// boot_error saying why.
nlohmann::json client_json(Store& s, const ClientInfo& c);

}  // namespace bootfleet::store
