#include "uploads.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>

#include "api_error.h"
#include "json_body.h"
#include "store/digests.h"
#include "util/error.h"
#include "util/file.h"
#include "util/log.h"
#include "util/names.h"
#include "util/sha256.h"
#include "util/size.h"
#include "util/uuid.h"
#include "vhd/chain.h"
#include "vhd/check.h"
#include "vhd/format.h"
#include "vhd/vhd_file.h"

namespace bootfleet::bootsrv {

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

constexpr size_t kPiece = 1 << 20;  // bodies move to disk in pieces of this size

// The rest of a request's body, to `fd` from offset `at` on, in whole
// pieces; `written` hears of each piece once it is on disk, so a client that
// leaves mid-body keeps what was written before. Returns the bytes written.
uint64_t body_to_file(http::Body& body, int fd, uint64_t at, const std::string& path,
                      const std::function<void(const uint8_t*, size_t)>& written) {
  std::vector<uint8_t> piece(std::min<uint64_t>(kPiece, std::max<uint64_t>(body.length(), 1)));
  uint64_t total = 0;
  while (body.remaining() > 0) {
    size_t want = static_cast<size_t>(std::min<uint64_t>(piece.size(), body.remaining())), got = 0;
    while (got < want) got += body.read(piece.data() + got, want - got);
    util::pwrite_full(fd, piece.data(), got, at + total, path);
    total += got;
    written(piece.data(), got);
  }
  return total;
}

// "abcdef012345…" for messages: enough to tell digests apart.
std::string short_digest(const std::string& hex) { return hex.size() > 12 ? hex.substr(0, 12) + "…" : hex; }
std::string short_digest(const std::optional<util::Digest>& d) {
  return d ? short_digest(util::digest_hex(*d)) : std::string("zeros");
}

uint64_t free_bytes(const std::string& dir) {
  struct statvfs st {};
  if (::statvfs(dir.c_str(), &st) != 0) throw util::errno_error("statvfs " + dir);
  return static_cast<uint64_t>(st.f_bavail) * st.f_frsize;
}

dev_t device_of(const std::string& dir) {
  struct stat st {};
  if (::stat(dir.c_str(), &st) != 0) throw util::errno_error("stat " + dir);
  return st.st_dev;
}

// The version the server already has under d's number with d's disk
// digest (a retry of a push that got there), if any; 409 if it has another.
std::optional<store::VersionInfo> find_same(const UploadDeclaration& d, const std::vector<store::VersionInfo>& versions) {
  for (const auto& v : versions) {
    if (v.number != d.version) continue;
    if (v.disk_digest == d.disk_digest) return v;
    throw ApiError(409, d.image + "@" + std::to_string(d.version) + " is already on the server with disk digest " +
                            v.disk_digest + "; this push declares " + d.disk_digest +
                            " (a different disk under the same number)");
  }
  return std::nullopt;
}

// The server's version d goes on (null for a version 1), after checking
// that d is the next version and that its parent is the server's: 409
// naming what the server has, 400 for a base of a size no VHD has.
const store::VersionInfo* parent_for(const UploadDeclaration& d, const std::vector<store::VersionInfo>& versions) {
  const std::string ref = d.image + "@" + std::to_string(d.version);
  int64_t latest = versions.empty() ? 0 : versions.back().number;
  auto have = [&]() {
    if (versions.empty()) return std::string("the server has no version of ") + d.image;
    return "the server has " + d.image + "@" + std::to_string(versions.front().number) + " to @" +
           std::to_string(latest);
  };
  const store::VersionInfo* parent = nullptr;
  for (const auto& v : versions)
    if (d.parent && v.number == *d.parent) parent = &v;
  if (d.parent && !parent) {
    throw ApiError(409, "server lacks " + d.image + "@" + std::to_string(*d.parent) + "; push it first (" + have() +
                            ")");
  }
  if (d.version != latest + 1) {
    throw ApiError(409, ref + " cannot be added: " + have() + ", so the next version is @" +
                            std::to_string(latest + 1));
  }
  if (parent) {
    if (parent->disk_digest != *d.parent_digest) {
      throw ApiError(409, d.image + "@" + std::to_string(parent->number) + " differs: the server's has disk digest " +
                              parent->disk_digest + ", the client's " + *d.parent_digest +
                              " (the two stores hold different versions under that number)");
    }
    if (parent->size != d.size) {
      throw ApiError(409, ref + " declares " + std::to_string(d.size) + " bytes; " + d.image + "@" +
                              std::to_string(parent->number) + " on the server is " + std::to_string(parent->size) +
                              " (versions of an image keep its size)");
    }
  } else if (vhd::round_up_to_geometry(d.size) != d.size) {
    throw ApiError(400, ref + ": size " + std::to_string(d.size) + " is not a whole number of VHD cylinders (" +
                            std::to_string(vhd::round_up_to_geometry(d.size)) + " would be)");
  }
  return parent;
}

std::string unknown(const std::string& id) { return "upload " + id + " expired or unknown; start again"; }

}  // namespace

void check_append(const std::string& upload, uint64_t received, uint64_t file_size, uint64_t offset,
                  uint64_t length) {
  // Forward offsets are a sparse upload: the bytes skipped are zeros. Going
  // back is refused: what was received is never rewritten.
  if (offset < received) {
    throw ApiError(409,
                   "upload " + upload + " has " + std::to_string(received) + " bytes; send offset=" +
                       std::to_string(received) + " (or beyond it, the bytes skipped being zeros), not " +
                       std::to_string(offset),
                   {{"received", received}});
  }
  if (offset > file_size || length > file_size - offset) {
    throw ApiError(400, "upload " + upload + ": " + std::to_string(length) + " bytes at offset " +
                            std::to_string(offset) + " go past the declared file_size " + std::to_string(file_size));
  }
}

Uploads::Uploads(serve::StoreExports& exports, UploadOptions options)
    : exports_(exports), options_(std::move(options)) {
  fs::create_directories(options_.dir);
  // Unfinished uploads of an earlier run are dropped: clients start again.
  for (const auto& entry : fs::directory_iterator(options_.dir)) {
    std::error_code ec;
    fs::remove_all(entry.path(), ec);
    util::log_line("upload " + entry.path().filename().string() + " dropped: left by an earlier run of bootsrv");
  }
}

size_t Uploads::open_count() {
  std::lock_guard lock(mutex_);
  return uploads_.size();
}

void Uploads::touch(Upload& u) {
  std::lock_guard lock(mutex_);
  u.touched = std::chrono::steady_clock::now();
  u.touched_wall = std::chrono::system_clock::now();
}

json Uploads::state_of(const Upload& u) {
  api::UploadState state;
  state.upload = u.id;
  state.image = u.declaration.image;
  state.version = u.declaration.version;
  state.received = u.received;
  state.file_size = u.declaration.file_size;
  state.artifacts_received.assign(u.artifacts_received.begin(), u.artifacts_received.end());
  state.expires_at = static_cast<int64_t>(std::chrono::system_clock::to_time_t(u.touched_wall + options_.ttl));
  return state.to_json();
}

std::shared_ptr<Uploads::Upload> Uploads::find(const std::string& id) {
  std::shared_ptr<Upload> u;
  {
    std::lock_guard lock(mutex_);
    auto it = uploads_.find(id);
    if (it == uploads_.end()) throw ApiError(404, unknown(id));
    u = it->second;
  }
  // Expired but not yet swept: gone now, as the housekeeping would have it.
  if (std::chrono::steady_clock::now() - u->touched > options_.ttl) {
    std::unique_lock writer(u->writer, std::try_to_lock);
    if (writer.owns_lock()) {
      remove(u);
      util::log_line("upload " + id + " (" + u->declaration.image + "@" + std::to_string(u->declaration.version) +
                     ") expired");
      throw ApiError(404, unknown(id));
    }
  }
  return u;
}

void Uploads::remove(const std::shared_ptr<Upload>& u) {
  {
    std::lock_guard lock(mutex_);
    u->gone = true;
    uploads_.erase(u->id);
  }
  std::error_code ec;
  fs::remove_all(u->dir, ec);
}

// Requests on one upload take turns by try-lock, never by waiting: a second
// request while one is working is a client's mistake (or a retry racing its
// own original), and 409 says so at once instead of holding a connection.
std::shared_ptr<Uploads::Upload> Uploads::take_turn(const std::string& id, std::unique_lock<std::mutex>& writer) {
  auto u = find(id);
  writer = std::unique_lock(u->writer, std::try_to_lock);
  if (!writer.owns_lock()) throw ApiError(409, "upload " + id + " is busy with another request; one at a time");
  if (u->gone) throw ApiError(404, unknown(id));
  return u;
}

std::vector<std::string> Uploads::expire() {
  std::vector<std::shared_ptr<Upload>> old;
  auto now = std::chrono::steady_clock::now();
  {
    std::lock_guard lock(mutex_);
    for (auto& [id, u] : uploads_)
      if (now - u->touched > options_.ttl) old.push_back(u);
  }
  std::vector<std::string> ids;
  for (auto& u : old) {
    std::unique_lock writer(u->writer, std::try_to_lock);
    if (!writer.owns_lock()) continue;  // a request is working on it: not idle
    remove(u);
    ids.push_back(u->id);
  }
  return ids;
}

// Room for the file and artifacts in UPLOAD_DIR, and for the version the
// import writes (about the file again) in the store, after what the uploads
// already open will still write: refused (507) before any byte. When both
// are one filesystem, one sum is compared with its free space. mutex_ held.
void Uploads::check_room(const UploadDeclaration& d, const std::string& ref, const std::string& store_dir) {
  auto total = [](const UploadDeclaration& decl) {
    uint64_t bytes = decl.file_size;
    for (const auto& a : decl.artifacts) bytes += a.size;
    return bytes;
  };
  const uint64_t upload_need = total(d), store_need = upload_need;
  uint64_t upload_promised = 0, store_promised = 0;
  for (const auto& [id, open] : uploads_) {
    const uint64_t all = total(open->declaration);
    uint64_t written = std::min(open->received, open->declaration.file_size);
    for (const auto& a : open->declaration.artifacts)
      if (open->artifacts_received.count(a.name)) written += a.size;
    upload_promised += all - std::min(written, all);
    store_promised += all;
  }
  uint64_t upload_free = free_bytes(options_.dir), store_free = free_bytes(store_dir);
  bool same_fs = device_of(options_.dir) == device_of(store_dir);
  uint64_t promised = same_fs ? upload_promised + store_promised : upload_promised;
  auto left = [](uint64_t free, uint64_t promised) { return free > promised ? free - promised : 0; };
  if (same_fs ? upload_need + store_need > left(upload_free, promised)
              : (upload_need > left(upload_free, upload_promised) || store_need > left(store_free, store_promised))) {
    std::string others = uploads_.empty() ? ""
                         : " (" + util::format_size(same_fs ? promised : upload_promised) + " of it promised to " +
                               std::to_string(uploads_.size()) + " open upload" + (uploads_.size() == 1 ? "" : "s") + ")";
    throw ApiError(507, ref + " needs about " + util::format_size(same_fs ? upload_need + store_need : upload_need) +
                            " (the file, its artifacts" + (same_fs ? " and the imported version" : "") + ") but " +
                            options_.dir + " has " + util::format_size(upload_free) + " free" + others +
                            (same_fs ? "" : "; the store needs " + util::format_size(store_need) + " and has " +
                                                util::format_size(store_free) + " free"));
  }
}

Uploads::Created Uploads::create(const UploadDeclaration& d, const std::string& by) {
  const std::string ref = d.image + "@" + std::to_string(d.version);
  std::lock_guard lock(mutex_);  // one creation at a time: resume and the limit are decided together
  for (auto& [id, u] : uploads_) {
    if (u->declaration.same_push(d) && std::chrono::steady_clock::now() - u->touched <= options_.ttl) {
      u->touched = std::chrono::steady_clock::now();
      u->touched_wall = std::chrono::system_clock::now();
      return {200, state_of(*u), std::nullopt};
    }
  }
  // What the server has decides whether this push makes sense.
  struct Known {
    std::vector<store::VersionInfo> versions;
    std::string store_dir;
  };
  Known known = exports_.with_store([&](store::Store& s) {
    Known k;
    k.store_dir = s.dir();
    for (const auto& i : s.images())
      if (i.name == d.image) k.versions = s.versions(d.image);
    return k;
  });
  if (auto there = find_same(d, known.versions)) return {200, {{"exists", true}}, *there};
  const store::VersionInfo* parent = parent_for(d, known.versions);
  if (uploads_.size() >= options_.max_uploads) {
    throw ApiError(503, std::to_string(uploads_.size()) + " uploads are open, the most this server takes (max_uploads); "
                                                          "try again when one has finished");
  }
  check_room(d, ref, known.store_dir);

  auto u = std::make_shared<Upload>();
  util::Uuid raw = util::random_uuid();
  for (uint8_t b : raw) {
    static const char kHex[] = "0123456789abcdef";
    u->id += kHex[b >> 4];
    u->id += kHex[b & 15];
  }
  u->declaration = d;
  u->dir = options_.dir + "/" + u->id;
  u->touched = std::chrono::steady_clock::now();
  u->touched_wall = std::chrono::system_clock::now();
  fs::create_directories(u->dir + "/artifacts");
  {
    json meta = {{"declaration", d.to_json()}, {"by", by}};
    std::ofstream(u->dir + "/upload.json") << meta.dump(2) << "\n";
    util::open_file(u->dir + "/disk.vhd", O_WRONLY | O_CREAT | O_TRUNC, 0600);
  }
  // Artifacts the parent already has, byte for byte (an update rarely
  // changes the kernel and initrd), are taken from it: the client sees them
  // as received and does not send them again.
  if (parent) {
    for (const auto& a : d.artifacts) {
      auto source = exports_.with_store([&](store::Store& s) -> std::optional<std::string> {
        auto names = s.artifacts(*parent);
        if (std::find(names.begin(), names.end(), a.name) == names.end()) return std::nullopt;
        return s.artifact_path(*parent, a.name);
      });
      if (!source || fs::file_size(*source) != a.size || options_.sha256_of(*source) != a.sha256) continue;
      std::string target = u->dir + "/artifacts/" + a.name;
      std::error_code linked;
      fs::create_hard_link(*source, target, linked);  // store files are immutable: a link is a copy
      if (linked) fs::copy_file(*source, target, fs::copy_options::overwrite_existing);
      u->artifacts_received.insert(a.name);
    }
  }
  uploads_[u->id] = u;
  util::log_line("api " + by + ": upload " + u->id + " of " + ref + " started (" + util::format_size(d.file_size) +
                 ", " + std::to_string(d.artifacts.size()) + " artifacts, " +
                 std::to_string(u->artifacts_received.size()) + " of them the parent's)");
  return {201, state_of(*u), std::nullopt};
}

json Uploads::state(const std::string& id) {
  auto u = find(id);
  std::lock_guard lock(mutex_);
  return state_of(*u);
}

json Uploads::append(const std::string& id, uint64_t offset, http::Body& body) {
  std::unique_lock<std::mutex> writer;
  auto u = take_turn(id, writer);
  check_append(id, u->received, u->declaration.file_size, offset, body.length());
  std::string path = u->dir + "/disk.vhd";
  util::UniqueFd fd = util::open_file(path, O_WRONLY);
  if (offset > u->received) {
    // The skipped bytes must read as zeros: cut anything past what was
    // received (nothing should be there) and let the gap be a hole.
    if (::ftruncate(fd.get(), static_cast<off_t>(u->received)) != 0 ||
        ::ftruncate(fd.get(), static_cast<off_t>(offset)) != 0) {
      throw util::errno_error("upload " + id + ": extend " + path);
    }
    std::lock_guard lock(mutex_);
    u->received = offset;
  }
  struct Touch {
    Uploads& self;
    Upload& u;
    ~Touch() { self.touch(u); }
  } touch_at_end{*this, *u};
  // A client that leaves keeps the pieces written before: `received` says
  // where to go on. Only this request (it holds the turn) moves it.
  body_to_file(body, fd.get(), u->received, path, [&](const uint8_t*, size_t n) {
    std::lock_guard lock(mutex_);
    u->received += n;
  });
  std::lock_guard lock(mutex_);
  return {{"upload", id}, {"received", u->received}, {"file_size", u->declaration.file_size}};
}

json Uploads::put_artifact(const std::string& id, const std::string& name, http::Body& body) {
  std::unique_lock<std::mutex> writer;
  auto u = take_turn(id, writer);
  const UploadDeclaration::Artifact* declared = nullptr;
  std::string names;
  for (const auto& a : u->declaration.artifacts) {
    if (a.name == name) declared = &a;
    names += (names.empty() ? "" : ", ") + a.name;
  }
  if (!declared) {
    throw ApiError(404, "upload " + id + " declares no artifact '" + name + "'; it declares " +
                            (names.empty() ? std::string("none") : names));
  }
  if (body.length() != declared->size) {
    throw ApiError(400, "artifact '" + name + "' is declared with " + std::to_string(declared->size) +
                            " bytes; the request has " + std::to_string(body.length()));
  }
  std::string part = u->dir + "/artifacts/." + name + ".part", final = u->dir + "/artifacts/" + name;
  struct RemovePart {
    std::string path;
    ~RemovePart() { ::unlink(path.c_str()); }
  } remove_part{part};
  util::UniqueFd fd = util::open_file(part, O_WRONLY | O_CREAT | O_TRUNC, 0600);
  util::Sha256 hash;
  uint64_t at = body_to_file(body, fd.get(), 0, part, [&](const uint8_t* data, size_t n) { hash.update({data, n}); });
  touch(*u);
  std::string sha = util::digest_hex(hash.finish());
  if (sha != declared->sha256) {
    throw ApiError(422, "artifact '" + name + "' has sha256 " + sha + "; " + declared->sha256 +
                            " was declared (send it again)");
  }
  if (::rename(part.c_str(), final.c_str()) != 0) throw util::errno_error("rename " + part);
  std::lock_guard lock(mutex_);
  u->artifacts_received.insert(name);
  return {{"upload", id}, {"artifact", name}, {"size", at}, {"sha256", sha}};
}

void Uploads::abort(const std::string& id) {
  std::unique_lock<std::mutex> writer;
  auto u = take_turn(id, writer);
  remove(u);
}

std::vector<uint32_t> Uploads::verify(Upload& u, const store::VersionInfo* parent) {
  const UploadDeclaration& d = u.declaration;
  const std::string ref = d.image + "@" + std::to_string(d.version);
  std::string path = u.dir + "/disk.vhd";
  vhd::CheckedFile checked = vhd::check_file(path);
  if (!checked.problems.empty()) {
    std::string list;
    for (size_t i = 0; i < checked.problems.size() && i < 3; ++i) list += (i ? "; " : "") + checked.problems[i];
    throw ApiError(422, "the uploaded file of " + ref + " is not a sound VHD: " + list);
  }
  const char* want = parent ? "differencing" : "dynamic";
  if (checked.type != want) {
    throw ApiError(422, "the uploaded file of " + ref + " is a " + checked.type + " VHD; " +
                            (parent ? "a version over @" + std::to_string(parent->number) +
                                          " is a differencing VHD (imgtool export --diff-from)"
                                    : std::string("version 1 is a dynamic VHD")));
  }
  auto file = vhd::VhdFile::open(path);
  if (file->size() != d.size) {
    throw ApiError(422, "the uploaded file of " + ref + " has a virtual size of " + std::to_string(file->size()) +
                            " bytes; " + std::to_string(d.size) + " were declared");
  }
  std::unique_ptr<vhd::Chain> chain;
  std::unique_ptr<vhd::Chain> parent_chain;
  store::BlockDigests parent_digests(d.size);
  if (parent) {
    std::string parent_path = exports_.with_store([&](store::Store& s) { return s.path_of(*parent); });
    parent_digests = exports_.with_store([&](store::Store& s) { return s.digests(*parent); });
    parent_chain = vhd::Chain::open(parent_path);
    chain = vhd::Chain::over_parent(file, *parent_chain);
  } else {
    chain = vhd::Chain::from_file(file);
  }
  store::BlockDigests declared(d.size);
  for (const auto& [b, hex] : d.block_digests) declared.set(b, util::parse_digest_hex(hex, "block digest"));

  // The 2 MiB blocks the file holds data for: only these are read.
  std::vector<bool> held(declared.block_count());
  std::vector<uint32_t> held_list;
  for (uint32_t b = 0; b < file->block_count(); ++b) {
    if (!file->block_data_offset(b) || file->present_runs(b).empty()) continue;
    uint64_t start = uint64_t{b} * file->block_size();
    uint64_t end = std::min<uint64_t>(start + file->block_size(), d.size);
    for (uint64_t db = start / store::kDigestBlockSize; db * store::kDigestBlockSize < end && db < held.size(); ++db) {
      held[db] = true;
    }
  }
  store::BlockDigests computed(d.size);
  std::vector<uint8_t> data(store::kDigestBlockSize);
  for (uint32_t b = 0; b < held.size(); ++b) {
    if (!held[b]) {
      if (declared.get(b) != parent_digests.get(b)) {
        throw ApiError(422, "block " + std::to_string(b) + ": " + short_digest(declared.get(b)) +
                                " declared, but the upload does not hold the block and " +
                                (parent ? d.image + "@" + std::to_string(parent->number) + " has "
                                        : std::string("so it reads as ")) +
                                short_digest(parent_digests.get(b)));
      }
      continue;
    }
    held_list.push_back(b);
    uint32_t length = declared.block_length(b);
    chain->read(uint64_t{b} * store::kDigestBlockSize, data.data(), length);
    computed.set_from_data(b, {data.data(), length});
    if (computed.get(b) != declared.get(b)) {
      throw ApiError(422, "block " + std::to_string(b) + ": digest " + short_digest(computed.get(b)) +
                              " in the upload, " + short_digest(declared.get(b)) + " declared");
    }
  }
  std::string disk = util::digest_hex(declared.disk_digest());
  if (disk != d.disk_digest) {
    throw ApiError(422, "the declared block digests of " + ref + " give the disk digest " + disk + ", not the declared " +
                            d.disk_digest);
  }
  return held_list;
}

Uploads::Committed Uploads::commit(const std::string& id, const std::string& by) {
  std::unique_lock<std::mutex> writer;
  auto u = take_turn(id, writer);
  const UploadDeclaration& d = u->declaration;
  const std::string ref = d.image + "@" + std::to_string(d.version);
  // Incomplete: the client can still finish it, so it is kept.
  if (u->received != d.file_size) {
    throw ApiError(409,
                   "upload " + id + " of " + ref + " has " + std::to_string(u->received) + " of " +
                       std::to_string(d.file_size) + " bytes; send the rest from offset=" + std::to_string(u->received),
                   {{"received", u->received}});
  }
  for (const auto& a : d.artifacts) {
    if (!u->artifacts_received.count(a.name)) {
      throw ApiError(409, "upload " + id + " of " + ref + " lacks the artifact '" + a.name + "'; PUT it first");
    }
  }
  touch(*u);
  std::optional<store::VersionInfo> parent;
  if (d.parent) {
    try {
      parent = exports_.with_store([&](store::Store& s) { return s.version({d.image, d.parent, false}); });
    } catch (const store::NotFound& e) {
      remove(u);
      throw ApiError(409, "server lacks " + d.image + "@" + std::to_string(*d.parent) + " now (" + e.what() +
                              "); push it first");
    }
  }
  std::vector<uint32_t> held;
  try {
    held = verify(*u, parent ? &*parent : nullptr);
  } catch (const ApiError& e) {
    remove(u);
    util::log_line("api " + by + ": upload " + id + " of " + ref + " refused: " + e.what());
    throw;
  } catch (const util::Error& e) {
    remove(u);
    util::log_line("api " + by + ": upload " + id + " of " + ref + " refused: " + e.what());
    throw ApiError(422, std::string("the uploaded file of ") + ref + " cannot be read: " + e.what());
  }

  // The same steps as `imgtool import`, on a connection of our own: the
  // import may take a while and must not hold up boots on the shared one.
  auto file = vhd::VhdFile::open(u->dir + "/disk.vhd");
  std::unique_ptr<vhd::Chain> parent_chain, chain;
  if (parent) {
    parent_chain = vhd::Chain::open(exports_.with_store([&](store::Store& s) { return s.path_of(*parent); }));
    chain = vhd::Chain::over_parent(file, *parent_chain);
  } else {
    chain = vhd::Chain::from_file(file);
  }
  store::ImportOptions io;
  io.message = d.message;
  io.created_by = d.created_by.empty() ? "api:" + by : d.created_by;
  io.source = d.source;
  io.recipe = d.recipe;
  io.recipe_hash = d.recipe_hash;
  io.expect_number = d.version;
  if (parent) io.changed_since = std::make_pair(parent->number, held);
  if (!d.artifacts.empty()) io.artifacts_dir = u->dir + "/artifacts";
  store::ImportResult result;
  try {
    auto writer_store = store::Store::open(options_.store_dir);
    result = writer_store->import_disk(d.image, *chain, io);
  } catch (const store::VersionNumberTaken&) {
    // Another push of N committed first. The same disk: nothing is lost.
    remove(u);
    auto v = exports_.with_store([&](store::Store& s) -> std::optional<store::VersionInfo> {
      for (const auto& x : s.versions(d.image))
        if (x.number == d.version) return x;
      return std::nullopt;
    });
    if (v && v->disk_digest == d.disk_digest) return {200, *v};
    throw ApiError(409, ref + " was added by another push meanwhile" +
                            (v ? " with disk digest " + v->disk_digest : std::string()) + "; this upload (" +
                            d.disk_digest + ") was discarded");
  }
  remove(u);
  if (result.version.disk_digest != d.disk_digest) {
    // Cannot happen after verify(); if it does, say so loudly.
    util::log_line("api " + by + ": " + ref + " was imported with disk digest " + result.version.disk_digest +
                   " but " + d.disk_digest + " was declared: check it with imgtool verify");
    throw ApiError(500, ref + " was stored with disk digest " + result.version.disk_digest + ", not the declared " +
                            d.disk_digest + "; run imgtool verify on the server");
  }
  util::log_line("api " + by + ": upload " + id + " committed as " + ref + " (" + std::to_string(held.size()) +
                 " blocks held, " + util::format_size(result.version.file_size) + " stored)");
  return {201, result.version};
}

}  // namespace bootfleet::bootsrv
