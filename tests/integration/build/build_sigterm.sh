#!/usr/bin/env bash
# SIGTERM during `imgtool build`, as boot-test handles it: the appliance is
# killed, nothing is stored, and nothing the build made is left behind (its
# work directory with the NBD socket, libguestfs's temporary directory, any
# child process); exit 2 with "interrupted by SIGTERM". One partial
# appliance launch (seconds).
source "$(dirname "$0")/../lib.sh"
export BOOTFLEET_STORE=$WORK/store
# libguestfs's temporary directories go under TMPDIR: checked empty below.
# Its appliance cache stays where it is, so no appliance is rebuilt here.
export LIBGUESTFS_CACHEDIR=${LIBGUESTFS_CACHEDIR:-/var/tmp} TMPDIR=$WORK/tmp
mkdir -p "$TMPDIR" wd
"$IMGTOOL" init >/dev/null
cat > r.yaml <<'R'
image: lab
base:
  create: {size: 16M, partition_table: mbr, partitions: [{type: linux, filesystem: ext4}]}
steps:
  - mkdir: /etc
R
"$IMGTOOL" build r.yaml --work-dir "$WORK/wd" > build.log 2>&1 &
BUILD=$!
# Wait for the appliance (a child QEMU) to run, then stop the build.
for _ in $(seq 1 600); do
  pgrep -P $BUILD -f qemu >/dev/null && break
  kill -0 $BUILD 2>/dev/null || fail "the build ended before its appliance ran: $(cat build.log)"
  sleep 0.1
done
pgrep -P $BUILD -f qemu >/dev/null || fail "no appliance QEMU after 60 s: $(cat build.log)"
[ -n "$(ls -A wd)" ] || fail "no work directory while building"
kill -TERM $BUILD
rc=0
wait $BUILD || rc=$?
assert_eq "$rc" 2 "imgtool build's exit status on SIGTERM ($(cat build.log))"
grep -q "imgtool build: interrupted by SIGTERM" build.log || fail "no 'interrupted by SIGTERM': $(cat build.log)"
grep -q "nothing was stored" build.log || fail "does not say that nothing was stored: $(cat build.log)"
[ -z "$(ls -A wd)" ] || fail "the build's work directory was left: $(ls -AR wd)"
[ -z "$(ls -A "$TMPDIR")" ] || fail "temporary files were left: $(ls -A "$TMPDIR")"
sleep 0.5
! pgrep -f "$WORK/wd" >/dev/null || fail "a process of the build outlived it: $(pgrep -af "$WORK/wd")"
assert_eq "$("$IMGTOOL" images --json | json 'len(j)')" 0 "images after an interrupted build"
pass "SIGTERM during build: exit 2, 'interrupted by SIGTERM', nothing stored, no work directory, temporary file or process left"
