#!/usr/bin/env bash
# A PC keeps using its disk while bootsrv is restarted under it.
#
# Debian 12's nbd-client does not reconnect (client/nbd_client.cc says why),
# so the client boots an initramfs made here with bootfleet's hook
# (packaging/initramfs-tools/hooks/bootfleet-nbd), which runs
# bootfleet-nbd-client in its place: tiny-linux-reconnect.yaml puts it into
# a new version of tiny-linux (one appliance launch). One QEMU (TCG)
# client network-boots that over NBD with bootfleet.writer=N on
# its kernel line (the client's --cmdline), so that its init, instead of
# powering off, loops: write a numbered record, sync, read it back from the
# disk, print the round and the uptime (recipes/tiny-linux/init,
# writer_loop). Meanwhile:
#
#   1. after ROUNDS rounds bootsrv is killed (SIGKILL), stays down for
#      DOWN seconds, and is started again on the same store and cache;
#   2. after ROUNDS more it is stopped gracefully (SIGTERM, as systemctl
#      restart does), waits DOWN seconds, and is started again;
#   3. after ROUNDS more "stop" is typed on the client's console; it prints
#      whether every check passed and the kernel's lines about its disk,
#      and powers off.
#
# The test fails unless rounds completed before, across and after each
# restart, every check passed, no round failed, and the guest's kernel log
# holds no I/O error, no blk_update_request, no ext4 or journal error about
# its disk. It prints the pause the client saw at each restart (the longest gap
# between two rounds' ends around it). Then, from outside and with the
# client off, the session's export is read with nbdcopy and the last record
# the guest synced before the SIGKILL is found in it (debugfs reads the
# record log off the ext4 root): what the client flushed survived the kill
# on the server's side too.
source "$(dirname "$0")/../integration/lib.sh"
source "$(dirname "$0")/boot_lib.sh"
BOOTSRV=${BOOTSRV:?set BOOTSRV to the bootsrv binary}
NBD_CLIENT=${BOOTFLEET_NBD_CLIENT_BINARY:?set BOOTFLEET_NBD_CLIENT_BINARY to the bootfleet-nbd-client binary}
HOOK=$HERE_LIB/../../packaging/initramfs-tools/hooks/bootfleet-nbd
RECIPES=$(cd "$HERE_LIB/../../recipes" && pwd)
export BOOTFLEET_STORE=$WORK/store BOOTFLEET_GUEST_ACCEL=${BOOTFLEET_GUEST_ACCEL:-tcg}
ROUNDS=${ROUNDS:-8}  # rounds to see before each restart and after the last
DOWN=${DOWN:-3}      # seconds bootsrv stays down at each restart
started=$SECONDS

tiny_linux_store
pass "tiny-linux@1 ready ($(( SECONDS - started )) s)"

# The initramfs: the system's initramfs-tools configuration plus our hook,
# for the kernel tiny-linux copies.
KVER=$(basename "$(readlink -f /vmlinuz)"); KVER=${KVER#vmlinuz-}
# BOOTFLEET_RECONNECT_INITRD: one made before, copied instead (saves a
# minute when iterating).
if [ -n "${BOOTFLEET_RECONNECT_INITRD:-}" ]; then
  cp "$BOOTFLEET_RECONNECT_INITRD" initrd-reconnect.img
else
  t=$SECONDS
  mkdir conf && cp -a /etc/initramfs-tools/. conf/ && mkdir -p conf/hooks && cp "$HOOK" conf/hooks/
  BOOTFLEET_NBD_CLIENT_BINARY=$NBD_CLIENT timeout 600 mkinitramfs -d conf -o initrd-reconnect.img "$KVER" > mkinitramfs.log 2>&1 ||
    fail "mkinitramfs: $(tail mkinitramfs.log)"
  pass "initramfs with bootfleet-nbd-client for $KVER ($(( SECONDS - t )) s)"
fi
lsinitramfs initrd-reconnect.img > initramfs.list
grep -qx "usr/sbin/bootfleet-nbd-client\|sbin/bootfleet-nbd-client" initramfs.list || fail "the initramfs has no bootfleet-nbd-client"
grep -qx "conf/conf.d/bootfleet-nbd" initramfs.list || fail "the initramfs does not set NBDCLIENT"
grep -q "scripts/local-top/nbd" initramfs.list || fail "the initramfs has no nbd hook (is nbd-client installed?)"
t=$SECONDS
timeout 900 "$IMGTOOL" build "$RECIPES/tiny-linux-reconnect.yaml" --set INITRD="$WORK/initrd-reconnect.img" --publish > build.log 2>&1 ||
  fail "build: $(tail -20 build.log)"
VERSION=$("$IMGTOOL" versions tiny-linux --json | json 'max(v["number"] for v in j)')
[ "$VERSION" -eq 2 ] || fail "tiny-linux-reconnect built version $VERSION, expected 2"
pass "tiny-linux@2 with that initramfs built and published ($(( SECONDS - t )) s)"

# The loop's bound: far more rounds than the test needs, so that it ends by
# the "stop" typed below unless the test is stuck (then the timeouts end it).
"$IMGTOOL" client add 52:54:00:00:e2:31 --name pc31 --image tiny-linux --cmdline "bootfleet.writer=2000" >/dev/null

NBD_PORT=$(free_port)
HTTP_PORT=$(free_port)
SERVE_ARGS=(serve --listen "127.0.0.1:$NBD_PORT" --http-listen "127.0.0.1:$HTTP_PORT" --idle-timeout 1h)
start_bootsrv "listening for HTTP" "${SERVE_ARGS[@]}"

# The console is a pair of FIFOs (QEMU's pipe chardev): the guest's output
# is copied to console.log, and "stop" is typed into console.in.
mkfifo console.in console.out
: > console.log
cat console.out >> console.log &
CAT_PID=$!
QEMU_PIDS+=("$CAT_PID")
exec 3<>console.in
timeout 900 qemu-system-x86_64 -accel tcg -nographic -no-reboot -m 1024 -boot n \
  -netdev "user,id=n0,bootfile=http://10.0.2.2:$HTTP_PORT/boot.ipxe" \
  -device "virtio-net-pci,netdev=n0,mac=52:54:00:00:e2:31" \
  -chardev pipe,id=s0,path=console -serial chardev:s0 -monitor none -display none > qemu.log 2>&1 &
QEMU_PID=$!
QEMU_PIDS+=("$QEMU_PID")

console() { tr -d '\r' < console.log; }
# rounds_done: the last round the guest reported.
rounds_done() { console | sed -n 's/^bootfleet-writer round=\([0-9]*\) .*/\1/p' | tail -1; }
# wait_rounds N WHAT: waits until the guest has reported round N.
wait_rounds() {
  local deadline=$(( SECONDS + 600 )) n
  while [ $SECONDS -lt $deadline ]; do
    n=$(rounds_done); n=${n:-0}
    [ "$n" -ge "$1" ] && return 0
    kill -0 "$QEMU_PID" 2>/dev/null || break
    console | grep -q "^bootfleet-writer end" && break
    sleep 0.2
  done
  echo "FAIL: $2: the client never reached round $1 (at ${n:-0}); console tail:" >&2
  console | tail -30 >&2
  echo "--- bootsrv log tail:" >&2
  tail -15 server.log >&2
  exit 1
}

wait_rounds "$ROUNDS" "before the restarts"
expect_console console.log "bootfleet-marker image=tiny-linux version=$VERSION client=pc31" "pc31's boot"
pass "pc31 booted over NBD and wrote $ROUNDS rounds ($(( SECONDS - started )) s)"

# restart SIGNAL: stops bootsrv with SIGNAL, keeps it down DOWN seconds,
# starts it again; KILLED_AT/RESTARTED_AT: the guest's round at each point.
restart() {
  KILLED_AT=$(rounds_done)
  kill -"$1" "$SERVER"
  local rc=0
  wait "$SERVER" 2>/dev/null || rc=$?
  if [ "$1" = TERM ]; then
    [ $rc -eq 0 ] || fail "bootsrv exited $rc on SIGTERM: $(tail server.log)"
  else
    [ $rc -eq 137 ] || fail "bootsrv exited $rc on SIGKILL, expected 137"
  fi
  cp server.log "server-before-$1.log"
  sleep "$DOWN"
  RESTARTED_AT=$(rounds_done)
  start_bootsrv "listening for HTTP" "${SERVE_ARGS[@]}"
  grep -q "session tiny-linux/pc31 reopened on tiny-linux@$VERSION" server.log ||
    fail "after SIG$1, bootsrv did not reopen pc31's session: $(cat server.log)"
}

restart KILL
# The last record the guest synced before the kill: looked for on the
# server's side at the end.
SYNCED_BEFORE_KILL=$KILLED_AT
wait_rounds $(( RESTARTED_AT + ROUNDS )) "after the SIGKILL"
KILL_ROUNDS="$KILLED_AT $RESTARTED_AT"
pass "bootsrv killed at round $KILLED_AT, restarted at round $RESTARTED_AT after $DOWN s; the client went on"

restart TERM
wait_rounds $(( RESTARTED_AT + ROUNDS )) "after the SIGTERM"
TERM_ROUNDS="$KILLED_AT $RESTARTED_AT"
pass "bootsrv stopped (SIGTERM) at round $KILLED_AT, restarted at round $RESTARTED_AT after $DOWN s; the client went on"

printf 'stop\r' >&3
wait "$QEMU_PID" || fail "QEMU exited $? (timeout?); console tail: $(console | tail -30)"
console | grep -q "^bootfleet-writer end" || fail "the writer loop did not end; console tail: $(console | tail -30)"
console | grep "^bootfleet-writer done" || true
console | grep -q "^bootfleet-writer round=.* FAILED" && fail "rounds failed: $(console | grep FAILED | head)"
expect_console console.log "bootfleet-writer all checks passed" "the writer's checks"
# The kernel's own lines about the disk. A restart shows as the connection
# dropping ("Receive control failed", "Dead connection, failed to find a
# fallback": the kernel then holds requests for bootfleet-nbd-client) and
# coming back ("reconnected"); an I/O error, an ext4 or journal error, or a
# device that gave up is what a PC must never see.
# (QEMU's empty floppy drive, fd0, also says "I/O error" when probed; it is
# not this disk.)
bad=$(console | grep '^bootfleet-dmesg' | grep -E 'nbd|EXT4-fs|JBD2' |
  grep -iE 'I/O error|blk_update_request|EXT4-fs (error|warning)|JBD2|Aborting journal|read-only|will not reconnect|not the same disk' || true)
[ -z "$bad" ] || fail "the client's kernel logged errors about its disk: $bad"
# Each stop reached the client (its connection dropped) and each time it
# came back: otherwise the rounds above prove nothing about restarts.
lost=$(console | grep -c '^bootfleet-dmesg .*bootfleet-nbd-client: /dev/nbd0: connection lost' || true)
back=$(console | grep -c '^bootfleet-dmesg .*bootfleet-nbd-client: /dev/nbd0: reconnected to ' || true)
assert_eq "$lost $back" "2 2" "connections the client lost and got back (SIGKILL, SIGTERM)"
pass "every round's write, sync and read-back passed; no I/O error in the client's kernel log"

# pause FIRST LAST: the longest gap between two consecutive rounds' ends
# among rounds FIRST..LAST, in seconds.
pause() {
  console | awk -v a="$1" -v b="$2" '
    /^bootfleet-writer round=/ { split($2, r, "="); split($3, t, "=");
      if (r[2] >= a && r[2] <= b) { if (prev != "" && t[2] - prev > max) max = t[2] - prev; prev = t[2] } }
    END { printf "%.2f", max }'
}
# From outside, with the client off: the session's disk as bootsrv (started
# after both stops) serves it holds the guest's whole record log, in order,
# through the last round, including the record synced just before the
# SIGKILL. ROOT: the first partition's offset in the MBR.
nbdcopy "nbd://127.0.0.1:$NBD_PORT/tiny-linux/pc31" session.raw || fail "nbdcopy of the session tiny-linux/pc31 failed"
ROOT=$(( $($PY -c 'import struct; print(struct.unpack_from("<I", open("session.raw", "rb").read(512), 454)[0])') * 512 ))
debugfs -R "cat /var/bootfleet-writer.log" "session.raw?offset=$ROOT" > outside.log 2> debugfs.err ||
  fail "debugfs could not read the record log from the session's disk: $(cat debugfs.err)"
LAST=$(console | sed -n 's/^bootfleet-writer done rounds=\([0-9]*\) .*/\1/p')
seq 1 "$LAST" | sed 's/.*/round & of pc31/' > expected.log
cmp -s outside.log expected.log || fail "the session's disk does not hold rounds 1..$LAST in order: $(diff expected.log outside.log | head)"
grep -qxF "round $SYNCED_BEFORE_KILL of pc31" outside.log || fail "the record synced before the SIGKILL is not on the session's disk"
pass "read from outside (nbdcopy + debugfs): the session's disk holds all $LAST records, round $SYNCED_BEFORE_KILL (synced before the SIGKILL) among them"

read -r k1 k2 <<<"$KILL_ROUNDS"; read -r t1 t2 <<<"$TERM_ROUNDS"
console | grep '^bootfleet-dmesg' | grep -E 'block nbd|bootfleet-nbd-client' || true
echo "pause seen by the client: after SIGKILL $(pause "$k1" $(( k2 + ROUNDS ))) s, after SIGTERM $(pause "$t1" $(( t2 + ROUNDS ))) s" \
  "(bootsrv down $DOWN s each time; longest round before the restarts $(pause 1 "$ROUNDS") s)"
