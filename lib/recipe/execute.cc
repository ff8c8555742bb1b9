#include "recipe/execute.h"

#include <guestfs.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "guest/registry.h"
#include "util/error.h"

namespace bootfleet::recipe {

namespace fs = std::filesystem;
using util::Error;

StepFailed::StepFailed(const Step& step, size_t index, size_t count, const std::string& error)
    : Error(step.where.text() + ": step " + std::to_string(index + 1) + " of " + std::to_string(count) + " (" +
            step.summary() + ") failed: " + error),
      index_(index) {}

namespace {

constexpr uint64_t kSector = 512;
constexpr int64_t kFirstSector = 2048;  // 1 MiB: what every partitioner aligns to

struct PartitionType {
  const char* name;
  int mbr_id;
  const char* gpt_guid;
};
constexpr PartitionType kPartitionTypes[] = {
    {"linux", 0x83, "0FC63DAF-8483-4772-8E79-3D69D8477DE4"},
    {"efi", 0xef, "C12A7328-F81F-11D2-BA4B-00A0C93EC93B"},
    {"ntfs", 0x07, "EBD0A0A2-B9E5-4433-87C0-68B6B72699C7"},
    {"fat32", 0x0c, "EBD0A0A2-B9E5-4433-87C0-68B6B72699C7"},
    {"swap", 0x82, "0657FD6D-A4AB-43C4-84E5-0933C84B4F4F"},
};

const PartitionType& partition_type(const std::string& name) {
  for (const auto& t : kPartitionTypes)
    if (name == t.name) return t;
  throw Error("unknown partition type '" + name + "'");
}

std::string octal(uint32_t mode) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "0%o", mode);
  return buf;
}

// The host's extlinux MBR boot code (package extlinux or syslinux-common).
std::string mbr_code_path() {
  for (const char* p : {"/usr/lib/EXTLINUX/mbr.bin", "/usr/lib/syslinux/mbr/mbr.bin", "/usr/share/syslinux/mbr.bin"}) {
    if (::access(p, R_OK) == 0) return p;
  }
  throw Error("no extlinux MBR code on this host (install the extlinux package: /usr/lib/EXTLINUX/mbr.bin)");
}

std::string tar_compression(const std::string& path) {
  auto ends = [&](const char* s) {
    std::string e = s;
    return path.size() >= e.size() && path.compare(path.size() - e.size(), e.size(), e) == 0;
  };
  if (ends(".tar.gz") || ends(".tgz")) return "gzip";
  if (ends(".tar.xz") || ends(".txz")) return "xz";
  if (ends(".tar.bz2") || ends(".tbz2")) return "bzip2";
  if (ends(".tar.zst")) return "zstd";
  return "";
}

class Runner {
 public:
  Runner(guest::Guest& guest, const ExecuteOptions& options) : guest_(guest), g_(guest.handle()), options_(options) {}

  void run(const Step& s) {
    switch (s.kind) {
      case Step::Kind::kMkdir:
        check(guestfs_mkdir_p(g_, s.path.c_str()), "mkdir -p " + s.path);
        if (s.mode) check(guestfs_chmod(g_, static_cast<int>(*s.mode), s.path.c_str()), "chmod " + octal(*s.mode));
        break;
      case Step::Kind::kCopyIn: copy_in(s); break;
      case Step::Kind::kWrite:
        check(guestfs_write(g_, s.path.c_str(), s.content.data(), s.content.size()), "write " + s.path);
        if (s.mode) check(guestfs_chmod(g_, static_cast<int>(*s.mode), s.path.c_str()), "chmod " + octal(*s.mode));
        break;
      case Step::Kind::kDelete: remove(s); break;
      case Step::Kind::kChmod:
        check(guestfs_chmod(g_, static_cast<int>(s.mode.value_or(0644)), s.path.c_str()), "chmod " + s.path);
        break;
      case Step::Kind::kChown:
        check(guestfs_chown(g_, s.uid.value_or(0), s.gid.value_or(0), s.path.c_str()), "chown " + s.path);
        break;
      case Step::Kind::kSymlink:
        check(guestfs_ln_sf(g_, s.target.c_str(), s.path.c_str()), "ln -sf " + s.target + " " + s.path);
        break;
      case Step::Kind::kTarIn: tar_in(s); break;
      case Step::Kind::kEdit: edit(s); break;
      case Step::Kind::kRun: run_command(s); break;
      case Step::Kind::kRegistry: registry(s); break;
      case Step::Kind::kBootloader: bootloader(s); break;
      case Step::Kind::kCopyOut: copy_out(s); break;
    }
  }

 private:
  void check(int rc, const std::string& what) { guest_.check(rc, what); }
  bool is_dir(const std::string& path) { return guestfs_is_dir(g_, path.c_str()) == 1; }
  bool exists(const std::string& path) {
    int rc = guestfs_exists(g_, path.c_str());
    check(rc, "look for " + path);
    return rc == 1;
  }

  // Like cp -r: a directory lands inside TO (created if missing); a file
  // lands inside TO when TO is a directory, else becomes TO. Host symlinks
  // given as the source are followed (e.g. /vmlinuz -> boot/vmlinuz-…).
  void copy_in(const Step& s) {
    if (fs::is_directory(s.host_path)) {
      check(guestfs_mkdir_p(g_, s.path.c_str()), "mkdir -p " + s.path);
      check(guestfs_copy_in(g_, s.host_path.c_str(), s.path.c_str()), "copy " + s.host_path + " into " + s.path);
      return;
    }
    std::string dest = s.path;
    if (is_dir(dest)) dest = (dest == "/" ? "" : dest) + "/" + fs::path(s.host_path).filename().string();
    // A symlink at the destination is replaced, not written through (it
    // may point anywhere, e.g. busybox's /sbin/init -> /bin/busybox).
    if (guestfs_is_symlink(g_, dest.c_str()) == 1) check(guestfs_rm(g_, dest.c_str()), "replace the symlink " + dest);
    check(guestfs_upload(g_, s.host_path.c_str(), dest.c_str()), "upload " + s.host_path + " to " + dest);
    // upload creates the file 0644; keep the host file's permissions, as cp does.
    auto perms = static_cast<int>(fs::status(s.host_path).permissions()) & 07777;
    check(guestfs_chmod(g_, perms, dest.c_str()), "chmod " + octal(static_cast<uint32_t>(perms)) + " " + dest);
  }

  void remove(const Step& s) {
    if (s.recursive) {
      check(guestfs_rm_rf(g_, s.path.c_str()), "rm -rf " + s.path);
      return;
    }
    if (!exists(s.path)) throw Error(s.path + " does not exist in the guest (recursive: true also accepts a missing path)");
    if (is_dir(s.path)) check(guestfs_rmdir(g_, s.path.c_str()), "rmdir " + s.path + " (recursive: true removes a non-empty one)");
    else check(guestfs_rm(g_, s.path.c_str()), "rm " + s.path);
  }

  void tar_in(const Step& s) {
    check(guestfs_mkdir_p(g_, s.path.c_str()), "mkdir -p " + s.path);
    std::string compress = tar_compression(s.host_path);
    int rc = compress.empty() ? guestfs_tar_in_opts(g_, s.host_path.c_str(), s.path.c_str(), -1)
                              : guestfs_tar_in_opts(g_, s.host_path.c_str(), s.path.c_str(),
                                                    GUESTFS_TAR_IN_OPTS_COMPRESS, compress.c_str(), -1);
    check(rc, "unpack " + s.host_path + " into " + s.path);
  }

  void edit(const Step& s) {
    size_t size = 0;
    char* raw = guestfs_read_file(g_, s.path.c_str(), &size);
    if (!raw) guest_.fail("read " + s.path);
    std::string text(raw, size);
    std::free(raw);
    size_t count = 0;
    std::string out;
    for (size_t pos = 0;;) {
      size_t hit = text.find(s.search, pos);
      if (hit == std::string::npos || s.search.empty()) {
        out.append(text, pos, std::string::npos);
        break;
      }
      out.append(text, pos, hit - pos).append(s.replace);
      pos = hit + s.search.size();
      ++count;
    }
    if (count == 0) throw Error("'" + s.search + "' does not occur in " + s.path);
    check(guestfs_write(g_, s.path.c_str(), out.data(), out.size()), "write " + s.path);
    say("      replaced " + std::to_string(count) + " occurrence" + (count == 1 ? "" : "s"));
  }

  void run_command(const Step& s) {
    char* out = guestfs_sh(g_, s.command.c_str());
    if (!out) guest_.fail("the command failed");
    std::istringstream lines(out);
    std::free(out);
    for (std::string line; std::getline(lines, line);) say("      | " + line);
  }

  void registry(const Step& s) {
    char tmpl[] = "/tmp/bootfleet-hive-XXXXXX";
    int fd = ::mkstemp(tmpl);
    if (fd < 0) throw util::errno_error("create a temporary file for the hive", errno);
    ::close(fd);
    std::string local = tmpl;
    struct Remove {
      std::string p;
      ~Remove() { ::unlink(p.c_str()); }
    } cleanup{local};
    check(guestfs_download(g_, s.path.c_str(), local.c_str()), "download the hive " + s.path);
    guest::Hive hive(local, true);
    for (const auto& c : s.registry) {
      std::string where = c.key + (c.value.empty() && c.action == RegistryChange::Action::kDelete ? "" : "\\" + c.value);
      if (c.action == RegistryChange::Action::kDelete) {
        bool done = c.value.empty() ? hive.delete_key(c.key) : hive.delete_value(c.key, c.value);
        say(std::string("      ") + (done ? "deleted " : "absent, nothing to delete: ") + where);
        continue;
      }
      guest::RegistryValue v;
      switch (c.type) {
        case RegistryChange::Type::kString: v = {guest::kRegSz, guest::encode_string(c.string_data)}; break;
        case RegistryChange::Type::kExpandString: v = {guest::kRegExpandSz, guest::encode_string(c.string_data)}; break;
        case RegistryChange::Type::kDword:
          v = {guest::kRegDword, guest::encode_dword(static_cast<uint32_t>(c.number_data))};
          break;
        case RegistryChange::Type::kQword: v = {guest::kRegQword, guest::encode_qword(c.number_data)}; break;
        case RegistryChange::Type::kMultiString: v = {guest::kRegMultiSz, guest::encode_multi_string(c.multi_data)}; break;
        case RegistryChange::Type::kBinary: v = {guest::kRegBinary, c.binary_data}; break;
      }
      hive.set_value(c.key, c.value, v);
      say("      set " + where + " = " + guest::describe(v));
    }
    hive.commit();
    check(guestfs_upload(g_, local.c_str(), s.path.c_str()), "upload the hive back to " + s.path);
  }

  // extlinux in `path` (default /boot/extlinux) of the filesystem holding
  // it, a config with one entry, the MBR boot code, and the partition
  // marked active, so a BIOS boots the disk.
  void bootloader(const Step& s) {
    const char* feature[] = {"extlinux", nullptr};
    if (guestfs_feature_available(g_, const_cast<char**>(feature)) != 1) {
      throw Error("this libguestfs appliance has no extlinux");
    }
    std::string dir = s.path.empty() ? "/boot/extlinux" : s.path;
    check(guestfs_mkdir_p(g_, dir.c_str()), "mkdir -p " + dir);
    std::string conf = "DEFAULT bootfleet\nPROMPT 0\nTIMEOUT 1\nLABEL bootfleet\n  LINUX " + s.kernel + "\n";
    if (!s.initrd.empty()) conf += "  INITRD " + s.initrd + "\n";
    if (!s.append.empty()) conf += "  APPEND " + s.append + "\n";
    std::string conf_path = dir + "/extlinux.conf";
    check(guestfs_write(g_, conf_path.c_str(), conf.data(), conf.size()), "write " + conf_path);
    check(guestfs_extlinux(g_, dir.c_str()), "extlinux --install " + dir);

    // The partition holding dir: the device mounted at the longest prefix.
    auto mps = guest::take_strings(guest_.check(guestfs_mountpoints(g_), "list mount points"));
    std::string part, best;
    for (size_t i = 0; i + 1 < mps.size(); i += 2) {
      const std::string &dev = mps[i], &mp = mps[i + 1];
      bool under = mp == "/" || dir == mp || dir.rfind(mp + "/", 0) == 0;
      if (under && mp.size() >= best.size()) best = mp, part = dev;
    }
    if (part.empty()) throw Error(dir + " is on no mounted partition");
    char* disk = guestfs_part_to_dev(g_, part.c_str());
    if (!disk) guest_.fail(part + " is not a partition (extlinux needs a partitioned disk)");
    std::string disk_dev = disk;
    std::free(disk);
    int partnum = guestfs_part_to_partnum(g_, part.c_str());
    check(partnum, "partition number of " + part);
    char* table = guestfs_part_get_parttype(g_, disk_dev.c_str());
    if (!table) guest_.fail("partition table of " + disk_dev);
    std::string parttype = table;
    std::free(table);
    if (parttype != "msdos") throw Error("extlinux boots MBR disks here; " + disk_dev + " has a " + parttype + " table");
    std::ifstream in(mbr_code_path(), std::ios::binary);
    std::string code((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    if (code.size() < 440) throw Error(mbr_code_path() + ": shorter than the 440 bytes of MBR code");
    int wrote = guestfs_pwrite_device(g_, disk_dev.c_str(), code.data(), 440, 0);
    if (wrote != 440) guest_.fail("write the MBR code to " + disk_dev);
    check(guestfs_part_set_bootable(g_, disk_dev.c_str(), partnum, 1), "mark " + part + " active");
    say("      extlinux in " + dir + " on " + part + ", MBR code on " + disk_dev);
  }

  void copy_out(const Step& s) {
    if (!s.artifact.empty()) {
      if (options_.artifacts_dir.empty()) throw Error("artifacts are only kept by imgtool build");
      fs::create_directories(options_.artifacts_dir);
      std::string dest = options_.artifacts_dir + "/" + s.artifact;
      check(guestfs_download(g_, s.path.c_str(), dest.c_str()), "download " + s.path + " as artifact " + s.artifact);
      return;
    }
    if (fs::is_directory(s.host_path)) {
      check(guestfs_copy_out(g_, s.path.c_str(), s.host_path.c_str()), "copy " + s.path + " out to " + s.host_path);
    } else {
      check(guestfs_download(g_, s.path.c_str(), s.host_path.c_str()), "download " + s.path + " to " + s.host_path);
    }
  }

  void say(const std::string& line) {
    if (options_.say) options_.say(line);
  }

  guest::Guest& guest_;
  guestfs_h* g_;
  const ExecuteOptions& options_;
};

}  // namespace

void prepare_blank_disk(guest::Guest& guest, const Base& base, const ExecuteOptions& options) {
  guestfs_h* g = guest.handle();
  std::string disk = guest.devices().at(0);
  bool gpt = base.partition_table == "gpt";
  guest.check(guestfs_part_init(g, disk.c_str(), gpt ? "gpt" : "msdos"), "create a partition table on " + disk);
  int64_t total = guestfs_blockdev_getsz(g, disk.c_str());
  guest.check(total < 0 ? -1 : 0, "size of " + disk);
  int64_t last_usable = total - (gpt ? 34 : 1);  // GPT keeps its backup table at the end
  int64_t start = kFirstSector;
  for (size_t i = 0; i < base.partitions.size(); ++i) {
    const Partition& p = base.partitions[i];
    int64_t end = p.size ? start + static_cast<int64_t>(p.size / kSector) - 1 : last_usable;
    if (end > last_usable) {
      throw Error(p.where.text() + ": partition " + std::to_string(i + 1) + " does not fit on the " +
                  std::to_string(base.size) + "-byte disk");
    }
    guest.check(guestfs_part_add(g, disk.c_str(), "p", start, end), "add partition " + std::to_string(i + 1));
    int n = static_cast<int>(i + 1);
    const PartitionType& type = partition_type(p.type);
    if (gpt) guest.check(guestfs_part_set_gpt_type(g, disk.c_str(), n, type.gpt_guid), "set the partition type");
    else guest.check(guestfs_part_set_mbr_id(g, disk.c_str(), n, type.mbr_id), "set the partition type");
    if (p.bootable && !gpt) guest.check(guestfs_part_set_bootable(g, disk.c_str(), n, 1), "mark partition bootable");
    std::string dev = disk + std::to_string(n);
    if (p.type == "swap") {
      guest.check(p.label.empty() ? guestfs_mkswap(g, dev.c_str())
                                  : guestfs_mkswap_opts(g, dev.c_str(), GUESTFS_MKSWAP_OPTS_LABEL, p.label.c_str(), -1),
                  "mkswap " + dev);
    } else if (!p.filesystem.empty()) {
      guest.check(guestfs_mkfs(g, p.filesystem.c_str(), dev.c_str()), "mkfs." + p.filesystem + " " + dev);
      if (!p.label.empty()) guest.check(guestfs_set_label(g, dev.c_str(), p.label.c_str()), "label " + dev);
    }
    if (options.say) {
      options.say("      " + dev + ": " + p.type + (p.filesystem.empty() ? "" : ", " + p.filesystem) +
                  (p.label.empty() ? "" : ", label " + p.label) + ", " +
                  std::to_string((end - start + 1) * static_cast<int64_t>(kSector) >> 20) + " MiB");
    }
    start = end + 1;
  }
}

void run_steps(guest::Guest& guest, const Recipe& recipe, const ExecuteOptions& options) {
  Runner runner(guest, options);
  const size_t count = recipe.steps.size();
  for (size_t i = 0; i < count; ++i) {
    const Step& s = recipe.steps[i];
    if (options.say) options.say("[" + std::to_string(i + 1) + "/" + std::to_string(count) + "] " + s.summary());
    auto t0 = std::chrono::steady_clock::now();
    try {
      runner.run(s);
    } catch (const StepFailed&) {
      throw;
    } catch (const std::exception& e) {
      throw StepFailed(s, i, count, e.what());
    }
    double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (options.say && secs >= 0.05) {
      char buf[32];
      std::snprintf(buf, sizeof buf, "%.1f s", secs);
      options.say(std::string("      done in ") + buf);
    }
  }
}

}  // namespace bootfleet::recipe
