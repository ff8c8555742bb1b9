// Words for messages people read: likely typos of known words, and what a
// YAML parser's terse error means when the cause is one people often hit.
// Recipes and bootsrv's configuration file share these, so a typo or a tab
// is explained the same way in both.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace bootfleet::util {

// Levenshtein distance (insertions, deletions, substitutions).
size_t edit_distance(const std::string& a, const std::string& b);

// " (did you mean 'copy-in'?)" when one of `known` is a likely typo of
// `word` (fewer than 3 edits, and fewer than the known word's length), else "".
std::string did_you_mean(const std::string& word, const std::vector<std::string>& known);

// YAML forbids tabs in indentation, and yaml-cpp then says something about
// the token after the tab ("illegal map value", "end of map not found").
// Returns "; YAML forbids tabs for indentation and line N is indented with
// one" when a line of `text` up to and including `line` (1-based, where the
// parser stopped) starts with whitespace holding a tab; else "".
std::string yaml_tab_hint(const std::string& text, int line);

// A file mode as chmod(1) reads it back: octal with a leading 0 and at
// least four digits ("0755", "01777"). Recipes print and hash modes in this
// one spelling (the build cache keys on it: do not change it lightly).
std::string format_mode(uint32_t mode);

}  // namespace bootfleet::util
