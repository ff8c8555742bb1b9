// Committing and discarding maintenance sessions: the catalog record
// (store/maintenance.h) joined with the write cache of the client's named
// session (block/session.h). bootsrv runs these for the control API; imgtool
// runs them itself on a cache directory no bootsrv holds.
//
// Design note. A commit is a build's last step on another cache: the
// session's cache over its base version, read as a disk (block::CacheDisk),
// goes through Store::import_disk with the blocks it touched as
// `changed_since`, so only those are read and the new version's differencing
// VHD holds the sectors that differ from its parent, written or zeroed alike
// (a TRIM is recorded as zeros, so nothing of the old data shows through).
// While it runs the session is frozen: no connection can attach and no boot
// can replace it, so nothing it writes is left out. The version row and the
// end of the catalog record are one transaction; the session's files go
// only after it, with a tombstone ("committed as IMAGE@N") so a client that
// reconnects without booting is refused rather than given a disk that no
// longer has a future.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>

#include "block/session.h"
#include "store/store.h"
#include "util/error.h"

namespace bootfleet::serve {

// The client is connected (and no --force), or another commit is running:
// the API answers 409.
class MaintenanceBusy : public util::Error {
 public:
  using util::Error::Error;
};

struct MaintenanceCommit {
  std::string message;
  std::string by;  // created_by of the version: user@host or api:TOKEN
  bool force = false;
  bool publish = false;
};

struct MaintenanceCommitResult {
  store::MaintenanceInfo session;
  store::ImportResult import;
  uint64_t cache_bytes = 0;   // data the session's cache held
  uint64_t touched_blocks = 0;  // 2 MiB blocks it wrote or zeroed in
  int connections = 0;        // open when it was committed (only with force)
};

// Commits IMAGE's maintenance session held by `sessions` as the image's
// next version through `store` (a connection the caller may block on for
// the whole import). Throws util::Error naming what is wrong (no session,
// nothing written, a session that is not the maintenance one) and
// MaintenanceBusy as above; on any error nothing is stored and the session
// is as it was.
MaintenanceCommitResult commit_maintenance(store::Store& store, block::SessionManager& sessions,
                                           const std::string& image, const MaintenanceCommit& options);

// Ends IMAGE's maintenance session: the record, and the session's cache
// when `sessions` has it (else it is a leftover the client's next boot
// replaces). Returns what it was; throws naming the sessions there are.
store::MaintenanceInfo discard_maintenance(store::Store& store, block::SessionManager* sessions,
                                           const std::string& image);

// The one JSON shape of a maintenance session (imgtool maintenance status
// --json, the control API): image, client, base, session (IMAGE/CLIENT),
// started (UTC), started_at, started_by, and the session's state: "booted"
// (whether its write cache exists here), connections, cache_bytes and
// connected_since (null where unknown: a local store without the server).
nlohmann::json maintenance_json(const store::MaintenanceInfo& m, const block::Session* session, bool known);

}  // namespace bootfleet::serve
