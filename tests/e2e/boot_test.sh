#!/usr/bin/env bash
# imgtool boot-test end to end: a version network-boots in QEMU (TCG here)
# against imgtool's private in-process boot server, and the verdict follows
# the console.
#
#   1. usage errors exit 2 and name the problem (no QEMU started);
#   2. a --timeout too short for any boot fails with "timed out";
#   3. SIGTERM stops it, QEMU included;
#   4. tiny-linux@1 passes with the default --expect and with an exact one
#      (--json, --console); the version file is byte-identical afterwards,
#      verify is clean, no client is registered, no lease, cache or temporary
#      file is left;
#   5. a version whose /sbin/init exits at once (one build on tiny-linux@1)
#      fails: exit 1, the reason and the console's tail on stderr.
source "$(dirname "$0")/../integration/lib.sh"
export BOOTFLEET_STORE=$WORK/store BOOTFLEET_GUEST_ACCEL=${BOOTFLEET_GUEST_ACCEL:-tcg}
# boot-test's work directory (console, caches) goes under TMPDIR: checked empty at the end.
export TMPDIR=$WORK/tmp
mkdir -p "$TMPDIR"
started=$SECONDS
if [ -n "${BOOTFLEET_TINY_STORE:-}" ]; then
  cp -a "$BOOTFLEET_TINY_STORE" "$BOOTFLEET_STORE"
else
  RECIPES=$(cd "$HERE_LIB/../../recipes" && pwd)
  "$IMGTOOL" init >/dev/null
  timeout 900 "$IMGTOOL" build "$RECIPES/tiny-linux.yaml" --publish > build.log 2>&1 || fail "build: $(tail -20 build.log)"
fi
V1_FILE=$BOOTFLEET_STORE/$("$IMGTOOL" versions tiny-linux --json | json 'j[0]["file"]')
sha256sum "$V1_FILE" > v1.sum

# 1. Usage errors: exit 2, naming what is wrong.
expect_exit 2 "$IMGTOOL" boot-test
expect_contains "missing IMAGE@N (imgtool boot-test IMAGE@N"
expect_exit 2 "$IMGTOOL" boot-test tiny-linux
expect_contains "tiny-linux"
expect_exit 2 "$IMGTOOL" boot-test nosuch@1
expect_contains "nosuch"
expect_exit 2 "$IMGTOOL" boot-test tiny-linux@99
expect_contains "99"
expect_exit 2 "$IMGTOOL" boot-test tiny-linux@1 --expect '(unclosed'
expect_contains "--expect '(unclosed'"
expect_exit 2 "$IMGTOOL" boot-test tiny-linux@1 --timeout 0
expect_contains "--timeout"
expect_exit 2 "$IMGTOOL" boot-test tiny-linux@1 --firmware coreboot
expect_contains "--firmware: 'coreboot' is not a firmware"
expect_exit 2 "$IMGTOOL" boot-test tiny-linux@1 --mode pxe
expect_contains "--mode: 'pxe' is not a boot mode"
truncate -s 4M blank.raw
"$IMGTOOL" import noboot blank.raw -m "no kernel" >/dev/null
expect_exit 2 "$IMGTOOL" boot-test noboot@1
expect_contains "noboot@1 has no artifact 'vmlinuz'"
expect_contains "copy-out"
expect_exit 0 "$IMGTOOL" boot-test --help
expect_contains "bootfleet-marker"
expect_contains "Exit status"
pass "usage errors exit 2 and name the problem"

# 2. A timeout no boot can meet.
t=$SECONDS
expect_exit 1 timeout 60 "$IMGTOOL" boot-test tiny-linux@1 --timeout 3
expect_contains "timed out after 3 s"
expect_contains "--- console"
[ $(( SECONDS - t )) -le 15 ] || fail "--timeout 3 took $(( SECONDS - t )) s"
pass "--timeout 3 fails with 'timed out' in $(( SECONDS - t )) s"

# 3. SIGTERM: boot-test stops, and so does its QEMU.
"$IMGTOOL" boot-test tiny-linux@1 --console "$WORK/sigterm-console.log" > sigterm.out 2>&1 &
BT=$!
for _ in $(seq 1 100); do
  pgrep -f "file:$WORK/sigterm-console.log" >/dev/null && break
  sleep 0.1
done
pgrep -f "file:$WORK/sigterm-console.log" >/dev/null || fail "QEMU did not start: $(cat sigterm.out)"
kill -TERM $BT
rc=0
wait $BT || rc=$?
assert_eq "$rc" 2 "boot-test's exit status on SIGTERM"
grep -q "interrupted by SIGTERM" sigterm.out || fail "no 'interrupted by SIGTERM' in: $(cat sigterm.out)"
sleep 0.5
! pgrep -f "file:$WORK/sigterm-console.log" >/dev/null || fail "QEMU outlived boot-test after SIGTERM"
pass "SIGTERM stops boot-test (exit 2) and its QEMU"

# 4. tiny-linux@1 passes (one boot: the default --expect is used by the
# broken-init case below and by the pipeline test). On UEFI: the linux path
# (kernel and initrd over HTTP by iPXE's EFI half, root over NBD) on OVMF;
# SeaBIOS boots the same path in boot_http.sh and pipeline.sh.
t=$SECONDS
set +e
timeout 600 "$IMGTOOL" boot-test tiny-linux@1 --firmware uefi --expect 'bootfleet-marker image=tiny-linux version=1' \
  --console "$WORK/console.log" --json > result.json 2> progress.log
rc=$?
set -e
assert_eq "$rc" 0 "boot-test --expect exit status ($(cat progress.log))"
assert_eq "$(json 'j["passed"]' < result.json)" True "passed in --json"
assert_eq "$(json 'j["accel"]' < result.json)" TCG "accel in --json"
assert_eq "$(json '[j["firmware"], j["mode"]]' < result.json)" "['uefi', 'linux']" "firmware and mode in --json"
assert_eq "$(json 'j["console"]' < result.json)" "$WORK/console.log" "console in --json"
json 'j["matched_line"]' < result.json | grep -q "^bootfleet-marker image=tiny-linux version=1 client=boot-test-" ||
  fail "matched_line: $(cat result.json)"
grep -qa "bootfleet-marker image=tiny-linux version=1" "$WORK/console.log" || fail "--console FILE does not hold the console"
OUT=$(cat progress.log)   # (the "passed:" line is stdout's, replaced by --json here)
expect_contains "boot script served"
expect_contains "root attached over NBD (export tiny-linux/boot-test-"
expect_contains "matched after"
grep "^boot-test:" progress.log || true
pass "tiny-linux@1 passes on UEFI with an exact --expect, --json and --console ($(( SECONDS - t )) s, $(json 'j["seconds"]' < result.json) s by boot-test)"

sha256sum -c --quiet v1.sum || fail "the version file changed"
"$IMGTOOL" verify > verify.out || fail "verify: $(cat verify.out)"
assert_eq "$("$IMGTOOL" client list --json | json 'len(j)')" 0 "clients registered"
leases=$($PY -c 'import sqlite3,sys; print(sqlite3.connect(sys.argv[1]).execute("select count(*) from leases").fetchone()[0])' "$BOOTFLEET_STORE/catalog.db")
assert_eq "$leases" 0 "leases left in the catalog"
[ -z "$(ls -A "$TMPDIR")" ] || fail "boot-test left files in TMPDIR: $(ls -A "$TMPDIR")"
[ ! -d "$BOOTFLEET_STORE/cache" ] || [ -z "$(ls -A "$BOOTFLEET_STORE/cache")" ] || fail "files in the store's cache dir"
pass "afterwards: the version file is unchanged, verify is clean, no client, lease, cache or temporary file"

# 5. A version whose init exits at once: the kernel panics, no marker.
mkdir recipe
cat > recipe/broken.yaml <<'YAML'
image: tiny-linux
message: init exits at once
base: tiny-linux@1
steps:
  - write:
      path: /sbin/init
      content: "#!/bin/sh\necho tiny-broken: this init exits at once\n"
      mode: "0755"
  - copy-out:
      from: /boot/vmlinuz
      artifact: vmlinuz
  - copy-out:
      from: /boot/initrd.img
      artifact: initrd.img
YAML
t=$SECONDS
timeout 900 "$IMGTOOL" build recipe/broken.yaml > broken-build.log 2>&1 || fail "build: $(tail -20 broken-build.log)"
BROKEN=$("$IMGTOOL" versions tiny-linux --json | json 'max(v["number"] for v in j)')
[ "$BROKEN" -gt 1 ] || fail "the broken build made no new version"
pass "built tiny-linux@$BROKEN with a broken init ($(( SECONDS - t )) s)"
t=$SECONDS
expect_exit 1 timeout 600 "$IMGTOOL" boot-test "tiny-linux@$BROKEN" --console "$WORK/broken-console.log"
expect_contains "FAILED: tiny-linux@$BROKEN: QEMU exited"
expect_contains "without a console line matching /bootfleet-marker/"
expect_contains "the kernel said: Kernel panic - not syncing: Attempted to kill init!"
expect_contains "--- console, last lines (all of it in $WORK/broken-console.log)"
expect_contains "Kernel Offset"  # the end of the panic, in the tail
expect_contains "--- boot server log"
grep -qa "tiny-broken: this init exits at once" "$WORK/broken-console.log" || fail "the broken init's line is not in --console"
pass "tiny-linux@$BROKEN fails (exit 1) with the console's tail ($(( SECONDS - t )) s)"
sha256sum -c --quiet v1.sum || fail "the version 1 file changed"
pass "boot-test end to end in $(( SECONDS - started )) s"
