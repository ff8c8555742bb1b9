#!/usr/bin/env bash
# Store benchmarks (DESIGN §7), each against a peer on the same data:
#  1. import of a 4 GiB raw disk as version 2 that differs from version 1 in
#     1 %: time and bytes stored, against `qemu-img convert -O qcow2 -B v1`
#     (qcow2 over a backing file also stores only what differs from the base).
#  2. diff of two 20 GiB versions differing in 50 MiB: target < 1 s, reading
#     no block data; set against `diff --verify`, which reads both disks.
# Usage: IMGTOOL=build/imgtool/imgtool tests/bench/bench_store.sh
set -euo pipefail
IMGTOOL=${IMGTOOL:?set IMGTOOL to the imgtool binary}
work=$(mktemp -d "${BENCH_DIR:-/tmp}/bootfleet-bench-store-XXXXXX")
trap 'rm -rf "$work"' EXIT
cd "$work"
export BOOTFLEET_STORE=$work/store
"$IMGTOOL" init >/dev/null

now() { date +%s.%N; }
elapsed() { echo "$(now) - $1" | bc; }

# A disk of SIZE_MIB where every 2 MiB block holds DATA_KIB of random data at
# its start (so every block has a digest) — written sparse.
make_disk() { # file size_mib data_kib
  truncate -s "$2M" "$1"
  /usr/bin/python3 - "$1" "$2" "$3" <<'PY'
import os, sys
path, size_mib, data_kib = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
with open(path, "r+b") as f:
    for block in range(size_mib // 2):
        f.seek(block * 2 * 1024 * 1024)
        f.write(os.urandom(data_kib * 1024))
PY
}
# Overwrite COUNT MiB in 1 MiB pieces spread evenly over the disk.
change() { # file size_mib count_mib
  local step=$(( $2 / $3 ))
  for i in $(seq 0 $(( $3 - 1 ))); do
    dd if=/dev/urandom of="$1" bs=1M count=1 seek=$(( i * step + 1 )) conv=notrunc status=none
  done
}

echo "== import of a 4 GiB disk as version 2, differing in 1 % (41 MiB) from version 1"
make_disk v1.raw 4096 1024            # 2 GiB of data, 2 GiB of zeros
"$IMGTOOL" import lab v1.raw >/dev/null
cp --sparse=always v1.raw v2.raw
change v2.raw 4096 41
sync
t=$(now); "$IMGTOOL" import lab v2.raw >/dev/null; ours=$(elapsed "$t")
stored=$("$IMGTOOL" versions lab --json | /usr/bin/python3 -c 'import json,sys; print(json.load(sys.stdin)[1]["file_size"])')
qemu-img convert -q -O qcow2 v1.raw v1.qcow2
t=$(now); qemu-img convert -q -O qcow2 -B v1.qcow2 -F qcow2 v2.raw v2.qcow2; peer=$(elapsed "$t")
peer_stored=$(stat -c %s v2.qcow2)
on_disk=$(du -B1 "$BOOTFLEET_STORE"/images/lab/0002.vhd | cut -f1)
printf 'imgtool import:            %6.2f s, version file %s bytes, %s bytes allocated on disk (%.2f %% of the disk)\n' \
  "$ours" "$stored" "$on_disk" "$(echo "$on_disk * 100 / 4294967296" | bc -l)"
printf 'qemu-img convert -B base:  %6.2f s, qcow2 file %s bytes\n' "$peer" "$peer_stored"
printf 'ratio (qemu-img time / imgtool time): %.2f\n' "$(echo "$peer / $ours" | bc -l)"
rm -f v1.raw v2.raw v1.qcow2 v2.qcow2

echo
echo "== diff of two 20 GiB versions differing in 50 MiB"
make_disk big1.raw 20480 64           # every block holds data: 10240 digests
"$IMGTOOL" import big big1.raw >/dev/null
cp --sparse=always big1.raw big2.raw
change big2.raw 20480 50
"$IMGTOOL" import big big2.raw >/dev/null
best=""
for i in 1 2 3 4 5; do
  t=$(now); "$IMGTOOL" diff big@1 big@2 --json > diff.json || [ $? -eq 1 ]; d=$(elapsed "$t")
  if [ -z "$best" ] || [ "$(echo "$d < $best" | bc)" = 1 ]; then best=$d; fi
done
changed=$(/usr/bin/python3 -c 'import json; print(json.load(open("diff.json"))["changed_bytes"])')
t=$(now); "$IMGTOOL" diff big@1 big@2 --verify --json > verify.json || [ $? -eq 1 ]; full=$(elapsed "$t")
narrowed=$(/usr/bin/python3 -c 'import json; print(json.load(open("verify.json"))["changed_bytes"])')
t=$(now); cmp -s big1.raw big2.raw || true; first=$(elapsed "$t")
printf 'imgtool diff (digests only, best of 5): %.3f s, %s bytes changed at 2 MiB granularity\n' "$best" "$changed"
printf 'imgtool diff --verify (reads both disks): %.3f s, %s bytes changed at sector granularity\n' "$full" "$narrowed"
printf 'cmp of the raw inputs (stops at the first difference): %.3f s\n' "$first"
printf 'ratio (reading the data / digests): %.0f\n' "$(echo "$full / $best" | bc -l)"
printf 'target < 1 s: %s\n' "$( [ "$(echo "$best < 1" | bc)" = 1 ] && echo met || echo MISSED)"
