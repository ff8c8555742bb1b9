// Leases: which versions live sessions hold, with the holder's heartbeat,
// so that prune and gc never delete a version a client is reading.
#include "store/store.h"

#include <dirent.h>
#include <fcntl.h>
#include <pwd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <map>
#include <set>

#include "util/bytes.h"
#include "util/error.h"
#include "util/file.h"
#include "util/lock.h"
#include "util/log.h"
#include "util/mac.h"
#include "util/size.h"
#include "vhd/chain.h"
#include "vhd/check.h"
#include "vhd/convert.h"

#include "store/store_internal.h"

namespace bootfleet::store {

namespace fs = std::filesystem;
using util::Error;
using namespace internal;

int64_t Store::add_lease(const VersionRef& ref, const std::string& holder, const std::string& session) {
  VersionInfo v = version(ref);
  int64_t now = now_seconds();
  Transaction tx(*db_);
  db_->prepare(
         "INSERT INTO leases (image_id, version, holder, session, acquired_at, heartbeat_at) "
         "VALUES ((SELECT id FROM images WHERE name = ?), ?, ?, ?, ?, ?) "
         "ON CONFLICT (holder, session) DO UPDATE SET image_id = excluded.image_id, version = excluded.version, "
         "acquired_at = excluded.acquired_at, heartbeat_at = excluded.heartbeat_at")
      .bind(1, v.image).bind(2, v.number).bind(3, holder).bind(4, session).bind(5, now).bind(6, now).run();
  auto st = db_->prepare("SELECT id FROM leases WHERE holder = ? AND session = ?");
  st.bind(1, holder).bind(2, session);
  st.step();
  int64_t id = st.int64(0);
  tx.commit();
  return id;
}

void Store::heartbeat(const std::string& holder) {
  Transaction tx(*db_);
  db_->prepare("UPDATE leases SET heartbeat_at = ? WHERE holder = ?").bind(1, now_seconds()).bind(2, holder).run();
  tx.commit();
}

void Store::release_lease(int64_t id) {
  Transaction tx(*db_);
  db_->prepare("DELETE FROM leases WHERE id = ?").bind(1, id).run();
  tx.commit();
}

std::vector<Lease> Store::live_leases(const std::string& name) {
  auto st = db_->prepare(
      "SELECT l.id, i.name, l.version, l.holder, l.session, l.heartbeat_at FROM leases l JOIN images i ON i.id = l.image_id "
      "WHERE i.name = ? AND l.heartbeat_at >= ? ORDER BY l.id");
  st.bind(1, name).bind(2, now_seconds() - kLeaseTtlSeconds);
  std::vector<Lease> out;
  while (st.step()) out.push_back({st.int64(0), st.text(1), st.int64(2), st.text(3), st.text(4), st.int64(5)});
  return out;
}

std::vector<Lease> Store::all_leases() {
  auto st = db_->prepare(
      "SELECT l.id, i.name, l.version, l.holder, l.session, l.heartbeat_at FROM leases l JOIN images i ON i.id = l.image_id "
      "ORDER BY l.id");
  std::vector<Lease> out;
  while (st.step()) out.push_back({st.int64(0), st.text(1), st.int64(2), st.text(3), st.text(4), st.int64(5)});
  return out;
}

}  // namespace bootfleet::store
