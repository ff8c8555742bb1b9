#!/usr/bin/env bash
# SAN boot end to end on SeaBIOS and OVMF, as a Windows PC does it, with tiny-linux-sanboot in
# Windows' place: a registered PC whose image is in sanboot mode gets a
# script that sets its initiator name and `sanboot`s its named session's
# iSCSI target; QEMU's iPXE ROM (SeaBIOS) logs in, boots the disk's own MBR
# and extlinux through INT 13h, which loads the kernel and an initramfs made
# here with Debian's open-iscsi hook; that initramfs logs in again from the
# iBFT (`iscsi_auto`) and mounts root=LABEL=root from the iSCSI disk. One
# boot checks the marker, the client and image the guest read from the iBFT,
# the version, that the OS's login landed on the same session, and that the
# session's writes did not touch the version file. Then version 2 adds a
# standalone GRUB on the ESP and is published, and the same PC boots it on
# OVMF (UEFI); after a rollback its next script pins version 1 again.
source "$(dirname "$0")/../integration/lib.sh"
BOOTSRV=${BOOTSRV:?set BOOTSRV to the bootsrv binary}
RECIPES=$(cd "$HERE_LIB/../../recipes" && pwd)
export BOOTFLEET_STORE=$WORK/store BOOTFLEET_GUEST_ACCEL=${BOOTFLEET_GUEST_ACCEL:-tcg}
started=$SECONDS
QEMU_PID=
SERVER=
cleanup() {
  # Only processes this test started (an empty pid would be 'kill 0', the whole group).
  if [ -n "$QEMU_PID" ]; then kill -9 "$QEMU_PID" 2>/dev/null || true; fi
  if [ -n "$SERVER" ]; then kill -9 "$SERVER" 2>/dev/null || true; fi
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

"$IMGTOOL" init >/dev/null
t=$SECONDS
timeout 900 "$IMGTOOL" build "$RECIPES/tiny-linux-sanboot.yaml" --set "INITRD=$WORK/initrd-iscsi.img" --publish > build.log 2>&1 ||
  fail "build: $(tail -20 build.log)"
pass "tiny-linux-sanboot@1 built and published ($(( SECONDS - t )) s)"
"$IMGTOOL" image set tiny-linux-sanboot --boot-mode sanboot >/dev/null
"$IMGTOOL" client add 52:54:00:00:5a:01 --name pc01 --image tiny-linux-sanboot >/dev/null
V1_FILE=$BOOTFLEET_STORE/$("$IMGTOOL" versions tiny-linux-sanboot --json | json 'j[0]["file"]')
sha256sum "$V1_FILE" > v1.sum

NBD_PORT=$(free_port); HTTP_PORT=$(free_port); ISCSI_PORT=$(free_port)
start_bootsrv "listening for HTTP" serve --listen 127.0.0.1:$NBD_PORT --http-listen 127.0.0.1:$HTTP_PORT \
  --iscsi-listen 127.0.0.1:$ISCSI_PORT

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
boot 52:54:00:00:5a:01 bios.log "pc01, SeaBIOS" -boot n
expect_console bios.log "bootfleet-ibft initiator=$IQN:initiator:pc01 target=$IQN:tiny-linux-sanboot:pc01" "pc01's iBFT"
expect_console bios.log "bootfleet-marker image=tiny-linux-sanboot version=1 client=pc01" "pc01, SeaBIOS"
expect_console bios.log "bootfleet-previous-write: none" "pc01, a clean disk"
expect_console bios.log "bootfleet-write-test ok" "pc01, writes"
grep -q "boot 52:54:00:00:5a:01 as pc01: tiny-linux-sanboot@1, session tiny-linux-sanboot/pc01, sanboot" server.log ||
  fail "no sanboot script for pc01: $(grep 'boot ' server.log | tail -3)"
# iPXE's login and then the OS's, both on pc01's session of @1.
logins=$(grep -c "$IQN:initiator:pc01" server.log || true)
[ "$logins" -ge 2 ] || fail "expected iPXE's and the OS's logins as $IQN:initiator:pc01, found $logins: $(grep -i iscsi server.log | tail -8)"
grep -q "session tiny-linux-sanboot/pc01 started on tiny-linux-sanboot@1" server.log || fail "pc01's session: $(tail server.log)"
[ "$(grep -c "session tiny-linux-sanboot/pc01 started" server.log)" = 1 ] || fail "pc01's logins started more than one session"
sha256sum -c --quiet v1.sum || fail "the version file changed while pc01 wrote to its disk"
pass "pc01 SAN-booted tiny-linux-sanboot@1 on SeaBIOS in ${BOOT_SECONDS} s: its own extlinux, root over iSCSI from its own session (iPXE and the OS logged in as its initiator), the iBFT names it, the version file is unchanged"
SUMMARY="SeaBIOS sanboot ${BOOT_SECONDS} s"

# UEFI: the next version adds a GRUB on the ESP; published, pc01's next
# boot (on OVMF) is that version, by iPXE's EFI sanboot of the same target.
command -v grub-mkstandalone >/dev/null || fail "grub-mkstandalone is missing (grub-efi-amd64-bin, ci/install-deps)"
grub-mkstandalone -O x86_64-efi -o BOOTX64.EFI \
  --install-modules="part_msdos part_gpt fat ext2 search search_label linux boot normal configfile echo" \
  --locales= --fonts= "boot/grub/grub.cfg=$RECIPES/tiny-linux/grub-sanboot.cfg" || fail "grub-mkstandalone"
t=$SECONDS
timeout 900 "$IMGTOOL" build "$RECIPES/tiny-linux-sanboot-uefi.yaml" --set "EFI_LOADER=$WORK/BOOTX64.EFI" > build2.log 2>&1 ||
  fail "UEFI build: $(tail -20 build2.log)"
"$IMGTOOL" publish tiny-linux-sanboot@2 >/dev/null
pass "tiny-linux-sanboot@2 (GRUB on the ESP) built and published ($(( SECONDS - t )) s)"
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
