// Writing versions into the store: import, squash (a new base of the same
// content) and patches (a differencing file of one version on another).
// The one path by which a version file enters the catalog is
// Store::write_version; its steps and its crash points are docs/store.md's.
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

namespace {

// What a new version will be, decided under the image's writer lock from
// the versions there are: its number, its parent (none: a new base) and
// its size.
struct VersionPlan {
  std::optional<VersionInfo> latest;
  std::optional<VersionInfo> parent;
  int64_t number = 1;
  bool new_base = true;
  bool resized = false;
  uint64_t size = 0;
};

VersionPlan plan_version(const std::string& image, const std::vector<VersionInfo>& existing, const vhd::Disk& disk,
                         const ImportOptions& options, bool squash) {
  VersionPlan plan;
  if (!existing.empty()) plan.latest = existing.back();
  const auto& latest = plan.latest;
  plan.number = latest ? latest->number + 1 : 1;
  if (options.expect_number && *options.expect_number != plan.number) {
    throw VersionNumberTaken(
        image + "@" + std::to_string(*options.expect_number) + " cannot be added: " +
            (latest ? "the image's latest version is @" + std::to_string(latest->number) + ", so the next is @" +
                          std::to_string(plan.number)
                    : std::string("the image has no version yet, so the next is @1")),
        latest ? std::optional<int64_t>(latest->number) : std::nullopt);
  }
  const std::string input = options.source ? *options.source + ": " : std::string();
  if (disk.size() == 0) {
    throw Error(input + "0 bytes: an empty file is not a disk (expected a raw disk, a VHD or a VHDX)");
  }
  // A raw file of the image's nominal size is its size: version 1 was
  // rounded up to whole CHS cylinders (docs/formats.md).
  const bool same_size = latest && (disk.size() == latest->size || vhd::round_up_to_geometry(disk.size()) == latest->size);
  plan.resized = latest && !squash && !same_size;
  if (plan.resized && !options.resize) {
    throw Error(input + "the disk is " + std::to_string(disk.size()) + " bytes (" + util::format_size(disk.size()) +
                ") but " + image + "@" + std::to_string(latest->number) + " is " + std::to_string(latest->size) +
                " bytes (" + util::format_size(latest->size) +
                "); versions of an image keep its size. Check the file, or say --resize to store it as a new base of "
                "the new size");
  }
  if (latest && !squash && !plan.resized && latest->depth < Store::kMaxChainDepth) {
    plan.parent = latest;
    plan.new_base = false;
  }
  // Every version of an image has the image's size, also a new base.
  // A resized one starts a new base of its own size.
  plan.size = latest && !plan.resized ? latest->size : vhd::round_up_to_geometry(disk.size());
  return plan;
}

// Writes `disk` to `tmp` as the planned version file (differencing on the
// parent, or a dynamic base), filling `digests` as blocks go by. Returns
// what convert wrote and how many blocks differ from the parent.
std::pair<vhd::ConvertResult, uint64_t> write_version_file(const vhd::Disk& disk, const std::string& tmp,
                                                           const std::string& final_path, const VersionPlan& plan,
                                                           const std::string& parent_path,
                                                           const BlockDigests& parent_digests, BlockDigests& digests,
                                                           const ImportOptions& options) {
  uint64_t changed = 0;
  vhd::ConvertOptions co;
  co.to = plan.parent ? vhd::OutputFormat::kVhdDiff : vhd::OutputFormat::kVhdDynamic;
  co.block_size = kDigestBlockSize;
  co.size = plan.size;
  if (plan.parent) co.parent = parent_path;
  co.final_path = final_path;  // written in tmp/, renamed into images/
  co.replace = true;
  co.progress = options.progress;
  if (plan.parent && options.changed_since && options.changed_since->first == plan.parent->number) {
    std::vector<bool> may_differ(digests.block_count());
    for (uint32_t b : options.changed_since->second)
      if (b < may_differ.size()) may_differ[b] = true;
    co.same_as_parent = [&, may_differ](uint32_t block) {
      if (may_differ[block]) return false;
      if (auto d = parent_digests.get(block)) digests.set(block, *d);
      return true;
    };
  }
  co.on_block = [&](uint32_t block, std::span<const uint8_t> data) {
    digests.set_from_data(block, data);
    bool same = digests.get(block) == parent_digests.get(block);
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
  if (plan.parent) {
    for (uint32_t b : BlockDigests::changed_blocks(parent_digests, digests)) {
      if (!digests.get(b)) ++changed;
    }
  } else {
    changed = digests.nonzero_blocks();
  }
  util::crash_point("import:after-write");
  return {written, changed};
}

// Renames the written file (and its artifacts) from tmp/ into images/,
// each rename made durable before the catalog row that names it exists.
void install_version_files(const std::string& tmp, const std::string& final_path, const std::string& tmp_artifacts,
                           const std::string& final_artifacts, bool has_artifacts) {
  if (::rename(tmp.c_str(), final_path.c_str()) != 0) {
    int err = errno;
    ::unlink(tmp.c_str());
    throw util::errno_error("rename " + tmp + " to " + final_path, err);
  }
  util::fsync_parent_dir(final_path);
  if (has_artifacts) {
    std::error_code ec;
    fs::remove_all(final_artifacts, ec);  // a leftover of a crashed import of this number
    if (::rename(tmp_artifacts.c_str(), final_artifacts.c_str()) != 0) {
      throw util::errno_error("rename " + tmp_artifacts + " to " + final_artifacts);
    }
    util::fsync_parent_dir(final_artifacts);
  }
  util::crash_point("import:after-rename");
}

}  // namespace

ImportResult Store::import_disk(const std::string& image, const vhd::Disk& disk, const ImportOptions& options) {
  validate_image_name(image);
  return write_version(image, disk, options, std::nullopt);
}

// The one way a version enters the store: plan under the image's writer
// lock, write the file in tmp/, rename it into images/, then one catalog
// transaction (the row and its digests, and the end of a maintenance
// session it commits). A crash between any two steps leaves no version or
// a whole one (cleanup() removes the leftovers); crash_point names each gap.
ImportResult Store::write_version(const std::string& image, const vhd::Disk& disk, const ImportOptions& options,
                                  std::optional<VersionInfo> squash_of) {
  util::FileLock lock = util::FileLock::try_acquire(lock_path(image));
  if (!lock.held()) {
    util::log_line("waiting for another writer of image '" + image + "' to finish…");
    lock = util::FileLock::acquire(lock_path(image));
  }
  // Under the lock: the latest version cannot change until we are done.
  std::vector<VersionInfo> existing;
  {
    auto st = db_->prepare("SELECT id FROM images WHERE name = ?");
    st.bind(1, image);
    if (st.step()) existing = versions(image);
  }
  const VersionPlan plan = plan_version(image, existing, disk, options, squash_of.has_value());
  const auto& latest = plan.latest;
  const auto& parent = plan.parent;

  BlockDigests parent_digests = parent ? digests(*parent) : BlockDigests();
  BlockDigests new_digests(plan.size);
  const std::string rel = "images/" + image + "/" + version_file_name(plan.number);
  const std::string final_path = dir_ + "/" + rel;
  const std::string tmp = dir_ + "/tmp/" + image + "@" + std::to_string(plan.number) + ".vhd";
  const std::string tmp_artifacts = dir_ + "/tmp/" + image + "@" + std::to_string(plan.number) + ".artifacts";
  struct RemoveTmpArtifacts {
    std::string path;
    ~RemoveTmpArtifacts() {
      std::error_code ec;
      fs::remove_all(path, ec);
    }
  } remove_tmp_artifacts{tmp_artifacts};
  if (!options.artifacts_dir.empty()) copy_artifacts(options.artifacts_dir, tmp_artifacts);
  fs::create_directories(dir_ + "/images/" + image);

  auto [written, changed] = write_version_file(disk, tmp, final_path, plan, parent ? path_of(*parent) : std::string(),
                                               parent_digests, new_digests, options);
  // Differencing on the latest version with no block changed, or (a new
  // base at the depth limit) the same whole-disk digest.
  bool same_as_latest = latest && (parent ? parent->number == latest->number && changed == 0
                                         : util::digest_hex(new_digests.disk_digest()) == latest->disk_digest);
  if (options.unless_same && latest && !squash_of && options.artifacts_dir.empty() && same_as_latest) {
    ::unlink(tmp.c_str());
    ImportResult same{*latest, false, 0, true};
    if (options.publish) {
      publish({image, latest->number, false}, options.created_by.empty() ? default_creator() : options.created_by);
    }
    return same;
  }
  install_version_files(tmp, final_path, tmp_artifacts, dir_ + "/" + artifacts_rel(rel), !options.artifacts_dir.empty());

  auto file = vhd::VhdFile::open(final_path);
  VersionInfo v;
  v.image = image;
  v.number = plan.number;
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
    record_version(v, new_digests, options);
  } catch (...) {
    ::unlink(final_path.c_str());
    throw;
  }
  util::crash_point("import:after-commit");

  ImportResult result{v, plan.new_base, changed};
  if (options.publish) publish({image, plan.number, false}, v.created_by);
  return result;
}

void Store::record_version(const VersionInfo& v, const BlockDigests& digests, const ImportOptions& options) {
  Transaction tx(*db_);
  int64_t id = image_id(v.image, /*create=*/true, v.created_at);
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
  auto blob = digests.encode();
  auto dig = db_->prepare("INSERT INTO block_digests (version_id, block_size, digests) VALUES (?, ?, ?)");
  dig.bind(1, version_id).bind(2, int64_t{kDigestBlockSize}).bind(3, std::span<const uint8_t>(blob)).run();
  if (options.ends_maintenance) {
    auto del = db_->prepare("DELETE FROM maintenance WHERE image_id = ? AND token = ? RETURNING client");
    del.bind(1, id).bind(2, *options.ends_maintenance);
    if (!del.step()) {
      throw Error(v.image + ": its maintenance session ended (committed or discarded) while this commit ran; "
                  "nothing was stored");
    }
    del.run();
  }
  util::crash_point("import:before-commit");
  tx.commit();
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

}  // namespace bootfleet::store
