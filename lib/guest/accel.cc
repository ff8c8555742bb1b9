#include "guest/accel.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <cstdlib>
#include <mutex>

#include "util/error.h"

namespace bootfleet::guest {

namespace {
std::atomic<bool> kvm_failed_flag{false};
std::once_flag fallback_noted;
}  // namespace

Accel parse_accel(const std::string& text, const std::string& what) {
  if (text.empty() || text == "auto") return Accel::kAuto;
  if (text == "kvm") return Accel::kKvm;
  if (text == "tcg") return Accel::kTcg;
  throw util::Error(what + "='" + text + "': expected auto, kvm or tcg");
}

Accel accel_from_environment() {
  const char* v = std::getenv("BOOTFLEET_GUEST_ACCEL");
  return parse_accel(v ? v : "", "BOOTFLEET_GUEST_ACCEL");
}

const char* accel_name(Accel accel) {
  switch (accel) {
    case Accel::kKvm: return "KVM";
    case Accel::kTcg: return "TCG";
    case Accel::kAuto: break;
  }
  return "auto";
}

Accel first_accel(Accel requested, bool kvm_available) {
  if (requested != Accel::kAuto) return requested;
  return kvm_available && !kvm_failed() ? Accel::kKvm : Accel::kTcg;
}

bool kvm_device_usable() {
  int fd = ::open("/dev/kvm", O_RDWR | O_CLOEXEC);
  if (fd < 0) return false;
  ::close(fd);
  return true;
}

bool kvm_failed() { return kvm_failed_flag.load(); }

void note_kvm_failed(const std::string& why, const std::function<void(const std::string&)>& note) {
  kvm_failed_flag = true;
  std::call_once(fallback_noted, [&] {
    if (note) {
      note("the guest did not run with KVM (" + why +
           "); retrying with TCG, which is slower (set BOOTFLEET_GUEST_ACCEL=tcg to skip KVM)");
    }
  });
}

bool looks_like_kvm_failure(bool signaled, int status, const std::string& qemu_stderr, bool kernel_started) {
  if (signaled || status != 0 || !kernel_started) return true;
  std::string lower = qemu_stderr;
  std::transform(lower.begin(), lower.end(), lower.begin(), [](unsigned char c) { return std::tolower(c); });
  for (const char* sign : {"failed to initialize kvm", "kvm run failed", "kvm internal error", "kvm_"}) {
    if (lower.find(sign) != std::string::npos) return true;
  }
  return false;
}

}  // namespace bootfleet::guest
