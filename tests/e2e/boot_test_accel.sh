#!/usr/bin/env bash
# imgtool boot-test's automatic choice of accelerator (no
# BOOTFLEET_GUEST_ACCEL), the path every other e2e test skips by forcing TCG.
# Cheap: no image is built and no kernel runs; the boot only has to reach
# iPXE's download of the kernel, which a PC whose firmware resets under KVM
# never does.
#
# Meaningful on every host kind, each with its own expected story:
#   - /dev/kvm absent or not usable: booted under TCG, no "retrying" line;
#   - KVM works: booted under KVM, no "retrying" line;
#   - KVM opens but the guest resets in its firmware (nested hosts without
#     every CPU feature; QEMU exits 0): booted under KVM, one "retrying with
#     TCG" line, passed under TCG.
# In every case it must pass, and the "retrying" line appears at most once.
source "$(dirname "$0")/../integration/lib.sh"
unset BOOTFLEET_GUEST_ACCEL
export BOOTFLEET_STORE=$WORK/store TMPDIR=$WORK/tmp
mkdir -p "$TMPDIR"
"$IMGTOOL" init >/dev/null
truncate -s 4M blank.raw
"$IMGTOOL" import fake blank.raw -m "kernel files that are not kernels" >/dev/null
# Artifacts live beside the version (docs/store.md); these are only fetched.
ARTIFACTS=$BOOTFLEET_STORE/$("$IMGTOOL" versions fake --json | json 'j[0]["file"][:-4]').artifacts
mkdir -p "$ARTIFACTS"
echo "not a kernel" > "$ARTIFACTS/vmlinuz"
echo "not an initrd" > "$ARTIFACTS/initrd.img"

if [ -r /dev/kvm ] && [ -w /dev/kvm ]; then kvm=usable; else kvm=absent; fi
t=$SECONDS
set +e
timeout 600 "$IMGTOOL" boot-test fake@1 --expect '/artifacts/.*vmlinuz' --timeout 240 --json \
  > result.json 2> progress.log
rc=$?
set -e
assert_eq "$rc" 0 "boot-test's exit status ($(cat progress.log))"
accel=$(json 'j["accel"]' < result.json)
retries=$(grep -c "retrying with TCG" progress.log || true)
first=$(grep -m1 "^boot-test: booting" progress.log)
case "$kvm" in
  absent)
    grep -q "under TCG" <<<"$first" || fail "no usable /dev/kvm, yet: $first"
    assert_eq "$accel" TCG "accel without /dev/kvm"
    assert_eq "$retries" 0 "'retrying with TCG' lines without /dev/kvm" ;;
  usable)
    grep -q "under KVM" <<<"$first" || fail "/dev/kvm is usable, yet auto did not try KVM first: $first"
    if [ "$accel" = TCG ]; then
      assert_eq "$retries" 1 "'retrying with TCG' lines after KVM failed"
      grep -q "before the guest's kernel printed anything\|died of signal\|exited with status" progress.log ||
        fail "the retry line does not say what went wrong: $(cat progress.log)"
    else
      assert_eq "$accel" KVM "accel"
      assert_eq "$retries" 0 "'retrying with TCG' lines when KVM worked"
    fi ;;
esac
assert_eq "$(json 'j["passed"]' < result.json)" True "passed in --json"
[ -z "$(ls -A "$TMPDIR")" ] || fail "boot-test left files in TMPDIR: $(ls -A "$TMPDIR")"
pass "auto accelerator, /dev/kvm $kvm: passed under $accel with $retries retry line(s) ($(( SECONDS - t )) s)"
