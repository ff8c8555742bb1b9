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

#include <functional>
#include <memory>
#include <string>
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
  // layout when inspection finds one, else the first mountable filesystem
  // of each disk (`device_index` 0 or 1). Returns what was mounted, e.g.
  // "/dev/sda1 on / (ext4)". Throws when nothing can be mounted.
  std::string mount_root(int device_index = 0, const std::string& at = "/", bool read_only = false);
  // Unmounts everything, syncs and shuts the appliance down (qemu flushes
  // its writes to the NBD server before this returns).
  void shutdown();

  // Device names of the disks ("/dev/sda", "/dev/sdb").
  std::vector<std::string> devices() const;

 private:
  Guest() = default;
  guestfs_h* g_ = nullptr;
  double launch_seconds_ = 0;
  bool tcg_ = false;
  bool shut_down_ = false;
  bool inspected_ = false;
  std::vector<std::string> inspected_roots_;
};

// Frees a NULL-terminated array of strings returned by libguestfs.
void free_strings(char** list);
// Copies a NULL-terminated array of strings and frees it.
std::vector<std::string> take_strings(char** list);

}  // namespace bootfleet::guest
