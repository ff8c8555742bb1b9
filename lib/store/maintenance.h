// Maintenance sessions in the catalog: one client of an image boots a chosen
// version with a write cache that is kept across its reboots, and the cache
// may later be committed as the image's next version (CCBoot's super client,
// Citrix PVS's maintenance version). docs/maintenance.md tells the story.
//
// Design note. The catalog holds only the *record* of a maintenance session
// (table `maintenance`: image, client, base version, a random token, who and
// when); the write cache itself is the client's ordinary named session
// IMAGE/CLIENT in bootsrv's cache directory (block/session.h), marked with
// the token (block::Pin::keep). The token ties the two together: a boot of
// the client keeps a session whose mark is the current token and starts a
// fresh one otherwise, so a session from before `maintenance start`, or one
// left over from a maintenance session that was committed or discarded, is
// never mistaken for the current one. Committing deletes the record in the
// same transaction that adds the version row (ImportOptions::ends_maintenance):
// a commit killed before it leaves no version and the session as it was; one
// killed after leaves the version, and the session's files are a leftover
// that the client's next boot replaces. One maintenance session per image
// and per client, enforced by UNIQUE columns. Its base version is never
// pruned or removed (Store::prune, Store::remove_version).
#pragma once

#include <cstdint>
#include <string>

namespace bootfleet::store {

struct MaintenanceInfo {
  std::string image;
  std::string client;  // the client's name: the session is IMAGE/CLIENT
  int64_t base = 0;    // the version it boots (and that the commit builds on)
  std::string token;   // marks its write cache (block::Pin::keep)
  int64_t started_at = 0;  // Unix seconds
  std::string started_by;
};

// The session name (and NBD export) of a maintenance session: "IMAGE/CLIENT".
inline std::string maintenance_session_name(const MaintenanceInfo& m) { return m.image + "/" + m.client; }

}  // namespace bootfleet::store
