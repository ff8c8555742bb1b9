// "IMAGE", "IMAGE@N", "IMAGE@active": how commands name a version. The
// syntax is defined once in util/names.h (the recipe parser checks it too,
// and may not include the store); the store's users keep these names.
#pragma once

#include "util/names.h"

namespace bootfleet::store {

using util::parse_version_ref;
using util::validate_image_name;
using util::VersionRef;

}  // namespace bootfleet::store
