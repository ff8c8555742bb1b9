#!/usr/bin/env bash
# A boot storm replayed from a real boot (README.md here): the recorded
# trace of a QEMU network boot of tiny-linux (tiny-linux.trace, made by
# record_boot.sh) replayed by replay_boot as CLIENTS PCs at once (default
# 200), each its own registered client with its own named session
# (tiny-linux/rNNN) and its own HTTP fetches (boot script, kernel, initrd),
# against one bootsrv on loopback; then the same replay with the NBD side
# served by nbdkit's cow filter over the same disk, one nbdkit per PC (each
# PC gets its own overlay, as each gets its own session from bootsrv; one
# shared cow overlay would hand every PC the others' writes). The HTTP
# side is bootsrv's in both runs (nbdkit serves no HTTP).
#
# Two passes per server: think times compressed (every PC asks as fast as
# it is answered: the load that shows the server) and kept (each request
# waits the recorded gap after what it depended on, so a PC takes as long
# as the recorded boot, about 54 s under TCG, plus any waiting the server
# adds: the target's case). A lone PC's replay, per pass and server, is the
# yardstick: target p99 within 2x of it (DESIGN §7, issue 16).
# Reports time to "root mounted" and "boot done" (p50/p99/max), errors,
# the servers' CPU time and peak RSS. Bounded: every replay has a timeout.
#
#   IMGTOOL=… BOOTSRV=… REPLAY_BOOT=… BOOTFLEET_SOURCE=… bench_boot_replay.sh [CLIENTS] [TRACE]
#   … RECIPE=tests/bench/boot/userland.yaml bench_boot_replay.sh 200 tests/bench/boot/userland.trace
# BOOTFLEET_TINY_STORE: a store holding tiny-linux@1 (published), copied
# instead of building it. PASSES: "compress keep" (default) or one of them.
# RECIPE: a recipe built on tiny-linux and published before the replay,
# for a trace recorded from it (userland.yaml for userland.trace).
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
source "$HERE/../lib.sh"
IMGTOOL=${IMGTOOL:?}; BOOTSRV=${BOOTSRV:?}; REPLAY=${REPLAY_BOOT:?}; SRC=${BOOTFLEET_SOURCE:?}
CLIENTS=${1:-200}
TRACE=$(realpath "${2:-$HERE/tiny-linux.trace}")
PASSES=${PASSES:-compress keep}
bench_workdir replay
export BOOTFLEET_GUEST_ACCEL=${BOOTFLEET_GUEST_ACCEL:-tcg}
tiny_store "$SRC"
if [ -n "${RECIPE:-}" ]; then
  echo "building $RECIPE on tiny-linux…"
  "$IMGTOOL" build "$RECIPE" --publish >/dev/null
fi
echo "registering $CLIENTS clients…"
for i in $(seq 1 "$CLIENTS"); do
  "$IMGTOOL" client add "$(printf '52:54:00:9b:%02x:%02x' $(( i >> 8 )) $(( i & 255 )))" \
    --name "$(printf 'r%03d' "$i")" --image tiny-linux >/dev/null
done
"$IMGTOOL" export tiny-linux@active flat.raw --to raw >/dev/null

NBD_PORT=$(port); HTTP_PORT=$(port)
# Every PC here comes from 127.0.0.1, where real PCs have an address each:
# lift the per-address caps (docs/bootsrv.md, limits:).
printf 'limits:\n  nbd_per_peer: 4096\n  http_per_peer: 4096\n  http_connections: 4096\n  nbd_connections: 4096\n' > limits.yaml
"$BOOTSRV" serve --listen 127.0.0.1:$NBD_PORT --http-listen 127.0.0.1:$HTTP_PORT --config limits.yaml > server.log 2>&1 & pids+=($!)
BOOT_PID=$!
for _ in $(seq 1 100); do grep -q "listening for HTTP" server.log && break; sleep 0.05; done

# CLIENTS nbdkit processes on consecutive free loopback ports.
KIT_BASE=$($PY - "$CLIENTS" <<'PY'
import random, socket, sys
n = int(sys.argv[1])
for _ in range(200):
    base = random.randrange(20000, 60000 - n)
    try:
        socks = []
        for p in range(base, base + n):
            s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind(("127.0.0.1", p)); socks.append(s)
        print(base); break
    except OSError:
        for s in socks: s.close()
else:
    sys.exit("no run of free ports")
PY
)
KIT_PIDS=()
for i in $(seq 0 $(( CLIENTS - 1 ))); do
  nbdkit -f -i 127.0.0.1 -p $(( KIT_BASE + i )) --filter=cow file flat.raw > /dev/null 2>&1 & pids+=($!); KIT_PIDS+=($!)
done
for i in 0 $(( CLIENTS - 1 )); do
  for _ in $(seq 1 100); do nbdinfo --size "nbd://127.0.0.1:$(( KIT_BASE + i ))/" >/dev/null 2>&1 && break; sleep 0.1; done
done
cat "$BOOTFLEET_STORE"/images/*/*.vhd "$BOOTFLEET_STORE"/images/*/*.artifacts/* flat.raw > /dev/null  # page cache

ticks=$(getconf CLK_TCK)
sum_cpu() { local s=0 p; for p in "$@"; do s=$(( s + $(cpu_ticks "$p") )); done; echo $s; }
sum_hwm() { local s=0 p; for p in "$@"; do s=$(( s + $(awk '/VmHWM/ {print $2}' /proc/$p/status) )); done; echo $s; }
# replay NAME THINK N [PEER_ARGS…]: one replay; its JSON in NAME.json.
replay() {
  local name=$1 think=$2 n=$3; shift 3
  timeout 900 "$REPLAY" "$TRACE" --http "http://127.0.0.1:$HTTP_PORT" --clients "$n" --think "$think" --json "$@" \
    > "$name.json" 2> "$name.err" || { echo "replay $name failed: $(cat "$name.err")"; cat "$name.json"; }
}
field() { $PY -c 'import json,sys; j=json.load(open(sys.argv[1])); print(eval(sys.argv[2]))' "$1.json" "$2"; }
echo "trace: $(sed -n 3,4p "$TRACE" | tr -d '#' | tr '\n' ';')"
failed=0
for think in $PASSES; do
  echo
  [ "$think" = keep ] && said=kept || said=compressed
  echo "== $CLIENTS PCs, think times $said"
  for server in bootsrv nbdkit; do
    peer=(); cpu_pids=($BOOT_PID)
    if [ $server = nbdkit ]; then peer=(--peer-port-base "$KIT_BASE"); cpu_pids=($BOOT_PID "${KIT_PIDS[@]}"); fi
    replay "lone-$server-$think" "$think" 1 "${peer[@]}"
    c0=$(sum_cpu "${cpu_pids[@]}"); k0=$(sum_cpu "${KIT_PIDS[@]}")
    replay "storm-$server-$think" "$think" "$CLIENTS" "${peer[@]}"
    c1=$(sum_cpu "${cpu_pids[@]}"); k1=$(sum_cpu "${KIT_PIDS[@]}")
    s=storm-$server-$think l=lone-$server-$think
    errors=$(field $s 'j["errors"] + j["unfinished"]'); failed=$(( failed + errors ))
    printf '%-8s lone PC: root %s ms, done %s ms | %d PCs: boot script p50 %s p99 %s; HTTP done p50 %s p99 %s; NBD part to root p50 %s p99 %s;\n         root p50 %s p99 %s max %s ms; done p50 %s p99 %s max %s ms; errors %s; wall %s s\n' \
      $server "$(field $l 'j["root_ms"]["max"]')" "$(field $l 'j["done_ms"]["max"]')" "$CLIENTS" \
      "$(field $s 'j["script_ms"]["p50"]')" "$(field $s 'j["script_ms"]["p99"]')" \
      "$(field $s 'j["http_ms"]["p50"]')" "$(field $s 'j["http_ms"]["p99"]')" \
      "$(field $s 'j["nbd_root_ms"]["p50"]')" "$(field $s 'j["nbd_root_ms"]["p99"]')" \
      "$(field $s 'j["root_ms"]["p50"]')" "$(field $s 'j["root_ms"]["p99"]')" "$(field $s 'j["root_ms"]["max"]')" \
      "$(field $s 'j["done_ms"]["p50"]')" "$(field $s 'j["done_ms"]["p99"]')" "$(field $s 'j["done_ms"]["max"]')" \
      "$errors" "$(field $s 'round(j["wall_ms"] / 1000, 1)')"
    if [ $server = bootsrv ]; then
      echo "         bootsrv (HTTP + NBD): $(echo "($c1 - $c0) / $ticks" | bc -l | xargs printf '%.1f') s CPU, peak RSS $(( $(sum_hwm $BOOT_PID) / 1024 )) MiB"
    else
      echo "         nbdkit x $CLIENTS (NBD): $(echo "($k1 - $k0) / $ticks" | bc -l | xargs printf '%.1f') s CPU, sum of peak RSS $(( $(sum_hwm "${KIT_PIDS[@]}") / 1024 )) MiB; bootsrv (HTTP) $(echo "($c1 - $c0 - $k1 + $k0) / $ticks" | bc -l | xargs printf '%.1f') s CPU"
    fi
    echo "         p99 done / lone done: $(ratio "$(field $s 'j["done_ms"]["p99"]')" "$(field $l 'j["done_ms"]["max"]')") (target <= 2)"
  done
  echo "ratio nbdkit/bootsrv, p99 boot done: $(ratio "$(field storm-nbdkit-$think 'j["done_ms"]["p99"]')" "$(field storm-bootsrv-$think 'j["done_ms"]["p99"]')") (> 1: bootsrv faster); root mounted: $(ratio "$(field storm-nbdkit-$think 'j["root_ms"]["p99"]')" "$(field storm-bootsrv-$think 'j["root_ms"]["p99"]')")"
done
grep -c "cannot\|error" server.log > /dev/null && { echo "bootsrv logged errors:"; grep "cannot\|error" server.log | head -5; } || true
[ "$failed" -eq 0 ]
