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

#include "store/store_internal.h"
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

namespace bootfleet::store {

namespace fs = std::filesystem;
using util::Error;

namespace {

constexpr int kSchemaVersion = 6;

// Each entry migrates the schema from version i to i+1.
const char* const kMigrations[] = {
    R"sql(
CREATE TABLE images (
  id INTEGER PRIMARY KEY,
  name TEXT NOT NULL UNIQUE,
  created_at INTEGER NOT NULL,
  active_version INTEGER
);
CREATE TABLE versions (
  id INTEGER PRIMARY KEY,
  image_id INTEGER NOT NULL REFERENCES images(id) ON DELETE CASCADE,
  number INTEGER NOT NULL,
  parent_number INTEGER,
  virtual_size INTEGER NOT NULL,
  file TEXT NOT NULL UNIQUE,
  file_size INTEGER NOT NULL,
  stored_bytes INTEGER NOT NULL,
  unique_id TEXT NOT NULL,
  created_at INTEGER NOT NULL,
  created_by TEXT NOT NULL,
  message TEXT NOT NULL DEFAULT '',
  source TEXT,
  recipe TEXT,
  recipe_hash TEXT,
  disk_digest TEXT NOT NULL,
  UNIQUE (image_id, number)
);
CREATE TABLE block_digests (
  version_id INTEGER PRIMARY KEY REFERENCES versions(id) ON DELETE CASCADE,
  block_size INTEGER NOT NULL,
  digests BLOB NOT NULL
);
CREATE TABLE activations (
  id INTEGER PRIMARY KEY,
  image_id INTEGER NOT NULL REFERENCES images(id) ON DELETE CASCADE,
  version INTEGER NOT NULL,
  previous INTEGER,
  action TEXT NOT NULL CHECK (action IN ('publish', 'rollback')),
  at_ms INTEGER NOT NULL,
  by TEXT NOT NULL
);
CREATE INDEX activations_by_image ON activations (image_id, id);
CREATE TABLE leases (
  id INTEGER PRIMARY KEY,
  image_id INTEGER NOT NULL REFERENCES images(id) ON DELETE CASCADE,
  version INTEGER NOT NULL,
  holder TEXT NOT NULL,
  session TEXT NOT NULL,
  acquired_at INTEGER NOT NULL,
  heartbeat_at INTEGER NOT NULL,
  UNIQUE (holder, session)
);
)sql",
    // 2: clients, the PCs bootsrv knows by MAC address.
    R"sql(
CREATE TABLE clients (
  id INTEGER PRIMARY KEY,
  mac TEXT NOT NULL UNIQUE,
  name TEXT NOT NULL UNIQUE,
  image TEXT NOT NULL,
  cmdline TEXT,
  created_at INTEGER NOT NULL
);
)sql",
    // 3: a client's own write cache quota (bytes), over the server's default.
    R"sql(
ALTER TABLE clients ADD COLUMN cache_quota INTEGER CHECK (cache_quota IS NULL OR cache_quota > 0);
)sql",
    // 4: boot modes, per image and (overriding it) per client; NULL: the image's.
    R"sql(
ALTER TABLE images ADD COLUMN boot_mode TEXT NOT NULL DEFAULT 'linux' CHECK (boot_mode IN ('linux', 'sanboot'));
ALTER TABLE clients ADD COLUMN boot_mode TEXT CHECK (boot_mode IN ('linux', 'sanboot'));
)sql",
    // 5: channels, groups, pins, scheduled publishes (channels.h). Production
    // stays images.active_version, so today's active version is production's;
    // activations get their channel (old rows: production) and a 'promote'
    // action, which needs the table rebuilt (SQLite cannot alter a CHECK).
    R"sql(
CREATE TABLE activations_new (
  id INTEGER PRIMARY KEY,
  image_id INTEGER NOT NULL REFERENCES images(id) ON DELETE CASCADE,
  version INTEGER NOT NULL,
  previous INTEGER,
  action TEXT NOT NULL CHECK (action IN ('publish', 'rollback', 'promote')),
  at_ms INTEGER NOT NULL,
  by TEXT NOT NULL,
  channel TEXT NOT NULL DEFAULT 'production'
);
INSERT INTO activations_new (id, image_id, version, previous, action, at_ms, by)
  SELECT id, image_id, version, previous, action, at_ms, by FROM activations;
DROP TABLE activations;
ALTER TABLE activations_new RENAME TO activations;
CREATE INDEX activations_by_image ON activations (image_id, channel, id);
CREATE TABLE channels (
  image_id INTEGER NOT NULL REFERENCES images(id) ON DELETE CASCADE,
  name TEXT NOT NULL CHECK (name <> 'production'),
  version INTEGER,
  PRIMARY KEY (image_id, name)
);
CREATE TABLE groups (
  id INTEGER PRIMARY KEY,
  name TEXT NOT NULL UNIQUE,
  image TEXT NOT NULL,
  channel TEXT NOT NULL DEFAULT 'production',
  pin INTEGER CHECK (pin IS NULL OR pin > 0),
  created_at INTEGER NOT NULL
);
ALTER TABLE clients ADD COLUMN group_name TEXT;
ALTER TABLE clients ADD COLUMN pin INTEGER CHECK (pin IS NULL OR pin > 0);
CREATE TABLE schedules (
  id INTEGER PRIMARY KEY,
  image_id INTEGER NOT NULL REFERENCES images(id) ON DELETE CASCADE,
  version INTEGER NOT NULL,
  channel TEXT NOT NULL,
  at_ms INTEGER NOT NULL,
  created_by TEXT NOT NULL,
  created_ms INTEGER NOT NULL,
  state TEXT NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'done', 'cancelled', 'failed')),
  done_ms INTEGER,
  result TEXT
);
CREATE INDEX schedules_pending ON schedules (state, at_ms);
  )sql",
    // 6: maintenance sessions (store/maintenance.h): one per image, one per client.
    R"sql(
CREATE TABLE IF NOT EXISTS maintenance (
  id INTEGER PRIMARY KEY,
  image_id INTEGER NOT NULL UNIQUE REFERENCES images(id) ON DELETE CASCADE,
  client TEXT NOT NULL UNIQUE,
  base INTEGER NOT NULL,
  token TEXT NOT NULL UNIQUE,
  started_at INTEGER NOT NULL,
  started_by TEXT NOT NULL
);
)sql",
};
static_assert(std::size(kMigrations) == kSchemaVersion);

}  // namespace

namespace internal {

int64_t now_seconds() {
  return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}
int64_t now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::string version_file_name(int64_t number) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%04lld.vhd", static_cast<long long>(number));
  return buf;
}

std::vector<std::string> list_dir(const std::string& dir) {
  std::vector<std::string> out;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(dir, ec)) out.push_back(e.path().filename().string());
  std::sort(out.begin(), out.end());
  return out;
}

const char* const kVersionColumns =
    "i.name, v.number, v.parent_number, v.virtual_size, v.file, v.file_size, v.stored_bytes, v.unique_id, "
    "v.created_at, v.created_by, v.message, v.source, v.recipe, v.recipe_hash, v.disk_digest";

}  // namespace internal

using namespace internal;

std::string default_creator() {
  std::string user = "unknown";
  if (const char* u = std::getenv("USER")) user = u;
  else if (passwd* pw = ::getpwuid(::getuid())) user = pw->pw_name;
  char host[256] = {};
  ::gethostname(host, sizeof host - 1);
  return user + "@" + host;
}

std::string Store::default_dir() {
  if (const char* env = std::getenv("BOOTFLEET_STORE"); env && *env) return env;
  return "/var/lib/bootfleet";
}

Store::Store(std::string dir) : dir_(std::move(dir)) {}

void Store::init(const std::string& dir) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) throw Error(dir + ": cannot create the store directory: " + ec.message());
  if (fs::exists(fs::path(dir) / "catalog.db")) throw Error(dir + ": already a store (catalog.db exists)");
  for (const auto& name : list_dir(dir)) {
    if (name != "images" && name != "tmp" && name != "locks") {
      throw Error(dir + ": not empty (holds '" + name + "'); a store needs a directory of its own");
    }
  }
  for (const char* sub : {"images", "tmp", "locks"}) {
    fs::create_directories(fs::path(dir) / sub, ec);
    if (ec) throw Error(dir + "/" + sub + ": " + ec.message());
  }
  Store s(dir);
  s.db_ = std::make_unique<Database>(dir + "/catalog.db", /*create=*/true);
  s.migrate();
  util::fsync_parent_dir(dir + "/catalog.db");
}

std::unique_ptr<Store> Store::open(const std::string& dir) {
  if (!fs::exists(fs::path(dir) / "catalog.db")) {
    throw Error(dir + ": not a bootfleet store (no catalog.db); create one with 'imgtool init " + dir +
                "', or name another with --store or $BOOTFLEET_STORE");
  }
  std::unique_ptr<Store> s(new Store(dir));
  for (const char* sub : {"images", "tmp", "locks"}) fs::create_directories(fs::path(dir) / sub);
  s->db_ = std::make_unique<Database>(dir + "/catalog.db", /*create=*/false);
  s->migrate();
  s->cleanup();
  return s;
}

void Store::migrate() {
  auto st = db_->prepare("PRAGMA user_version");
  st.step();
  int64_t have = st.int64(0);
  st.reset();  // a statement left running keeps tables locked against DROP TABLE (migration 5)
  if (have > kSchemaVersion) {
    throw Error(db_->path() + ": catalog schema version " + std::to_string(have) +
                " is newer than this imgtool understands (" + std::to_string(kSchemaVersion) + "); upgrade imgtool");
  }
  if (have == kSchemaVersion) return;
  Transaction tx(*db_);
  auto again = db_->prepare("PRAGMA user_version");  // another process may have migrated meanwhile
  again.step();
  int64_t from = again.int64(0);
  again.reset();
  for (int64_t v = from; v < kSchemaVersion; ++v) {
    db_->exec(kMigrations[v]);
    db_->exec("PRAGMA user_version = " + std::to_string(v + 1));
  }
  tx.commit();
}

std::string Store::lock_path(const std::string& image) const { return dir_ + "/locks/" + image + ".lock"; }

namespace internal {

// "images/lab/0003.vhd" -> "images/lab/0003.artifacts"
std::string artifacts_rel(const std::string& version_file) {
  return version_file.substr(0, version_file.size() - 4) + ".artifacts";
}

// Copies the regular files of `from` into a new directory `to`, each
// fsynced, then the directory: artifacts are as durable as the version.
void copy_artifacts(const std::string& from, const std::string& to) {
  fs::create_directories(to);
  for (const auto& entry : fs::directory_iterator(from)) {
    if (!entry.is_regular_file()) continue;
    std::string dest = to + "/" + entry.path().filename().string();
    fs::copy_file(entry.path(), dest, fs::copy_options::overwrite_existing);
    util::UniqueFd fd = util::open_file(dest, O_RDONLY);
    util::fsync_file(fd.get(), dest);
  }
  util::UniqueFd dir = util::open_file(to, O_RDONLY | O_DIRECTORY);
  util::fsync_file(dir.get(), to);
}

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

}  // namespace internal

std::vector<std::string> Store::artifacts(const VersionInfo& v) const {
  auto names = list_dir(dir_ + "/" + artifacts_rel(v.file));
  std::sort(names.begin(), names.end());
  return names;
}

std::string Store::artifact_path(const VersionInfo& v, const std::string& name) const {
  auto names = artifacts(v);
  if (std::find(names.begin(), names.end(), name) == names.end()) {
    std::string list;
    for (const auto& n : names) list += (list.empty() ? "" : ", ") + n;
    throw Error(v.image + "@" + std::to_string(v.number) + " has no artifact '" + name + "'" +
                (list.empty() ? " (it has none)" : "; it has " + list));
  }
  return dir_ + "/" + artifacts_rel(v.file) + "/" + name;
}

void Store::cleanup() {
  // Files in tmp/ are named "IMAGE@N.vhd" (and the converter's own
  // ".IMAGE@N.vhd.tmp-PID"); a file whose image lock is free belongs to a
  // writer that died.
  std::map<std::string, util::FileLock> locks;
  auto lock_free = [&](const std::string& image) {
    auto it = locks.find(image);
    if (it == locks.end()) it = locks.emplace(image, util::FileLock::try_acquire(lock_path(image))).first;
    return it->second.held();
  };
  for (const auto& name : list_dir(dir_ + "/tmp")) {
    std::string base = name[0] == '.' ? name.substr(1) : name;
    auto at = base.find('@');
    std::string image = base.substr(0, at);
    try {
      validate_image_name(image);
    } catch (const Error&) {
      continue;  // not ours
    }
    if (at == std::string::npos || !lock_free(image)) continue;
    std::string path = dir_ + "/tmp/" + name;
    std::error_code ec;
    if (fs::remove_all(path, ec) > 0) cleanup_.push_back("removed tmp/" + name + ", left by an interrupted write");
  }
  // Version files without a row: a crash between rename and commit.
  auto known = db_->prepare("SELECT file FROM versions");
  std::set<std::string> files;
  while (known.step()) files.insert(known.text(0));
  for (const auto& image : list_dir(dir_ + "/images")) {
    for (const auto& name : list_dir(dir_ + "/images/" + image)) {
      std::string rel = "images/" + image + "/" + name;
      bool artifacts = ends_with(name, ".artifacts");
      // An artifacts directory belongs to the version file of the same number.
      std::string owner = artifacts ? rel.substr(0, rel.size() - 10) + ".vhd" : rel;
      if (files.count(owner) || !(artifacts || ends_with(name, ".vhd")) || name.size() < 5) continue;
      if (!lock_free(image)) continue;
      // Re-check under the lock: the writer may have committed meanwhile.
      auto again = db_->prepare("SELECT 1 FROM versions WHERE file = ?");
      again.bind(1, owner);
      if (again.step()) continue;
      std::string path = dir_ + "/" + rel;
      std::error_code ec;
      if (fs::remove_all(path, ec) > 0) {
        cleanup_.push_back("removed " + rel + (artifacts ? ", artifacts" : ", a version file") +
                           " no catalog row refers to (interrupted import)");
      }
    }
  }
}

VersionInfo Store::read_version_row(Statement& st) {
  VersionInfo v;
  v.image = st.text(0);
  v.number = st.int64(1);
  v.parent = st.opt_int64(2);
  v.size = static_cast<uint64_t>(st.int64(3));
  v.file = st.text(4);
  v.file_size = static_cast<uint64_t>(st.int64(5));
  v.stored_bytes = static_cast<uint64_t>(st.int64(6));
  v.unique_id = st.text(7);
  v.created_at = st.int64(8);
  v.created_by = st.text(9);
  v.message = st.text(10);
  v.source = st.opt_text(11);
  v.recipe = st.opt_text(12);
  v.recipe_hash = st.opt_text(13);
  v.disk_digest = st.text(14);
  return v;
}

void Store::fill_depths(std::vector<VersionInfo>& versions) {
  std::map<int64_t, const VersionInfo*> by_number;
  for (const auto& v : versions) by_number[v.number] = &v;
  for (auto& v : versions) {
    int depth = 1;
    for (auto p = v.parent; p && by_number.count(*p); p = by_number[*p]->parent) ++depth;
    v.depth = depth;
  }
}

std::vector<ImageInfo> Store::images() {
  std::vector<ImageInfo> out;
  auto st = db_->prepare(
      "SELECT i.name, i.created_at, i.active_version, COUNT(v.id), MAX(v.number), COALESCE(SUM(v.file_size), 0), "
      "(SELECT virtual_size FROM versions WHERE image_id = i.id ORDER BY number DESC LIMIT 1), i.id, i.boot_mode "
      "FROM images i LEFT JOIN versions v ON v.image_id = i.id GROUP BY i.id ORDER BY i.name");
  while (st.step()) {
    ImageInfo info;
    info.name = st.text(0);
    info.created_at = st.int64(1);
    info.active = st.opt_int64(2);
    info.version_count = st.int64(3);
    info.latest = st.opt_int64(4);
    info.bytes_on_disk = static_cast<uint64_t>(st.int64(5));
    info.size = static_cast<uint64_t>(st.opt_int64(6).value_or(0));
    info.boot_mode = parse_boot_mode(st.text(8), "images.boot_mode of '" + info.name + "'");
    auto stack = rollback_stack(st.int64(7));
    if (stack.size() >= 2) info.previous = stack[stack.size() - 2];
    out.push_back(std::move(info));
  }
  return out;
}

ImageInfo Store::image(const std::string& name) {
  validate_image_name(name);
  auto all = images();
  for (auto& i : all)
    if (i.name == name) return i;
  std::string known;
  for (const auto& i : all) known += (known.empty() ? "" : ", ") + i.name;
  throw NotFound("no image '" + name + "' in " + dir_ + (known.empty() ? " (the store is empty)" : "; images: " + known));
}

std::vector<VersionInfo> Store::versions(const std::string& name) {
  image(name);  // throws with the list of images
  auto st = db_->prepare(std::string("SELECT ") + kVersionColumns +
                         " FROM versions v JOIN images i ON i.id = v.image_id WHERE i.name = ? ORDER BY v.number");
  st.bind(1, name);
  std::vector<VersionInfo> out;
  while (st.step()) out.push_back(read_version_row(st));
  fill_depths(out);
  return out;
}

VersionInfo Store::version(const VersionRef& ref) {
  ImageInfo info = image(ref.image);
  std::optional<int64_t> number = ref.number;
  if (!number) {
    if (!info.active) {
      throw Error(ref.text() + ": image '" + ref.image + "' has no active version; publish one with 'imgtool publish " +
                  ref.image + "@N'");
    }
    number = info.active;
  }
  auto all = versions(ref.image);
  for (const auto& v : all)
    if (v.number == *number) return v;
  std::string known;
  for (const auto& v : all) known += (known.empty() ? "" : ", ") + std::to_string(v.number);
  throw NotFound(ref.image + "@" + std::to_string(*number) + ": no such version" +
                 (known.empty() ? std::string(" (the image has none)") : "; versions: " + known));
}

std::vector<int64_t> Store::rollback_stack(int64_t image_id) { return channel_stack(image_id, kProductionChannel); }

std::vector<Activation> Store::history(const std::string& name) {
  image(name);
  auto st = db_->prepare(
      "SELECT a.id, a.version, a.previous, a.action, a.at_ms, a.by, a.channel FROM activations a "
      "JOIN images i ON i.id = a.image_id WHERE i.name = ? ORDER BY a.id");
  st.bind(1, name);
  std::vector<Activation> out;
  while (st.step()) {
    out.push_back({st.int64(0), st.int64(1), st.opt_int64(2), st.text(3), st.int64(4), st.text(5), st.text(6)});
  }
  return out;
}

BlockDigests Store::digests(const VersionInfo& v) {
  auto st = db_->prepare(
      "SELECT d.digests FROM block_digests d JOIN versions v ON v.id = d.version_id JOIN images i ON i.id = v.image_id "
      "WHERE i.name = ? AND v.number = ?");
  st.bind(1, v.image).bind(2, v.number);
  if (!st.step()) throw Error(v.image + "@" + std::to_string(v.number) + ": the catalog has no block digests");
  auto blob = st.blob(0);
  return BlockDigests::decode(v.size, blob);
}

std::string Store::path_of(const VersionInfo& v) const { return dir_ + "/" + v.file; }

std::unique_ptr<vhd::Disk> Store::open_version(const VersionInfo& v) const { return vhd::Chain::open(path_of(v)); }

int64_t Store::image_id(const std::string& name, bool create, int64_t now) {
  auto st = db_->prepare("SELECT id FROM images WHERE name = ?");
  st.bind(1, name);
  if (st.step()) return st.int64(0);
  if (!create) throw NotFound("no image '" + name + "'");
  auto ins = db_->prepare("INSERT INTO images (name, created_at) VALUES (?, ?)");
  ins.bind(1, name).bind(2, now).run();
  return db_->last_insert_rowid();
}


ActivationResult Store::publish(const VersionRef& ref, const std::string& by) {
  if (!ref.number) throw Error(ref.text() + ": name the version to publish, e.g. " + ref.image + "@3");
  // Checked inside the write transaction: a prune committed between a check
  // and the update must not leave a removed version active.
  Transaction tx(*db_);
  version(ref);  // throws with the list of versions
  int64_t id = image_id(ref.image, false, 0);
  auto cur = db_->prepare("SELECT active_version FROM images WHERE id = ?");
  cur.bind(1, id);
  cur.step();
  std::optional<int64_t> before = cur.opt_int64(0);
  if (before == ref.number) return {before, *ref.number, false};
  db_->prepare("UPDATE images SET active_version = ? WHERE id = ?").bind(1, *ref.number).bind(2, id).run();
  db_->prepare("INSERT INTO activations (image_id, version, previous, action, at_ms, by) VALUES (?, ?, ?, 'publish', ?, ?)")
      .bind(1, id).bind(2, *ref.number).bind(3, before).bind(4, now_ms()).bind(5, by).run();
  tx.commit();
  return {before, *ref.number, true};
}

ActivationResult Store::rollback(const std::string& name, std::optional<int64_t> to, const std::string& by) {
  ImageInfo info = image(name);
  if (to) version({name, to, false});
  Transaction tx(*db_);
  int64_t id = image_id(name, false, 0);
  auto stack = rollback_stack(id);
  auto cur = db_->prepare("SELECT active_version FROM images WHERE id = ?");
  cur.bind(1, id);
  cur.step();
  std::optional<int64_t> before = cur.opt_int64(0);
  int64_t target;
  if (to) {
    target = *to;
    if (before == target) return {before, target, false};
  } else {
    if (stack.size() < 2) {
      throw Error(name + ": nothing to roll back to: " +
                  (before ? "no version was active before @" + std::to_string(*before) +
                                " in the publish history (see 'imgtool history " + name +
                                "'; 'rollback --to N' makes any version active)"
                          : std::string("no version was ever published")));
    }
    target = stack[stack.size() - 2];
  }
  auto exists = db_->prepare("SELECT 1 FROM versions WHERE image_id = ? AND number = ?");
  exists.bind(1, id).bind(2, target);
  if (!exists.step()) throw Error(name + "@" + std::to_string(target) + ": cannot roll back to it: the version was pruned");
  db_->prepare("UPDATE images SET active_version = ? WHERE id = ?").bind(1, target).bind(2, id).run();
  db_->prepare("INSERT INTO activations (image_id, version, previous, action, at_ms, by) VALUES (?, ?, ?, 'rollback', ?, ?)")
      .bind(1, id).bind(2, target).bind(3, before).bind(4, now_ms()).bind(5, by).run();
  tx.commit();
  return {before, target, true};
}

}  // namespace bootfleet::store
