#!/usr/bin/env bash
# Patching a 20 GiB image with a recipe that writes 10 MiB: imgtool build
# against virt-customize on a qcow2 overlay of the same image, in the same
# run. Both are dominated by one appliance launch; what differs is what the
# patch costs to store (our differencing version vs the qcow2 overlay).
# Usage: IMGTOOL=… BOOTFLEET_SOURCE=… tests/bench/build/bench_build.sh
set -euo pipefail
IMGTOOL=${IMGTOOL:?}; SRC=${BOOTFLEET_SOURCE:?}
work=$(mktemp -d "${BENCH_DIR:-/var/tmp}/bootfleet-bench-build-XXXXXX")
trap 'rm -rf "$work"' EXIT
cd "$work"
export BOOTFLEET_STORE=$work/store BOOTFLEET_GUEST_ACCEL=${BOOTFLEET_GUEST_ACCEL:-tcg}
export LIBGUESTFS_BACKEND=direct
[ "$BOOTFLEET_GUEST_ACCEL" = tcg ] && export LIBGUESTFS_BACKEND_SETTINGS=force_tcg
"$IMGTOOL" init >/dev/null

echo "preparing a 20 GiB image (ext4, an OS inspection recognises)…"
cat > base.yaml <<R
image: big
base:
  create:
    size: 20G
    partition_table: mbr
    partitions: [{type: linux, filesystem: ext4, label: root}]
steps:
  - mkdir: /etc
  - mkdir: /bin
  - copy-in: {from: /bin/busybox, to: /bin/sh}
  - write: {path: /etc/os-release, content: "ID=bench\nNAME=bench\nVERSION_ID=1\n"}
  - write: {path: /etc/fstab, content: "LABEL=root / ext4 defaults 0 1\n"}
R
"$IMGTOOL" build base.yaml --publish >/dev/null
head -c 10M /dev/urandom > payload.bin
cat > patch.yaml <<R
image: big
base: {version: big@active}
steps:
  - mkdir: /srv
  - copy-in: {from: payload.bin, to: /srv/payload.bin}
R
"$IMGTOOL" export big@1 base.raw --to raw >/dev/null
qemu-img create -q -f qcow2 -b base.raw -F raw overlay.qcow2
sync

t0=$(date +%s.%N)
"$IMGTOOL" build patch.yaml > build.log
t1=$(date +%s.%N)
virt-customize -q -a overlay.qcow2 --mkdir /srv --upload payload.bin:/srv/payload.bin
t2=$(date +%s.%N)

ours=$(echo "$t1 - $t0" | bc -l); theirs=$(echo "$t2 - $t1" | bc -l)
stored=$("$IMGTOOL" versions big --json | /usr/bin/python3 -c 'import json,sys; j=json.load(sys.stdin); print(j[1]["stored_bytes"], j[1]["file_size"])')
qcow=$(du -B1 overlay.qcow2 | cut -f1)
printf 'imgtool build (patch 10 MiB into 20 GiB): %.1f s; new version: %s bytes stored (%s bytes file)\n' "$ours" ${stored% *} ${stored#* }
printf 'virt-customize on a qcow2 overlay:        %.1f s; overlay: %s bytes on disk\n' "$theirs" "$qcow"
printf 'ratio time virt-customize/imgtool: %.2f; size overlay/version: %.2f\n' \
  "$(echo "$theirs / $ours" | bc -l)" "$(echo "$qcow / ${stored% *}" | bc -l)"
