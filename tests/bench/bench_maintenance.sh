#!/usr/bin/env bash
# Maintenance commit (docs/maintenance.md): a 2 GiB image (1 GiB of data),
# a client in maintenance writes 20 MiB in 1 MiB pieces spread over the disk
# through bootsrv's NBD export, and the session is committed. Set against the
# same change reaching the store as a whole disk (`imgtool import` of the
# changed raw file, which reads every block) and against
# `qemu-img convert -O qcow2 -B base` of that file: time and bytes stored.
# Usage: IMGTOOL=build/imgtool/imgtool BOOTSRV=build/bootsrv/bootsrv tests/bench/bench_maintenance.sh
set -euo pipefail
IMGTOOL=${IMGTOOL:?set IMGTOOL to the imgtool binary}
BOOTSRV=${BOOTSRV:?set BOOTSRV to the bootsrv binary}
source "$(dirname "$0")/lib.sh"
work=$(mktemp -d "${BENCH_DIR:-/tmp}/bootfleet-bench-maint-XXXXXX")
SERVER=
trap '[ -z "$SERVER" ] || kill -9 $SERVER 2>/dev/null || true; rm -rf "$work"' EXIT
cd "$work"
export BOOTFLEET_STORE=$work/store
"$IMGTOOL" init >/dev/null
now() { date +%s.%N; }
elapsed() { echo "$(now) - $1" | bc; }

truncate -s 2048M v1.raw
$PY - v1.raw <<'PY'
import os, sys
with open(sys.argv[1], "r+b") as f:
    for block in range(1024):            # 512 KiB of data at the start of every 2 MiB block
        f.seek(block * 2 * 1024 * 1024)
        f.write(os.urandom(512 * 1024))
PY
"$IMGTOOL" import lab v1.raw --publish >/dev/null
"$IMGTOOL" client add 52:54:00:00:be:01 --name pc01 --image lab >/dev/null
"$IMGTOOL" maintenance start lab --client pc01 >/dev/null
P=$(port)
"$BOOTSRV" serve --listen 127.0.0.1:$P > server.log 2>&1 &
SERVER=$!
for _ in $(seq 1 100); do grep -q "listening for NBD" server.log && break; sleep 0.05; done
head -c $(( 20 << 20 )) /dev/urandom > change.bin
cp --sparse=always v1.raw v2.raw
for i in $(seq 0 19); do
  dd if=change.bin of=v2.raw bs=1M skip=$i count=1 seek=$(( i * 100 + 1 )) conv=notrunc status=none
done
$PY - "nbd://127.0.0.1:$P/lab/pc01" <<'PY'
import nbd, sys
h = nbd.NBD(); h.connect_uri(sys.argv[1])
data = open("change.bin", "rb").read()
for i in range(20):
    h.pwrite(data[i << 20:(i + 1) << 20], (i * 100 + 1) << 20)
h.flush(); h.shutdown()
PY
kill -TERM $SERVER; wait $SERVER || true; SERVER=
sync

t=$(now); "$IMGTOOL" maintenance commit lab -m bench --json > commit.json; ours=$(elapsed "$t")
stored=$($PY -c 'import json; print(json.load(open("commit.json"))["version"]["stored_bytes"])')
"$IMGTOOL" export lab@2 check.raw --to raw >/dev/null
cmp -n $(( 2048 << 20 )) check.raw v2.raw || { echo "FAIL: lab@2 is not v1 with the 20 MiB written" >&2; exit 1; }
rm -f check.raw
# The same change as a whole disk, into an image of its own (importing it into
# lab would find it equal to lab@2 and store nothing).
"$IMGTOOL" import whole v1.raw >/dev/null
t=$(now); "$IMGTOOL" import whole v2.raw >/dev/null; import_s=$(elapsed "$t")
import_stored=$("$IMGTOOL" versions whole --json | $PY -c 'import json,sys; print(json.load(sys.stdin)[1]["stored_bytes"])')
qemu-img convert -q -O qcow2 v1.raw v1.qcow2
t=$(now); qemu-img convert -q -O qcow2 -B v1.qcow2 -F qcow2 v2.raw v2.qcow2; peer=$(elapsed "$t")
printf 'imgtool maintenance commit:  %6.2f s, %s bytes stored\n' "$ours" "$stored"
printf 'imgtool import (whole disk): %6.2f s, %s bytes stored\n' "$import_s" "$import_stored"
printf 'qemu-img convert -B base:    %6.2f s, qcow2 file %s bytes\n' "$peer" "$(stat -c %s v2.qcow2)"
printf 'ratio (qemu-img time / commit time): %.2f\n' "$(echo "$peer / $ours" | bc -l)"
