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

const char* kVersionColumns =
    "i.name, v.number, v.parent_number, v.virtual_size, v.file, v.file_size, v.stored_bytes, v.unique_id, "
    "v.created_at, v.created_by, v.message, v.source, v.recipe, v.recipe_hash, v.disk_digest";

}  // namespace

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

namespace {

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

}  // namespace

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
  throw Error("no image '" + name + "' in " + dir_ + (known.empty() ? " (the store is empty)" : "; images: " + known));
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
  throw Error(ref.image + "@" + std::to_string(*number) + ": no such version" +
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
  if (!create) throw Error("no image '" + name + "'");
  auto ins = db_->prepare("INSERT INTO images (name, created_at) VALUES (?, ?)");
  ins.bind(1, name).bind(2, now).run();
  return db_->last_insert_rowid();
}

ImportResult Store::import_disk(const std::string& image, const vhd::Disk& disk, const ImportOptions& options) {
  validate_image_name(image);
  return write_version(image, disk, options, std::nullopt);
}

ImportResult Store::write_version(const std::string& image, const vhd::Disk& disk, const ImportOptions& options,
                                  std::optional<VersionInfo> squash_of) {
  util::FileLock lock = util::FileLock::try_acquire(lock_path(image));
  if (!lock.held()) {
    util::log_line("waiting for another writer of image '" + image + "' to finish…");
    lock = util::FileLock::acquire(lock_path(image));
  }
  // Under the lock: the latest version cannot change until we are done.
  std::optional<VersionInfo> latest;
  std::vector<VersionInfo> existing;
  {
    auto st = db_->prepare("SELECT id FROM images WHERE name = ?");
    st.bind(1, image);
    if (st.step()) {
      existing = versions(image);
      if (!existing.empty()) latest = existing.back();
    }
  }
  int64_t number = latest ? latest->number + 1 : 1;
  if (options.expect_number && *options.expect_number != number) {
    throw VersionNumberTaken(
        image + "@" + std::to_string(*options.expect_number) + " cannot be added: " +
            (latest ? "the image's latest version is @" + std::to_string(latest->number) + ", so the next is @" +
                          std::to_string(number)
                    : std::string("the image has no version yet, so the next is @1")),
        latest ? std::optional<int64_t>(latest->number) : std::nullopt);
  }
  std::optional<VersionInfo> parent;
  bool new_base = true;
  const std::string input = options.source ? *options.source + ": " : std::string();
  if (disk.size() == 0) {
    throw Error(input + "0 bytes: an empty file is not a disk (expected a raw disk, a VHD or a VHDX)");
  }
  // A raw file of the image's nominal size is its size: version 1 was
  // rounded up to whole CHS cylinders (docs/formats.md).
  const bool same_size = latest && (disk.size() == latest->size || vhd::round_up_to_geometry(disk.size()) == latest->size);
  const bool resized = latest && !squash_of && !same_size;
  if (resized && !options.resize) {
    throw Error(input + "the disk is " + std::to_string(disk.size()) + " bytes (" + util::format_size(disk.size()) +
                ") but " + image + "@" + std::to_string(latest->number) + " is " + std::to_string(latest->size) +
                " bytes (" + util::format_size(latest->size) +
                "); versions of an image keep its size. Check the file, or say --resize to store it as a new base of "
                "the new size");
  }
  if (latest && !squash_of && !resized) {
    if (latest->depth < kMaxChainDepth) {
      parent = latest;
      new_base = false;
    }
  }

  BlockDigests parent_digests = parent ? digests(*parent) : BlockDigests();
  // Every version of an image has the image's size, also a new base.
  // A resized one starts a new base of its own size.
  uint64_t out_size = latest && !resized ? latest->size : vhd::round_up_to_geometry(disk.size());
  BlockDigests new_digests(out_size);
  uint64_t changed = 0;

  std::string rel = "images/" + image + "/" + version_file_name(number);
  std::string tmp = dir_ + "/tmp/" + image + "@" + std::to_string(number) + ".vhd";
  std::string tmp_artifacts = dir_ + "/tmp/" + image + "@" + std::to_string(number) + ".artifacts";
  struct RemoveTmpArtifacts {
    std::string path;
    ~RemoveTmpArtifacts() {
      std::error_code ec;
      fs::remove_all(path, ec);
    }
  } remove_tmp_artifacts{tmp_artifacts};
  if (!options.artifacts_dir.empty()) copy_artifacts(options.artifacts_dir, tmp_artifacts);
  fs::create_directories(dir_ + "/images/" + image);

  vhd::ConvertOptions co;
  co.to = parent ? vhd::OutputFormat::kVhdDiff : vhd::OutputFormat::kVhdDynamic;
  co.block_size = kDigestBlockSize;
  co.size = out_size;
  if (parent) co.parent = path_of(*parent);
  co.final_path = dir_ + "/" + rel;  // written in tmp/, renamed into images/
  co.replace = true;
  co.progress = options.progress;
  if (parent && options.changed_since && options.changed_since->first == parent->number) {
    std::vector<bool> may_differ(new_digests.block_count());
    for (uint32_t b : options.changed_since->second)
      if (b < may_differ.size()) may_differ[b] = true;
    co.same_as_parent = [&, may_differ](uint32_t block) {
      if (may_differ[block]) return false;
      if (auto d = parent_digests.get(block)) new_digests.set(block, *d);
      return true;
    };
  }
  co.on_block = [&](uint32_t block, std::span<const uint8_t> data) {
    new_digests.set_from_data(block, data);
    bool same = new_digests.get(block) == parent_digests.get(block);
    if (!same) ++changed;
    return same;
  };
  util::crash_point("import:before-write");
  vhd::ConvertResult written;
  try {
    written = vhd::convert(disk, tmp, co);
  } catch (...) {
    ::unlink(tmp.c_str());
    throw;
  }
  // Blocks the input never showed (known zeros) may have held data in the
  // parent: they changed too.
  if (parent) {
    for (uint32_t b : BlockDigests::changed_blocks(parent_digests, new_digests)) {
      if (!new_digests.get(b)) ++changed;
    }
  } else {
    changed = new_digests.nonzero_blocks();
  }
  util::crash_point("import:after-write");
  // Differencing on the latest version with no block changed, or (a new
  // base at the depth limit) the same whole-disk digest.
  bool same_as_latest = latest && (parent ? parent->number == latest->number && changed == 0
                                         : util::digest_hex(new_digests.disk_digest()) == latest->disk_digest);
  if (options.unless_same && latest && !squash_of && options.artifacts_dir.empty() &&
      same_as_latest) {
    ::unlink(tmp.c_str());
    ImportResult same{*latest, false, 0, true};
    if (options.publish) {
      publish({image, latest->number, false}, options.created_by.empty() ? default_creator() : options.created_by);
    }
    return same;
  }

  std::string final_path = dir_ + "/" + rel;
  if (::rename(tmp.c_str(), final_path.c_str()) != 0) {
    int err = errno;
    ::unlink(tmp.c_str());
    throw util::errno_error("rename " + tmp + " to " + final_path, err);
  }
  util::fsync_parent_dir(final_path);
  if (!options.artifacts_dir.empty()) {
    std::string final_artifacts = dir_ + "/" + artifacts_rel(rel);
    std::error_code ec;
    fs::remove_all(final_artifacts, ec);  // a leftover of a crashed import of this number
    if (::rename(tmp_artifacts.c_str(), final_artifacts.c_str()) != 0) {
      throw util::errno_error("rename " + tmp_artifacts + " to " + final_artifacts);
    }
    util::fsync_parent_dir(final_artifacts);
  }
  util::crash_point("import:after-rename");

  auto file = vhd::VhdFile::open(final_path);
  VersionInfo v;
  v.image = image;
  v.number = number;
  v.parent = parent ? std::optional<int64_t>(parent->number) : std::nullopt;
  v.size = file->size();
  v.file = rel;
  v.file_size = file->file_size();
  v.stored_bytes = written.stored_bytes;
  v.unique_id = util::uuid_to_string(file->footer().unique_id);
  v.created_at = now_seconds();
  v.created_by = options.created_by.empty() ? default_creator() : options.created_by;
  v.message = options.message;
  v.source = options.source;
  v.recipe = options.recipe;
  v.recipe_hash = options.recipe_hash;
  if (squash_of) new_digests = digests(*squash_of);
  v.disk_digest = util::digest_hex(new_digests.disk_digest());
  v.depth = parent ? parent->depth + 1 : 1;

  try {
    Transaction tx(*db_);
    int64_t id = image_id(image, /*create=*/true, v.created_at);
    auto ins = db_->prepare(
        "INSERT INTO versions (image_id, number, parent_number, virtual_size, file, file_size, stored_bytes, unique_id, "
        "created_at, created_by, message, source, recipe, recipe_hash, disk_digest) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)");
    ins.bind(1, id).bind(2, v.number).bind(3, v.parent).bind(4, static_cast<int64_t>(v.size)).bind(5, v.file);
    ins.bind(6, static_cast<int64_t>(v.file_size)).bind(7, static_cast<int64_t>(v.stored_bytes)).bind(8, v.unique_id);
    ins.bind(9, v.created_at).bind(10, v.created_by).bind(11, v.message).bind(12, v.source).bind(13, v.recipe);
    ins.bind(14, v.recipe_hash).bind(15, v.disk_digest);
    ins.run();
    int64_t version_id = db_->last_insert_rowid();
    auto blob = new_digests.encode();
    auto dig = db_->prepare("INSERT INTO block_digests (version_id, block_size, digests) VALUES (?, ?, ?)");
    dig.bind(1, version_id).bind(2, int64_t{kDigestBlockSize}).bind(3, std::span<const uint8_t>(blob)).run();
    if (options.ends_maintenance) {
      auto del = db_->prepare("DELETE FROM maintenance WHERE image_id = ? AND token = ? RETURNING client");
      del.bind(1, id).bind(2, *options.ends_maintenance);
      if (!del.step()) {
        throw Error(image + ": its maintenance session ended (committed or discarded) while this commit ran; "
                    "nothing was stored");
      }
      del.run();
    }
    util::crash_point("import:before-commit");
    tx.commit();
  } catch (...) {
    ::unlink(final_path.c_str());
    throw;
  }
  util::crash_point("import:after-commit");

  ImportResult result{v, new_base, changed};
  if (options.publish) publish({image, number, false}, v.created_by);
  return result;
}

PatchResult Store::write_patch(const VersionRef& ref, int64_t base, const std::string& out_path, bool replace) {
  VersionInfo v = version(ref);
  if (base >= v.number) {
    throw Error(v.image + "@" + std::to_string(v.number) + ": a patch is written over an earlier version, not @" +
                std::to_string(base));
  }
  VersionInfo b = version({v.image, base, false});
  if (b.size != v.size) {
    throw Error(v.image + "@" + std::to_string(v.number) + " is " + std::to_string(v.size) + " bytes, @" +
                std::to_string(base) + " " + std::to_string(b.size) + "; a patch needs equal sizes");
  }
  BlockDigests from = digests(b), to = digests(v);
  std::vector<bool> changed(to.block_count());
  PatchResult result;
  for (uint32_t block : BlockDigests::changed_blocks(from, to)) {
    if (block < changed.size()) changed[block] = true;
    ++result.changed_blocks;
  }
  auto disk = open_version(v);
  vhd::ConvertOptions co;
  co.to = vhd::OutputFormat::kVhdDiff;
  co.block_size = kDigestBlockSize;
  co.parent = path_of(b);
  co.replace = replace;
  // Digests equal: the block is the base's; nothing of it is read.
  co.same_as_parent = [&changed](uint32_t block) { return block >= changed.size() || !changed[block]; };
  vhd::convert(*disk, out_path, co);
  result.file_size = std::filesystem::file_size(out_path);
  return result;
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

std::vector<PruneDecision> Store::prune(const std::string& name, int64_t keep, bool apply) {
  if (keep < 0) throw Error("--keep must be 0 or more");
  util::FileLock lock = util::FileLock::acquire(lock_path(name));
  // Decided inside the write transaction: a publish or lease committed by
  // another process between deciding and deleting must keep its version.
  Transaction tx(*db_);
  ImageInfo info = image(name);
  auto all = versions(name);
  std::map<int64_t, PruneDecision> decisions;
  for (const auto& v : all) decisions[v.number] = {v.number, false, {}};
  auto mark = [&](int64_t n, const std::string& why) {
    auto it = decisions.find(n);
    if (it == decisions.end()) return;
    it->second.keep = true;
    it->second.reasons.push_back(why);
  };
  for (int64_t i = 0; i < keep && i < static_cast<int64_t>(all.size()); ++i) {
    mark(all[all.size() - 1 - static_cast<size_t>(i)].number, "among the newest " + std::to_string(keep));
  }
  if (info.active) mark(*info.active, "active");
  if (info.previous) mark(*info.previous, "rollback target");
  for (const auto& l : live_leases(name)) mark(l.version, "leased by " + l.holder + " (session " + l.session + ")");
  for (const auto& [n, reasons] : kept_versions(name))
    for (const auto& why : reasons) mark(n, why);
  if (auto m = find_maintenance(name)) mark(m->base, "base of " + m->client + "'s maintenance session");
  // Parents of kept versions, down to their base.
  std::map<int64_t, std::optional<int64_t>> parent_of;
  for (const auto& v : all) parent_of[v.number] = v.parent;
  for (auto it = decisions.rbegin(); it != decisions.rend(); ++it) {
    if (!it->second.keep) continue;
    auto p = parent_of[it->first];
    if (p) mark(*p, "parent of @" + std::to_string(it->first));
  }
  std::vector<PruneDecision> out;
  for (auto& [n, d] : decisions) out.push_back(d);
  if (!apply) return out;

  std::vector<std::string> files;
  int64_t id = image_id(name, false, 0);
  for (const auto& d : out) {
    if (d.keep) continue;
    auto st = db_->prepare("DELETE FROM versions WHERE image_id = ? AND number = ? RETURNING file");
    st.bind(1, id).bind(2, d.number);
    if (st.step()) files.push_back(st.text(0));
    st.run();
  }
  tx.commit();
  // Rows first, then files: a crash in between leaves files that gc (or the
  // next open) removes, never a row without its file.
  for (const auto& f : files) {
    ::unlink((dir_ + "/" + f).c_str());
    std::error_code ec;
    fs::remove_all(dir_ + "/" + artifacts_rel(f), ec);
  }
  if (!files.empty()) util::fsync_parent_dir(dir_ + "/" + files.front());
  return out;
}

void Store::remove_version(const VersionRef& ref) {
  if (!ref.number) throw Error(ref.text() + ": name the version to remove, e.g. " + ref.image + "@3");
  util::FileLock lock = util::FileLock::acquire(lock_path(ref.image));
  Transaction tx(*db_);  // the checks and the delete see one state of the catalog
  VersionInfo v = version(ref);
  ImageInfo info = image(ref.image);
  std::string what = ref.image + "@" + std::to_string(v.number);
  if (info.active == v.number) throw Error(what + " is the active version; publish another one first");
  if (info.previous == v.number) throw Error(what + " is the rollback target (the previously active version)");
  for (const auto& l : live_leases(ref.image))
    if (l.version == v.number) throw Error(what + " is leased by " + l.holder + " (session " + l.session + ")");
  if (auto m = find_maintenance(ref.image); m && m->base == v.number) {
    throw Error(what + " is the base of " + m->client + "'s maintenance session; commit or discard it first");
  }
  if (auto kept = kept_versions(ref.image); kept.count(v.number)) {
    std::string why;
    for (const auto& r : kept[v.number]) why += (why.empty() ? "" : ", ") + r;
    throw Error(what + " is in use: " + why + "; move those to another version first");
  }
  for (const auto& other : versions(ref.image))
    if (other.parent == v.number) throw Error(what + " is the parent of @" + std::to_string(other.number));
  db_->prepare("DELETE FROM versions WHERE image_id = (SELECT id FROM images WHERE name = ?) AND number = ?")
      .bind(1, ref.image).bind(2, v.number).run();
  tx.commit();
  ::unlink(path_of(v).c_str());
  std::error_code ec;
  fs::remove_all(dir_ + "/" + artifacts_rel(v.file), ec);
}

ImportResult Store::squash(const VersionRef& ref, const ImportOptions& options) {
  VersionInfo v = version(ref);
  auto chain = open_version(v);
  ImportOptions o = options;
  if (o.message.empty()) o.message = "squash of @" + std::to_string(v.number);
  if (!o.source) o.source = "squash of " + v.image + "@" + std::to_string(v.number);
  // Same content, same kernel: a squashed version boots like the original.
  if (o.artifacts_dir.empty() && !artifacts(v).empty()) o.artifacts_dir = dir_ + "/" + artifacts_rel(v.file);
  return write_version(v.image, *chain, o, v);
}

GcResult Store::gc(bool apply) {
  GcResult result;
  std::set<std::string> files;
  auto known = db_->prepare("SELECT file FROM versions");
  while (known.step()) files.insert(known.text(0));
  for (const auto& image : list_dir(dir_ + "/images")) {
    util::FileLock lock = util::FileLock::try_acquire(lock_path(image));
    if (!lock.held()) continue;  // a writer is busy there: its files are not garbage
    // The writer may have committed while we listed.
    auto fresh = db_->prepare("SELECT file FROM versions");
    while (fresh.step()) files.insert(fresh.text(0));
    for (const auto& f : std::set<std::string>(files)) files.insert(artifacts_rel(f));
    std::string dir = dir_ + "/images/" + image;
    for (const auto& name : list_dir(dir)) {
      std::string rel = "images/" + image + "/" + name;
      if (files.count(rel)) continue;
      std::error_code ec;
      uint64_t size = fs::file_size(dir + "/" + name, ec);
      result.removed.push_back(rel);
      result.bytes += ec ? 0 : size;
      if (apply) fs::remove_all(dir + "/" + name, ec);
    }
    if (apply && list_dir(dir).empty()) {
      std::error_code ec;
      fs::remove(dir, ec);
    }
  }
  return result;
}

VerifyReport Store::verify(const std::optional<VersionRef>& ref,
                           const std::function<void(uint64_t, uint64_t)>& progress) {
  // Which versions: one version (with its whole chain, since its content
  // depends on it), one image, or everything.
  std::vector<VersionInfo> to_verify;
  if (ref && (ref->number || ref->explicit_active)) {
    VersionInfo v = version(*ref);
    auto all = versions(v.image);
    std::map<int64_t, VersionInfo> by_number;
    for (auto& x : all) by_number[x.number] = x;
    for (std::optional<int64_t> n = v.number; n && by_number.count(*n); n = by_number[*n].parent) {
      to_verify.insert(to_verify.begin(), by_number[*n]);
    }
  } else if (ref) {
    to_verify = versions(ref->image);
  } else {
    for (const auto& i : images()) {
      auto vs = versions(i.name);
      to_verify.insert(to_verify.end(), vs.begin(), vs.end());
    }
  }
  VerifyReport report;
  uint64_t total = 0, done = 0;
  for (const auto& v : to_verify) total += v.stored_bytes;
  std::set<std::pair<std::string, int64_t>> verified_ok;
  std::vector<uint8_t> buf(kDigestBlockSize);

  for (const auto& v : to_verify) {
    std::string name = v.image + "@" + std::to_string(v.number);
    report.checked.push_back(name);
    size_t problems_before = report.problems.size();
    auto problem = [&](const std::string& msg) { report.problems.push_back({v.image, v.number, msg}); };
    std::string path = path_of(v);
    vhd::CheckReport structure = vhd::check(path);
    for (const auto& f : structure.files)
      for (const auto& p : f.problems) problem(f.path + ": " + p);
    if (!structure.clean()) continue;
    std::unique_ptr<vhd::Chain> chain;
    try {
      chain = vhd::Chain::open(path);
    } catch (const Error& e) {
      problem(e.what());
      continue;
    }
    const vhd::VhdFile& top = *chain->layers().front();
    if (util::uuid_to_string(top.footer().unique_id) != v.unique_id) {
      problem("file unique id " + util::uuid_to_string(top.footer().unique_id) + " differs from the catalog's " +
              v.unique_id + " (file replaced?)");
    }
    if (top.size() != v.size) problem("file size " + std::to_string(top.size()) + " differs from the catalog's");
    bool has_parent_file = chain->depth() > 1;
    if (has_parent_file != v.parent.has_value()) {
      problem(std::string("the file ") + (has_parent_file ? "has a parent" : "has no parent") +
              " but the catalog says " + (v.parent ? "@" + std::to_string(*v.parent) : std::string("none")));
      continue;
    }
    BlockDigests recorded;
    try {
      recorded = digests(v);
    } catch (const Error& e) {
      problem(e.what());
      continue;
    }
    // Incremental when the parent is verified in this run: only blocks this
    // version's own file holds are read; the rest must equal the parent's.
    std::optional<BlockDigests> parent_digests;
    if (v.parent && verified_ok.count({v.image, *v.parent})) {
      parent_digests = digests(version({v.image, *v.parent, false}));
    }
    std::vector<bool> own(recorded.block_count(), !parent_digests.has_value());
    if (parent_digests) {
      for (const auto& run : chain->runs()) {
        if (run.layer != 0) continue;
        for (uint64_t b = run.offset / kDigestBlockSize; b * kDigestBlockSize < run.offset + run.length; ++b) own[b] = true;
      }
    }
    BlockDigests actual(v.size);
    for (uint32_t b = 0; b < recorded.block_count(); ++b) {
      uint32_t len = recorded.block_length(b);
      if (!own[b]) {
        if (auto d = parent_digests->get(b)) actual.set(b, *d);
        continue;
      }
      uint64_t off = uint64_t{b} * kDigestBlockSize;
      bool any = false;
      for (const auto& e : chain->extents(off, len)) any = any || e.data;
      if (any) {
        chain->read(off, buf.data(), len);
        actual.set_from_data(b, {buf.data(), len});
        report.bytes_hashed += len;
        done += len;
        if (progress) progress(std::min(done, total), total);
      }
      if (actual.get(b) != recorded.get(b)) {
        auto hex = [](const std::optional<util::Digest>& d) { return d ? util::digest_hex(*d) : std::string("(zeros)"); };
        problem("block " + std::to_string(b) + " (bytes " + std::to_string(off) + "-" + std::to_string(off + len - 1) +
                "): data hashes to " + hex(actual.get(b)) + ", the catalog recorded " + hex(recorded.get(b)));
      }
    }
    if (util::digest_hex(recorded.disk_digest()) != v.disk_digest) {
      problem("disk digest recorded as " + v.disk_digest + " but the block digests give " +
              util::digest_hex(recorded.disk_digest()));
    }
    if (report.problems.size() == problems_before) verified_ok.insert({v.image, v.number});
  }
  return report;
}

DiffResult Store::diff(const VersionRef& ra, const VersionRef& rb, bool read_data) {
  DiffResult r;
  r.a = version(ra);
  r.b = version(rb);
  BlockDigests da = digests(r.a), db = digests(r.b);
  uint64_t size = std::max(r.a.size, r.b.size);
  auto add_range = [&](uint64_t off, uint64_t len) {
    if (len == 0) return;
    if (!r.ranges.empty() && r.ranges.back().offset + r.ranges.back().length == off) r.ranges.back().length += len;
    else r.ranges.push_back({off, len});
    r.changed_bytes += len;
  };
  auto changed = BlockDigests::changed_blocks(da, db);
  for (uint32_t b : changed) {
    bool in_a = da.get(b).has_value(), in_b = db.get(b).has_value();
    if (in_a && in_b) ++r.blocks_modified;
    else if (in_b) ++r.blocks_added;
    else ++r.blocks_removed;
  }
  if (!read_data) {
    for (uint32_t b : changed) {
      uint64_t off = uint64_t{b} * kDigestBlockSize;
      add_range(off, std::min<uint64_t>(kDigestBlockSize, size - off));
    }
    return r;
  }
  // --verify: read both disks whole; confirm equal digests mean equal data,
  // and narrow each changed block to the sectors that differ.
  r.data_read = true;
  auto a = open_version(r.a), b = open_version(r.b);
  std::vector<uint8_t> ba(kDigestBlockSize), bb(kDigestBlockSize);
  std::set<uint32_t> changed_set(changed.begin(), changed.end());
  uint32_t blocks = static_cast<uint32_t>((size + kDigestBlockSize - 1) / kDigestBlockSize);
  for (uint32_t blk = 0; blk < blocks; ++blk) {
    uint64_t off = uint64_t{blk} * kDigestBlockSize;
    size_t len = static_cast<size_t>(std::min<uint64_t>(kDigestBlockSize, size - off));
    std::fill(ba.begin(), ba.end(), 0);
    std::fill(bb.begin(), bb.end(), 0);
    if (off < a->size()) a->read(off, ba.data(), static_cast<size_t>(std::min<uint64_t>(len, a->size() - off)));
    if (off < b->size()) b->read(off, bb.data(), static_cast<size_t>(std::min<uint64_t>(len, b->size() - off)));
    bool differs = std::memcmp(ba.data(), bb.data(), len) != 0;
    if (differs != (changed_set.count(blk) > 0)) {
      r.verified = false;
      r.verify_problems.push_back("block " + std::to_string(blk) + ": digests say " +
                                  (changed_set.count(blk) ? "changed" : "unchanged") + ", the data is " +
                                  (differs ? "different" : "the same"));
    }
    if (!differs) continue;
    for (size_t s = 0; s < len; s += 512) {
      if (std::memcmp(ba.data() + s, bb.data() + s, 512) != 0) add_range(off + s, 512);
    }
  }
  return r;
}

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

// Clients.

const char* boot_mode_name(BootMode mode) { return mode == BootMode::kSanboot ? "sanboot" : "linux"; }

BootMode parse_boot_mode(const std::string& text, const std::string& what) {
  if (text == "linux") return BootMode::kLinux;
  if (text == "sanboot") return BootMode::kSanboot;
  throw Error(what + ": '" + text + "' is not a boot mode; use 'linux' (kernel over HTTP, root over NBD) or "
              "'sanboot' (the disk over iSCSI, booted by its own loader)");
}

void Store::set_image_boot_mode(const std::string& image, BootMode mode) {
  Transaction tx(*db_);
  this->image(image);  // throws, listing the images
  db_->prepare("UPDATE images SET boot_mode = ? WHERE name = ?").bind(1, std::string(boot_mode_name(mode))).bind(2, image).run();
  tx.commit();
}

void validate_client_name(const std::string& name) {
  if (name.empty() || name.size() > 64) {
    throw Error("client name '" + name.substr(0, 80) + "': a client name is 1 to 64 characters");
  }
  for (char c : name) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '_' ||
              c == '-';
    if (!ok) {
      throw Error("client name '" + name + "': '" + std::string(1, c) +
                  "' is not allowed; use letters, digits, '.', '_' and '-' (it becomes part of the export name "
                  "IMAGE/CLIENT)");
    }
  }
  if (!std::isalnum(static_cast<unsigned char>(name[0]))) {
    throw Error("client name '" + name + "': must start with a letter or a digit");
  }
}

std::string default_client_name(const std::string& mac) { return util::mac_with_hyphens(util::normalize_mac(mac)); }

namespace {
const char* kClientColumns = "mac, name, image, cmdline, created_at, cache_quota, boot_mode, group_name, pin";
ClientInfo read_client_row(Statement& st) {
  auto quota = st.opt_int64(5);
  ClientInfo c{st.text(0), st.text(1), st.text(2), st.opt_text(3), st.int64(4),
               quota ? std::optional<uint64_t>(static_cast<uint64_t>(*quota)) : std::nullopt, std::nullopt, std::nullopt, std::nullopt};
  if (auto mode = st.opt_text(6)) c.boot_mode = parse_boot_mode(*mode, "clients.boot_mode of '" + c.name + "'");
  c.group = st.opt_text(7);
  c.pin = st.opt_int64(8);
  return c;
}
std::optional<std::string> boot_mode_column(std::optional<BootMode> mode) {
  if (!mode) return std::nullopt;
  return std::string(boot_mode_name(*mode));
}
}  // namespace

void Store::check_client_fields(const std::string& what, const std::optional<std::string>& name,
                                const std::optional<std::string>& image, const std::optional<std::string>& cmdline,
                                const std::string& own_mac) {
  if (name) {
    validate_client_name(*name);
    // A name that reads as a MAC would make "MAC|NAME" ambiguous, unless it
    // is the client's own MAC.
    if (auto as_mac = util::parse_mac(*name); as_mac && *as_mac != own_mac) {
      throw Error(what + ": name '" + *name + "' reads as the MAC address " + *as_mac +
                  "; choose a name that is not a MAC address");
    }
  }
  if (image) {
    try {
      this->image(*image);  // throws, listing the images
    } catch (const Error& e) {
      throw Error(what + ": " + e.what());
    }
  }
  if (cmdline) {
    for (char c : *cmdline) {
      // The command line goes into an iPXE script line: no line breaks, and
      // nothing iPXE would expand or treat as a command separator.
      if (c == '\n' || c == '\r' || c == '$' || c == '\0' || c == '|' || c == '&' || c == '#') {
        throw Error(what + ": kernel command line '" + *cmdline + "': '" + std::string(1, c == '\n' ? 'n' : c) +
                    "' is not allowed (no line breaks, '$', '|', '&', '#')");
      }
    }
    if (cmdline->size() > 1024) throw Error(what + ": kernel command line is longer than 1024 characters");
  }
}

ClientInfo Store::add_client(const std::string& mac_text, const std::optional<std::string>& name_given,
                             const std::string& image, const std::optional<std::string>& cmdline,
                             std::optional<BootMode> boot_mode) {
  std::string mac = util::normalize_mac(mac_text);
  std::string name = name_given.value_or(util::mac_with_hyphens(mac));
  std::optional<std::string> line = cmdline && !cmdline->empty() ? cmdline : std::nullopt;
  std::string what = "client " + mac;
  Transaction tx(*db_);
  check_client_fields(what, name, image, line, mac);
  if (auto existing = find_client(mac)) {
    throw Error(what + " already exists (named '" + existing->name + "'); change it with 'imgtool client set " +
                existing->name + " …'");
  }
  auto same_name = db_->prepare("SELECT mac FROM clients WHERE name = ?");
  same_name.bind(1, name);
  if (same_name.step()) throw Error(what + ": the name '" + name + "' is taken by " + same_name.text(0));
  int64_t now = now_seconds();
  db_->prepare("INSERT INTO clients (mac, name, image, cmdline, created_at, boot_mode) VALUES (?, ?, ?, ?, ?, ?)")
      .bind(1, mac).bind(2, name).bind(3, image).bind(4, line).bind(5, now).bind(6, boot_mode_column(boot_mode)).run();
  tx.commit();
  return {mac, name, image, line, now, std::nullopt, boot_mode, std::nullopt, std::nullopt};
}

std::vector<ClientInfo> Store::clients() {
  auto st = db_->prepare(std::string("SELECT ") + kClientColumns + " FROM clients ORDER BY name");
  std::vector<ClientInfo> out;
  while (st.step()) out.push_back(read_client_row(st));
  return out;
}

std::optional<ClientInfo> Store::find_client(const std::string& key) {
  auto st = db_->prepare(std::string("SELECT ") + kClientColumns + " FROM clients WHERE mac = ? OR name = ?");
  st.bind(1, util::parse_mac(key).value_or("")).bind(2, key);
  if (st.step()) return read_client_row(st);
  return std::nullopt;
}

ClientInfo Store::client(const std::string& key) {
  if (auto c = find_client(key)) return *c;
  std::string known;
  int shown = 0;
  auto all = clients();
  for (const auto& c : all) {
    if (shown++ == 10) {
      known += ", …";
      break;
    }
    known += (known.empty() ? "" : ", ") + c.name + " (" + c.mac + ")";
  }
  throw Error("no client '" + key + "' (by MAC or name)" +
              (all.empty() ? std::string("; no client is registered yet ('imgtool client add')")
                           : "; clients: " + known));
}

ClientInfo Store::set_client(const std::string& key, const ClientChange& change) {
  Transaction tx(*db_);
  ClientInfo c = client(key);
  std::optional<std::string> line = change.cmdline;
  check_client_fields("client " + c.mac, change.name, change.image, line && !line->empty() ? line : std::nullopt,
                      c.mac);
  if (change.name && *change.name != c.name) {
    if (auto m = maintenance_of_client(c.name)) {
      throw Error("client " + c.name + " is in a maintenance session of " + m->image +
                  " (its session is named after it); commit or discard it before renaming the client");
    }
    auto same_name = db_->prepare("SELECT mac FROM clients WHERE name = ?");
    same_name.bind(1, *change.name);
    if (same_name.step()) {
      throw Error("client " + c.mac + ": the name '" + *change.name + "' is taken by " + same_name.text(0));
    }
    c.name = *change.name;
  }
  if (change.image && *change.image != c.image) {
    if (c.group) {
      throw Error("client " + c.name + " is in group '" + *c.group + "', which decides its image; change the group's "
                  "('imgtool client group set " + *c.group + " --image …') or take the client out ('--group none')");
    }
    c.image = *change.image;
    c.pin.reset();  // a version number of the old image means nothing for the new one
  }
  if (line) c.cmdline = line->empty() ? std::nullopt : line;
  if (change.cache_quota) c.cache_quota = *change.cache_quota ? change.cache_quota : std::nullopt;
  std::optional<int64_t> quota;
  if (c.cache_quota) quota = static_cast<int64_t>(*c.cache_quota);
  if (change.boot_mode) c.boot_mode = *change.boot_mode;
  db_->prepare("UPDATE clients SET name = ?, image = ?, cmdline = ?, cache_quota = ?, boot_mode = ?, pin = ? WHERE mac = ?")
      .bind(1, c.name).bind(2, c.image).bind(3, c.cmdline).bind(4, quota).bind(5, boot_mode_column(c.boot_mode))
      .bind(6, c.pin).bind(7, c.mac).run();
  tx.commit();
  return c;
}

void Store::remove_client(const std::string& key) {
  Transaction tx(*db_);
  ClientInfo c = client(key);
  if (auto m = maintenance_of_client(c.name)) {
    throw Error("client " + c.name + " is in a maintenance session of " + m->image +
                "; commit or discard it ('imgtool maintenance discard " + m->image + "') before removing the client");
  }
  db_->prepare("DELETE FROM clients WHERE mac = ?").bind(1, c.mac).run();
  tx.commit();
}

}  // namespace bootfleet::store
