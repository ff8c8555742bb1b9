// imgtool push IMAGE[@N] --server URL: uploads the versions a bootsrv lacks.
//
// Design note. Versions are compared by number and disk digest: the server's
// N must be ours (same digest) or absent, so push never forks an image's
// history. Each missing version goes up as what the server can check on its
// own: a differencing VHD on N-1 (the server attaches its own N-1), or the
// dynamic VHD of version 1, with every block digest and the disk digest, so
// the server verifies all of it before committing. Our own version file is
// sent when it already is that (a differencing file on N-1); otherwise (a
// version stored as a new base) a patch holding only the blocks whose
// digests changed is written to a temporary file first. A cut connection is
// resumed from what the server says it received, three times at most.
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>

#include <chrono>
#include <filesystem>
#include <iomanip>
#include <iostream>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <thread>

#include "api/paths.h"
#include "api/upload.h"
#include "cli.h"
#include "util/error.h"
#include "util/file.h"
#include "util/progress.h"
#include "util/sha256.h"
#include "util/size.h"

namespace bootfleet::imgtool {

using nlohmann::json;
using util::Error;

namespace {

constexpr int kUploadAttempts = 3;
constexpr int kBusyWaits = 120;
constexpr auto kBusyWait = std::chrono::milliseconds(500);

// A file removed when the push of one version ends, however it ends.
struct TempFile {
  std::string path;
  ~TempFile() {
    if (!path.empty()) ::unlink(path.c_str());
  }
};

struct Payload {
  std::string file;  // the VHD to send
  uint64_t size = 0;
  TempFile temporary;
};

// What goes up for version v: its own file, or a patch on v-1 made from
// the blocks whose digests differ.
void choose_payload(store::Store& s, const store::VersionInfo& v, Payload& payload) {
  bool sendable = v.number == 1 ? !v.parent : (v.parent && *v.parent == v.number - 1);
  if (sendable) {
    payload.file = s.path_of(v);
    payload.size = std::filesystem::file_size(payload.file);
    return;
  }
  if (v.number == 1) throw Error(v.image + "@1 has a parent; cannot push it");
  payload.temporary.path = (std::filesystem::temp_directory_path() /
                            ("imgtool-push-" + std::to_string(::getpid()) + "-" + std::to_string(v.number) + ".vhd"))
                               .string();
  s.write_patch({v.image, v.number, false}, v.number - 1, payload.temporary.path, /*replace=*/true);
  payload.file = payload.temporary.path;
  payload.size = std::filesystem::file_size(payload.file);
}

// The declaration of version v (api/upload.h, the type the server parses).
api::UploadDeclaration describe(store::Store& s, const store::VersionInfo& v, const Payload& payload,
                                const std::optional<std::string>& parent_digest) {
  api::UploadDeclaration d;
  d.image = v.image;
  d.version = v.number;
  if (v.number > 1) d.parent = v.number - 1;
  d.parent_digest = parent_digest;
  d.size = v.size;
  d.file_size = payload.size;
  d.disk_digest = v.disk_digest;
  auto digests = s.digests(v);
  for (uint32_t b = 0; b < digests.block_count(); ++b) {
    if (auto digest = digests.get(b)) d.block_digests.emplace_back(b, util::digest_hex(*digest));
  }
  for (const auto& name : s.artifacts(v)) {
    std::string path = s.artifact_path(v, name);
    d.artifacts.push_back({name, std::filesystem::file_size(path), util::file_sha256_hex(path)});
  }
  d.message = v.message;
  d.created_by = v.created_by;
  d.source = v.source;
  d.recipe = v.recipe;
  d.recipe_hash = v.recipe_hash;
  return d;
}

// The byte ranges of `file` worth sending: everything but runs of zeros of
// kZeroRun bytes or more, which a sparse upload skips (the server reads a
// gap as zeros). A VHD allocates whole 2 MiB blocks, so a patch that
// changed part of a block holds zeros for the rest: not sending them halves
// a scattered patch.
constexpr size_t kZeroRun = 64 * 1024;

std::vector<std::pair<uint64_t, uint64_t>> data_runs(const std::string& file, uint64_t size) {
  std::vector<std::pair<uint64_t, uint64_t>> runs;  // [begin, end)
  util::UniqueFd fd = util::open_file(file, O_RDONLY);
  std::vector<uint8_t> buffer(4 << 20);
  for (uint64_t at = 0; at < size;) {
    size_t n = static_cast<size_t>(std::min<uint64_t>(buffer.size(), size - at));
    util::pread_full(fd.get(), buffer.data(), n, at, file);
    for (size_t chunk = 0; chunk < n; chunk += kZeroRun) {
      size_t length = std::min(kZeroRun, n - chunk);
      bool zero = std::all_of(buffer.begin() + chunk, buffer.begin() + chunk + length, [](uint8_t b) { return !b; });
      if (zero) continue;
      uint64_t begin = at + chunk, end = begin + length;
      if (!runs.empty() && runs.back().second == begin) runs.back().second = end;
      else runs.emplace_back(begin, end);
    }
    at += n;
  }
  return runs;
}

// Sends the disk's data runs from what the server has, resuming after a cut
// connection (three times) or while another push of the same version is
// writing to the same upload (409 busy; we wait for it, a minute at most).
// Returns the bytes sent.
uint64_t send_disk(remote::Client& server, const std::string& id, const Payload& payload, uint64_t received,
                   util::Progress& progress) {
  auto runs = data_runs(payload.file, payload.size);
  uint64_t sent_total = 0;
  int cuts = 0, waits = 0;
  while (received < payload.size) {
    try {
      for (const auto& [begin, end] : runs) {
        if (end <= received) continue;
        uint64_t from = std::max(begin, received);
        server.put_file(api::path(api::route::kUploadDisk, {id}) + "?offset=" + std::to_string(from), payload.file, from,
                        end - from, [&](uint64_t sent) { progress.update(from + sent); });
        sent_total += end - from;
        received = end;
      }
      if (received < payload.size) {  // trailing zeros: say where the file ends
        server.put_file(api::path(api::route::kUploadDisk, {id}) + "?offset=" + std::to_string(payload.size), payload.file,
                        payload.size, 0);
        received = payload.size;
      }
      return sent_total;
    } catch (const remote::RemoteError& e) {
      if (e.status() == 0 && ++cuts < kUploadAttempts) {
        std::cerr << "push: " << e.what() << "; resuming (attempt " << cuts + 1 << " of " << kUploadAttempts << ")\n";
      } else if (e.status() == 409 && ++waits < kBusyWaits) {
        std::this_thread::sleep_for(kBusyWait);  // the offset moved or another push is writing
      } else {
        throw;
      }
      auto state = server.get_if_exists(api::path(api::route::kUpload, {id}));
      if (!state) return sent_total;  // committed by the push that shared it; the caller checks the version
      received = api::UploadState::from_json(*state).received;
    }
  }
  return sent_total;
}

// Commits the upload; true when this push stored it, false when the push
// sharing the upload did (the version is then there with our digest).
bool commit(remote::Client& server, const std::string& id, const store::VersionInfo& v) {
  std::string version_path = api::path(api::route::kVersion, {v.image, std::to_string(v.number)});
  for (int waits = 0;; ++waits) {
    try {
      server.post(api::path(api::route::kUploadCommit, {id}), json::object());
      return true;
    } catch (const remote::RemoteError& e) {
      if ((e.status() != 404 && e.status() != 409) || waits >= kBusyWaits) throw;
      auto there = server.get_if_exists(version_path);
      if (there && there->value("disk_digest", std::string()) == v.disk_digest) return false;
      if (e.status() == 404) throw;  // gone, and not stored: expired or aborted
      std::this_thread::sleep_for(kBusyWait);
    }
  }
}

// Uploads one version; returns the bytes sent.
uint64_t upload(remote::Client& server, store::Store& s, const store::VersionInfo& v,
                const std::optional<std::string>& parent_digest, bool& raced) {
  Payload payload;
  choose_payload(s, v, payload);
  api::UploadDeclaration meta = describe(s, v, payload, parent_digest);
  std::string ref = v.image + "@" + std::to_string(v.number);
  json answer = server.post(api::path(api::route::kUploads, {v.image}), meta.to_json());
  if (answer.value("exists", false)) {  // another push got there first, with the same content
    raced = true;
    return 0;
  }
  api::UploadState state = api::UploadState::from_json(answer);
  const std::string& id = state.upload;
  std::set<std::string> have(state.artifacts_received.begin(), state.artifacts_received.end());
  uint64_t artifact_bytes = 0;
  for (const auto& a : meta.artifacts) artifact_bytes += a.size;

  auto progress = util::Progress::for_terminal("push " + ref, payload.size + artifact_bytes);
  uint64_t disk_bytes = send_disk(server, id, payload, state.received, progress);
  uint64_t done = payload.size, artifact_sent = 0;
  for (const auto& a : meta.artifacts) {
    if (!have.count(a.name)) {
      server.put_file(api::path(api::route::kUploadArtifact, {id, a.name}), s.artifact_path(v, a.name), 0, a.size,
                      [&](uint64_t sent) { progress.update(done + sent); });
      artifact_sent += a.size;
    }
    done += a.size;
  }
  progress.finish();
  if (!commit(server, id, v)) {
    raced = true;
    return 0;
  }
  return disk_bytes + artifact_sent;
}

}  // namespace

int cmd_push(const std::vector<std::string>& args) {
  CommandSpec spec{"push", "IMAGE[@N] [--server URL] [--token-file F] [--ca-file F] [--json]",
                   "Upload the versions of IMAGE (up to N) that a boot server lacks, oldest first.",
                   "A version the server has with the same disk digest is skipped; one it has with\n"
                   "another digest stops the push with both digests named (the histories forked).\n"
                   "Each version goes up as a differencing VHD on the one before it (version 1 as\n"
                   "the whole dynamic VHD) with its kernel and initrd, and the server checks every\n"
                   "block digest before committing it. A broken connection is resumed. Nothing is\n"
                   "published: use 'imgtool publish IMAGE@N --server URL'. Exit 0 when the server\n"
                   "has every version up to N, 2 on any error."};
  auto options = base_options();
  std::string store_dir, ref_text;
  ServerFlags server_flags;
  bool as_json = false;
  add_store_option(options, store_dir);
  add_server_options(options, server_flags);
  options.add_options()("version", po::value(&ref_text)->required(), "IMAGE or IMAGE@N")(
      "json", po::bool_switch(&as_json), "print what was done as JSON");
  po::positional_options_description pos;
  pos.add("version", 1);
  po::variables_map vm;
  if (!parse_command_line(spec, options, pos, args, vm)) return kExitOk;
  auto ref = store::parse_version_ref(ref_text);
  if (ref.explicit_active) throw Error("push takes IMAGE or IMAGE@N, not @active");
  auto server = connect_server(server_flags);
  auto s = open_store(store_dir);
  auto local = s->versions(ref.image);
  if (local.empty()) throw Error("image '" + ref.image + "' has no versions in this store");
  int64_t up_to = ref.number ? *ref.number : local.back().number;
  s->version({ref.image, up_to, false});  // names the versions there are when N is not one

  std::map<int64_t, std::string> remote_digests;
  bool image_known = false;
  // Named, not iterated in place: a range-for over a member of a temporary
  // reads freed memory before C++23.
  const json images = server->get(api::path(api::route::kImages));
  for (const auto& image : images.at("images")) {
    if (image.at("name") == ref.image) image_known = true;
  }
  if (image_known) {
    const json versions = server->get(api::path(api::route::kVersions, {ref.image}));
    for (const auto& v : versions.at("versions")) {
      remote_digests[v.at("number").get<int64_t>()] = v.at("disk_digest").get<std::string>();
    }
  }

  json report = json::array();
  uint64_t total_sent = 0;
  for (const auto& v : local) {
    if (v.number > up_to) break;
    std::string name = v.image + "@" + std::to_string(v.number);
    auto there = remote_digests.find(v.number);
    if (there != remote_digests.end()) {
      if (there->second != v.disk_digest) {
        throw Error(name + " differs on " + server->server() + ": disk digest " + there->second + " there, " +
                    v.disk_digest + " here; the histories have forked, so nothing more is pushed");
      }
      if (!as_json) std::cout << name << ": on the server already (same digest), skipped\n";
      report.push_back({{"version", v.number}, {"action", "skipped"}, {"bytes_sent", 0}});
      continue;
    }
    std::optional<std::string> parent_digest;
    if (v.number > 1) {
      auto parent = remote_digests.find(v.number - 1);
      if (parent == remote_digests.end()) {
        throw Error(server->server() + " lacks " + v.image + "@" + std::to_string(v.number - 1) + ", the parent of " +
                    name + ", and this store cannot provide it (pruned here?)");
      }
      parent_digest = parent->second;
    }
    auto started = std::chrono::steady_clock::now();
    bool raced = false;
    uint64_t sent = 0;
    try {
      sent = upload(*server, *s, v, parent_digest, raced);
    } catch (const remote::RemoteError& e) {
      // Another push of the same version may have shared our upload and
      // committed it first: then the server holds exactly what we meant to send.
      if (e.status() != 404 && e.status() != 409) throw;
      auto there_now = server->get_if_exists(api::path(api::route::kVersion, {v.image, std::to_string(v.number)}));
      if (!there_now || there_now->value("disk_digest", std::string()) != v.disk_digest) throw;
      raced = true;
    }
    double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
    total_sent += sent;
    remote_digests[v.number] = v.disk_digest;
    if (!as_json) {
      if (raced) std::cout << name << ": another push stored it meanwhile (same digest), skipped\n";
      else std::cout << name << ": uploaded " << util::format_size(sent) << " in " << std::fixed
                     << std::setprecision(1) << seconds << " s, verified and stored by the server\n";
    }
    report.push_back({{"version", v.number}, {"action", raced ? "skipped" : "uploaded"}, {"bytes_sent", sent},
                      {"seconds", seconds}});
  }
  if (as_json) {
    std::cout << json{{"server", server->server()}, {"image", ref.image}, {"up_to", up_to}, {"versions", report},
                      {"bytes_sent", total_sent}}
                     .dump(2)
              << "\n";
  } else {
    std::cout << server->server() << " has " << ref.image << " up to @" << up_to << " (" << util::format_size(total_sent)
              << " sent)\n";
  }
  return kExitOk;
}

}  // namespace bootfleet::imgtool
