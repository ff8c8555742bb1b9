#include "guest/inspect.h"

#include <guestfs.h>

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <fstream>
#include <map>
#include <set>
#include <sys/stat.h>

#include "util/error.h"

namespace bootfleet::guest {

namespace {

std::string take_string(char* s) {
  std::string out = s ? s : "";
  std::free(s);
  return out;
}

std::string optional_string(guestfs_h* g, char* (*fn)(guestfs_h*, const char*), const std::string& root) {
  char* s = fn(g, root.c_str());
  std::string out = s ? s : "";
  std::free(s);
  return out == "unknown" ? "" : out;
}

std::string type_of(uint64_t mode) {
  if (S_ISREG(mode)) return "file";
  if (S_ISDIR(mode)) return "directory";
  if (S_ISLNK(mode)) return "symlink";
  return "other";
}

struct Meta {
  uint64_t mode = 0, size = 0, uid = 0, gid = 0;
  int64_t mtime_sec = 0, mtime_nsec = 0;
};

// Every path under `root` (relative, "" excluded) with its lstat.
std::map<std::string, Meta> walk(Guest& guest, const std::string& root, const std::string& work_dir) {
  guestfs_h* g = guest.handle();
  std::string list = work_dir + "/find0-" + std::to_string(std::hash<std::string>{}(root));
  guest.check(guestfs_find0(g, root.c_str(), list.c_str()), "list the files under " + root);
  std::ifstream in(list, std::ios::binary);
  std::vector<std::string> names;
  for (std::string name; std::getline(in, name, '\0');) {
    // find0 may give names with or without a leading '/' (it differs
    // between libguestfs versions); lstatnslist wants them without.
    size_t start = name.find_first_not_of('/');
    if (start != std::string::npos) names.push_back(name.substr(start));
  }
  // lstatnslist answers for many names of one directory in one round
  // trip; batches keep each message well inside the protocol's limit.
  std::map<std::string, std::vector<std::string>> by_dir;  // "" or "a/b" -> names in it
  for (const auto& n : names) {
    auto slash = n.rfind('/');
    if (slash == std::string::npos) by_dir[""].push_back(n);
    else by_dir[n.substr(0, slash)].push_back(n.substr(slash + 1));
  }
  std::map<std::string, Meta> out;
  constexpr size_t kBatch = 500;
  for (const auto& [dir, entries] : by_dir) {
    std::string dir_path = dir.empty() ? root : root + "/" + dir;
    for (size_t i = 0; i < entries.size(); i += kBatch) {
      std::vector<const char*> batch;
      for (size_t j = i; j < std::min(entries.size(), i + kBatch); ++j) batch.push_back(entries[j].c_str());
      batch.push_back(nullptr);
      guestfs_statns_list* st = guestfs_lstatnslist(g, dir_path.c_str(), const_cast<char* const*>(batch.data()));
      if (!st) guest.fail("stat files in " + dir_path);
      for (uint32_t k = 0; k < st->len; ++k) {
        const struct guestfs_statns& s = st->val[k];
        if (s.st_ino == -1) continue;  // vanished
        std::string path = "/" + (dir.empty() ? "" : dir + "/") + entries[i + k];
        out[path] = {static_cast<uint64_t>(s.st_mode), static_cast<uint64_t>(s.st_size),
                     static_cast<uint64_t>(s.st_uid),  static_cast<uint64_t>(s.st_gid),
                     s.st_mtime_sec,                    s.st_mtime_nsec};
      }
      guestfs_free_statns_list(st);
    }
  }
  return out;
}

std::string lower(std::string s) {
  for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

bool is_hive(const std::string& path) {
  std::string p = lower(path);
  for (const char* h : {"/system32/config/software", "/system32/config/system", "/system32/config/sam",
                        "/system32/config/security", "/system32/config/default", "/ntuser.dat"}) {
    std::string suffix = h;
    if (p.size() >= suffix.size() && p.compare(p.size() - suffix.size(), suffix.size(), suffix) == 0) return true;
  }
  return false;
}

void diff_hives(Guest& guest, const std::string& path, const std::string& a, const std::string& b,
                const std::string& work_dir, std::vector<RegistryChangeSeen>& out) {
  std::string la = work_dir + "/hive-a", lb = work_dir + "/hive-b";
  guest.check(guestfs_download(guest.handle(), (a + path).c_str(), la.c_str()), "download " + a + path);
  guest.check(guestfs_download(guest.handle(), (b + path).c_str(), lb.c_str()), "download " + b + path);
  RegistryDump da = Hive(la, false).dump(), db = Hive(lb, false).dump();
  auto add = [&](const std::string& what) { out.push_back({path, what}); };
  auto name = [](const std::string& key, const std::string& value) {
    return (key.empty() ? "" : key) + "\\" + (value.empty() ? "(default)" : value);
  };
  for (const auto& [key, values] : db) {
    auto it = da.find(key);
    if (it == da.end()) {
      add("+ " + (key.empty() ? "\\" : key));
      for (const auto& [v, val] : values) add("+ " + name(key, v) + " = " + describe(val));
      continue;
    }
    for (const auto& [v, val] : values) {
      auto old = it->second.find(v);
      if (old == it->second.end()) add("+ " + name(key, v) + " = " + describe(val));
      else if (!(old->second == val)) add("~ " + name(key, v) + ": " + describe(old->second) + " -> " + describe(val));
    }
    for (const auto& [v, val] : it->second) {
      if (!values.count(v)) add("- " + name(key, v) + " (was " + describe(val) + ")");
    }
  }
  for (const auto& [key, values] : da) {
    if (!db.count(key)) add("- " + (key.empty() ? "\\" : key));
  }
}

}  // namespace

Inspection inspect(Guest& guest, int device_index) {
  guestfs_h* g = guest.handle();
  Inspection out;
  std::string dev = guest.devices().at(static_cast<size_t>(device_index));
  auto on_disk = [&](const std::string& d) { return d.rfind(dev, 0) == 0; };
  auto fss = take_strings(guest.check(guestfs_list_filesystems(g), "list filesystems"));
  for (size_t i = 0; i + 1 < fss.size(); i += 2) {
    if (!on_disk(fss[i])) continue;
    Filesystem f{fss[i], fss[i + 1], "", 0};
    if (f.type != "unknown" && f.type != "swap") f.label = take_string(guestfs_vfs_label(g, f.device.c_str()));
    int64_t size = guestfs_blockdev_getsize64(g, f.device.c_str());
    f.size = size > 0 ? static_cast<uint64_t>(size) : 0;
    out.filesystems.push_back(f);
  }
  for (const auto& root : take_strings(guestfs_inspect_os(g))) {
    if (!on_disk(root)) continue;
    OperatingSystem os;
    os.root = root;
    os.type = optional_string(g, guestfs_inspect_get_type, root);
    os.distro = optional_string(g, guestfs_inspect_get_distro, root);
    os.product_name = optional_string(g, guestfs_inspect_get_product_name, root);
    os.hostname = optional_string(g, guestfs_inspect_get_hostname, root);
    os.arch = optional_string(g, guestfs_inspect_get_arch, root);
    os.package_format = optional_string(g, guestfs_inspect_get_package_format, root);
    os.major = guestfs_inspect_get_major_version(g, root.c_str());
    os.minor = guestfs_inspect_get_minor_version(g, root.c_str());
    auto mps = take_strings(guestfs_inspect_get_mountpoints(g, root.c_str()));
    for (size_t i = 0; i + 1 < mps.size(); i += 2) os.mountpoints.emplace_back(mps[i], mps[i + 1]);
    std::sort(os.mountpoints.begin(), os.mountpoints.end(),
              [](const auto& x, const auto& y) { return x.first.size() < y.first.size(); });
    // Applications need the system mounted (read-only).
    bool mounted = true;
    for (const auto& [mp, d] : os.mountpoints) {
      if (guestfs_mount_ro(g, d.c_str(), mp.c_str()) == -1 && mp == "/") mounted = false;
    }
    if (mounted) {
      if (guestfs_application2_list* apps = guestfs_inspect_list_applications2(g, root.c_str())) {
        for (uint32_t i = 0; i < apps->len; ++i) {
          std::string version = apps->val[i].app2_version ? apps->val[i].app2_version : "";
          os.applications.emplace_back(apps->val[i].app2_name, version);
        }
        guestfs_free_application2_list(apps);
      }
    }
    guestfs_umount_all(g);
    out.systems.push_back(os);
  }
  return out;
}

FileDiff diff_trees(Guest& guest, const std::string& a, const std::string& b, const std::string& work_dir) {
  guestfs_h* g = guest.handle();
  auto ta = walk(guest, a, work_dir), tb = walk(guest, b, work_dir);
  FileDiff out;
  for (const auto& [path, mb] : tb) {
    auto it = ta.find(path);
    if (it == ta.end()) {
      out.files.push_back({FileChange::Kind::kAdded, path, type_of(mb.mode), 0, mb.size, ""});
      continue;
    }
    const Meta& ma = it->second;
    std::string type = type_of(mb.mode);
    if (type_of(ma.mode) != type) {
      out.files.push_back({FileChange::Kind::kChanged, path, type, ma.size, mb.size,
                           "was a " + type_of(ma.mode) + ", now a " + type});
      continue;
    }
    bool same_meta = ma.mode == mb.mode && ma.uid == mb.uid && ma.gid == mb.gid && ma.size == mb.size &&
                     ma.mtime_sec == mb.mtime_sec && ma.mtime_nsec == mb.mtime_nsec;
    if (same_meta || type == "directory") {
      if (!same_meta && (ma.mode != mb.mode || ma.uid != mb.uid || ma.gid != mb.gid)) {
        out.files.push_back({FileChange::Kind::kMetadata, path, type, ma.size, mb.size, "owner or mode"});
      }
      continue;
    }
    std::string detail;
    bool content = true;
    if (type == "symlink") {
      std::string la = take_string(guestfs_readlink(g, (a + path).c_str()));
      std::string lb = take_string(guestfs_readlink(g, (b + path).c_str()));
      content = la != lb;
      if (content) detail = la + " -> " + lb;
    } else if (type == "file") {
      std::string ca = take_string(guestfs_checksum(g, "sha256", (a + path).c_str()));
      std::string cb = take_string(guestfs_checksum(g, "sha256", (b + path).c_str()));
      content = ca.empty() || ca != cb;
    }
    if (!content) {
      out.files.push_back({FileChange::Kind::kMetadata, path, type, ma.size, mb.size,
                           ma.mode != mb.mode ? "mode" : (ma.uid != mb.uid || ma.gid != mb.gid) ? "owner" : "time"});
      continue;
    }
    out.files.push_back({FileChange::Kind::kChanged, path, type, ma.size, mb.size, detail});
    if (type == "file" && is_hive(path)) diff_hives(guest, path, a, b, work_dir, out.registry);
  }
  for (const auto& [path, ma] : ta) {
    if (!tb.count(path)) out.files.push_back({FileChange::Kind::kRemoved, path, type_of(ma.mode), ma.size, 0, ""});
  }
  std::sort(out.files.begin(), out.files.end(), [](const auto& x, const auto& y) { return x.path < y.path; });
  return out;
}

}  // namespace bootfleet::guest
