// The pure parts of imgtool boot-test: the accelerator decision shared with
// libguestfs launches, QEMU's command line, --expect and the console watch.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cstdlib>

#include "guest/accel.h"
#include "guest/netboot_vm.h"
#include "util/error.h"

using namespace bootfleet::guest;

TEST_CASE("parse_accel takes auto, kvm, tcg and names the variable otherwise", "[guest]") {
  CHECK(parse_accel("", "X") == Accel::kAuto);
  CHECK(parse_accel("auto", "X") == Accel::kAuto);
  CHECK(parse_accel("kvm", "X") == Accel::kKvm);
  CHECK(parse_accel("tcg", "X") == Accel::kTcg);
  CHECK_THROWS_WITH(parse_accel("KVM2", "BOOTFLEET_GUEST_ACCEL"),
                    Catch::Contains("BOOTFLEET_GUEST_ACCEL='KVM2'") && Catch::Contains("auto, kvm or tcg"));
}

TEST_CASE("accel_from_environment reads BOOTFLEET_GUEST_ACCEL", "[guest]") {
  const char* old = std::getenv("BOOTFLEET_GUEST_ACCEL");
  std::string saved = old ? old : "";
  ::setenv("BOOTFLEET_GUEST_ACCEL", "tcg", 1);
  CHECK(accel_from_environment() == Accel::kTcg);
  ::setenv("BOOTFLEET_GUEST_ACCEL", "bogus", 1);
  CHECK_THROWS_AS(accel_from_environment(), bootfleet::util::Error);
  ::unsetenv("BOOTFLEET_GUEST_ACCEL");
  CHECK(accel_from_environment() == Accel::kAuto);
  if (old) ::setenv("BOOTFLEET_GUEST_ACCEL", saved.c_str(), 1);
}

TEST_CASE("first_accel: a forced choice stands; auto tries KVM only where it can work", "[guest]") {
  CHECK(first_accel(Accel::kTcg, true) == Accel::kTcg);
  CHECK(first_accel(Accel::kKvm, false) == Accel::kKvm);  // no fallback: the KVM error shows
  if (!kvm_failed()) CHECK(first_accel(Accel::kAuto, true) == Accel::kKvm);
  CHECK(first_accel(Accel::kAuto, false) == Accel::kTcg);
  // Once KVM failed in the process, auto goes straight to TCG; the note is said once.
  int notes = 0;
  note_kvm_failed("test", [&](const std::string& m) {
    ++notes;
    CHECK_THAT(m, Catch::Contains("TCG") && Catch::Contains("test"));
  });
  note_kvm_failed("again", [&](const std::string&) { ++notes; });
  CHECK(notes <= 1);
  CHECK(kvm_failed());
  CHECK(first_accel(Accel::kAuto, true) == Accel::kTcg);
  CHECK(first_accel(Accel::kKvm, true) == Accel::kKvm);
}

TEST_CASE("looks_like_kvm_failure: aborts, errors and KVM messages, not a clean power-off after the kernel ran", "[guest]") {
  CHECK(looks_like_kvm_failure(true, 6, "", true));  // SIGABRT (-cpu host on some hosts)
  CHECK(looks_like_kvm_failure(false, 1, "qemu-system-x86_64: -accel kvm: failed to initialize kvm: Permission denied", true));
  CHECK(looks_like_kvm_failure(false, 0, "error: kvm run failed Bad address", true));
  CHECK(looks_like_kvm_failure(false, 0, "KVM internal error. Suberror: 1", true));
  CHECK_FALSE(looks_like_kvm_failure(false, 0, "", true));
  CHECK_FALSE(looks_like_kvm_failure(false, 0, "warning: host doesn't support requested feature: CPUID.01H:ECX.pni", true));
}

TEST_CASE("looks_like_kvm_failure: a clean exit before any kernel output is a reset in the firmware", "[guest]") {
  // Nested KVM without every CPU feature: the PC resets at iPXE's banner
  // and QEMU (-no-reboot) exits 0.
  CHECK(looks_like_kvm_failure(false, 0, "warning: host doesn't support requested feature: CPUID.01H:ECX.pni", false));
  CHECK(looks_like_kvm_failure(false, 0, "", false));
}

TEST_CASE("ConsoleWatch::kernel_started: the kernel's first line, not iPXE's", "[guest]") {
  ConsoleWatch w(std::regex("never"));
  w.feed("\x1b[0;1miPXE 1.0.0+git\x1b[0m -- Open Source Network Boot Firmware\r\n");
  w.feed("http://10.0.2.2:4242/artifacts/tiny-linux@1/vmlinuz... ok\r\n");
  CHECK_FALSE(w.kernel_started());
  w.feed("[    0.000000] Linux version 6.1.0-13-amd64 (debian-kernel@lists.debian.org)\r\n");
  CHECK(w.kernel_started());
  w.restart();  // powered on again: the next boot has to show it again
  CHECK_FALSE(w.kernel_started());
  w.feed("Linux version 6.1.0 (quiet timestamps)\n");
  CHECK(w.kernel_started());
}

TEST_CASE("netboot_qemu_args: iPXE from the NIC ROM, user networking, console in a file", "[guest]") {
  NetbootVmOptions o;
  o.bootfile_url = "http://10.0.2.2:4242/boot.ipxe";
  o.console_path = "/tmp/c.log";
  o.accel = Accel::kTcg;
  auto a = netboot_qemu_args(o);
  auto has = [&](const std::string& flag, const std::string& value) {
    auto it = std::find(a.begin(), a.end(), flag);
    return it != a.end() && it + 1 != a.end() && it[1] == value;
  };
  CHECK(a[0] == "qemu-system-x86_64");
  CHECK(has("-accel", "tcg"));
  CHECK(has("-boot", "n"));
  CHECK(has("-netdev", "user,id=n0,bootfile=http://10.0.2.2:4242/boot.ipxe"));
  CHECK(has("-serial", "file:/tmp/c.log"));
  CHECK(std::find(a.begin(), a.end(), "-no-reboot") != a.end());
  o.accel = Accel::kKvm;
  a = netboot_qemu_args(o);
  CHECK(has("-accel", "kvm"));
  CHECK_FALSE(has("-accel", "tcg"));
  CHECK(std::find(a.begin(), a.end(), "-drive") == a.end());  // SeaBIOS: no flash
}

TEST_CASE("netboot_qemu_args: UEFI boots OVMF from flash, the NIC first", "[guest]") {
  NetbootVmOptions o;
  o.bootfile_url = "http://10.0.2.2:4242/boot.ipxe";
  o.console_path = "/tmp/c.log";
  o.firmware = parse_firmware("uefi", "--firmware");
  o.ovmf_vars = "/tmp/w/vars.fd";
  auto a = netboot_qemu_args(o);
  std::vector<std::string> drives;
  for (size_t i = 0; i + 1 < a.size(); ++i) {
    if (a[i] == "-drive") drives.push_back(a[i + 1]);
  }
  REQUIRE(drives.size() == 2);
  CHECK(drives[0] == "if=pflash,format=raw,readonly=on,file=/usr/share/OVMF/OVMF_CODE_4M.fd");
  CHECK(drives[1] == "if=pflash,format=raw,file=/tmp/w/vars.fd");
  CHECK(std::find(a.begin(), a.end(), "-boot") == a.end());
  CHECK(std::find(a.begin(), a.end(), "virtio-net-pci,netdev=n0,mac=52:54:00:b0:07:01,bootindex=1") != a.end());
  CHECK(parse_firmware("bios", "x") == Firmware::kBios);
  CHECK_THROWS_WITH(parse_firmware("coreboot", "--firmware"),
                    Catch::Contains("--firmware: 'coreboot' is not a firmware") && Catch::Contains("'uefi'"));
}

TEST_CASE("parse_expect: ECMAScript, errors name --expect", "[guest]") {
  CHECK(std::regex_search("bootfleet-marker image=x", parse_expect("marker image=\\w+")));
  CHECK_THROWS_WITH(parse_expect("(unclosed"), Catch::Contains("--expect '(unclosed'"));
  CHECK_THROWS_WITH(parse_expect(""), Catch::Contains("--expect"));
}

TEST_CASE("ConsoleWatch matches whole lines as they arrive, in pieces", "[guest]") {
  ConsoleWatch w(parse_expect("^bootfleet-marker image=tiny-linux version=1 "));
  CHECK_FALSE(w.feed("SeaBIOS\r\niPXE \x1b[1;32mok\x1b[0m\r\nbootfleet-mar"));
  CHECK_FALSE(w.feed("ker image=tiny-linux version=1 client=boot-test-1"));  // not a whole line yet
  CHECK(w.feed("\r\nmore\n"));
  CHECK(w.matched_line() == "bootfleet-marker image=tiny-linux version=1 client=boot-test-1");
  auto t = w.tail();
  REQUIRE(t.size() == 4);
  CHECK(t[1] == "iPXE ok");  // escape sequences and \r are gone
  // The first match stays.
  w.feed("bootfleet-marker image=tiny-linux version=1 client=other\n");
  CHECK_THAT(w.matched_line(), Catch::EndsWith("boot-test-1"));
}

TEST_CASE("ConsoleWatch: the last line counts at the end; the tail is bounded", "[guest]") {
  ConsoleWatch w(parse_expect("done$"), 3);
  for (int i = 0; i < 10; ++i) w.feed("line " + std::to_string(i) + "\n");
  w.feed("all done");
  CHECK_FALSE(w.matched());
  auto t = w.tail();
  REQUIRE(t.size() == 3);
  CHECK(t[0] == "line 8");
  CHECK(t[2] == "all done");
  CHECK(w.finish());
  w.restart();
  CHECK(w.tail().empty());
  CHECK(w.matched());
}

TEST_CASE("ConsoleWatch: a console that never ends a line is cut, not hoarded", "[guest]") {
  ConsoleWatch w(parse_expect("x{10}"), 5);
  w.feed(std::string(100000, 'y'));
  for (const auto& line : w.tail()) CHECK(line.size() <= 4096);
}

TEST_CASE("ConsoleWatch keeps the kernel's panic line apart from the tail", "[guest]") {
  ConsoleWatch w(parse_expect("bootfleet-marker"), 2);
  w.feed("[   35.0] Kernel panic - not syncing: Attempted to kill init! exitcode=0x00000000\n");
  for (int i = 0; i < 5; ++i) w.feed("[   35.1] trace line\n");
  CHECK(w.panic_line() == "Kernel panic - not syncing: Attempted to kill init! exitcode=0x00000000");
  CHECK_FALSE(w.matched());
}
