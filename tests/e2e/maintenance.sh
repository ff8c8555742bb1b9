#!/usr/bin/env bash
# A maintenance session end to end, on one QEMU (TCG) client: pc01 is put in
# maintenance on tiny-linux@1, network-boots (iPXE, HTTP, NBD root) and its
# init writes /var/bootfleet-write-test; it boots again and the file from
# the first boot is still there (an ordinary reboot would find a clean
# disk); pc02, a production client, boots tiny-linux@1 clean meanwhile. The
# commit through the control API makes tiny-linux@2, which holds the file
# (read from outside with guestfish) and stores about what pc01 wrote.
source "$(dirname "$0")/../integration/lib.sh"
source "$(dirname "$0")/boot_lib.sh"
BOOTSRV=${BOOTSRV:?set BOOTSRV to the bootsrv binary}
: "${BOOTFLEET_TINY_STORE:?set BOOTFLEET_TINY_STORE to the tiny-linux fixture store}"
export BOOTFLEET_STORE=$WORK/store BOOTFLEET_GUEST_ACCEL=${BOOTFLEET_GUEST_ACCEL:-tcg}

cp -a "$BOOTFLEET_TINY_STORE" "$BOOTFLEET_STORE"
"$IMGTOOL" client add 52:54:00:00:e3:01 --name pc01 --image tiny-linux >/dev/null
"$IMGTOOL" client add 52:54:00:00:e3:02 --name pc02 --image tiny-linux >/dev/null
"$IMGTOOL" maintenance start tiny-linux --client pc01 >/dev/null
start_api_bootsrv "$BOOTFLEET_STORE"
export BOOTFLEET_SERVER=$URL BOOTFLEET_TOKEN_FILE=$WORK/tokens

boot 52:54:00:00:e3:01 pc01-1.log "pc01 in maintenance, first boot"
expect_console pc01-1.log "bootfleet-marker image=tiny-linux version=1 client=pc01" "pc01, first boot"
expect_console pc01-1.log "bootfleet-previous-write: none" "pc01, first boot"
expect_console pc01-1.log "bootfleet-write-test ok" "pc01, first boot"
grep -q "boot 52:54:00:00:e3:01 as pc01: tiny-linux@1, session tiny-linux/pc01, linux, by maintenance" server.log ||
  fail "the boot is not logged as maintenance: $(grep boot server.log)"
T1=$BOOT_SECONDS
boot 52:54:00:00:e3:01 pc01-2.log "pc01 in maintenance, reboot"
expect_console pc01-2.log "bootfleet-previous-write: written by pc01 on version 1" "pc01's reboot keeps its writes"
pass "pc01 in maintenance wrote a file, rebooted, and found it there (boots of $T1 s and $BOOT_SECONDS s)"

boot 52:54:00:00:e3:02 pc02.log "pc02, production"
expect_console pc02.log "bootfleet-marker image=tiny-linux version=1 client=pc02" "pc02"
expect_console pc02.log "bootfleet-previous-write: none" "pc02 boots a clean tiny-linux@1"
pass "pc02, a production client, boots tiny-linux@1 clean meanwhile"

for _ in $(seq 1 100); do
  [ "$("$IMGTOOL" maintenance status tiny-linux --json | json 'j[0]["connections"]')" = 0 ] && break; sleep 0.1
done
WRITTEN=$("$IMGTOOL" maintenance status tiny-linux --json | json 'j[0]["cache_bytes"]')
"$IMGTOOL" maintenance commit tiny-linux -m "e2e: pc01's file" --json > commit.json
assert_eq "$(json 'j["version"]["number"], j["version"]["source"]' < commit.json)" \
  "2 maintenance on pc01 from tiny-linux@1" "the committed version"
STORED=$(json 'j["version"]["stored_bytes"]' < commit.json)
# ext4 rewrites whole 4 KiB blocks (journal, inode tables, the file): the
# version holds what differs from @1, never more than the session held.
[ "$STORED" -le "$WRITTEN" ] || fail "tiny-linux@2 stores $STORED bytes, more than the $WRITTEN pc01 wrote"
[ "$STORED" -gt 0 ] || fail "tiny-linux@2 stores nothing"
"$IMGTOOL" export tiny-linux@2 v2.raw --to raw --store "$BOOTFLEET_STORE" >/dev/null
GOT=$(LIBGUESTFS_BACKEND=direct LIBGUESTFS_BACKEND_SETTINGS=force_tcg timeout 600 \
  guestfish --ro -a v2.raw -m /dev/sda1 cat /var/bootfleet-write-test) || fail "guestfish could not read tiny-linux@2"
assert_eq "$GOT" "written by pc01 on version 1" "the file in tiny-linux@2 (read with guestfish)"
pass "commit: tiny-linux@2 holds pc01's file (guestfish), storing $STORED of the $WRITTEN bytes pc01's cache held"
kill -TERM $SERVER; wait $SERVER || fail "bootsrv exited $? on SIGTERM"
