#!/usr/bin/env bash
# Network boot end to end, as a PC does it: QEMU's iPXE ROM gets
# bootfile=http://10.0.2.2:PORT/boot.ipxe from QEMU's user-mode DHCP (10.0.2.2
# is the host's loopback through slirp), bootsrv answers with the client's
# script, the Debian kernel and initramfs come over HTTP, and the initramfs's
# nbd hook attaches the root over NBD to the client's session. tiny-linux's
# init prints what it booted and powers off.
#
#   1. pc01 boots version 1: marker, a clean disk, writes work; the version
#      file is unchanged afterwards.
#   2. pc01 reboots: a fresh write cache again, still version 1.
#   3. the update is built; pc02 starts booting, and while it is mid-boot the
#      update is published: pc02 still completes on version 1.
#   4. pc01 boots the update; after a rollback it boots version 1 again.
source "$(dirname "$0")/../integration/lib.sh"
source "$(dirname "$0")/boot_lib.sh"
BOOTSRV=${BOOTSRV:?set BOOTSRV to the bootsrv binary}
RECIPES=$(cd "$HERE_LIB/../../recipes" && pwd)
export BOOTFLEET_STORE=$WORK/store BOOTFLEET_GUEST_ACCEL=${BOOTFLEET_GUEST_ACCEL:-tcg}
started=$SECONDS

tiny_linux_store
pass "tiny-linux@1 built and published ($(( SECONDS - started )) s)"
"$IMGTOOL" client add 52:54:00:00:e2:01 --name pc01 --image tiny-linux >/dev/null
"$IMGTOOL" client add 52:54:00:00:e2:02 --name pc02 --image tiny-linux >/dev/null
V1_FILE=$BOOTFLEET_STORE/$("$IMGTOOL" versions tiny-linux --json | json 'j[0]["file"]')
sha256sum "$V1_FILE" > v1.sum

NBD_PORT=$(free_port)
HTTP_PORT=$(free_port)
start_bootsrv "listening for HTTP" serve --listen 127.0.0.1:$NBD_PORT --http-listen 127.0.0.1:$HTTP_PORT

SUMMARY=""

boot 52:54:00:00:e2:01 pc01-1.log "pc01, first boot"
expect_console pc01-1.log "bootfleet-marker image=tiny-linux version=1 client=pc01" "pc01, first boot"
expect_console pc01-1.log "bootfleet-previous-write: none" "pc01, first boot"
expect_console pc01-1.log "bootfleet-write-test ok" "pc01, first boot"
sha256sum -c --quiet v1.sum || fail "the version file changed while pc01 wrote to its disk"
grep -q "export 'tiny-linux/pc01': connected, tiny-linux@1" server.log || fail "pc01's NBD attach not in the log"
pass "pc01 booted tiny-linux@1 over HTTP + NBD in ${BOOT_SECONDS} s; its writes went to its cache, the version file is unchanged"
SUMMARY+="pc01 boot 1: version 1, ${BOOT_SECONDS} s"$'\n'

boot 52:54:00:00:e2:01 pc01-2.log "pc01, reboot"
expect_console pc01-2.log "bootfleet-marker image=tiny-linux version=1 client=pc01" "pc01, reboot"
expect_console pc01-2.log "bootfleet-previous-write: none" "pc01, reboot (a fresh cache)"
expect_console pc01-2.log "bootfleet-write-test ok" "pc01, reboot"
pass "pc01 rebooted in ${BOOT_SECONDS} s: a clean machine (previous write: none), still version 1"
SUMMARY+="pc01 boot 2: version 1, ${BOOT_SECONDS} s"$'\n'

t=$SECONDS
timeout 600 "$IMGTOOL" build "$RECIPES/tiny-linux-update.yaml" > update.log 2>&1 || fail "update build: $(tail -20 update.log)"
UPDATE=$("$IMGTOOL" versions tiny-linux --json | json 'max(v["number"] for v in j)')
[ "$UPDATE" -gt 1 ] || fail "the update build made no new version"
pass "the update built as tiny-linux@$UPDATE, not yet published ($(( SECONDS - t )) s)"

# pc02 powers on; once bootsrv has pinned it (its script is out), the
# update goes live while pc02 is still loading its kernel.
BOOT_STARTED=$SECONDS
start_boot 52:54:00:00:e2:02 pc02.log
for _ in $(seq 1 600); do
  grep -q "boot 52:54:00:00:e2:02 as pc02: tiny-linux@1" server.log && break
  kill -0 "$QEMU_PID" 2>/dev/null || break
  sleep 0.1
done
grep -q "boot 52:54:00:00:e2:02 as pc02: tiny-linux@1" server.log || fail "pc02 never asked for its script: $(tail server.log)"
"$IMGTOOL" publish "tiny-linux@$UPDATE" >/dev/null
grep -q "export 'tiny-linux/pc02': connected" server.log && fail "pc02 attached before the publish: the test proves nothing"
finish_boot pc02.log "pc02, booting across the publish"
expect_console pc02.log "bootfleet-marker image=tiny-linux version=1 client=pc02" "pc02, booting across the publish"
expect_console pc02.log "bootfleet-write-test ok" "pc02"
grep -q "export 'tiny-linux/pc02': connected, tiny-linux@1" server.log || fail "pc02's root was not version 1"
pass "pc02, mid-boot when tiny-linux@$UPDATE was published, completed on version 1 (${BOOT_SECONDS} s)"
SUMMARY+="pc02 boot across the publish of @$UPDATE: version 1, ${BOOT_SECONDS} s"$'\n'

boot 52:54:00:00:e2:01 pc01-3.log "pc01 after the publish"
expect_console pc01-3.log "bootfleet-marker image=tiny-linux version=$UPDATE client=pc01" "pc01 after the publish"
expect_console pc01-3.log "bootfleet-update motd-package installed" "pc01 after the publish (the update's file)"
expect_console pc01-3.log "bootfleet-previous-write: none" "pc01 after the publish"
pass "pc01's next boot got tiny-linux@$UPDATE with the update's files (${BOOT_SECONDS} s)"
SUMMARY+="pc01 boot 3 (after publish): version $UPDATE, ${BOOT_SECONDS} s"$'\n'

"$IMGTOOL" rollback tiny-linux >/dev/null
boot 52:54:00:00:e2:01 pc01-4.log "pc01 after the rollback"
expect_console pc01-4.log "bootfleet-marker image=tiny-linux version=1 client=pc01" "pc01 after the rollback"
tr -d '\r' < pc01-4.log | grep -q "^bootfleet-update" && fail "pc01 still sees the update's file after the rollback"
pass "after 'imgtool rollback', pc01 booted version 1 again (${BOOT_SECONDS} s)"
SUMMARY+="pc01 boot 4 (after rollback): version 1, ${BOOT_SECONDS} s"$'\n'

sha256sum -c --quiet v1.sum || fail "the version 1 file changed"
kill -0 $SERVER || fail "bootsrv died"
kill -TERM $SERVER
wait $SERVER || fail "bootsrv exited $? on SIGTERM"
printf '%s' "$SUMMARY"
pass "network boot end to end in $(( SECONDS - started )) s"
