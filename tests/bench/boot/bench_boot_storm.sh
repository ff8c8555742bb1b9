#!/usr/bin/env bash
# A boot storm without QEMU: N clients (default 20) at once each do what a
# network-booting PC does — fetch its boot script, then the kernel and the
# initrd over HTTP, then read the first 256 MiB of its session over NBD —
# against one bootsrv on loopback. Prints the total time, p50/p99 of the
# HTTP requests and of 1 MiB NBD reads, and the server's CPU time and peak
# memory. Set BOOTFLEET_TINY_STORE to a store holding tiny-linux (published)
# to skip building it.
#   IMGTOOL=… BOOTSRV=… BOOTFLEET_SOURCE=… tests/bench/boot/bench_boot_storm.sh [CLIENTS]
set -euo pipefail
source "$(cd "$(dirname "$0")" && pwd)/../lib.sh"
IMGTOOL=${IMGTOOL:?}; BOOTSRV=${BOOTSRV:?}; SRC=${BOOTFLEET_SOURCE:?}
CLIENTS=${1:-20}
work=$(mktemp -d "${BENCH_DIR:-/var/tmp}/bootfleet-bench-storm-XXXXXX")
server=0
trap 'kill $server 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$work"' EXIT
cd "$work"
export BOOTFLEET_STORE=$work/store BOOTFLEET_GUEST_ACCEL=${BOOTFLEET_GUEST_ACCEL:-tcg}
if [ -n "${BOOTFLEET_TINY_STORE:-}" ]; then
  cp -a "$BOOTFLEET_TINY_STORE" "$BOOTFLEET_STORE"
else
  echo "building tiny-linux (one appliance launch)…"
  "$IMGTOOL" init >/dev/null
  "$IMGTOOL" build "$SRC/recipes/tiny-linux.yaml" --publish >/dev/null
fi
for i in $(seq 1 "$CLIENTS"); do
  "$IMGTOOL" client add "$(printf '52:54:00:00:90:%02x' "$i")" --name "$(printf 'pc%02d' "$i")" --image tiny-linux >/dev/null
done
NBD_PORT=$(port); HTTP_PORT=$(port)
# Every client here comes from 127.0.0.1, where real PCs have an address
# each: lift the per-address caps (docs/bootsrv.md, limits:).
printf 'limits:\n  nbd_per_peer: 4096\n  http_per_peer: 4096\n  http_connections: 4096\n  nbd_connections: 4096\n' > limits.yaml
"$BOOTSRV" serve --listen 127.0.0.1:$NBD_PORT --http-listen 127.0.0.1:$HTTP_PORT --config limits.yaml > server.log 2>&1 &
server=$!
for _ in $(seq 1 100); do grep -q "listening for HTTP" server.log && break; sleep 0.05; done
cat "$BOOTFLEET_STORE"/images/*/*.vhd "$BOOTFLEET_STORE"/images/*/*.artifacts/* > /dev/null  # page cache

# One client: HTTP times go to http-N.txt, 1 MiB NBD read times to nbd-N.txt.
cat > client.py <<'PY'
import re, subprocess, sys, time
import nbd
i, http, nbd_port = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
mac = "52-54-00-00-90-%02x" % i
times = []
def get(url):
    t = time.monotonic()
    out = subprocess.run(["curl", "-sf", url], capture_output=True, check=True).stdout
    times.append(time.monotonic() - t)
    return out
script = get(f"{http}/boot/{mac}.ipxe").decode()
kernel = re.search(r"^kernel (\S+)", script, re.M).group(1)
initrd = re.search(r"^initrd (\S+)", script, re.M).group(1)
export = re.search(r"nbdroot=[^/\s]+/(\S+)", script).group(1)
get(kernel); get(initrd)
open(f"http-{i}.txt", "w").write("\n".join(str(x) for x in times) + "\n")
h = nbd.NBD()
h.connect_uri(f"nbd://127.0.0.1:{nbd_port}/{export}")
reads = []
size = min(h.get_size(), 256 << 20)
for off in range(0, size, 1 << 20):
    t = time.monotonic()
    h.pread(min(1 << 20, size - off), off)
    reads.append(time.monotonic() - t)
h.shutdown()
open(f"nbd-{i}.txt", "w").write("\n".join(str(x) for x in reads) + "\n")
PY
cpu_before=$(awk '{print $14 + $15}' /proc/$server/stat)
t0=$(date +%s.%N)
pids=()
for i in $(seq 1 "$CLIENTS"); do
  timeout 600 $PY client.py "$i" "http://127.0.0.1:$HTTP_PORT" "$NBD_PORT" & pids+=($!)
done
failed=0
for p in "${pids[@]}"; do wait "$p" || failed=$((failed + 1)); done
t1=$(date +%s.%N)
cpu_after=$(awk '{print $14 + $15}' /proc/$server/stat)
hwm=$(awk '/VmHWM/ {print $2}' /proc/$server/status)
ticks=$(getconf CLK_TCK)
$PY - "$CLIENTS" "$failed" "$t0" "$t1" "$(( cpu_after - cpu_before ))" "$ticks" "$hwm" <<'PY'
import glob, sys
clients, failed, t0, t1, cpu, ticks, hwm = sys.argv[1:]
def pct(xs, p): xs = sorted(xs); return xs[min(len(xs) - 1, int(p / 100 * len(xs)))] * 1000 if xs else 0
http = [float(x) for f in glob.glob("http-*.txt") for x in open(f).read().split()]
nbdr = [float(x) for f in glob.glob("nbd-*.txt") for x in open(f).read().split()]
total = float(t1) - float(t0)
print(f"{clients} clients, {failed} failed: total {total:.1f} s")
print(f"HTTP requests: {len(http)}, p50 {pct(http,50):.1f} ms, p99 {pct(http,99):.1f} ms")
print(f"NBD 1 MiB reads: {len(nbdr)}, p50 {pct(nbdr,50):.2f} ms, p99 {pct(nbdr,99):.2f} ms, "
      f"{len(nbdr) / total:.0f} MiB/s in all")
print(f"bootsrv: {int(cpu) / int(ticks):.1f} s CPU, peak RSS {int(hwm) / 1024:.1f} MiB")
PY
[ "$failed" -eq 0 ]
