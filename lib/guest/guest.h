// A libguestfs appliance attached to one disk served over NBD.
//
// Design note. The disk is never a file libguestfs opens: `imgtool build`
// serves a write cache over the parent chain on a private unix socket and
// the appliance's qemu connects to it (protocol nbd), so every byte the
// guest writes lands in the cache and the parent stays untouched.
//
// KVM cannot be counted on (guest/accel.h): launch tries the default (KVM
// when available); if that fails it retries once with TCG and says so once
// per process, and every later launch in the process goes straight to TCG.
// BOOTFLEET_GUEST_ACCEL=kvm|tcg|auto overrides the choice.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "guest/accel.h"

struct guestfs_h;

namespace bootfleet::guest {

struct LaunchOptions {
  std::string nbd_socket;   // the unix socket serving the disk
  std::string export_name;  // its export name
  bool read_only = false;
  Accel accel = Accel::kAuto;
  // A second, read-only disk (e.g. the other version for a file diff).
  std::string second_nbd_socket, second_export_name;
  // Receives notes for the user (the TCG fallback).
  std::function<void(const std::string&)> note;
};

class Guest {
 public:
  // Creates the handle, adds the disk(s) and launches the appliance.
  // Throws util::Error with libguestfs's message.
  static std::unique_ptr<Guest> launch(const LaunchOptions& options);
  ~Guest();
  Guest(const Guest&) = delete;
  Guest& operator=(const Guest&) = delete;

  // For lib/guest's own files (inspect.cc). Everything else calls the named
  // operations below: the guest layer owns the handle.
  guestfs_h* handle() const { return g_; }
  // Seconds the launch took, and whether it ran under TCG.
  double launch_seconds() const { return launch_seconds_; }
  bool tcg() const { return tcg_; }

  // Throws util::Error("what: <libguestfs's last error>") when rc is -1
  // (or a null pointer was returned).
  void check(int rc, const std::string& what) const;
  template <typename T>
  T* check(T* p, const std::string& what) const {
    if (!p) fail(what);
    return p;
  }
  [[noreturn]] void fail(const std::string& what) const;

  // Mounts the guest's filesystems under "/": the operating system's own
  // layout when inspection finds one; else, by partition type, the `linux`
  // partition at the root and the `efi` one at /boot/efi (made when
  // missing, unless read-only); else the first mountable filesystem of the
  // disk (`device_index` 0 or 1). Returns what was mounted where, e.g.
  // "/dev/sda2 on / (ext4, linux partition), /dev/sda1 on /boot/efi (vfat,
  // efi partition)". Throws when nothing can be mounted.
  std::string mount_root(int device_index = 0, const std::string& at = "/", bool read_only = false);
  // Unmounts everything, syncs and shuts the appliance down (qemu flushes
  // its writes to the NBD server before this returns).
  void shutdown();

  // Device names of the disks ("/dev/sda", "/dev/sdb").
  std::vector<std::string> devices() const;

  // --- Named operations (operations.cc) -------------------------------------
  // What recipes and commands do in a guest, by name: nothing outside
  // lib/guest calls libguestfs. Each throws util::Error naming the
  // operation and its paths, followed by libguestfs's own words; paths are
  // guest paths unless called `host`.

  // Files.
  bool exists(const std::string& path);
  // False for a missing path; a symlink to a directory counts only when
  // `follow_symlinks` (as the kernel sees a path's parent, e.g. merged-/usr's /lib).
  bool is_dir(const std::string& path, bool follow_symlinks = false);
  bool is_symlink(const std::string& path);
  void mkdir_p(const std::string& path);
  void mkmountpoint(const std::string& path);
  void chmod(uint32_t mode, const std::string& path);
  void chown(int uid, int gid, const std::string& path);
  void write_file(const std::string& path, const std::string& content);
  std::string read_file(const std::string& path);
  void symlink(const std::string& target, const std::string& link);  // ln -sf
  void rm(const std::string& path);
  void rmdir(const std::string& path);
  void rm_rf(const std::string& path);
  // Host to guest and back.
  void upload(const std::string& host, const std::string& path);
  void download(const std::string& path, const std::string& host);
  void copy_in(const std::string& host, const std::string& dir);  // cp -r HOST DIR/
  void copy_out(const std::string& path, const std::string& host_dir);
  // `compression` is "" (plain tar) or a name libguestfs's tar-in takes:
  // gzip, xz, bzip2, zstd.
  void tar_in(const std::string& host, const std::string& dir, const std::string& compression);
  // Runs `command` with /bin/sh in the guest; returns its output.
  std::string sh(const std::string& command);

  // Disks, partitions, filesystems.
  bool feature_available(const std::string& feature);
  int64_t sectors(const std::string& device);  // 512-byte sectors
  void part_init(const std::string& disk, const std::string& table);  // "msdos" | "gpt"
  void part_add(const std::string& disk, int64_t first_sector, int64_t last_sector);
  void part_set_gpt_type(const std::string& disk, int number, const std::string& guid);
  void part_set_mbr_id(const std::string& disk, int number, int id);
  void part_set_bootable(const std::string& disk, int number, bool bootable);
  // GPT: sets attribute bit 2, "legacy BIOS bootable", which gptmbr.bin
  // looks for (the GPT counterpart of the MBR active flag).
  void part_set_legacy_bios_bootable(const std::string& disk, int number);
  std::string part_table_type(const std::string& disk);  // "msdos" | "gpt"
  std::string part_disk(const std::string& partition);    // "/dev/sda1" -> "/dev/sda"
  int part_number(const std::string& partition);           // "/dev/sda1" -> 1
  void pwrite_device(const std::string& device, const std::string& data, int64_t offset);
  void mkfs(const std::string& type, const std::string& device);
  void mkswap(const std::string& device, const std::string& label);  // label "" = none
  void set_label(const std::string& device, const std::string& label);
  void mount(const std::string& device, const std::string& mountpoint);
  // (device, mount point) of everything mounted.
  std::vector<std::pair<std::string, std::string>> mountpoints();
  void extlinux(const std::string& dir);
  // The recipe name of a partition's type (see PartitionType), read from its
  // GPT type GUID or MBR id; "" when it is none of them or not a partition.
  std::string partition_type(const std::string& partition);

 private:
  Guest() = default;
  guestfs_h* g_ = nullptr;
  double launch_seconds_ = 0;
  bool tcg_ = false;
  bool shut_down_ = false;
  bool inspected_ = false;
  std::vector<std::string> inspected_roots_;
};

// Partition types by the names recipes use: the MBR id and GPT type GUID a
// created disk is written with, and by which a mount finds them again.
struct PartitionType {
  const char* name;  // linux | efi | ntfs | fat32 | swap
  int mbr_id;
  const char* gpt_guid;
};
// nullptr for an unknown name.
const PartitionType* find_partition_type(const std::string& name);
// Every name, in the table's order (what a recipe's `type` may be).
std::vector<std::string> partition_type_names();

// Frees a NULL-terminated array of strings returned by libguestfs.
void free_strings(char** list);
// Copies a NULL-terminated array of strings and frees it.
std::vector<std::string> take_strings(char** list);

}  // namespace bootfleet::guest
