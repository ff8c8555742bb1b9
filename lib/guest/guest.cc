#include "guest/guest.h"

#include <guestfs.h>

#include <signal.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <mutex>
#include <optional>
#include <thread>

#include "guest/stop.h"
#include "util/error.h"

namespace bootfleet::guest {

namespace {

using util::Error;

std::string first_line(const std::string& s) {
  auto nl = s.find('\n');
  return nl == std::string::npos ? s : s.substr(0, nl);
}

std::string last_error(guestfs_h* g) {
  const char* e = g ? guestfs_last_error(g) : nullptr;
  return e ? e : "unknown libguestfs error";
}

guestfs_h* make_handle(const LaunchOptions& o, bool tcg) {
  guestfs_h* g = guestfs_create();
  if (!g) throw Error("libguestfs: cannot create a handle");
  // Errors are read with guestfs_last_error and reported with context.
  guestfs_set_error_handler(g, nullptr, nullptr);
  auto fail = [&](const std::string& what) {
    std::string e = last_error(g);
    guestfs_close(g);
    throw Error("libguestfs: " + what + ": " + e);
  };
  // The direct backend runs qemu itself, so it can reach our private unix
  // socket; libvirt's qemu would run as another user.
  if (guestfs_set_backend(g, "direct") == -1) fail("set the direct backend");
  if (tcg) {
    const char* settings[] = {"force_tcg", nullptr};
    if (guestfs_set_backend_settings(g, const_cast<char* const*>(settings)) == -1) fail("force TCG");
  }
  auto add = [&](const std::string& socket, const std::string& name, bool read_only) {
    std::string server = "unix:" + socket;
    const char* servers[] = {server.c_str(), nullptr};
    // cache=unsafe: qemu passes writes straight to our NBD server and skips
    // the guest's flushes, which our write cache need not honour during a
    // build (the version file is written and fsynced afterwards).
    if (guestfs_add_drive_opts(g, name.c_str(), GUESTFS_ADD_DRIVE_OPTS_FORMAT, "raw",
                               GUESTFS_ADD_DRIVE_OPTS_PROTOCOL, "nbd", GUESTFS_ADD_DRIVE_OPTS_SERVER,
                               const_cast<char* const*>(servers), GUESTFS_ADD_DRIVE_OPTS_READONLY, read_only ? 1 : 0,
                               GUESTFS_ADD_DRIVE_OPTS_CACHEMODE, "unsafe", -1) == -1) {
      fail("attach nbd " + server + " export '" + name + "'");
    }
  };
  add(o.nbd_socket, o.export_name, o.read_only);
  if (!o.second_nbd_socket.empty()) add(o.second_nbd_socket, o.second_export_name, true);
  return g;
}

// Under auto, how long an appliance may take to start under KVM. A working
// KVM starts it in seconds (TCG here: 25-60 s); some hosts open /dev/kvm and
// then never get the guest's kernel going (the nested hosts whose network
// boots reset in the firmware), and libguestfs would wait for it for many
// minutes. Past this, the launch is taken as evidence against KVM.
constexpr std::chrono::seconds kKvmLaunchDeadline{60};

// Kills this process's QEMU (SIGTERM: it cleans up) if the launch it
// watches is still going at the deadline, so guestfs_launch fails and the
// caller can fall back to TCG.
class LaunchWatchdog {
 public:
  explicit LaunchWatchdog(std::chrono::seconds deadline)
      : thread_([this, deadline] {
          std::unique_lock lock(mutex_);
          if (!done_cv_.wait_for(lock, deadline, [this] { return done_; })) {
            fired_ = kill_child_processes_running("qemu", SIGTERM) > 0;
          }
        }) {}
  ~LaunchWatchdog() {
    {
      std::lock_guard lock(mutex_);
      done_ = true;
    }
    done_cv_.notify_all();
    thread_.join();
  }
  // Whether it killed the launch (read after the launch returned).
  bool fired() {
    std::lock_guard lock(mutex_);
    return fired_;
  }

 private:
  std::mutex mutex_;
  std::condition_variable done_cv_;
  bool done_ = false, fired_ = false;
  std::thread thread_;
};

}  // namespace

std::unique_ptr<Guest> Guest::launch(const LaunchOptions& options) {
  // libguestfs finds out by itself whether KVM is there at all.
  bool tcg = first_accel(options.accel, /*kvm_available=*/true) == Accel::kTcg;
  auto started = std::chrono::steady_clock::now();
  guestfs_h* g = make_handle(options, tcg);
  std::optional<LaunchWatchdog> watchdog;
  if (!tcg && options.accel == Accel::kAuto && kvm_device_usable()) watchdog.emplace(kKvmLaunchDeadline);
  int launched = guestfs_launch(g);
  const bool timed_out = watchdog && watchdog->fired();
  watchdog.reset();
  if (launched == -1) {
    std::string e = timed_out ? "no appliance after " + std::to_string(kKvmLaunchDeadline.count()) + " s under KVM"
                              : last_error(g);
    guestfs_close(g);
    if (int sig = StopSignals::received()) {  // we killed it: not KVM's fault
      throw Error("libguestfs: the appliance was stopped by " + StopSignals::name(sig));
    }
    if (tcg || options.accel == Accel::kKvm) {
      throw Error("libguestfs: the appliance did not start" + std::string(tcg ? " (TCG)" : " (KVM)") + ": " + e);
    }
    note_kvm_failed("the appliance did not start: " + first_line(e), options.note);
    tcg = true;
    started = std::chrono::steady_clock::now();
    g = make_handle(options, true);
    if (guestfs_launch(g) == -1) {
      std::string e2 = last_error(g);
      guestfs_close(g);
      throw Error("libguestfs: the appliance did not start with KVM nor with TCG: " + e2);
    }
  }
  std::unique_ptr<Guest> guest(new Guest());
  guest->g_ = g;
  guest->tcg_ = tcg;
  guest->launch_seconds_ =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  return guest;
}

Guest::~Guest() {
  if (g_) guestfs_close(g_);
}

void Guest::fail(const std::string& what) const { throw Error(what + ": " + last_error(g_)); }

void Guest::check(int rc, const std::string& what) const {
  if (rc == -1) fail(what);
}

void free_strings(char** list) {
  if (!list) return;
  for (char** p = list; *p; ++p) std::free(*p);
  std::free(list);
}

std::vector<std::string> take_strings(char** list) {
  std::vector<std::string> out;
  if (!list) return out;
  for (char** p = list; *p; ++p) out.emplace_back(*p);
  free_strings(list);
  return out;
}

std::vector<std::string> Guest::devices() const { return take_strings(check(guestfs_list_devices(g_), "list devices")); }

std::string Guest::mount_root(int device_index, const std::string& at, bool read_only) {
  auto devs = devices();
  if (device_index < 0 || static_cast<size_t>(device_index) >= devs.size()) {
    throw Error("no disk number " + std::to_string(device_index) + " in the appliance");
  }
  const std::string& dev = devs[static_cast<size_t>(device_index)];
  auto on_disk = [&](const std::string& fs) { return fs.rfind(dev, 0) == 0; };
  auto join = [&](const std::string& mp) {
    if (at == "/") return mp;
    return mp == "/" ? at : at + mp;
  };
  auto mount = [&](const std::string& fs, const std::string& mp) {
    return read_only ? guestfs_mount_ro(g_, fs.c_str(), mp.c_str()) : guestfs_mount(g_, fs.c_str(), mp.c_str());
  };

  // An operating system: mount its filesystems as its fstab says, shortest
  // mount point first.
  // Inspection must run with nothing mounted (it mounts and unmounts
  // filesystems itself), so it runs once, before the first mount, for
  // every disk.
  if (!inspected_) {
    inspected_roots_ = take_strings(guestfs_inspect_os(g_));
    inspected_ = true;
  }
  for (const auto& root : inspected_roots_) {
    if (!on_disk(root)) continue;
    auto pairs = take_strings(check(guestfs_inspect_get_mountpoints(g_, root.c_str()), "inspect " + root));
    std::vector<std::pair<std::string, std::string>> mps;  // mount point, device
    for (size_t i = 0; i + 1 < pairs.size(); i += 2) mps.emplace_back(pairs[i], pairs[i + 1]);
    std::sort(mps.begin(), mps.end(), [](const auto& a, const auto& b) { return a.first.size() < b.first.size(); });
    std::string what;
    for (auto [mp, fs] : mps) {
      // fstab names filesystems by label or UUID, which two copies of one
      // image share: inspection may resolve them to the other disk. The
      // root is the one inspection found on this disk; other mounts must
      // be on this disk too.
      if (mp == "/") fs = root;
      else if (!on_disk(fs)) continue;
      if (mount(fs, join(mp)) == -1) {
        if (mp == "/") fail("mount " + fs + " on " + join(mp));
        continue;  // a missing /boot/efi and the like should not stop a build
      }
      what += (what.empty() ? "" : ", ") + fs + " on " + join(mp);
    }
    return what;
  }
  // No operating system (a blank disk, a data disk, a created one before
  // its first build). The partition types say what goes where: the `linux`
  // partition at the root and the `efi` one at /boot/efi, as an installed
  // system would have them, whichever comes first on the disk (GPT layouts
  // put the ESP first). Without a `linux` partition, the first mountable
  // filesystem is the root.
  auto fss = take_strings(check(guestfs_list_filesystems(g_), "list filesystems"));
  struct Candidate {
    std::string fs, type, part_type;
  };
  std::vector<Candidate> mountable;
  std::string seen;
  for (size_t i = 0; i + 1 < fss.size(); i += 2) {
    const std::string &fs = fss[i], &type = fss[i + 1];
    if (!on_disk(fs)) continue;
    seen += (seen.empty() ? "" : ", ") + fs + " (" + type + ")";
    if (type == "unknown" || type == "swap" || type.empty()) continue;
    mountable.push_back({fs, type, partition_type(fs)});
  }
  std::stable_sort(mountable.begin(), mountable.end(), [](const Candidate& a, const Candidate& b) {
    return a.part_type == "linux" && b.part_type != "linux";
  });
  for (const auto& root : mountable) {
    // An ESP is the root only of a disk with nothing else to mount.
    if (root.part_type == "efi" && mountable.size() > 1) continue;
    if (mount(root.fs, at) != 0) continue;
    auto described = [](const Candidate& c) {
      return " (" + c.type + (c.part_type.empty() ? "" : ", " + c.part_type + " partition") + ")";
    };
    std::string what = root.fs + " on " + at + described(root);
    for (const auto& esp : mountable) {
      if (esp.part_type != "efi" || esp.fs == root.fs) continue;
      std::string mp = join("/boot/efi");
      // A read-only mount cannot make the directory; a disk without it
      // keeps its ESP unmounted.
      if (!read_only && guestfs_mkdir_p(g_, mp.c_str()) == -1) fail("mkdir -p " + mp + " for the ESP " + esp.fs);
      if (guestfs_is_dir(g_, mp.c_str()) != 1) continue;
      if (mount(esp.fs, mp) == -1) fail("mount the ESP " + esp.fs + " on " + mp);
      what += ", " + esp.fs + " on " + mp + described(esp);
      break;
    }
    return what;
  }
  throw Error(dev + ": no filesystem to mount" + (seen.empty() ? " (the disk has none)" : " among " + seen));
}

void Guest::shutdown() {
  if (shut_down_) return;
  check(guestfs_umount_all(g_), "unmount the guest's filesystems");
  check(guestfs_sync(g_), "sync the guest's disks");
  check(guestfs_shutdown(g_), "shut the appliance down");
  shut_down_ = true;
}

}  // namespace bootfleet::guest
