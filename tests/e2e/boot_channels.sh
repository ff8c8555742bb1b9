#!/usr/bin/env bash
# Channels with real PCs (QEMU, TCG): two diskless clients network-boot
# through iPXE, HTTP and NBD at once; pc02 is in a group that follows the
# test channel, pc01 follows production. After `publish tiny-linux@2
# --channel test`, pc02's kernel, initrd and root are @2's and pc01's @1's,
# as each guest's own init reports (bootfleet-marker … version=N) and the NBD
# attach lines show. @2 is a squash of @1 (same content and kernel, another
# version number), so no second appliance launch is needed.
source "$(dirname "$0")/../integration/lib.sh"
source "$(dirname "$0")/boot_lib.sh"
BOOTSRV=${BOOTSRV:?set BOOTSRV to the bootsrv binary}
export BOOTFLEET_STORE=$WORK/store BOOTFLEET_GUEST_ACCEL=${BOOTFLEET_GUEST_ACCEL:-tcg}

tiny_linux_store
"$IMGTOOL" squash tiny-linux@1 -m "the same disk as @2" >/dev/null
"$IMGTOOL" client add 52:54:00:00:e3:01 --name pc01 --image tiny-linux >/dev/null
"$IMGTOOL" client add 52:54:00:00:e3:02 --name pc02 --image tiny-linux >/dev/null
"$IMGTOOL" client group add testers --image tiny-linux --channel test >/dev/null
"$IMGTOOL" client set pc02 --group testers >/dev/null
expect_exit 0 "$IMGTOOL" publish tiny-linux@2 --channel test
expect_contains "tiny-linux: channel test none -> @2"
pass "tiny-linux@1 on production, @2 (a squash with its kernel) on test; pc02 in the test group"

NBD_PORT=$(free_port)
HTTP_PORT=$(free_port)
start_bootsrv "listening for HTTP" serve --listen 127.0.0.1:$NBD_PORT --http-listen 127.0.0.1:$HTTP_PORT

started=$SECONDS
start_boot 52:54:00:00:e3:01 pc01.log
start_boot 52:54:00:00:e3:02 pc02.log
for p in "${QEMU_PIDS[@]}"; do wait "$p" || true; done
QEMU_PIDS=()
expect_console pc01.log "bootfleet-marker image=tiny-linux version=1 client=pc01" "pc01 (production)"
expect_console pc02.log "bootfleet-marker image=tiny-linux version=2 client=pc02" "pc02 (test group)"
grep -q "boot 52:54:00:00:e3:02 as pc02: tiny-linux@2, session tiny-linux/pc02, linux, by tiny-linux@2 (channel test of group testers)" server.log ||
  fail "pc02's boot line: $(grep 'boot 52' server.log)"
grep -q "export 'tiny-linux/pc01': connected, tiny-linux@1" server.log || fail "pc01's root is not @1: $(grep export server.log)"
grep -q "export 'tiny-linux/pc02': connected, tiny-linux@2" server.log || fail "pc02's root is not @2: $(grep export server.log)"
pass "two PCs booted at once in $(( SECONDS - started )) s: the test group's on @2, production's on @1 (console, NBD attach)"
