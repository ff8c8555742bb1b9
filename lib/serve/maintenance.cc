#include "serve/maintenance.h"

#include <cstring>
#include <filesystem>

#include "block/cache_device.h"
#include "util/lock.h"
#include "util/log.h"
#include "util/size.h"
#include "util/time.h"

namespace bootfleet::serve {

using util::Error;

namespace {

// Unfreezes the session unless the commit got through.
struct Thaw {
  block::SessionManager& sessions;
  std::shared_ptr<block::Session> session;
  ~Thaw() {
    if (session) sessions.thaw(session);
  }
};

}  // namespace

MaintenanceCommitResult commit_maintenance(store::Store& store, block::SessionManager& sessions,
                                           const std::string& image, const MaintenanceCommit& options) {
  MaintenanceCommitResult result;
  result.session = store.maintenance(image);  // throws, naming the sessions there are
  const store::MaintenanceInfo& m = result.session;
  const std::string name = store::maintenance_session_name(m);
  const std::string ref = m.image + "@" + std::to_string(m.base);
  auto session = sessions.freeze(name);
  if (!session) {
    if (sessions.find(name)) throw MaintenanceBusy("session " + name + " is being committed already");
    throw Error(m.client + " has not booted in its maintenance session of " + ref +
                " yet, so there is nothing to commit (its session " + name +
                " would start at its next boot); boot it, or end the session with 'imgtool maintenance discard " +
                image + "'");
  }
  Thaw thaw{sessions, session};
  if (session->pin().keep != m.token) {
    throw Error("session " + name + " (on " + session->pin().image + "@" + std::to_string(session->pin().version) +
                ") started before the maintenance session; " + m.client +
                "'s next boot starts the maintenance session on " + ref);
  }
  result.connections = session->connections();
  if (result.connections > 0 && !options.force) {
    auto since = session->connected_since();
    throw MaintenanceBusy(m.client + " is still connected to its maintenance session " + name + " (" +
                          std::to_string(result.connections) + " connections" +
                          (since ? ", since " + util::format_utc(std::chrono::duration_cast<std::chrono::seconds>(
                                                                     since->time_since_epoch())
                                                                     .count())
                                 : std::string()) +
                          "); shut it down first, or say --force to commit what it has written so far");
  }
  if (int rc = session->flush(); rc != 0) {
    throw Error("session " + name + ": its write cache cannot be flushed (" + std::strerror(rc) + ")");
  }
  block::WriteCache& cache = session->cache();
  if (cache.cluster_count() == 0) {
    throw Error(m.client + " has written nothing in its maintenance session of " + ref +
                "; nothing to commit (end it with 'imgtool maintenance discard " + image + "')");
  }
  result.cache_bytes = cache.data_bytes();
  auto touched = cache.touched_blocks(store::kDigestBlockSize);
  result.touched_blocks = touched.size();

  store::VersionInfo base = store.version({m.image, m.base, false});
  store::ImportOptions io;
  io.message = options.message;
  io.created_by = options.by;
  io.source = "maintenance on " + m.client + " from " + ref;
  io.publish = options.publish;
  io.changed_since = {m.base, std::move(touched)};
  io.ends_maintenance = m.token;
  // The base's kernel and initrd: the new version boots like the base did
  // (the artifacts are kept beside the version, not read from its disk).
  auto artifacts = store.artifacts(base);
  if (!artifacts.empty()) {
    io.artifacts_dir = std::filesystem::path(store.artifact_path(base, artifacts.front())).parent_path().string();
  }
  block::CacheDisk disk(cache);
  result.import = store.import_disk(m.image, disk, io);
  util::crash_point("maintenance:after-commit");
  thaw.session.reset();  // committed: it ends now, frozen to the last
  sessions.reset(name, "committed as " + m.image + "@" + std::to_string(result.import.version.number));
  return result;
}

store::MaintenanceInfo discard_maintenance(store::Store& store, block::SessionManager* sessions,
                                           const std::string& image) {
  store::MaintenanceInfo m = store.maintenance(image);
  const std::string name = store::maintenance_session_name(m);
  if (sessions) {
    if (auto s = sessions->find(name); s && s->frozen()) {
      throw MaintenanceBusy("session " + name + " is being committed; it cannot be discarded meanwhile");
    }
  }
  if (!store.end_maintenance(image, m.token)) {
    throw Error(image + ": its maintenance session ended meanwhile (committed or discarded by another request)");
  }
  if (sessions) {
    if (auto s = sessions->find(name); s && s->pin().keep == m.token) {
      sessions->reset(name, "its maintenance session was discarded");
    }
  }
  return m;
}

nlohmann::json maintenance_json(const store::MaintenanceInfo& m, const block::Session* session, bool known) {
  using nlohmann::json;
  auto seconds = [](std::chrono::system_clock::time_point t) {
    return std::chrono::duration_cast<std::chrono::seconds>(t.time_since_epoch()).count();
  };
  // A session is the maintenance one only if it carries the token.
  if (session && session->pin().keep != m.token) session = nullptr;
  std::optional<std::chrono::system_clock::time_point> since;
  if (session) since = session->connected_since();
  return {{"image", m.image},
          {"client", m.client},
          {"base", m.base},
          {"session", store::maintenance_session_name(m)},
          {"started", util::format_utc(m.started_at)},
          {"started_at", m.started_at},
          {"started_by", m.started_by},
          {"booted", known ? json(session != nullptr) : json(nullptr)},
          {"connections", session ? json(session->connections()) : known ? json(0) : json(nullptr)},
          {"cache_bytes", session ? json(session->cache().data_bytes()) : known ? json(0) : json(nullptr)},
          {"connected_since", since ? json(seconds(*since)) : json(nullptr)}};
}

}  // namespace bootfleet::serve
