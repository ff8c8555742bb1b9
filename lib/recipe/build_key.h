// The build cache's key: what makes two builds of a recipe identical.
#pragma once

#include <string>

#include "recipe/recipe.h"

namespace bootfleet::recipe {

// SHA-256 (hex) over a format tag, `base_identity` (the parent version's
// disk digest, the imported file's digest, or the blank disk's size), the
// recipe's canonical text (after variables) and the path and content digest
// of every input file. Equal keys mean the build would write the same
// changes on the same disk. Throws util::Error naming an unreadable input.
std::string build_key(const Recipe& recipe, const std::string& base_identity);

}  // namespace bootfleet::recipe
