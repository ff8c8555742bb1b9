#!/usr/bin/env bash
# One build of a created GPT disk whose ESP comes first, with every step
# kind, checked from outside without another appliance (debugfs on the root
# partition, mtools on the ESP, sgdisk on the table):
#  - the `linux` partition is mounted at / and the `efi` one at /boot/efi,
#    and the build says so (a created disk used to get its first
#    filesystem, the ESP, at /, and chown failed there with EPERM);
#  - each step did what docs/recipes.md says, tar-in of a .tar.xz included
#    (the parser accepts exactly the archives the executor unpacks);
#  - bootloader on GPT: gptmbr.bin and the legacy BIOS bootable attribute.
# Then a write into a missing directory stops its build naming the step, the
# directory and the mkdir to add, and stores nothing. Two appliance launches.
source "$(dirname "$0")/../lib.sh"
SRC=${BOOTFLEET_SOURCE:?}
export BOOTFLEET_STORE=$WORK/store BOOTFLEET_GUEST_ACCEL=${BOOTFLEET_GUEST_ACCEL:-tcg}
HIVE=$SRC/../shared/testdata/registry/minimal.hive
[ -r "$HIVE" ] || HIVE=$(dirname "$SRC")/shared/testdata/registry/minimal.hive
[ -r "$HIVE" ] || { echo "SKIP: no test hive at ../shared/testdata/registry/minimal.hive"; exit 0; }
"$IMGTOOL" init >/dev/null

mkdir -p files/etc app/bin out
printf 'keep\n' > files/etc/keep.conf
printf 'gone\n' > files/etc/remove-me
printf '#!/bin/sh\necho app\n' > app/bin/app && chmod 755 app/bin/app
tar -C app -cJf app.tar.xz .
cp "$HIVE" test.hive
cat > every.yaml <<'R'
image: every-step
message: every step kind on an ESP-first GPT disk
base:
  create:
    size: 160M
    partition_table: gpt
    partitions:
      - {size: 32M, type: efi, filesystem: vfat, label: ESP}
      - {type: linux, filesystem: ext4, label: root}
steps:
  - mkdir: {path: /srv/data, mode: 0750}
  - copy-in: {from: files/etc, to: /}
  - write: {path: /etc/motd, content: "hello lab\n", mode: 0640}
  - edit: {path: /etc/motd, replace: hello, with: welcome to the}
  - delete: /etc/remove-me
  - chmod: {path: /srv/data, mode: 0700}
  - chown: {path: /srv/data, uid: 1000, gid: 100}
  - symlink: {link: /etc/localtime, target: /usr/share/zoneinfo/UTC}
  - tar-in: {from: app.tar.xz, to: /opt/app}
  - mkdir: /bin
  - copy-in: {from: /bin/busybox, to: /bin/busybox}
  - symlink: {link: /bin/sh, target: busybox}
  - run: "echo ran > /srv/data/ran; echo done"
  - mkdir: /boot/efi/EFI/BOOT
  - write: {path: /boot/efi/EFI/BOOT/marker.txt, content: "on the ESP\n"}
  - copy-in: {from: test.hive, to: /etc/test.hive}
  - registry:
      hive: /etc/test.hive
      set: [{key: 'Bootfleet\Test', value: Answer, type: dword, data: 42}]
  - bootloader: {kernel: /boot/vmlinuz, append: root=LABEL=root}
  - copy-out: {from: /etc/motd, to: out/motd}
  - copy-out: {from: /boot/efi/EFI/BOOT/marker.txt, artifact: marker.txt}
R
expect_exit 0 "$IMGTOOL" build every.yaml
expect_contains "mounted /dev/sda2 on / (ext4, linux partition), /dev/sda1 on /boot/efi (vfat, efi partition)"
expect_contains "[13/20] run"
expect_contains "      | done"
expect_contains "GPT boot code on /dev/sda"
expect_contains "built every-step@1"
pass "the ESP-first GPT disk: linux partition on /, ESP on /boot/efi, said in the build output"

# Every step kind's effect, read from the exported disk.
"$IMGTOOL" export every-step@1 disk.raw --to raw >/dev/null
part() {  # part N OUT: partition N of disk.raw as a file
  local start size
  start=$(sfdisk -J disk.raw | $PY -c "import json,sys; print(json.load(sys.stdin)['partitiontable']['partitions'][$1-1]['start'])")
  size=$(sfdisk -J disk.raw | $PY -c "import json,sys; print(json.load(sys.stdin)['partitiontable']['partitions'][$1-1]['size'])")
  dd if=disk.raw of="$2" bs=512 skip="$start" count="$size" conv=sparse status=none
}
part 1 esp.img
part 2 root.img
dbg() { debugfs -R "$1" root.img 2>/dev/null; }
stat_of() { dbg "stat $1" | head -3; }
grep -q "Mode:  0700" <<<"$(stat_of /srv/data)" || fail "mkdir+chmod: /srv/data is not 0700: $(stat_of /srv/data)"
grep -Eq "User: +1000 +Group: +100 " <<<"$(stat_of /srv/data)" || fail "chown: /srv/data: $(stat_of /srv/data)"
assert_eq "$(dbg 'cat /etc/motd')" "welcome to the lab" "write+edit: /etc/motd"
grep -q "Mode:  0640" <<<"$(stat_of /etc/motd)" || fail "write's mode: $(stat_of /etc/motd)"
assert_eq "$(dbg 'cat /etc/keep.conf')" "keep" "copy-in of a directory"
dbg "stat /etc/remove-me" | grep -q "Inode:" && fail "delete: /etc/remove-me is still there"
grep -q "Type: symlink" <<<"$(stat_of /etc/localtime)" || fail "symlink: /etc/localtime: $(stat_of /etc/localtime)"
assert_eq "$(dbg 'cat /opt/app/bin/app' | tail -1)" "echo app" "tar-in of a .tar.xz"
assert_eq "$(dbg 'cat /srv/data/ran')" "ran" "run"
dbg "cat /etc/test.hive" > got.hive
hivexregedit --export got.hive '\Bootfleet\Test' | grep -qi '"Answer"=dword:0000002a' ||
  fail "registry: Answer is not dword 42: $(hivexregedit --export got.hive '\Bootfleet\Test')"
grep -q "extlinux.conf" <<<"$(dbg 'ls /boot/extlinux')" || fail "bootloader: no /boot/extlinux/extlinux.conf"
grep -q "APPEND root=LABEL=root" <<<"$(dbg 'cat /boot/extlinux/extlinux.conf')" || fail "bootloader: extlinux.conf"
cmp -n 440 disk.raw /usr/lib/EXTLINUX/gptmbr.bin || fail "bootloader: the first 440 bytes are not gptmbr.bin"
sgdisk -A 2:show disk.raw | grep -q "legacy BIOS bootable" || fail "bootloader: partition 2 not legacy BIOS bootable: $(sgdisk -A 2:show disk.raw)"
assert_eq "$(cat out/motd)" "welcome to the lab" "copy-out to the host"
cmp "$BOOTFLEET_STORE/images/every-step/0001.artifacts/marker.txt" <(printf 'on the ESP\n') || fail "copy-out artifact"
# The ESP's file is on the ESP, and only the empty mount point on the root.
assert_eq "$(mtype -i esp.img ::/EFI/BOOT/marker.txt)" "on the ESP" "the ESP's file, read from the vfat partition"
dbg "stat /boot/efi" | grep -q "Type: directory" || fail "no /boot/efi mount point on the root filesystem"
dbg "ls /boot/efi" | grep -q "EFI" && fail "the ESP's files went to the root filesystem's /boot/efi"
pass "every step kind did what docs/recipes.md says, ESP files on the ESP"

# A write into a missing directory: which step, which directory, what to add.
cat > nodir.yaml <<'R'
image: nodir
base:
  create: {size: 64M, partition_table: mbr, partitions: [{type: linux, filesystem: ext4}]}
steps:
  - mkdir: /etc
  - write: {path: /opt/app/app.conf, content: "x=1\n"}
R
expect_exit 2 "$IMGTOOL" build nodir.yaml
expect_contains "nodir.yaml:6:5: step 2 of 2 (write /opt/app/app.conf (4 bytes)) failed: the directory /opt/app of /opt/app/app.conf does not exist in the guest"
expect_contains "add a step '- mkdir: /opt/app' before this one"
expect_not_contains "internal_write"
[ ! -e "$BOOTFLEET_STORE/images/nodir" ] || [ -z "$(ls "$BOOTFLEET_STORE/images/nodir")" ] || fail "a failed build stored files"
pass "a write into a missing directory names the step, the directory and the mkdir to add"
