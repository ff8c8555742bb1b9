// What is kept and what goes: prune (versions no longer needed), removing
// one version, and gc (files and rows nothing refers to). prune decides
// what is never deleted (the active version and rollback target, leases,
// channels, pins, schedules, a maintenance session's base, and the parents
// of all of them) inside its write transaction, so a publish committed by
// another process meanwhile cannot lose its version.
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

}  // namespace bootfleet::store
