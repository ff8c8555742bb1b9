#!/usr/bin/env bash
# Conversion speed against qemu-img, on the same files in the same run.
#
# The issue's target: converting a 4 GiB raw file, half of it zero, to a
# dynamic VHD, and a dynamic VHD back to raw, at least as fast as
# `qemu-img convert`. Three input layouts, each 4 GiB, half random data and
# half zeros:
#   aligned  2 MiB of data, 2 MiB of written zeros, alternating (whole VHD
#            blocks are either data or zero)
#   mixed    data and written-zero runs of 1 to 3 MiB (4 KiB multiples), so
#            most VHD blocks are part data, part zeros
#   holes    the aligned layout with the zero half left as holes (a sparse
#            file: both tools can skip it without reading)
# For each layout: raw -> dynamic VHD (`imgtool convert IN OUT` against
# `qemu-img convert -O vpc IN OUT`), then that VHD (imgtool's) -> raw
# (`imgtool convert IN OUT --to raw` against `qemu-img convert -f vpc -O raw`).
#
# Fairness. Runs alternate between the tools (and which goes first), RUNS of
# each; the median is reported. Before every timed run: `sync` (untimed, so
# nobody pays for dirty pages left by the run before) and the input is read
# once (untimed) so both start with it in the page cache. Every timed run
# ends with `sync OUTPUT` (an fsync of the output): both tools deliver a file
# that is on disk. imgtool fsyncs its output (and the directory, after the
# rename into place) by itself; qemu-img fdatasyncs it when closing (its
# default cache mode, writeback), so the extra fsync costs either almost
# nothing, but it guarantees the same end state.
#
# Every output is checked: each VHD against the raw input (qemu-img compare),
# imgtool's and qemu-img's VHDs against each other, and both raw outputs
# byte for byte against the input (cmp).
#
# Prints median seconds per tool and the ratio qemu-img / imgtool (> 1:
# imgtool is faster).
#
# Usage: IMGTOOL=build/imgtool/imgtool tests/bench/bench_convert.sh [RUNS]
# Environment: BENCH_DIR (scratch space, default $TMPDIR or /tmp; about
# 12 GiB free needed), BENCH_SIZE_MIB (default 4096; smaller for a quick try),
# BENCH_LAYOUTS (default "aligned mixed holes").
set -euo pipefail
IMGTOOL=${IMGTOOL:?set IMGTOOL to the imgtool binary}
case $IMGTOOL in */*) IMGTOOL=$(realpath "$IMGTOOL") ;; esac
RUNS=${1:-5}
SIZE_MIB=${BENCH_SIZE_MIB:-4096}
LAYOUTS=${BENCH_LAYOUTS:-aligned mixed holes}
command -v qemu-img >/dev/null || { echo "bench_convert: qemu-img is not installed" >&2; exit 1; }

work=$(mktemp -d "${BENCH_DIR:-${TMPDIR:-/tmp}}/bootfleet-bench-convert-XXXXXX")
trap 'rm -rf "$work"' EXIT
cd "$work"
need_kib=$((SIZE_MIB * 1024 * 3))
free_kib=$(df -Pk . | awk 'NR == 2 {print $4}')
if [ "$free_kib" -lt "$need_kib" ]; then
  echo "bench_convert: $work has $((free_kib / 1024)) MiB free, needs $((need_kib / 1024)) MiB" >&2
  exit 1
fi

echo "imgtool:  $IMGTOOL"
echo "qemu-img: $(qemu-img --version | head -1)"
echo "machine:  $(nproc) CPUs, $(awk '/MemTotal/ {printf "%.0f GiB", $2 / 1048576}' /proc/meminfo) RAM," \
     "$(stat -f -c %T .) file system at $work, kernel $(uname -r)"
echo "runs:     $RUNS of each (median reported), disk of $SIZE_MIB MiB"

# make_raw LAYOUT FILE: the input disk (deterministic layout, random data).
make_raw() {
  python3 - "$1" "$2" "$SIZE_MIB" <<'PY'
import os, random, sys
layout, path, size = sys.argv[1], sys.argv[2], int(sys.argv[3]) << 20
MiB = 1 << 20
rng = random.Random(1)
with open(path, "wb") as f:
    f.truncate(size)
    pos, data = 0, True
    while pos < size:
        if layout == "mixed":
            n = rng.randrange(MiB, 3 * MiB, 4096)
        else:
            n = 2 * MiB
        n = min(n, size - pos)
        if data:
            f.seek(pos)
            f.write(os.urandom(n))
        elif layout != "holes":
            f.seek(pos)
            f.write(bytes(n))
        pos += n
        data = not data
PY
}

median() { sort -n | awk '{a[NR] = $1} END {print a[int((NR + 1) / 2)]}'; }

# timed INPUT OUTPUT CMD...: seconds for CMD plus fsyncing OUTPUT, the input
# in the page cache and no dirty pages from anyone else at the start.
timed() {
  local in=$1 out=$2 t0 t1
  shift 2
  rm -f "$out"
  sync
  cat "$in" >/dev/null
  t0=$(date +%s.%N)
  "$@" >/dev/null 2>&1 || { echo "bench_convert: failed: $*" >&2; return 1; }
  sync "$out"
  t1=$(date +%s.%N)
  echo "$t1 - $t0" | bc
}

results=()
# pair LABEL INPUT OURS_OUT PEER_OUT OURS_CMD... -- PEER_CMD...
# Leaves the last outputs of both in place for checking.
pair() {
  local label=$1 in=$2 ours_out=$3 peer_out=$4
  shift 4
  local ours=() peer=() a=() b=() i
  while [ "$1" != "--" ]; do ours+=("$1"); shift; done
  shift
  peer=("$@")
  for i in $(seq 1 "$RUNS"); do
    if [ $((i % 2)) -eq 1 ]; then
      a+=("$(timed "$in" "$ours_out" "${ours[@]}")")
      b+=("$(timed "$in" "$peer_out" "${peer[@]}")")
    else
      b+=("$(timed "$in" "$peer_out" "${peer[@]}")")
      a+=("$(timed "$in" "$ours_out" "${ours[@]}")")
    fi
  done
  local ma mb ratio
  ma=$(printf '%s\n' "${a[@]}" | median)
  mb=$(printf '%s\n' "${b[@]}" | median)
  ratio=$(echo "$mb / $ma" | bc -l)
  echo "  $label: imgtool ${a[*]} s; qemu-img ${b[*]} s"
  results+=("$(printf '%-30s %8.2f %9.2f %7.2f' "$label" "$ma" "$mb" "$ratio")")
}

allocated() { du -k "$1" | awk '{printf "%.0f MiB", $1 / 1024}'; }
creator() { tail -c 512 "$1" | head -c 32 | tail -c 4; }

for layout in $LAYOUTS; do
  echo
  echo "== layout '$layout': making the input"
  make_raw "$layout" in.raw
  echo "  in.raw: $(allocated in.raw) allocated"

  pair "$layout: raw -> dynamic VHD" in.raw ours.vhd peer.vhd \
    "$IMGTOOL" convert in.raw ours.vhd -- qemu-img convert -O vpc in.raw peer.vhd
  echo "  outputs: imgtool $(allocated ours.vhd) (creator '$(creator ours.vhd)')," \
       "qemu-img $(allocated peer.vhd) (creator '$(creator peer.vhd)')"
  qemu-img compare -q -f raw -F vpc in.raw ours.vhd || { echo "imgtool's VHD differs from the input"; exit 1; }
  qemu-img compare -q -f vpc -F vpc ours.vhd peer.vhd || { echo "the two VHDs differ"; exit 1; }
  mv ours.vhd in.vhd
  rm -f peer.vhd

  pair "$layout: dynamic VHD -> raw" in.vhd ours.raw peer.raw \
    "$IMGTOOL" convert in.vhd ours.raw --to raw -- qemu-img convert -f vpc -O raw in.vhd peer.raw
  size=$(stat -c %s in.raw)
  cmp -n "$size" in.raw ours.raw || { echo "imgtool's raw output differs from the input"; exit 1; }
  cmp -n "$size" in.raw peer.raw || { echo "qemu-img's raw output differs from the input"; exit 1; }
  echo "  outputs: imgtool $(allocated ours.raw), qemu-img $(allocated peer.raw); all outputs checked identical"
  rm -f in.raw in.vhd ours.raw peer.raw
done

echo
printf '%-30s %8s %9s %7s\n' "conversion (median s)" imgtool qemu-img ratio
printf '%s\n' "${results[@]}"
echo "(ratio = qemu-img time / imgtool time; > 1 means imgtool is faster)"
