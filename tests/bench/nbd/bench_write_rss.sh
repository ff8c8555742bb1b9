#!/usr/bin/env bash
# What writing sessions cost bootsrv in memory, and what its write cache
# does against nbdkit's cow filter (issue 16's two figures measured before
# the write cache became block-granular: "100 sessions of random 4 KiB
# writes for 150 s: RSS 11 MB -> 265 MB", and the NBD write benchmark):
#   1. SESSIONS named sessions (lab/w1 …, default 100), each writing random
#      4 KiB blocks over the whole 1 GiB disk, 1 in flight each, for
#      SECONDS (default 60; bounded: blockload stops then). bootsrv's RSS
#      before, its peak during (sampled every 0.5 s, and VmHWM), and after
#      the clients left (the sessions live on, as a PC's does between
#      reconnects); RSS per GiB written and per GiB of distinct clusters
#      touched (the map is per 4 KiB cluster: it grows with what was
#      touched, not with what was written).
#   2. One session, random 4 KiB writes, 16 in flight: bootsrv against
#      nbdkit --filter=cow on the same disk, ROUNDS rounds of 10 s taking
#      turns, medians (the same load generator, blockload, for both).
#
#   IMGTOOL=… BOOTSRV=… BLOCKLOAD=… tests/bench/nbd/bench_write_rss.sh [SESSIONS] [SECONDS]
set -euo pipefail
source "$(cd "$(dirname "$0")" && pwd)/../lib.sh"
IMGTOOL=${IMGTOOL:?}; BOOTSRV=${BOOTSRV:?}; BLOCKLOAD=${BLOCKLOAD:?}
SESSIONS=${1:-100}; SECS=${2:-60}; ROUNDS=${ROUNDS:-3}
bench_workdir wrss
"$IMGTOOL" init >/dev/null
head -c 1G /dev/urandom > flat.raw
"$IMGTOOL" import lab flat.raw --publish >/dev/null
# Every session here comes from 127.0.0.1: lift the per-address cap.
printf 'limits:\n  nbd_per_peer: 4096\n  nbd_connections: 4096\n' > limits.yaml
P_BOOT=$(port); "$BOOTSRV" serve --listen 127.0.0.1:$P_BOOT --config limits.yaml > bootsrv.log 2>&1 & pids+=($!)
BOOT_PID=$!
P_COW=$(port); nbdkit -f -i 127.0.0.1 -p $P_COW --filter=cow file flat.raw & pids+=($!)
nbd_wait_port $P_BOOT lab@1; nbd_wait_port $P_COW ""
cat flat.raw "$BOOTFLEET_STORE"/images/*/*.vhd > /dev/null
rss() { awk '/VmRSS/ {print $2}' /proc/$BOOT_PID/status; }

echo "== 1. $SESSIONS sessions of random 4 KiB writes (1 in flight each) for $SECS s"
before=$(rss)
"$BLOCKLOAD" "nbd://127.0.0.1:$P_BOOT/lab/w%d" --sessions "$SESSIONS" --depth 1 --bs 4096 --rw randwrite \
  --seconds "$SECS" > load.json 2> load.err &
load=$!
peak=$before
while kill -0 $load 2>/dev/null; do r=$(rss); [ "$r" -gt "$peak" ] && peak=$r; sleep 0.5; done
wait $load || { echo "blockload failed: $(cat load.err)"; exit 1; }
sleep 1
after=$(rss); hwm=$(awk '/VmHWM/ {print $2}' /proc/$BOOT_PID/status)
cache_kib=$(du -sk "$BOOTFLEET_STORE/cache" | cut -f1)
$PY - load.json "$SESSIONS" "$before" "$peak" "$after" "$hwm" "$cache_kib" <<'PY'
import json, math, sys
j = json.load(open(sys.argv[1]))
sessions, before, peak, after, hwm, cache = (int(x) for x in sys.argv[2:])
writes = j["requests"]
gib = writes * 4096 / 2**30
# Distinct clusters: each session's writes land uniformly on 262 144
# clusters of the 1 GiB disk; the expected number touched is
# n (1 - e^(-w/n)) for w writes.
n = 262144
touched = sessions * n * (1 - math.exp(-(writes / sessions) / n)) * 4096 / 2**30
print(f"writes: {writes} ({gib:.2f} GiB, {j['iops']:.0f} IOPS, p99 {j['p99_us']} us), errors {j['errors']}")
print(f"distinct 4 KiB clusters touched (expected): {touched:.2f} GiB; cache directory {cache / 1024**2:.2f} GiB on disk")
print(f"bootsrv RSS: {before / 1024:.1f} MiB before, peak {peak / 1024:.1f} MiB during (VmHWM {hwm / 1024:.1f}), "
      f"{after / 1024:.1f} MiB after (sessions alive, clients gone)")
grow = (after - before) / 1024
print(f"growth {grow:.1f} MiB: {grow / gib:.1f} MiB per GiB written, {grow / touched:.1f} MiB per GiB touched, "
      f"{(after - before) * 1024 / sessions / 1024:.0f} KiB per session")
if j["errors"]:
    sys.exit(1)
PY

# iops: blockload's IOPS from its JSON on stdin; fails on any error.
iops() { $PY -c 'import json,sys; j=json.load(sys.stdin); sys.exit("blockload errors") if j["errors"] else print(round(j["iops"]))'; }
echo
echo "== 2. random 4 KiB writes, 16 in flight, one session: bootsrv against nbdkit --filter=cow ($ROUNDS rounds of 10 s)"
boot=() kit=()
for round in $(seq 1 "$ROUNDS"); do
  b=$("$BLOCKLOAD" "nbd://127.0.0.1:$P_BOOT/lab/solo" --depth 16 --bs 4096 --rw randwrite --seconds 10 | iops)
  k=$("$BLOCKLOAD" "nbd://127.0.0.1:$P_COW/" --depth 16 --bs 4096 --rw randwrite --seconds 10 | iops)
  echo "  round $round: bootsrv $b IOPS, nbdkit-cow $k IOPS"
  boot+=("$b"); kit+=("$k")
done
mb=$(median "${boot[@]}"); mk=$(median "${kit[@]}")
echo "ratio bootsrv/nbdkit-cow $(ratio "$mb" "$mk") (bootsrv $mb IOPS, nbdkit-cow $mk IOPS; target >= 1)"
