#!/usr/bin/env bash
# bootsrv's iSCSI target against tgtd (Debian's tgt, the open-source peer
# to beat) on the same data in the same run, and against bootsrv's own NBD
# on the same disk, all driven by one client, blockload (libiscsi for
# iscsi://, libnbd for nbd://, same event loop), DESIGN §7:
#   1. sequential reads, 1 MiB requests, 4 in flight
#   2. random 4 KiB reads, 16 in flight
#   3. random 4 KiB writes into a session, 16 in flight
#   4. 100 iSCSI sessions at once: errors, p50/p99 latency; RSS per idle session
#   5. row 1 again with a second initiator, QEMU's (qemu-img bench, its
#      libiscsi and NBD block drivers): iSCSI against NBD only
# Row 1 also reads NBD in 256 KiB requests, 16 in flight: the message size
# iSCSI is held to (the initiator's MaxRecvDataSegmentLength), the same
# bytes in flight; it tells what of the gap to NBD is the message size.
# Everything runs in a network namespace of the script's own, with TCP's
# congestion control BENCH_CC (default cubic; lib.sh's bench_netns).
# Ratios are bootsrv / peer (> 1: bootsrv is faster). LIO (targetcli) is
# compared too where its kernel modules load; on these VMs they do not.
# Reads are also run against a second bootsrv with iscsi.read_workers: 0
# (every command on the connection's thread, the design before the read
# workers) on a copy of the store: the A/B of that design in the same run.
# Usage: IMGTOOL=… BOOTSRV=… BLOCKLOAD=… [ROUNDS=3] tests/bench/iscsi/bench_iscsi.sh [SECONDS]
set -euo pipefail
source "$(cd "$(dirname "$0")" && pwd)/../lib.sh"
IMGTOOL=${IMGTOOL:?}; BOOTSRV=${BOOTSRV:?}; BLOCKLOAD=${BLOCKLOAD:?}
bench_netns "$0" "$@"
SECS=${1:-10}
ROUNDS=${ROUNDS:-3}
bench_workdir iscsi
"$IMGTOOL" init >/dev/null
IQN=iqn.2026-11.org.bootfleet

echo "preparing a 1 GiB disk of random data…"
head -c 1G /dev/urandom > disk.raw
"$IMGTOOL" import lab disk.raw --publish >/dev/null
"$IMGTOOL" export lab@1 flat.raw --to raw >/dev/null
cp flat.raw tgt.raw   # tgtd writes into its file; bootsrv never writes its version

P_NBD=$(port); P_ISCSI=$(port)
# Every session of this benchmark comes from 127.0.0.1: lift the per-peer caps.
printf 'limits:\n  iscsi_per_peer: 512\n  nbd_per_peer: 512\n' > bootsrv.yaml
cp -a "$BOOTFLEET_STORE" store-single   # before any server runs: a consistent copy
"$BOOTSRV" serve --config bootsrv.yaml --listen 127.0.0.1:$P_NBD --iscsi-listen 127.0.0.1:$P_ISCSI > bootsrv.log 2>&1 & pids+=($!)
BOOT_PID=$!
P_NBD1=$(port); P_ISCSI1=$(port)
printf 'iscsi:\n  read_workers: 0\n' >> bootsrv-single.yaml
cat bootsrv.yaml >> bootsrv-single.yaml
BOOTFLEET_STORE=$work/store-single "$BOOTSRV" serve --config bootsrv-single.yaml --listen 127.0.0.1:$P_NBD1 \
  --iscsi-listen 127.0.0.1:$P_ISCSI1 > bootsrv-single.log 2>&1 & pids+=($!)
SINGLE_PID=$!
# tgtd on its own portal and control port, in the foreground.
# tgtd -f ignores SIGTERM: cleanup's kill is followed by SIGKILL below.
P_TGT=$(port); CTL=$(( 100 + RANDOM % 800 ))
while [ -e /var/run/tgtd/socket.$CTL ]; do CTL=$(( CTL + 1 )); done
tgtd -f --iscsi portal=127.0.0.1:$P_TGT -C $CTL > tgtd.log 2>&1 & pids+=($!)
TGT_PID=$!
trap 'kill -9 $TGT_PID 2>/dev/null; rm -f /var/run/tgtd/socket.$CTL /var/run/tgtd/socket.$CTL.lock; cleanup' EXIT
for _ in $(seq 1 100); do tgtadm -C $CTL --lld iscsi --mode target --op show >/dev/null 2>&1 && break; sleep 0.1; done
tgtadm -C $CTL --lld iscsi --mode target --op new --tid 1 --targetname $IQN.bench:tgt
tgtadm -C $CTL --lld iscsi --mode logicalunit --op new --tid 1 --lun 1 --backing-store "$work/tgt.raw"
tgtadm -C $CTL --lld iscsi --mode target --op bind --tid 1 --initiator-address ALL
for p in $P_ISCSI $P_ISCSI1; do
  for _ in $(seq 1 100); do iscsi-inq "iscsi://127.0.0.1:$p/$IQN:lab/0" >/dev/null 2>&1 && break; sleep 0.1; done
done
cat flat.raw tgt.raw "$BOOTFLEET_STORE"/images/*/*.vhd store-single/images/*/*.vhd > /dev/null   # everything in the page cache

# load NAME URL RW BS DEPTH [SESSIONS]: prints "MiB/s IOPS p50_us p99_us errors
# server_cpu_us_per_request" (the server is the one serving URL's port).
load() {
  local server=$BOOT_PID
  [[ $2 == *":$P_TGT/"* ]] && server=$TGT_PID
  [[ $2 == *":$P_ISCSI1/"* ]] && server=$SINGLE_PID
  local before; before=$(cpu_ticks "$server")
  "$BLOCKLOAD" "$2" --rw "$3" --bs "$4" --depth "$5" --sessions "${6:-1}" --seconds "$SECS" > "$1.json" 2> "$1.err" || true
  local after; after=$(cpu_ticks "$server")
  $PY - "$1.json" "$((after - before))" "$(getconf CLK_TCK)" <<'PYX'
import json, sys
try:
    j = json.loads(open(sys.argv[1]).read())
except Exception:
    j = {"mib_s": 0, "iops": 0, "p50_us": 0, "p99_us": 0, "errors": -1, "requests": 0}
cpu_us = int(sys.argv[2]) / int(sys.argv[3]) * 1e6
per = cpu_us / j["requests"] if j.get("requests") else 0
print(j["mib_s"], j["iops"], j["p50_us"], j["p99_us"], j["errors"], f"{per:.1f}", j.get("client_cpu_us_per_request", 0))
PYX
}

# compare RW BS DEPTH NAME=URL...: ROUNDS rounds, the servers taking turns.
declare -A BW IO CPU CLIENT
compare() {
  local rw=$1 bs=$2 depth=$3; shift 3
  local -A bws ios cpus clients
  for round in $(seq 1 "$ROUNDS"); do
    local line="  round $round:"
    for pair in "$@"; do
      local name=${pair%%=*} url=${pair#*=} bw io cpu client
      read -r bw io _ _ _ cpu client <<<"$(load "$name-$rw-$round" "$url" "$rw" "$bs" "$depth")"
      bws[$name]+="$bw "; ios[$name]+="$io "; cpus[$name]+="$cpu "; clients[$name]+="$client "
      line+=" $name $io ($cpu us CPU/request)"
    done
    echo "$line"
  done
  for pair in "$@"; do
    local name=${pair%%=*}
    # shellcheck disable=SC2086
    BW[$name]=$(median ${bws[$name]}); IO[$name]=$(median ${ios[$name]}); CPU[$name]=$(median ${cpus[$name]})
    CLIENT[$name]=$(median ${clients[$name]})
  done
}
# cpu_lines: both sides' CPU per request. The server's is what bootsrv
# controls; with client and server on the same 2 CPUs, the initiator
# library's own cost (libiscsi against libnbd) also moves the IOPS.
cpu_lines() {
  echo "server CPU per request: iSCSI ${CPU[iscsi]} us, tgtd ${CPU[tgt]} us, NBD ${CPU[nbd]} us; NBD/iSCSI $(ratio "${CPU[nbd]}" "${CPU[iscsi]}")"
  echo "client CPU per request: libiscsi ${CLIENT[iscsi]} us (against bootsrv), libnbd ${CLIENT[nbd]} us"
}
echo "(each comparison: $ROUNDS rounds of ${SECS}s per server, medians; client: blockload)"

I=iscsi://127.0.0.1:$P_ISCSI; I1=iscsi://127.0.0.1:$P_ISCSI1; T=iscsi://127.0.0.1:$P_TGT/$IQN.bench:tgt/1; N=nbd://127.0.0.1:$P_NBD
echo
echo "== 1. sequential read, 1 MiB requests (4 in flight)"
compare read $((1 << 20)) 4 iscsi=$I/$IQN:lab:version:1/0 tgt=$T nbd=$N/lab@1 single=$I1/$IQN:lab:version:1/0
declare -A SEQ_BW=([iscsi]=${BW[iscsi]} [nbd]=${BW[nbd]}) SEQ_CPU=([iscsi]=${CPU[iscsi]} [nbd]=${CPU[nbd]})
row "bootsrv iSCSI lab:version:1" "${BW[iscsi]}" "${IO[iscsi]}"; row "tgtd" "${BW[tgt]}" "${IO[tgt]}"; row "bootsrv NBD lab@1" "${BW[nbd]}" "${IO[nbd]}"
row "bootsrv iSCSI, read_workers: 0" "${BW[single]}" "${IO[single]}"
echo "ratio iSCSI/tgtd $(ratio "${BW[iscsi]}" "${BW[tgt]}"), iSCSI/own NBD $(ratio "${BW[iscsi]}" "${BW[nbd]}") (targets >= 1.0, >= 0.9)"
echo "A/B: read_workers 0/own NBD $(ratio "${BW[single]}" "${BW[nbd]}"), workers/read_workers 0 $(ratio "${BW[iscsi]}" "${BW[single]}")"
cpu_lines
echo "-- NBD in iSCSI's message size: 256 KiB requests, 16 in flight (the same 4 MiB in flight)"
compare read $((256 << 10)) 16 nbd256=$N/lab@1
row "bootsrv NBD lab@1, 256 KiB requests" "${BW[nbd256]}" "${IO[nbd256]}"
echo "iSCSI (1 MiB commands, 256 KiB PDUs) / NBD 256 KiB $(ratio "${SEQ_BW[iscsi]}" "${BW[nbd256]}"); NBD 256 KiB / NBD 1 MiB $(ratio "${BW[nbd256]}" "${SEQ_BW[nbd]}")"
echo "server CPU per MiB: iSCSI ${SEQ_CPU[iscsi]} us, NBD 1 MiB ${SEQ_CPU[nbd]} us, NBD 256 KiB $(echo "${CPU[nbd256]} * 4" | bc -l | xargs printf '%.1f') us"

echo
echo "== 2. random 4 KiB reads, 16 in flight"
compare randread 4096 16 iscsi=$I/$IQN:lab:version:1/0 tgt=$T nbd=$N/lab@1 single=$I1/$IQN:lab:version:1/0
row "bootsrv iSCSI lab:version:1" "${BW[iscsi]}" "${IO[iscsi]}"; row "tgtd" "${BW[tgt]}" "${IO[tgt]}"; row "bootsrv NBD lab@1" "${BW[nbd]}" "${IO[nbd]}"
row "bootsrv iSCSI, read_workers: 0" "${BW[single]}" "${IO[single]}"
echo "ratio iSCSI/tgtd $(ratio "${IO[iscsi]}" "${IO[tgt]}"), iSCSI/own NBD $(ratio "${IO[iscsi]}" "${IO[nbd]}")"
echo "A/B: read_workers 0/own NBD $(ratio "${IO[single]}" "${IO[nbd]}"), workers/read_workers 0 $(ratio "${IO[iscsi]}" "${IO[single]}")"
cpu_lines

echo
echo "== 3. random 4 KiB writes into a session, 16 in flight"
compare randwrite 4096 16 iscsi=$I/$IQN:lab:pc01/0 tgt=$T nbd=$N/lab/pc02
row "bootsrv iSCSI session lab/pc01" "${BW[iscsi]}" "${IO[iscsi]}"; row "tgtd (writes its file)" "${BW[tgt]}" "${IO[tgt]}"; row "bootsrv NBD session lab/pc02" "${BW[nbd]}" "${IO[nbd]}"
echo "ratio iSCSI/tgtd $(ratio "${IO[iscsi]}" "${IO[tgt]}"), iSCSI/own NBD $(ratio "${IO[iscsi]}" "${IO[nbd]}")"
cpu_lines

echo
echo "== 4. 100 iSCSI sessions at once (named sessions lab/cN, random 4 KiB reads, 1 in flight each)"
read -r m_bw m_io m_p50 m_p99 m_err _ <<<"$(load many "$I/$IQN:lab:c%d/0" randread 4096 1 100)"
echo "100 sessions: $m_io IOPS in all, latency p50 ${m_p50} us, p99 ${m_p99} us, errors: $m_err"
rss() { awk '/VmRSS/ {print $2}' /proc/$BOOT_PID/status; }
before=$(rss)
"$BLOCKLOAD" "$I/$IQN:lab:idle%d/0" --sessions 100 --depth 1 --rw randread --seconds 8 > idle.json 2>&1 &
holder=$!
sleep 5
during=$(rss)
wait $holder || true
echo "bootsrv RSS: ${before} KiB before, ${during} KiB with 100 sessions connected: $(( (during - before) / 100 )) KiB per session (target <= 1024)"
echo
echo "== 5. sequential 1 MiB reads, 4 in flight, with QEMU's initiator (qemu-img bench; 8 passes over the disk per turn)"
# qemu_seq URL: MiB/s over 8 passes of the 1 GiB disk, and the server's CPU per MiB.
qemu_seq() {
  local before; before=$(cpu_ticks "$BOOT_PID")
  local secs=0
  for _ in $(seq 1 8); do
    local t; t=$(qemu-img bench -f raw -c 1024 -d 4 -s 1M -S 1M "$1" 2>&1 | sed -n 's/^Run completed in \([0-9.]*\) seconds.*/\1/p')
    [ -n "$t" ] || { echo "0 0"; return; }
    secs=$(echo "$secs + $t" | bc -l)
  done
  local after; after=$(cpu_ticks "$BOOT_PID")
  echo "$(echo "8192 / $secs" | bc -l | xargs printf '%.1f') $(echo "($after - $before) / $(getconf CLK_TCK) * 1000000 / 8192" | bc -l | xargs printf '%.1f')"
}
q_bw_iscsi=(); q_bw_nbd=(); q_cpu_iscsi=(); q_cpu_nbd=()
for round in $(seq 1 "$ROUNDS"); do
  read -r bi ci <<<"$(qemu_seq "$I/$IQN:lab:version:1/0")"
  read -r bn cn <<<"$(qemu_seq "$N/lab@1")"
  echo "  round $round: iscsi $bi MiB/s ($ci us CPU/MiB) nbd $bn MiB/s ($cn us CPU/MiB)"
  q_bw_iscsi+=("$bi"); q_bw_nbd+=("$bn"); q_cpu_iscsi+=("$ci"); q_cpu_nbd+=("$cn")
done
qi=$(median "${q_bw_iscsi[@]}"); qn=$(median "${q_bw_nbd[@]}")
echo "QEMU's initiator: iSCSI $qi MiB/s, NBD $qn MiB/s, iSCSI/own NBD $(ratio "$qi" "$qn") (target >= 0.9); server CPU per MiB iSCSI $(median "${q_cpu_iscsi[@]}") us, NBD $(median "${q_cpu_nbd[@]}") us"
if grep -q "target_core" /proc/modules 2>/dev/null; then echo "LIO: modules loaded but not compared by this script"; else echo "LIO: kernel modules not available here (no /proc/modules or target_core_mod); not compared"; fi
