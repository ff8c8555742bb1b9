// Helpers the files of the store share (store.cc defines them): what the
// catalog's files are called, the clock, and the artifact directory copy.
// Not part of the store's interface: only lib/store/*.cc include this.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace bootfleet::store::internal {

int64_t now_seconds();
int64_t now_ms();
// "0003.vhd" for version 3.
std::string version_file_name(int64_t number);
// The names in `dir`, sorted; none when it cannot be read.
std::vector<std::string> list_dir(const std::string& dir);
// The columns read_version_row reads, over `images i JOIN versions v`.
extern const char* const kVersionColumns;
// "images/lab/0003.vhd" -> "images/lab/0003.artifacts"
std::string artifacts_rel(const std::string& version_file);
// Copies the regular files of `from` into a new directory `to`, each
// fsynced, then the directory: artifacts are as durable as the version.
void copy_artifacts(const std::string& from, const std::string& to);
bool ends_with(const std::string& s, const std::string& suffix);

}  // namespace bootfleet::store::internal
