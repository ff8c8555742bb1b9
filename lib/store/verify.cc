// verify: recomputes the block digests of versions from their files and
// compares them with the catalog's, and checks each chain's structure.
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

// Which versions: one version (with its whole chain, since its content
// depends on it), one image, or everything.
std::vector<VersionInfo> versions_to_verify(Store& s, const std::optional<VersionRef>& ref) {
  std::vector<VersionInfo> out;
  if (ref && (ref->number || ref->explicit_active)) {
    VersionInfo v = s.version(*ref);
    std::map<int64_t, VersionInfo> by_number;
    for (auto& x : s.versions(v.image)) by_number[x.number] = x;
    for (std::optional<int64_t> n = v.number; n && by_number.count(*n); n = by_number[*n].parent) {
      out.insert(out.begin(), by_number[*n]);
    }
  } else if (ref) {
    out = s.versions(ref->image);
  } else {
    for (const auto& i : s.images()) {
      auto vs = s.versions(i.name);
      out.insert(out.end(), vs.begin(), vs.end());
    }
  }
  return out;
}

using Problem = std::function<void(const std::string&)>;

// The version's file as a chain, if its structure and its identity (unique
// id, size, parent or none) are the catalog's; else null, the problems told.
std::unique_ptr<vhd::Chain> open_checked(const VersionInfo& v, const std::string& path, const Problem& problem) {
  vhd::CheckReport structure = vhd::check(path);
  for (const auto& f : structure.files)
    for (const auto& p : f.problems) problem(f.path + ": " + p);
  if (!structure.clean()) return nullptr;
  std::unique_ptr<vhd::Chain> chain;
  try {
    chain = vhd::Chain::open(path);
  } catch (const Error& e) {
    problem(e.what());
    return nullptr;
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
    return nullptr;
  }
  return chain;
}

// Hashes the blocks of `chain` and compares them with `recorded`. With
// the parent's digests (the parent verified in this run), only the blocks
// the version's own file holds are read; the rest must equal the parent's.
void compare_block_digests(const VersionInfo& v, vhd::Chain& chain, const BlockDigests& recorded,
                           const std::optional<BlockDigests>& parent_digests, VerifyReport& report,
                           const std::function<void(uint64_t)>& hashed, const Problem& problem) {
  std::vector<bool> own(recorded.block_count(), !parent_digests.has_value());
  if (parent_digests) {
    for (const auto& run : chain.runs()) {
      if (run.layer != 0) continue;
      for (uint64_t b = run.offset / kDigestBlockSize; b * kDigestBlockSize < run.offset + run.length; ++b) own[b] = true;
    }
  }
  std::vector<uint8_t> buf(kDigestBlockSize);
  BlockDigests actual(v.size);
  for (uint32_t b = 0; b < recorded.block_count(); ++b) {
    uint32_t len = recorded.block_length(b);
    if (!own[b]) {
      if (auto d = parent_digests->get(b)) actual.set(b, *d);
      continue;
    }
    uint64_t off = uint64_t{b} * kDigestBlockSize;
    bool any = false;
    for (const auto& e : chain.extents(off, len)) any = any || e.data;
    if (any) {
      chain.read(off, buf.data(), len);
      actual.set_from_data(b, {buf.data(), len});
      report.bytes_hashed += len;
      hashed(len);
    }
    if (actual.get(b) != recorded.get(b)) {
      auto hex = [](const std::optional<util::Digest>& d) { return d ? util::digest_hex(*d) : std::string("(zeros)"); };
      problem("block " + std::to_string(b) + " (bytes " + std::to_string(off) + "-" + std::to_string(off + len - 1) +
              "): data hashes to " + hex(actual.get(b)) + ", the catalog recorded " + hex(recorded.get(b)));
    }
  }
}

}  // namespace

VerifyReport Store::verify(const std::optional<VersionRef>& ref,
                           const std::function<void(uint64_t, uint64_t)>& progress) {
  std::vector<VersionInfo> to_verify = versions_to_verify(*this, ref);
  VerifyReport report;
  uint64_t total = 0, done = 0;
  for (const auto& v : to_verify) total += v.stored_bytes;
  auto hashed = [&](uint64_t n) {
    done += n;
    if (progress) progress(std::min(done, total), total);
  };
  std::set<std::pair<std::string, int64_t>> verified_ok;

  for (const auto& v : to_verify) {
    report.checked.push_back(v.image + "@" + std::to_string(v.number));
    size_t problems_before = report.problems.size();
    Problem problem = [&](const std::string& msg) { report.problems.push_back({v.image, v.number, msg}); };
    std::unique_ptr<vhd::Chain> chain = open_checked(v, path_of(v), problem);
    if (!chain) continue;
    BlockDigests recorded;
    try {
      recorded = digests(v);
    } catch (const Error& e) {
      problem(e.what());
      continue;
    }
    std::optional<BlockDigests> parent_digests;
    if (v.parent && verified_ok.count({v.image, *v.parent})) {
      parent_digests = digests(version({v.image, *v.parent, false}));
    }
    compare_block_digests(v, *chain, recorded, parent_digests, report, hashed, problem);
    if (util::digest_hex(recorded.disk_digest()) != v.disk_digest) {
      problem("disk digest recorded as " + v.disk_digest + " but the block digests give " +
              util::digest_hex(recorded.disk_digest()));
    }
    if (report.problems.size() == problems_before) verified_ok.insert({v.image, v.number});
  }
  return report;
}

}  // namespace bootfleet::store
