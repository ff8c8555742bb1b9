#!/usr/bin/env bash
# bootsrv against nbdkit (file plugin, cow filter) and qemu-nbd on the same
# data in the same run, with fio's nbd engine (DESIGN §7):
#   1. sequential reads, 1 MiB requests;  2. random 4 KiB reads, 16 in flight
#   3. the same through a chain of 32 files against 1
#   4. random 4 KiB writes into a session against nbdkit's cow filter
#   5. 100 sessions reading at once: errors, p50/p99 latency; RSS per idle session
# Ratios are bootsrv / peer throughput (> 1: bootsrv is faster).
# Beside each ratio stand the peer's absolute figure and, for sequential
# reads, the machine's "limit" (SENDFILE_LIMIT: a bare sendfile loop from
# the page cache to a loopback socket), so figures from a faster or slower
# machine can be told apart from a change in bootsrv.
# Everything runs in a network namespace of the script's own, with TCP's
# congestion control BENCH_CC (default cubic; BENCH_CC=host: the host's
# loopback, as the figures before 2026-11-27 were taken; lib.sh).
# Usage: IMGTOOL=… BOOTSRV=… [SENDFILE_LIMIT=…] [ROUNDS=3] [BOOTSRV_BASE=…] [BENCH_CC=…] tests/bench/nbd/bench_nbd.sh [SECONDS]
# BOOTSRV_BASE: another build of bootsrv (e.g. before a change), served from
# the same store and taking turns with BOOTSRV in steps 1, 2 and 4, so that
# the two builds are compared within one stretch of the machine's speed.
set -euo pipefail
source "$(cd "$(dirname "$0")" && pwd)/../lib.sh"
IMGTOOL=${IMGTOOL:?}; BOOTSRV=${BOOTSRV:?}
bench_netns "$0" "$@"
SECS=${1:-10}
bench_workdir nbd
"$IMGTOOL" init >/dev/null

echo "preparing a 1 GiB disk of random data and a 32-deep chain of it…"
head -c 1G /dev/urandom > disk.raw
"$IMGTOOL" import lab disk.raw --publish >/dev/null
"$IMGTOOL" import deep disk.raw --publish >/dev/null
for i in $(seq 2 32); do
  dd if=/dev/urandom of=disk.raw bs=4K count=1 seek=$(( i * 4099 )) conv=notrunc status=none
  "$IMGTOOL" import deep disk.raw >/dev/null
done
"$IMGTOOL" publish deep@32 >/dev/null
"$IMGTOOL" export lab@1 flat.raw --to raw >/dev/null

# Every client here comes from 127.0.0.1: step 5's 100 sessions (and 100
# idle ones) need more than the 16 connections one address may have.
printf 'limits:\n  nbd_per_peer: 512\n' > limits.yaml
P_BOOT=$(port); "$BOOTSRV" serve --listen 127.0.0.1:$P_BOOT --config limits.yaml > bootsrv.log 2>&1 & pids+=($!)
P_KIT=$(port); nbdkit -f -i 127.0.0.1 -p $P_KIT file flat.raw & pids+=($!)
P_QEMU=$(port); qemu-nbd -f raw --read-only -b 127.0.0.1 -p $P_QEMU -t -x flat flat.raw & pids+=($!)
P_COW=$(port); nbdkit -f -i 127.0.0.1 -p $P_COW --filter=cow file flat.raw & pids+=($!)
nbd_wait_port $P_BOOT lab@1; nbd_wait_port $P_KIT ""; nbd_wait_port $P_QEMU flat; nbd_wait_port $P_COW ""
BOOT_PID=${pids[0]}
# Whose CPU a name's figures cost (compare() records it for these).
declare -A PID_OF=([boot]=$BOOT_PID [sess]=$BOOT_PID [kit]=${pids[1]} [qemu]=${pids[2]})
BASE_A=() BASE_B=() BASE_W=()
if [ -n "${BOOTSRV_BASE:-}" ]; then
  P_BASE=$(port); "$BOOTSRV_BASE" serve --listen 127.0.0.1:$P_BASE > bootsrv-base.log 2>&1 & pids+=($!)
  nbd_wait_port $P_BASE lab@1
  BASE_A=(base=nbd://127.0.0.1:$P_BASE/lab@1) BASE_W=(basewr=nbd://127.0.0.1:$P_BASE/lab/pc03)
fi
base_ratio() { # KIND(BW|IO) NAME BASENAME
  [ -n "${BOOTSRV_BASE:-}" ] || return 0
  local -n m=$1
  echo "ratio bootsrv/base build $(ratio "${m[$2]}" "${m[$3]}") (base ${m[$3]})"
}
cat flat.raw "$BOOTFLEET_STORE"/images/*/*.vhd > /dev/null   # everything in the page cache

# fio_run NAME URI RW BS DEPTH [JOBS]: prints "MiB/s IOPS p50_us p99_us errors
# server_cpu_us_per_request" (the last 0 unless PID_OF names NAME's server).
fio_run() {
  local pid=${PID_OF[${1%-*}]:-} before=0 after=0
  [ -n "$pid" ] && before=$(cpu_ticks "$pid")
  fio --name="$1" --ioengine=nbd --uri="$2" --rw="$3" --bs="$4" --iodepth="$5" --numjobs="${6:-1}" \
      --group_reporting --runtime="$SECS" --time_based --size=1G --output-format=json --output="$1.json" >/dev/null 2>"$1.err" || true
  [ -n "$pid" ] && after=$(cpu_ticks "$pid")
  $PY - "$1.json" "$3" $(( after - before )) "$(getconf CLK_TCK)" <<'PYX'
import json, sys
j = json.load(open(sys.argv[1]))["jobs"][0]
side = "write" if "write" in sys.argv[2] else "read"
d = j[side]
pct = d.get("clat_ns", {}).get("percentile", {})
cpu_us = int(sys.argv[3]) / int(sys.argv[4]) * 1e6
per = cpu_us / d["total_ios"] if d.get("total_ios") else 0
print(f'{d["bw"]/1024:.1f} {d["iops"]:.0f} {pct.get("50.000000",0)/1000:.0f} {pct.get("99.000000",0)/1000:.0f} {j.get("error",0)} {per:.1f}')
PYX
}

# compare RW BS DEPTH NAME=URI...: ROUNDS rounds, the servers taking turns
# within each (on two shared cores the machine's speed drifts by ±15 %
# between runs; turns keep each ratio within one stretch of time). Sets
# BW[NAME] and IO[NAME] to medians over the rounds and prints each round.
declare -A BW IO CPU
compare() {
  local rw=$1 bs=$2 depth=$3; shift 3
  local -A bws ios cpus round_io
  turn_ratios=""
  for round in $(seq 1 "$ROUNDS"); do
    local line="  round $round:"
    for pair in "$@"; do
      local name=${pair%%=*} uri=${pair#*=} bw io cpu
      if [ "$name" = limit ]; then  # the machine's ceiling, measured in the same turn
        bw=$("$SENDFILE_LIMIT" flat.raw "$SECS" "$uri"); io=$bw; cpu=0
      else
        read -r bw io _ _ _ cpu <<<"$(fio_run "$name-$round" "$uri" "$rw" "$bs" "$depth")"
      fi
      bws[$name]+="$bw "; ios[$name]+="$io "; cpus[$name]+="$cpu "
      line+=" $name $io"
      round_io[$name]=$io
    done
    # The ratio within each turn, where both servers met the same machine.
    [ -n "${RATIO_OF:-}" ] && turn_ratios+="$(ratio "${round_io[${RATIO_OF% *}]}" "${round_io[${RATIO_OF#* }]}") "
    echo "$line"
  done
  for pair in "$@"; do
    local name=${pair%%=*}
    # shellcheck disable=SC2086
    BW[$name]=$(median ${bws[$name]}); IO[$name]=$(median ${ios[$name]}); CPU[$name]=$(median ${cpus[$name]})
  done
}
ROUNDS=${ROUNDS:-3}
echo "(each comparison: $ROUNDS rounds of ${SECS}s per server, medians)"

echo
echo "== 1. sequential read, 1 MiB requests (4 in flight)"
LIMIT_A=(); [ -n "${SENDFILE_LIMIT:-}" ] && LIMIT_A=(limit=$((1 << 20)))
RATIO_OF="boot kit" compare read 1M 4 boot=nbd://127.0.0.1:$P_BOOT/lab@1 sess=nbd://127.0.0.1:$P_BOOT/lab/pc01 \
  kit=nbd://127.0.0.1:$P_KIT/ qemu=nbd://127.0.0.1:$P_QEMU/flat "${LIMIT_A[@]}" "${BASE_A[@]}"
row "bootsrv lab@1" "${BW[boot]}" "${IO[boot]}"; row "bootsrv session lab/pc01" "${BW[sess]}" "${IO[sess]}"
row "nbdkit file" "${BW[kit]}" "${IO[kit]}"; row "qemu-nbd" "${BW[qemu]}" "${IO[qemu]}"
limit=""
if [ -n "${SENDFILE_LIMIT:-}" ]; then
  limit=${BW[limit]}
  echo "limit (one sendfile loop to a loopback socket, 1 MiB): $limit MiB/s; bootsrv/limit $(ratio "${BW[boot]}" "$limit")"
fi
echo "server CPU per 1 MiB read: bootsrv ${CPU[boot]} us, nbdkit ${CPU[kit]} us, qemu-nbd ${CPU[qemu]} us"
echo "ratio bootsrv/nbdkit $(ratio "${BW[boot]}" "${BW[kit]}") (nbdkit ${BW[kit]} MiB/s${limit:+, limit $limit MiB/s}), bootsrv/qemu-nbd $(ratio "${BW[boot]}" "${BW[qemu]}")"
# shellcheck disable=SC2086
echo "bootsrv/nbdkit within each turn: $turn_ratios(median $(median $turn_ratios))"
base_ratio BW boot base

echo
echo "== 2. random 4 KiB reads, 16 in flight"
RATIO_OF="boot kit" compare randread 4k 16 boot=nbd://127.0.0.1:$P_BOOT/lab@1 kit=nbd://127.0.0.1:$P_KIT/ qemu=nbd://127.0.0.1:$P_QEMU/flat "${BASE_A[@]}"
row "bootsrv lab@1" "${BW[boot]}" "${IO[boot]}"; row "nbdkit file" "${BW[kit]}" "${IO[kit]}"; row "qemu-nbd" "${BW[qemu]}" "${IO[qemu]}"
echo "server CPU per 4 KiB read: bootsrv ${CPU[boot]} us, nbdkit ${CPU[kit]} us, qemu-nbd ${CPU[qemu]} us"
echo "ratio bootsrv/nbdkit $(ratio "${IO[boot]}" "${IO[kit]}") (nbdkit ${IO[kit]} IOPS), bootsrv/qemu-nbd $(ratio "${IO[boot]}" "${IO[qemu]}")"
# shellcheck disable=SC2086
echo "bootsrv/nbdkit within each turn: $turn_ratios(median $(median $turn_ratios))"
base_ratio IO boot base

echo
echo "== 3. chain depth 32 against depth 1 (random 4 KiB reads, 16 in flight)"
compare randread 4k 16 deep=nbd://127.0.0.1:$P_BOOT/deep@32 one=nbd://127.0.0.1:$P_BOOT/lab@1
row "bootsrv deep@32 (32 files)" "${BW[deep]}" "${IO[deep]}"; row "bootsrv lab@1 (1 file)" "${BW[one]}" "${IO[one]}"
echo "depth 32 / depth 1: $(ratio "${IO[deep]}" "${IO[one]}") (target >= 0.95)"

echo
echo "== 4. random 4 KiB writes, 16 in flight"
compare randwrite 4k 16 wr=nbd://127.0.0.1:$P_BOOT/lab/pc02 cow=nbd://127.0.0.1:$P_COW/ "${BASE_W[@]}"
row "bootsrv session lab/pc02" "${BW[wr]}" "${IO[wr]}"; row "nbdkit --filter=cow" "${BW[cow]}" "${IO[cow]}"
echo "ratio bootsrv/nbdkit-cow $(ratio "${IO[wr]}" "${IO[cow]}") (nbdkit-cow ${IO[cow]} IOPS)"
base_ratio IO wr basewr

echo
echo "== 5. 100 sessions reading at once (anonymous sessions, random 4 KiB, 1 in flight each)"
read -r m_bw m_io m_p50 m_p99 m_err _ <<<"$(fio_run many nbd://127.0.0.1:$P_BOOT/lab randread 4k 1 100)"
echo "100 sessions: $m_io IOPS in all, latency p50 ${m_p50} us, p99 ${m_p99} us, fio errors: $m_err"
rss() { awk '/VmRSS/ {print $2}' /proc/$BOOT_PID/status; }
before=$(rss)
$PY - "$P_BOOT" <<'PYX' &
import nbd, sys, time
handles = []
for i in range(100):
    h = nbd.NBD(); h.connect_uri(f"nbd://127.0.0.1:{sys.argv[1]}/lab/idle{i:03d}"); h.pread(4096, 0); handles.append(h)
open("connected", "w").close()
time.sleep(8)
PYX
holder=$!
for _ in $(seq 1 100); do [ -f connected ] && break; sleep 0.1; done
sleep 1
during=$(rss)
wait $holder || true
echo "bootsrv RSS: ${before} KiB idle, ${during} KiB with 100 idle sessions connected: $(( (during - before) / 100 )) KiB per session (target <= 1024)"
