// Which accelerator a guest runs under: KVM when it works, else TCG.
//
// Design note. Two kinds of guest run here: libguestfs appliances (builds,
// inspection) and plain QEMU network boots (imgtool boot-test). Both face
// the same machine: /dev/kvm may be missing, unusable, or present while
// QEMU aborts under it. Both make the same decision in one place: the
// environment variable BOOTFLEET_GUEST_ACCEL=auto|kvm|tcg picks (kvm: no
// fallback, so a KVM problem shows as the error it is); under auto, KVM is
// tried first, and once it has failed in this process every later guest
// goes straight to TCG and the user is told once, whichever kind of guest
// found out.
//
// "Failed" is decided by evidence, not by /dev/kvm opening: some hosts
// (nested virtualisation without every CPU feature) open /dev/kvm and start
// the guest, which then resets inside the firmware (at iPXE's banner) and
// QEMU, run with -no-reboot, exits 0 as if the guest had powered off. So a
// network boot under KVM that ends before its kernel printed anything is a
// KVM failure whatever QEMU's status; under TCG the same end is the guest's
// own failure. A libguestfs appliance's evidence is its launch: one that
// fails, or under auto has not finished after 60 s under KVM (on such hosts
// libguestfs would wait many minutes), is retried under TCG (Guest::launch).
#pragma once

#include <functional>
#include <string>

namespace bootfleet::guest {

enum class Accel { kAuto, kKvm, kTcg };

// "auto", "kvm", "tcg" (empty: auto). Throws util::Error naming `what` and
// the accepted values.
Accel parse_accel(const std::string& text, const std::string& what);
// BOOTFLEET_GUEST_ACCEL, default kAuto. Throws util::Error on a bad value.
Accel accel_from_environment();
const char* accel_name(Accel accel);  // "auto", "KVM", "TCG"

// What to try first: kKvm or kTcg. `kvm_available` is whether this kind of
// guest can use KVM at all (libguestfs checks for itself: pass true).
Accel first_accel(Accel requested, bool kvm_available);
// Whether /dev/kvm can be opened for reading and writing.
bool kvm_device_usable();

// True once a KVM launch failed in this process.
bool kvm_failed();
// Records that KVM failed (`why`: the first line of the error) and, the
// first time only, tells `note` that guests now run under TCG.
void note_kvm_failed(const std::string& why, const std::function<void(const std::string&)>& note);

// Whether a QEMU under KVM that ended on its own without doing its job
// failed because of KVM: it died of a signal (QEMU aborts on KVM errors),
// exited non-zero, said so on stderr, or ended before the guest's kernel
// printed its first line (`kernel_started` false: the PC reset in its
// firmware). A clean exit after the kernel ran (the guest powered off,
// rebooted or panicked) is not one.
bool looks_like_kvm_failure(bool signaled, int status, const std::string& qemu_stderr, bool kernel_started);

}  // namespace bootfleet::guest
