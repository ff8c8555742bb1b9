#!/usr/bin/env bash
# SAN boot end to end on SeaBIOS and OVMF, as a Windows PC does it, with tiny-linux-sanboot in
# Windows' place: a registered PC whose image is in sanboot mode gets a
# script that sets its initiator name and `sanboot`s its named session's
# iSCSI target; QEMU's iPXE ROM (SeaBIOS) logs in, boots the disk's own MBR
# and extlinux through INT 13h, which loads the kernel and an initramfs made
# here with Debian's open-iscsi hook; that initramfs logs in again from the
# iBFT (`iscsi_auto`) and mounts root=LABEL=root from the iSCSI disk, and the
# image's init starts Debian's iscsid, which takes that session over. One
# boot checks the marker, the client and image the guest read from the iBFT,
# the version, that the OS's login landed on the same session, and that the
# session's writes did not touch the version file.
#
# The same boot is kept running (SMBIOS serial "bootfleet-hold", which
# tiny-linux/hold answers over the serial console) while the disk's life
# gets hard, as a Windows PC's does: version 2 (a standalone GRUB on the
# ESP) is published, and the PC reads and writes on, still on version 1;
# a TCP proxy between QEMU's user networking and bootsrv drops its
# connection, and iscsid logs in again (session reinstatement); bootsrv is
# killed (-9) and started again, and iscsid logs in to the session bootsrv
# kept on disk. Every round the PC wrote is read back at the end, and its
# kernel logged no I/O error. Then the same PC boots version 2 on OVMF
# (UEFI); after a rollback its next script pins version 1 again.
source "$(dirname "$0")/../integration/lib.sh"
BOOTSRV=${BOOTSRV:?set BOOTSRV to the bootsrv binary}
RECIPES=$(cd "$HERE_LIB/../../recipes" && pwd)
export BOOTFLEET_STORE=$WORK/store BOOTFLEET_GUEST_ACCEL=${BOOTFLEET_GUEST_ACCEL:-tcg}
started=$SECONDS
QEMU_PID=
SERVER=
PROXY=
CONSOLE_PID=
cleanup() {
  # Only processes this test started (an empty pid would be 'kill 0', the whole group).
  local p
  for p in "$QEMU_PID" "$SERVER" "$PROXY" "$CONSOLE_PID"; do
    if [ -n "$p" ]; then kill -9 "$p" 2>/dev/null || true; fi
  done
  wait 2>/dev/null || true  # reap them quietly (no "Killed" lines)
  rm -rf "$WORK"
}
trap cleanup EXIT

# The initramfs with open-iscsi's hook, for the kernel the recipe copies.
[ -x /usr/sbin/iscsistart ] || [ -x /sbin/iscsistart ] || fail "open-iscsi is not installed (ci/install-deps)"
KVER=$(basename "$(readlink -f /vmlinuz)"); KVER=${KVER#vmlinuz-}
# BOOTFLEET_ISCSI_INITRD: one made before, copied instead (saves minutes when iterating).
if [ -n "${BOOTFLEET_ISCSI_INITRD:-}" ]; then
  cp "$BOOTFLEET_ISCSI_INITRD" "$WORK/initrd-iscsi.img"
else
  timeout 600 mkinitramfs -o "$WORK/initrd-iscsi.img" "$KVER" > mkinitramfs.log 2>&1 || fail "mkinitramfs: $(tail mkinitramfs.log)"
fi
lsinitramfs "$WORK/initrd-iscsi.img" > initramfs.list
grep -q "scripts/local-top/iscsi" initramfs.list || fail "the initramfs has no iscsi hook"
grep -q "iscsi_ibft.ko" initramfs.list || fail "the initramfs has no iscsi_ibft module"
pass "initramfs with open-iscsi's hook and iscsi_ibft for $KVER ($(( SECONDS - started )) s)"
# Debian's iscsid for the image, as the recipe's header says to make it.
ISCSID_BIN=$(command -v iscsid || echo /usr/sbin/iscsid)
[ -x "$ISCSID_BIN" ] || fail "iscsid is missing (open-iscsi, ci/install-deps)"
tar -chf iscsid.tar -C / usr/sbin/iscsid etc/iscsi/iscsid.conf \
  $(ldd /usr/sbin/iscsid | grep -o '/[^ ]*' | sed 's,^/,,') 2> tar.err || fail "iscsid.tar: $(cat tar.err)"
# It runs on its own (the loader and every library in it), as in the image.
mkdir iscsid-root && tar -xf iscsid.tar -C iscsid-root
chroot iscsid-root /usr/sbin/iscsid --version > iscsid-version.txt 2>&1 || fail "iscsid.tar's iscsid does not run alone: $(cat iscsid-version.txt)"
rm -rf iscsid-root

"$IMGTOOL" init >/dev/null
t=$SECONDS
timeout 900 "$IMGTOOL" build "$RECIPES/tiny-linux-sanboot.yaml" --set "INITRD=$WORK/initrd-iscsi.img" \
  --set "ISCSID=$WORK/iscsid.tar" --publish > build.log 2>&1 ||
  fail "build: $(tail -20 build.log)"
pass "tiny-linux-sanboot@1 built and published ($(( SECONDS - t )) s)"
"$IMGTOOL" image set tiny-linux-sanboot --boot-mode sanboot >/dev/null
"$IMGTOOL" client add 52:54:00:00:5a:01 --name pc01 --image tiny-linux-sanboot >/dev/null
V1_FILE=$BOOTFLEET_STORE/$("$IMGTOOL" versions tiny-linux-sanboot --json | json 'j[0]["file"]')
sha256sum "$V1_FILE" > v1.sum

# The next version adds a GRUB on the ESP for UEFI. Built now, before any
# boot (so no appliance competes with a booting PC for the CPU); it is
# published while pc01 runs on version 1.
command -v grub-mkstandalone >/dev/null || fail "grub-mkstandalone is missing (grub-efi-amd64-bin, ci/install-deps)"
grub-mkstandalone -O x86_64-efi -o BOOTX64.EFI \
  --install-modules="part_msdos part_gpt fat ext2 search search_label linux boot normal configfile echo" \
  --locales= --fonts= "boot/grub/grub.cfg=$RECIPES/tiny-linux/grub-sanboot.cfg" || fail "grub-mkstandalone"
t=$SECONDS
timeout 900 "$IMGTOOL" build "$RECIPES/tiny-linux-sanboot-uefi.yaml" --set "EFI_LOADER=$WORK/BOOTX64.EFI" > build2.log 2>&1 ||
  fail "UEFI build: $(tail -20 build2.log)"
pass "tiny-linux-sanboot@2 (GRUB on the ESP) built ($(( SECONDS - t )) s)"
# iSCSI goes through tcp_proxy.py: QEMU's user networking takes the guest's
# 10.0.2.2:ISCSI_PORT to 127.0.0.1:ISCSI_PORT, where the proxy listens;
# bootsrv listens on the same port of 127.0.0.2, so the script it writes
# (the host the PC asked, the port bootsrv listens on) leads through it.
NBD_PORT=$(free_port); HTTP_PORT=$(free_port); ISCSI_PORT=$(free_port)
SERVE_ARGS=(serve --listen 127.0.0.1:$NBD_PORT --http-listen 127.0.0.1:$HTTP_PORT --iscsi-listen 127.0.0.2:$ISCSI_PORT)
start_bootsrv "listening for HTTP" "${SERVE_ARGS[@]}"
$PY "$HERE_LIB/../e2e/tcp_proxy.py" 127.0.0.1:$ISCSI_PORT 127.0.0.2:$ISCSI_PORT > proxy.log 2>&1 &
PROXY=$!
for _ in $(seq 1 100); do grep -qs "proxy: listening" proxy.log && break; sleep 0.05; done
grep -qs "proxy: listening" proxy.log || fail "tcp_proxy.py did not start: $(cat proxy.log)"

# boot MAC CONSOLE WHAT [QEMU ARGS...]: one power-on; tiny-linux's init
# powers off at its end. BOOT_SECONDS: how long it took.
boot() {
  local mac=$1 console=$2 what=$3 begin=$SECONDS rc=0; shift 3
  : > "$console"
  timeout 400 qemu-system-x86_64 -accel tcg -nographic -no-reboot -m 1024 "$@" \
    -netdev "user,id=n0,bootfile=http://10.0.2.2:$HTTP_PORT/boot.ipxe" \
    -device "virtio-net-pci,netdev=n0,mac=$mac,bootindex=1" \
    -serial "file:$console" -monitor none -display none > "$console.qemu" 2>&1 &
  QEMU_PID=$!
  wait $QEMU_PID || rc=$?
  BOOT_SECONDS=$(( SECONDS - begin ))
  if ! grep -qa "bootfleet-marker" "$console"; then
    echo "FAIL: $what: no boot marker (qemu exit $rc); console tail:" >&2
    tr -d '\r' < "$console" | tail -40 >&2
    echo "--- qemu: $(cat "$console.qemu")" >&2
    echo "--- bootsrv log tail:" >&2
    tail -20 server.log >&2
    exit 1
  fi
}
expect_console() {  # CONSOLE LINE WHAT
  tr -d '\r' < "$1" | grep -qxF -- "$2" || {
    echo "FAIL: $3: expected '$2' on the console; its bootfleet lines:" >&2
    tr -d '\r' < "$1" | grep -a "bootfleet" | tail -10 >&2
    tr -d '\r' < "$1" | tail -15 >&2
    exit 1
  }
}

IQN=iqn.2026-11.org.bootfleet
# wait_console CONSOLE REGEX SECONDS WHAT: waits until the console has a line
# matching REGEX (grep -E); fails with its tail and bootsrv's after SECONDS.
wait_console() {
  local deadline=$(( SECONDS + $3 ))
  until tr -d '\r' < "$1" | grep -qaE -- "$2"; do
    if [ $SECONDS -ge $deadline ] || ! kill -0 "$QEMU_PID" 2>/dev/null; then
      echo "FAIL: $4: no line matching '$2' on the console after $3 s; its tail:" >&2
      tr -d '\r' < "$1" | tail -25 >&2
      echo "--- bootsrv log tail:" >&2; tail -15 server.log >&2
      echo "--- proxy log tail:" >&2; tail -5 proxy.log >&2
      exit 1
    fi
    sleep 1
  done
}
# hold_status TAG WHAT: asks the held PC to read its disk and answer; sets ROUNDS.
hold_status() {
  printf 'status %s\r' "$1" >> console.in
  wait_console bios.log "^bootfleet-hold status $1 " 300 "$2"
  local line; line=$(tr -d '\r' < bios.log | grep -a "^bootfleet-hold status $1 " | tail -1)
  [[ "$line" =~ rounds=([0-9]+)\ failed=0\ release=1$ ]] || fail "$2: the PC says '$line' (expected no failed round, release 1)"
  ROUNDS=${BASH_REMATCH[1]}
}
# logins: how many iSCSI logins (fresh or reinstating) pc01's initiator made.
logins() { grep -cE "$IQN:initiator:pc01 target .*: (logged in|session reinstated)" server.log || true; }
# wait_logins N SECONDS WHAT: waits until bootsrv has logged more than N of them.
wait_logins() {
  local deadline=$(( SECONDS + $2 ))
  until [ "$(logins)" -gt "$1" ]; do
    kill -0 $SERVER 2>/dev/null || fail "$3: bootsrv is gone: $(tail -5 server.log)"
    [ $SECONDS -lt $deadline ] || fail "$3 (logins: $(logins)): $(tail -5 server.log); the PC's iscsid: $(tr -d '\r' < bios.log | grep -a 'bootfleet-iscsid' | tail -5)"
    sleep 1
  done
}

# pc01 on SeaBIOS, held: its serial port is a socket that serial_console.py
# copies to bios.log and types console.in into.
BOOT_STARTED=$SECONDS
: > bios.log; : > console.in
timeout 900 qemu-system-x86_64 -accel tcg -nographic -no-reboot -m 1024 -boot n \
  -smbios type=1,serial=bootfleet-hold \
  -netdev "user,id=n0,bootfile=http://10.0.2.2:$HTTP_PORT/boot.ipxe" \
  -device "virtio-net-pci,netdev=n0,mac=52:54:00:00:5a:01,bootindex=1" \
  -chardev "socket,id=s0,path=$WORK/serial.sock,server=on,wait=on" -serial chardev:s0 \
  -monitor none -display none > bios.log.qemu 2>&1 &
QEMU_PID=$!
$PY "$HERE_LIB/../e2e/serial_console.py" --input console.in "$WORK/serial.sock" bios.log > console.err 2>&1 &
CONSOLE_PID=$!
wait_console bios.log "^bootfleet-hold ready" 400 "pc01, SeaBIOS, held"
expect_console bios.log "bootfleet-marker image=tiny-linux-sanboot version=1 client=pc01" "pc01, SeaBIOS"
wait_console bios.log "^bootfleet-iscsid started" 1 "pc01's iscsid"
# iscsid's adoption is itself a login: the session reinstated from the guest.
wait_logins 2 120 "iscsid did not log in again to adopt pc01's session"
pass "pc01 booted on SeaBIOS and runs (${BOOT_STARTED:+$(( SECONDS - BOOT_STARTED ))} s); iscsid adopted its iBFT session (the third login as its initiator)"

# 1. A publish while it runs: it reads and writes on, on version 1.
"$IMGTOOL" publish tiny-linux-sanboot@2 >/dev/null
hold_status published "pc01 after the publish of @2"
pass "published @2 while pc01 runs: it reads its disk (release 1) and wrote $ROUNDS rounds, none failed"

# 2. A network blip: the proxy ends pc01's connection; iscsid logs in again.
before=$(logins); rounds_before=$ROUNDS
kill -USR1 $PROXY
wait_console proxy.log "proxy: dropped [1-9]" 10 "the proxy's drop"
wait_logins "$before" 120 "pc01 did not log in again after its connection was dropped"
hold_status blip "pc01 after the network blip"
[ "$ROUNDS" -gt "$rounds_before" ] || fail "pc01 wrote no round after the blip ($ROUNDS)"
grep -q "$IQN:initiator:pc01 target $IQN:tiny-linux-sanboot:pc01: session reinstated" server.log ||
  fail "pc01's new login after the blip did not reinstate its session: $(grep -a 'pc01' server.log | tail -4)"
pass "a dropped connection: iscsid logged in again (session reinstatement) and pc01 carries on ($ROUNDS rounds, none failed)"

# 3. bootsrv killed and started again: the session, its version and its
# write cache were on disk; iscsid's next login finds them.
rounds_before=$ROUNDS
cp server.log server-before-kill.log
kill -9 $SERVER; wait $SERVER 2>/dev/null || true
"$BOOTSRV" "${SERVE_ARGS[@]}" > server.log 2>&1 &
SERVER=$!
wait_logins 0 180 "pc01 did not log in to the restarted bootsrv"
hold_status restart "pc01 after bootsrv's kill -9 and restart"
[ "$ROUNDS" -gt "$rounds_before" ] || fail "pc01 wrote no round after bootsrv's restart ($ROUNDS)"
grep -q "export tiny-linux-sanboot/pc01: tiny-linux-sanboot@1" server.log ||
  fail "pc01's login after the restart is not on its session of @1: $(grep -a 'pc01' server.log | tail -4)"
pass "bootsrv killed (-9) and restarted: pc01 logged in to its kept session of @1 and carries on ($ROUNDS rounds, none failed)"

printf 'stop\r' >> console.in
rc=0
wait $QEMU_PID || rc=$?
QEMU_PID=
BOOT_SECONDS=$(( SECONDS - BOOT_STARTED ))
tr -d '\r' < bios.log | grep -qa "^bootfleet-hold done" || fail "pc01 did not finish (qemu exit $rc): $(tr -d '\r' < bios.log | tail -20)"
line=$(tr -d '\r' < bios.log | grep -a "^bootfleet-hold done" | tail -1)
[[ "$line" =~ rounds=([0-9]+)\ checked=([0-9]+)\ failed=0$ ]] && [ "${BASH_REMATCH[1]}" = "${BASH_REMATCH[2]}" ] ||
  fail "pc01's final check: '$line' (every round's file must read back)"
expect_console bios.log "bootfleet-hold dmesg io-errors=0" "pc01's kernel log: no I/O error"
pass "pc01's final check: all $ROUNDS+ rounds' files read back intact (${line#bootfleet-hold done }), no I/O error in dmesg"
cat server-before-kill.log server.log > server-all.log
expect_console bios.log "bootfleet-ibft initiator=$IQN:initiator:pc01 target=$IQN:tiny-linux-sanboot:pc01" "pc01's iBFT"
expect_console bios.log "bootfleet-marker image=tiny-linux-sanboot version=1 client=pc01" "pc01, SeaBIOS"
expect_console bios.log "bootfleet-previous-write: none" "pc01, a clean disk"
expect_console bios.log "bootfleet-write-test ok" "pc01, writes"
grep -q "boot 52:54:00:00:5a:01 as pc01: tiny-linux-sanboot@1, session tiny-linux-sanboot/pc01, sanboot" server-all.log ||
  fail "no sanboot script for pc01: $(grep 'boot ' server-all.log | tail -3)"
# iPXE's login and then the OS's, both on pc01's session of @1.
logins=$(grep -c "$IQN:initiator:pc01" server-all.log || true)
[ "$logins" -ge 2 ] || fail "expected iPXE's and the OS's logins as $IQN:initiator:pc01, found $logins: $(grep -i iscsi server-all.log | tail -8)"
grep -q "session tiny-linux-sanboot/pc01 started on tiny-linux-sanboot@1" server-all.log || fail "pc01's session: $(tail server-all.log)"
[ "$(grep -c "session tiny-linux-sanboot/pc01 started" server-all.log)" = 1 ] || fail "pc01's logins started more than one session"
sha256sum -c --quiet v1.sum || fail "the version file changed while pc01 wrote to its disk"
pass "pc01 SAN-booted tiny-linux-sanboot@1 on SeaBIOS in ${BOOT_SECONDS} s: its own extlinux, root over iSCSI from its own session (iPXE and the OS logged in as its initiator), the iBFT names it, the version file is unchanged"
SUMMARY="SeaBIOS sanboot ${BOOT_SECONDS} s"

cp /usr/share/OVMF/OVMF_VARS_4M.fd vars.fd
boot 52:54:00:00:5a:01 uefi.log "pc01, OVMF" \
  -drive if=pflash,format=raw,readonly=on,file=/usr/share/OVMF/OVMF_CODE_4M.fd -drive if=pflash,format=raw,file=vars.fd
expect_console uefi.log "bootfleet-ibft initiator=$IQN:initiator:pc01 target=$IQN:tiny-linux-sanboot:pc01" "pc01's iBFT on UEFI"
expect_console uefi.log "bootfleet-marker image=tiny-linux-sanboot version=2 client=pc01" "pc01, OVMF, the published version"
expect_console uefi.log "bootfleet-previous-write: none" "pc01 on UEFI, a fresh write cache"
expect_console uefi.log "bootfleet-write-test ok" "pc01 on UEFI, writes"
grep -q "boot 52:54:00:00:5a:01 as pc01: tiny-linux-sanboot@2, session tiny-linux-sanboot/pc01, sanboot" server.log ||
  fail "pc01's second boot is not on @2: $(grep 'boot ' server.log | tail -3)"
pass "pc01 SAN-booted tiny-linux-sanboot@2 on OVMF in ${BOOT_SECONDS} s: iPXE's EFI sanboot, GRUB from the ESP, root over iSCSI from the iBFT"
SUMMARY+=", OVMF sanboot ${BOOT_SECONDS} s"

# Rollback: the next script pins @1 again (seen without a boot: HEAD starts nothing).
"$IMGTOOL" rollback tiny-linux-sanboot >/dev/null
curl -sf "http://127.0.0.1:$HTTP_PORT/boot/52-54-00-00-5a-01.ipxe" > after-rollback.ipxe
grep -qF "booting tiny-linux-sanboot@1 as pc01 by sanboot" after-rollback.ipxe || fail "after rollback: $(cat after-rollback.ipxe)"
pass "after a rollback pc01's next boot is pinned to @1 again"
kill -TERM $SERVER
wait $SERVER || fail "bootsrv exited $? on SIGTERM"
SERVER=

# imgtool boot-test takes the same path: the image's mode (sanboot) on OVMF,
# against its own in-process server with iSCSI on loopback.
expect_exit 0 timeout 600 "$IMGTOOL" boot-test tiny-linux-sanboot@2 --firmware uefi --json \
  --expect '^bootfleet-marker image=tiny-linux-sanboot version=2 client=boot-test-'
assert_eq "$(json '[j["passed"], j["mode"], j["firmware"]]' <<<"$(sed -n '/^{/,/^}/p' <<<"$OUT")")" "[True, 'sanboot', 'uefi']" "boot-test --json"
pass "imgtool boot-test --firmware uefi boots the sanboot image as its throwaway client ($(json 'j["seconds"]' <<<"$(sed -n '/^{/,/^}/p' <<<"$OUT")") s)"
echo "summary: $SUMMARY; total $(( SECONDS - started )) s"
