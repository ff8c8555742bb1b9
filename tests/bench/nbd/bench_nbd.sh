#!/usr/bin/env bash
# bootsrv against nbdkit (file plugin, cow filter) and qemu-nbd on the same
# data in the same run, with fio's nbd engine (DESIGN §7):
#   1. sequential reads, 1 MiB requests;  2. random 4 KiB reads, 16 in flight
#   3. the same through a chain of 32 files against 1
#   4. random 4 KiB writes into a session against nbdkit's cow filter
#   5. 100 sessions reading at once: errors, p50/p99 latency; RSS per idle session
# Ratios are bootsrv / peer throughput (> 1: bootsrv is faster).
# Usage: IMGTOOL=… BOOTSRV=… tests/bench/nbd/bench_nbd.sh [SECONDS]
set -euo pipefail
IMGTOOL=${IMGTOOL:?}; BOOTSRV=${BOOTSRV:?}
SECS=${1:-10}
work=$(mktemp -d "${BENCH_DIR:-/tmp}/bootfleet-bench-nbd-XXXXXX")
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
cd "$work"
export BOOTFLEET_STORE=$work/store
"$IMGTOOL" init >/dev/null
PY=/usr/bin/python3
port() { $PY -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() { for _ in $(seq 1 100); do nbdinfo --size "nbd://127.0.0.1:$1/$2" >/dev/null 2>&1 && return 0; sleep 0.1; done; echo "server on $1 did not start"; exit 1; }

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

P_BOOT=$(port); "$BOOTSRV" serve --listen 127.0.0.1:$P_BOOT > bootsrv.log 2>&1 & pids+=($!)
P_KIT=$(port); nbdkit -f -i 127.0.0.1 -p $P_KIT file flat.raw & pids+=($!)
P_QEMU=$(port); qemu-nbd -f raw --read-only -b 127.0.0.1 -p $P_QEMU -t -x flat flat.raw & pids+=($!)
P_COW=$(port); nbdkit -f -i 127.0.0.1 -p $P_COW --filter=cow file flat.raw & pids+=($!)
wait_port $P_BOOT lab@1; wait_port $P_KIT ""; wait_port $P_QEMU flat; wait_port $P_COW ""
BOOT_PID=${pids[0]}
cat flat.raw "$BOOTFLEET_STORE"/images/*/*.vhd > /dev/null   # everything in the page cache

# fio_run NAME URI RW BS DEPTH [JOBS]: prints "MiB/s IOPS p50_us p99_us errors"
fio_run() {
  fio --name="$1" --ioengine=nbd --uri="$2" --rw="$3" --bs="$4" --iodepth="$5" --numjobs="${6:-1}" \
      --group_reporting --runtime="$SECS" --time_based --size=1G --output-format=json --output="$1.json" >/dev/null 2>"$1.err" || true
  $PY - "$1.json" "$3" <<'PYX'
import json, sys
j = json.load(open(sys.argv[1]))["jobs"][0]
side = "write" if "write" in sys.argv[2] else "read"
d = j[side]
pct = d.get("clat_ns", {}).get("percentile", {})
print(f'{d["bw"]/1024:.1f} {d["iops"]:.0f} {pct.get("50.000000",0)/1000:.0f} {pct.get("99.000000",0)/1000:.0f} {j.get("error",0)}')
PYX
}
row() { printf '%-44s %10s MiB/s %9s IOPS\n' "$1" "$2" "$3"; }
ratio() { echo "$1 / $2" | bc -l | xargs printf '%.2f'; }

echo
echo "== 1. sequential read, 1 MiB requests (4 in flight), ${SECS}s each"
read -r b_bw b_io _ <<<"$(fio_run seq-boot nbd://127.0.0.1:$P_BOOT/lab@1 read 1M 4)"
read -r k_bw k_io _ <<<"$(fio_run seq-kit nbd://127.0.0.1:$P_KIT/ read 1M 4)"
read -r q_bw q_io _ <<<"$(fio_run seq-qemu nbd://127.0.0.1:$P_QEMU/flat read 1M 4)"
read -r s_bw s_io _ <<<"$(fio_run seq-sess nbd://127.0.0.1:$P_BOOT/lab/pc01 read 1M 4)"
row "bootsrv lab@1" "$b_bw" "$b_io"; row "bootsrv session lab/pc01" "$s_bw" "$s_io"
row "nbdkit file" "$k_bw" "$k_io"; row "qemu-nbd" "$q_bw" "$q_io"
echo "ratio bootsrv/nbdkit $(ratio "$b_bw" "$k_bw"), bootsrv/qemu-nbd $(ratio "$b_bw" "$q_bw")"

echo
echo "== 2. random 4 KiB reads, 16 in flight"
read -r b_bw b_io _ <<<"$(fio_run rnd-boot nbd://127.0.0.1:$P_BOOT/lab@1 randread 4k 16)"
read -r k_bw k_io _ <<<"$(fio_run rnd-kit nbd://127.0.0.1:$P_KIT/ randread 4k 16)"
read -r q_bw q_io _ <<<"$(fio_run rnd-qemu nbd://127.0.0.1:$P_QEMU/flat randread 4k 16)"
row "bootsrv lab@1" "$b_bw" "$b_io"; row "nbdkit file" "$k_bw" "$k_io"; row "qemu-nbd" "$q_bw" "$q_io"
echo "ratio bootsrv/nbdkit $(ratio "$b_io" "$k_io"), bootsrv/qemu-nbd $(ratio "$b_io" "$q_io")"

echo
echo "== 3. chain depth 32 against depth 1 (random 4 KiB reads, 16 in flight)"
read -r d_bw d_io _ <<<"$(fio_run rnd-deep nbd://127.0.0.1:$P_BOOT/deep@32 randread 4k 16)"
row "bootsrv deep@32 (32 files)" "$d_bw" "$d_io"; row "bootsrv lab@1 (1 file)" "$b_bw" "$b_io"
echo "depth 32 / depth 1: $(ratio "$d_io" "$b_io") (target >= 0.95)"

echo
echo "== 4. random 4 KiB writes, 16 in flight"
read -r w_bw w_io _ <<<"$(fio_run wr-boot nbd://127.0.0.1:$P_BOOT/lab/pc02 randwrite 4k 16)"
read -r c_bw c_io _ <<<"$(fio_run wr-cow nbd://127.0.0.1:$P_COW/ randwrite 4k 16)"
row "bootsrv session lab/pc02" "$w_bw" "$w_io"; row "nbdkit --filter=cow" "$c_bw" "$c_io"
echo "ratio bootsrv/nbdkit-cow $(ratio "$w_io" "$c_io")"

echo
echo "== 5. 100 sessions reading at once (anonymous sessions, random 4 KiB, 1 in flight each)"
read -r m_bw m_io m_p50 m_p99 m_err <<<"$(fio_run many nbd://127.0.0.1:$P_BOOT/lab randread 4k 1 100)"
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
