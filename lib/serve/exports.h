// What bootsrv's export names mean, over the store and the session manager:
//   IMAGE          an anonymous session on the active version (ends with the connection)
//   IMAGE/CLIENT   CLIENT's named session (survives reconnects; shared by its connections)
//   IMAGE@N        version N, read-only; IMAGE@active the active version, read-only
// Each pinned version is recorded as a lease in the store, so prune never
// removes a version a client is using.
//
// Restarts. Named sessions persist in the cache directory (block/session.h);
// reopen_sessions() first deletes the leases left by servers of this host
// that are no longer running (a killed bootsrv never releases its own),
// then reopens the persisted sessions, each with a lease of this server on
// the version it pinned. A session whose version has gone meanwhile (a
// prune while no server held its lease) is not reopened: it ends, and its
// client is refused rather than handed another disk.
#pragma once

#include <memory>
#include <mutex>
#include <string>

#include "block/session.h"
#include "nbd/connection.h"
#include "store/store.h"

namespace bootfleet::serve {

class StoreExports : public nbd::ExportResolver {
 public:
  StoreExports(store::Store& store, block::SessionManager::Options options);
  ~StoreExports() override;

  nbd::OpenedExport open(const std::string& name) override;
  // IMAGE: the active version's size and a writable device with no session
  // behind it; other names as open().
  nbd::OpenedExport describe(const std::string& name) override;
  std::vector<std::pair<std::string, std::string>> list() override;

  block::SessionManager& sessions() { return *sessions_; }
  // Removes the leases of this host's servers that are gone and reopens the
  // persisted sessions (see the note above). Once, before serving.
  void reopen_sessions();
  // A boot: ends CLIENT's session on IMAGE and starts a fresh one (export
  // "IMAGE/CLIENT") pinned to version `version` now, with its lease; if that
  // session has a connection open, it is returned unchanged instead (see
  // SessionManager::start): the boot script must name its pinned version.
  // `keep`: a maintenance session's token (block::Pin::keep): a session
  // already marked with it continues instead.
  std::shared_ptr<block::Session> start_session(const std::string& image, const std::string& client, int64_t version,
                                                const std::string& keep = "");
  // Runs `fn` with the store, serialised with every other use of it here
  // (its SQLite connection is single-threaded).
  template <class Fn>
  auto with_store(Fn&& fn) {
    std::lock_guard lock(store_mutex_);
    return fn(store_);
  }
  // Renews this server's leases and ends idle sessions.
  void housekeeping();
  const std::string& holder() const { return holder_; }

 private:
  block::Pin pin(const store::VersionRef& ref);
  // The version a registered client of `image` resolves to (channels.h); none: production.
  std::optional<int64_t> resolve_client(const std::string& image, const std::string& client);
  std::string lease(const block::Pin& pin, const std::string& session);
  void release(const std::string& session);

  void remove_dead_leases();

  store::Store& store_;
  std::mutex store_mutex_;  // the store's SQLite connection is single-threaded
  std::string holder_;
  std::map<std::string, int64_t> leases_;  // session -> lease id
  uint64_t read_only_counter_ = 0;
  std::unique_ptr<block::SessionManager> sessions_;
  std::string cache_dir_;  // for describe()'s session-less devices
};

}  // namespace bootfleet::serve
