// A PC that boots from the network, as QEMU: its iPXE ROM gets a bootfile URL
// from QEMU's user-mode DHCP (10.0.2.2 is the host's loopback), its serial
// console goes to a file, and nothing else of the host is shared. imgtool
// boot-test powers one on against its private boot server and watches the
// console with ConsoleWatch.
//
// Design note. QEMU runs in its own process group, so a Ctrl-C at the
// terminal reaches imgtool (which then kills QEMU) and not QEMU directly (a
// QEMU killed by the terminal would look like a KVM failure), and with a
// parent-death signal, so it cannot outlive imgtool even when imgtool is
// killed outright. Which accelerator to try is guest/accel.h's decision;
// this class runs exactly the one it is given.
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <deque>
#include <optional>
#include <regex>
#include <string>
#include <string_view>
#include <vector>

#include "guest/accel.h"

namespace bootfleet::guest {

// The PC's firmware: SeaBIOS (QEMU's default) or OVMF (UEFI, Debian's ovmf
// package); both run QEMU's iPXE NIC ROM (its PXE or its EFI half).
enum class Firmware { kBios, kUefi };
// "bios" | "uefi"; throws util::Error naming `what` otherwise.
Firmware parse_firmware(const std::string& text, const std::string& what);

struct NetbootVmOptions {
  std::string bootfile_url;  // e.g. http://10.0.2.2:8080/boot.ipxe
  std::string console_path;  // the serial console (created, truncated)
  std::string output_path;   // QEMU's own stdout and stderr
  Accel accel = Accel::kTcg;  // kKvm or kTcg
  std::string mac = "52:54:00:b0:07:01";
  int memory_mib = 1024;
  std::string qemu = "qemu-system-x86_64";
  Firmware firmware = Firmware::kBios;
  // UEFI: OVMF's code (read-only) and a writable copy of its variable store
  // (the caller's; OVMF writes its boot entries there).
  std::string ovmf_code = "/usr/share/OVMF/OVMF_CODE_4M.fd";
  std::string ovmf_vars;
};

// QEMU's command line for `options` (argv[0] is options.qemu).
std::vector<std::string> netboot_qemu_args(const NetbootVmOptions& options);

class NetbootVm {
 public:
  // Powers the PC on. Throws util::Error when QEMU cannot be found or started.
  explicit NetbootVm(const NetbootVmOptions& options);
  ~NetbootVm();  // kill()
  NetbootVm(const NetbootVm&) = delete;
  NetbootVm& operator=(const NetbootVm&) = delete;

  struct Exit {
    bool signaled = false;
    int code = 0;  // exit status, or the signal
    std::string describe() const;  // "exited with status 0", "died of signal 6 (Aborted)"
  };
  // How QEMU ended, or nullopt while it runs.
  std::optional<Exit> poll();
  // Kills QEMU (SIGKILL) and reaps it; does nothing once it has ended.
  void kill();
  // Console bytes written since the last call.
  std::string read_console();
  // The end of QEMU's own output (its errors), at most `max` bytes.
  std::string output_tail(size_t max = 4096) const;
  Accel accel() const { return options_.accel; }

 private:
  NetbootVmOptions options_;
  pid_t pid_ = -1;
  std::optional<Exit> exit_;
  int console_fd_ = -1;
};

// ECMAScript regex from --expect; throws util::Error naming the option and
// what is wrong with the pattern.
std::regex parse_expect(const std::string& pattern);

// Reads a serial console as it grows: splits it into lines (without \r and
// terminal escape sequences), finds the first line the regex matches, and
// keeps the last lines for showing when nothing matched.
class ConsoleWatch {
 public:
  explicit ConsoleWatch(std::regex expect, size_t tail_lines = 30)
      : expect_(std::move(expect)), tail_lines_(tail_lines) {}
  // Adds console bytes; true once a line has matched.
  bool feed(std::string_view bytes);
  // The console ended: its last line counts even without a newline.
  bool finish();
  // Starts over (the PC was powered on again); the match is kept.
  void restart();
  bool matched() const { return matched_.has_value(); }
  const std::string& matched_line() const { return *matched_; }
  // The last lines (the unfinished one too).
  std::vector<std::string> tail() const;
  // The kernel's "Kernel panic - not syncing: …" line, if any: its call
  // trace pushes the reason out of the tail, so it is kept apart.
  const std::string& panic_line() const { return panic_; }
  // Whether the guest's kernel has printed (a "Linux version" banner or a
  // "[    0.000000]" timestamp) since the last restart: an end before it is
  // an end in the firmware, which under KVM is evidence against KVM.
  bool kernel_started() const { return kernel_started_; }

 private:
  void line_done();

  std::regex expect_;
  size_t tail_lines_;
  std::string line_;
  int escape_ = 0;  // 0: text, 1: after ESC, 2: in a CSI sequence
  std::deque<std::string> tail_;
  std::optional<std::string> matched_;
  std::string panic_;
  bool kernel_started_ = false;
};

}  // namespace bootfleet::guest
