// imgtool boot-test IMAGE@N [--firmware bios|uefi] [--mode linux|sanboot]
//                  [--expect REGEX] [--timeout S] [--console FILE] [--json]
//
// Boots a version in QEMU exactly as a PC boots it over the network, and
// passes when the console shows what the recipe's init prints.
//
// Design note. The boot server is bootsrv's own (serve::BootServer), run
// in-process on loopback ports the kernel picks, so the test exercises the
// real iPXE script, artifact and NBD paths and needs no running bootsrv.
// The boot is pinned (BootOptions::pinned): whatever MAC QEMU has boots
// IMAGE@N as the throwaway client boot-test-PID, nothing is registered in
// the client table, and the session's write cache lives in a private work
// directory that goes away with the test; the version file is only read.
// A sanboot test also serves iSCSI on loopback, and the pinned boot's script
// sanboots the throwaway session's target, so it is the path a registered
// sanboot PC takes; UEFI adds OVMF with a private copy of its variables.
// QEMU is killed on every way out: a match, a timeout, QEMU's own end,
// SIGINT/SIGTERM (the loop polls guest::StopSignals), an exception
// (NetbootVm's destructor), or imgtool's death (QEMU's parent-death signal).
// Progress lines come from the server's BootEvents, not from its log, which
// is kept in memory and shown only when the test fails.
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <deque>
#include <filesystem>
#include <iostream>
#include <mutex>
#include <nlohmann/json.hpp>
#include <set>
#include <thread>

#include "cli.h"
#include "guest/accel.h"
#include "guest/disk_server.h"
#include "guest/netboot_vm.h"
#include "guest/stop.h"
#include "serve/boot_server.h"
#include "util/error.h"
#include "util/log.h"

namespace bootfleet::imgtool {

namespace {

// The server's log lines, kept (the last few) instead of printed.
class KeptLog {
 public:
  explicit KeptLog(size_t lines) : lines_(lines) {
    util::set_log_sink([this](const std::string& line) {
      std::lock_guard lock(mutex_);
      kept_.push_back(line);
      if (kept_.size() > lines_) kept_.pop_front();
    });
  }
  ~KeptLog() { util::set_log_sink(nullptr); }
  std::vector<std::string> lines() {
    std::lock_guard lock(mutex_);
    return {kept_.begin(), kept_.end()};
  }

 private:
  size_t lines_;
  std::mutex mutex_;
  std::deque<std::string> kept_;
};

std::string describe(const serve::BootEvent& e) {
  using K = serve::BootEvent::Kind;
  switch (e.kind) {
    case K::kChainScript: return "iPXE is up and fetched " + e.detail;
    case K::kBootScript: return "boot script served (" + e.detail + "), session started";
    case K::kKernel: return "loading the kernel";
    case K::kInitrd: return "loading the initrd";
    case K::kRootAttached: return "root attached over NBD (export " + e.detail + ")";
  }
  return "";
}

const char* kDetails =
    "Starts a private boot server (NBD, iSCSI and HTTP on 127.0.0.1, ports the kernel\n"
    "picks) and powers on a QEMU PC that network-boots the version through its iPXE\n"
    "ROM on a throwaway session (no client is registered; the session's write cache\n"
    "is deleted afterwards; the version is only read). --mode linux: boot script,\n"
    "kernel and initrd over HTTP, root over NBD. --mode sanboot: iPXE attaches the\n"
    "session over iSCSI and boots the disk's own loader (the OS finds its root\n"
    "through the iBFT). The default is the image's boot mode ('imgtool image set').\n"
    "--firmware bios (SeaBIOS, the default) or uefi (OVMF, from Debian's ovmf\n"
    "package, with a private copy of its variable store). The test passes as soon as a line of the serial console\n"
    "matches --expect, and fails when QEMU ends (the guest powered off, rebooted or\n"
    "panicked) without a match, or at --timeout; QEMU is killed in every case.\n"
    "\n"
    "Recipes should make the image print a marker line on the serial console\n"
    "(ttyS0) once it is up, e.g. 'bootfleet-marker image=... version=...' (what\n"
    "recipes/tiny-linux prints); the default --expect looks for 'bootfleet-marker'.\n"
    "The kernel gets console=ttyS0 and bootfleet.image=, bootfleet.version= and\n"
    "bootfleet.client= arguments the image's init can echo.\n"
    "\n"
    "QEMU runs under KVM when /dev/kvm is usable, else TCG (much slower); a KVM\n"
    "launch that fails is retried once under TCG. BOOTFLEET_GUEST_ACCEL=kvm|tcg\n"
    "forces one. Progress goes to stderr; on failure the console's last 30 lines\n"
    "and the boot server's log follow.\n"
    "Exit status: 0 passed, 1 failed (no match: QEMU ended or the time ran out),\n"
    "2 an error (bad usage, unknown version, a linux-mode version without vmlinuz\n"
    "and initrd.img artifacts, QEMU or OVMF missing, interrupted by SIGINT or SIGTERM).";

}  // namespace

int cmd_boot_test(const std::vector<std::string>& args) {
  CommandSpec spec{"boot-test",
                   "IMAGE@N [--firmware bios|uefi] [--mode linux|sanboot] [--expect REGEX] [--timeout S] "
                   "[--console FILE] [--json]",
                   "Network-boot a version in QEMU and pass when its console matches a regex.", kDetails};
  auto options = base_options();
  std::string store_dir, ref_text, expect_text = "bootfleet-marker", console_file, firmware_text = "bios", mode_text;
  int timeout = 300;
  bool as_json = false;
  add_store_option(options, store_dir);
  options.add_options()
      ("version", po::value(&ref_text)->required(), "IMAGE@N (or IMAGE@active)")
      ("firmware", po::value(&firmware_text), "bios (SeaBIOS, default) or uefi (OVMF)")
      ("mode", po::value(&mode_text), "linux or sanboot (default: the image's boot mode)")
      ("expect", po::value(&expect_text), "pass when a console line matches this ECMAScript regex (default: bootfleet-marker)")
      ("timeout", po::value(&timeout), "fail after this many seconds (default 300)")
      ("console", po::value(&console_file), "keep the serial console in FILE (default: a temporary file, removed)")
      ("json", po::bool_switch(&as_json), "print the result as JSON");
  po::positional_options_description pos;
  pos.add("version", 1);
  po::variables_map vm;
  if (!parse_command_line(spec, options, pos, args, vm)) return kExitOk;
  if (timeout <= 0) throw util::Error("--timeout " + std::to_string(timeout) + ": give a positive number of seconds");
  std::regex expect = guest::parse_expect(expect_text);
  guest::Firmware firmware = guest::parse_firmware(firmware_text, "--firmware");
  std::optional<store::BootMode> mode;
  if (vm.count("mode")) mode = store::parse_boot_mode(mode_text, "--mode");
  const std::string ovmf_code = "/usr/share/OVMF/OVMF_CODE_4M.fd", ovmf_vars = "/usr/share/OVMF/OVMF_VARS_4M.fd";
  if (firmware == guest::Firmware::kUefi) {
    for (const auto& f : {ovmf_code, ovmf_vars}) {
      if (::access(f.c_str(), R_OK) != 0) throw util::Error("--firmware uefi needs " + f + " (Debian: apt-get install ovmf)");
    }
  }
  guest::Accel requested = guest::accel_from_environment();
  store::VersionRef ref = store::parse_version_ref(ref_text, /*version_required=*/true);

  auto s = open_store(store_dir);
  store::VersionInfo v = s->version(ref);
  if (!mode) mode = s->image(v.image).boot_mode;
  if (*mode == store::BootMode::kLinux) serve::check_boot_artifacts(*s, v);
  const std::string target = v.image + "@" + std::to_string(v.number);
  const std::string client = "boot-test-" + std::to_string(::getpid());

  auto say = [](const std::string& line) { std::cerr << "boot-test: " << line << std::endl; };
  guest::WorkDir work;  // outlives the server: its caches are in here
  const std::string console = console_file.empty() ? work.path() + "/console.log" : console_file;
  std::filesystem::create_directories(work.path() + "/cache");

  KeptLog server_log(20);
  std::mutex events_mutex;
  std::vector<serve::BootEvent> events;
  serve::BootServerOptions so;
  so.sessions.cache_dir = work.path() + "/cache";
  so.sessions.persist = false;  // a throwaway server: nothing to reopen
  so.boot.pinned = serve::PinnedBoot{v.image, v.number, client, *mode};
  if (*mode == store::BootMode::kSanboot) so.iscsi_listen = {"127.0.0.1:0"};
  so.on_event = [&](const serve::BootEvent& e) {
    std::lock_guard lock(events_mutex);
    events.push_back(e);
  };
  serve::BootServer server(*s, so);
  server.start();

  guest::StopSignals signals;
  guest::NetbootVmOptions vo;
  vo.bootfile_url = "http://10.0.2.2:" + std::to_string(server.http_port()) + "/boot.ipxe";
  vo.console_path = console;
  vo.output_path = work.path() + "/qemu.out";
  vo.accel = guest::first_accel(requested, guest::kvm_device_usable());
  vo.firmware = firmware;
  if (firmware == guest::Firmware::kUefi) {
    vo.ovmf_code = ovmf_code;
    vo.ovmf_vars = work.path() + "/OVMF_VARS.fd";
    std::filesystem::copy_file(ovmf_vars, vo.ovmf_vars, std::filesystem::copy_options::overwrite_existing);
  }

  const auto started = std::chrono::steady_clock::now();
  const auto deadline = started + std::chrono::seconds(timeout);
  auto elapsed = [&] {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  };
  auto at = [&] { return std::to_string(static_cast<long>(elapsed())) + " s: "; };

  say("booting " + target + " under " + guest::accel_name(vo.accel) + " as " + client + " by " +
      store::boot_mode_name(*mode) + " on " + firmware_text + " (HTTP port " + std::to_string(server.http_port()) +
      ", NBD port " + std::to_string(server.nbd_port()) +
      (server.iscsi_ports().empty() ? std::string() : ", iSCSI port " + std::to_string(server.iscsi_ports()[0])) +
      "), waiting up to " +
      std::to_string(timeout) + " s for /" + expect_text + "/");
  auto machine = std::make_unique<guest::NetbootVm>(vo);
  guest::ConsoleWatch watch(expect);
  std::set<serve::BootEvent::Kind> seen;
  std::string failure, qemu_output;
  bool interrupted = false;
  while (true) {
    {
      std::lock_guard lock(events_mutex);
      for (const auto& e : events) {
        if (seen.insert(e.kind).second) say(at() + describe(e));
      }
      events.clear();
    }
    if (watch.feed(machine->read_console())) break;
    if (guest::StopSignals::received()) {
      interrupted = true;
      break;
    }
    if (auto end = machine->poll()) {
      if (watch.feed(machine->read_console()) || watch.finish()) break;
      qemu_output = machine->output_tail();
      if (machine->accel() == guest::Accel::kKvm && requested == guest::Accel::kAuto &&
          guest::looks_like_kvm_failure(end->signaled, end->code, qemu_output, watch.kernel_started())) {
        std::string first = qemu_output.substr(0, qemu_output.find('\n'));
        guest::note_kvm_failed("QEMU " + end->describe() +
                                   (watch.kernel_started() ? "" : " before the guest's kernel printed anything") +
                                   (first.empty() ? "" : ": " + first),
                               say);
        vo.accel = guest::Accel::kTcg;
        machine = std::make_unique<guest::NetbootVm>(vo);
        watch.restart();
        seen.clear();
        qemu_output.clear();
        continue;
      }
      failure = "QEMU " + end->describe() + " (the guest powered off, rebooted or panicked) after " +
                std::to_string(static_cast<long>(elapsed())) + " s without a console line matching /" +
                expect_text + "/";
      if (!watch.panic_line().empty()) failure += "; the kernel said: " + watch.panic_line();
      break;
    }
    if (std::chrono::steady_clock::now() >= deadline) {
      failure = "timed out after " + std::to_string(timeout) + " s without a console line matching /" +
                expect_text + "/";
      qemu_output = machine->output_tail();
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  machine->kill();
  const double seconds = elapsed();
  const std::string accel = guest::accel_name(machine->accel());
  machine.reset();
  server.stop();
  server.exports().sessions().reset(v.image + "/" + client);  // ends it: lease released, cache deleted

  if (interrupted) {
    throw util::Error(std::string("interrupted by ") + guest::StopSignals::name(guest::StopSignals::received()) +
                      "; QEMU stopped, nothing kept" + (console_file.empty() ? "" : " but the console in " + console));
  }
  const bool passed = watch.matched();
  if (passed) say(at() + "matched after " + std::to_string(static_cast<long>(seconds)) + " s: " + watch.matched_line());
  if (!passed) {
    std::cerr << "imgtool boot-test: FAILED: " << target << ": " << failure << "\n";
    std::cerr << "--- console, last lines" << (console_file.empty() ? "" : " (all of it in " + console + ")") << ":\n";
    auto tail = watch.tail();
    if (tail.empty()) std::cerr << "(nothing on the serial console)\n";
    for (const auto& line : tail) std::cerr << line << "\n";
    if (!qemu_output.empty()) std::cerr << "--- QEMU said:\n" << qemu_output << (qemu_output.back() == '\n' ? "" : "\n");
    std::cerr << "--- boot server log, last lines:\n";
    for (const auto& line : server_log.lines()) std::cerr << line << "\n";
  }
  if (as_json) {
    nlohmann::json j{{"passed", passed},
                     {"image", v.image},
                     {"version", v.number},
                     {"seconds", std::round(seconds * 10) / 10},
                     {"accel", accel},
                     {"firmware", firmware_text},
                     {"mode", store::boot_mode_name(*mode)},
                     {"matched_line", passed ? nlohmann::json(watch.matched_line()) : nlohmann::json(nullptr)},
                     {"console", console_file.empty() ? nlohmann::json(nullptr) : nlohmann::json(console)},
                     {"reason", passed ? nlohmann::json(nullptr) : nlohmann::json(failure)}};
    std::cout << j.dump(2) << "\n";
  } else if (passed) {
    std::cout << "passed: " << target << " booted under " << accel << " and matched /" << expect_text << "/ in "
              << static_cast<long>(seconds) << " s\n";
  }
  return passed ? kExitOk : kExitNo;
}

}  // namespace bootfleet::imgtool
