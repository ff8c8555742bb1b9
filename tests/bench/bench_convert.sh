#!/usr/bin/env bash
# Conversion speed against qemu-img on the same files in the same run:
#   a 4 GiB raw disk, half random data and half zeros (written zeros, not
#   holes), to a dynamic VHD; and that dynamic VHD back to raw.
# Each timed run starts after an untimed `sync` (so no run pays for another's
# dirty pages) with its input in the page cache, and includes `sync OUTPUT`
# (so both tools deliver a durable file: imgtool fsyncs anyway, qemu-img's
# data may still be in the page cache when it exits). Prints median seconds of RUNS runs and the ratio
# qemu-img time / imgtool time (> 1: imgtool is faster).
# Usage: IMGTOOL=build/imgtool/imgtool tests/bench/bench_convert.sh [RUNS]
set -euo pipefail
IMGTOOL=${IMGTOOL:?set IMGTOOL to the imgtool binary}
RUNS=${1:-3}
work=$(mktemp -d "${BENCH_DIR:-/tmp}/bootfleet-bench-convert-XXXXXX")
trap 'rm -rf "$work"' EXIT
cd "$work"

# 2 MiB random, 2 MiB zeros, alternating: 4 GiB.
/usr/bin/python3 - <<'PY'
import os
chunk = 2 << 20
zeros = bytes(chunk)
with open("in.raw", "wb") as f:
    for i in range(2048):
        f.write(os.urandom(chunk) if i % 2 == 0 else zeros)
PY
sync

median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
# timed OUTPUT CMD...: seconds for CMD plus syncing OUTPUT.
timed() {
  local out=$1 t0 t1; shift
  sync
  cat in.raw > /dev/null; if [ -f in.vhd ]; then cat in.vhd > /dev/null; fi
  t0=$(date +%s.%N); "$@" >/dev/null 2>&1; sync "$out"; t1=$(date +%s.%N)
  echo "$t1 - $t0" | bc
}

run_pair() { # label ours-output peer-output ours-cmd... -- peer-cmd...
  local label=$1 ours_out=$2 peer_out=$3; shift 3
  local ours=() peer=()
  while [ "$1" != "--" ]; do ours+=("$1"); shift; done; shift
  peer=("$@")
  local a=() b=()
  for _ in $(seq 1 "$RUNS"); do
    a+=("$(timed "$ours_out" "${ours[@]}")")
    rm -f "$ours_out"
    b+=("$(timed "$peer_out" "${peer[@]}")")
    rm -f "$peer_out"
  done
  local ma mb
  ma=$(printf '%s\n' "${a[@]}" | median)
  mb=$(printf '%s\n' "${b[@]}" | median)
  printf '%-34s imgtool %6.2f s   qemu-img %6.2f s   ratio %.2f\n' "$label" "$ma" "$mb" "$(echo "$mb / $ma" | bc -l)"
}

run_pair "raw -> dynamic VHD (4 GiB, half zero)" ours.vhd peer.vhd \
  "$IMGTOOL" convert in.raw ours.vhd --force -- qemu-img convert -O vpc in.raw peer.vhd
"$IMGTOOL" convert in.raw ours.vhd >/dev/null
qemu-img convert -O vpc in.raw peer.vhd
qemu-img compare -q -f vpc -F vpc ours.vhd peer.vhd || { echo "outputs differ"; exit 1; }
mv ours.vhd in.vhd
rm -f peer.vhd
run_pair "dynamic VHD -> raw" ours.raw peer.raw \
  "$IMGTOOL" convert in.vhd ours.raw --to raw --force -- qemu-img convert -f vpc -O raw in.vhd peer.raw
"$IMGTOOL" convert in.vhd ours.raw --to raw >/dev/null
qemu-img convert -f vpc -O raw in.vhd peer.raw
cmp -n 4294967296 ours.raw peer.raw || { echo "outputs differ"; exit 1; }
echo "outputs identical (qemu-img compare, cmp)"
