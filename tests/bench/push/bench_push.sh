#!/usr/bin/env bash
# Pushing a 10 MiB patch of a 20 GiB image to a boot server: imgtool push
# (over bootsrv's control API on loopback) against rsync's delta transfer of
# the same new image onto the server's copy of the old one, in the same run.
# Then publish/rollback round trips through the API (target < 100 ms).
# Usage: IMGTOOL=… BOOTSRV=… tests/bench/push/bench_push.sh
set -euo pipefail
IMGTOOL=${IMGTOOL:?}; BOOTSRV=${BOOTSRV:?}
work=$(mktemp -d "${BENCH_DIR:-/var/tmp}/bootfleet-bench-push-XXXXXX")
server=
trap '[ -n "$server" ] && kill $server 2>/dev/null; rm -rf "$work"' EXIT
cd "$work"

echo "preparing a 20 GiB image with 512 MiB of data, and its 10 MiB patch…"
truncate -s 20G v1.raw
for i in $(seq 0 15); do   # 32 MiB at each of 16 places, as an installed OS spreads out
  dd if=/dev/urandom of=v1.raw bs=1M count=32 seek=$(( i * 1200 )) conv=notrunc status=none
done
cp --sparse=always v1.raw v2.raw
for i in $(seq 0 9); do    # 10 MiB in 1 MiB pieces across the disk
  dd if=/dev/urandom of=v2.raw bs=1M count=1 seek=$(( i * 2000 + 7 )) conv=notrunc status=none
done
for s in src dst; do BOOTFLEET_STORE=$work/$s "$IMGTOOL" init >/dev/null; done
BOOTFLEET_STORE=$work/src "$IMGTOOL" import big v1.raw >/dev/null
BOOTFLEET_STORE=$work/src "$IMGTOOL" import big v2.raw >/dev/null
BOOTFLEET_STORE=$work/dst "$IMGTOOL" import big v1.raw --publish >/dev/null   # the server holds @1 already
mkdir rsync-dst && cp --sparse=always v1.raw rsync-dst/big.raw
sync

token=bench-token-0123456789abcdef
echo "bench $token" > tokens; echo "$token" > token
port() { /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
nbd_port=$(port); http_port=$(port)
printf 'store: %s\nlisten: 127.0.0.1:%s\nhttp:\n  listen: 127.0.0.1:%s\napi_tokens: %s\n' \
  "$work/dst" "$nbd_port" "$http_port" "$work/tokens" > bootsrv.yaml
"$BOOTSRV" serve --config bootsrv.yaml > server.log 2>&1 &
server=$!
for _ in $(seq 1 100); do grep -q "listening for HTTP" server.log && break; sleep 0.05; done
url=http://127.0.0.1:$http_port

t0=$(date +%s.%N)
BOOTFLEET_STORE=$work/src "$IMGTOOL" push big --server "$url" --token-file token --json > push.json
t1=$(date +%s.%N)
rsync --no-whole-file --inplace --sparse --stats v2.raw rsync-dst/big.raw > rsync.log 2>&1 || \
  rsync --no-whole-file --inplace --stats v2.raw rsync-dst/big.raw > rsync.log
t2=$(date +%s.%N)
ours_bytes=$(/usr/bin/python3 -c 'import json,sys; print(json.load(open("push.json"))["bytes_sent"])')
rsync_bytes=$(sed -n 's/^Total bytes sent: //p' rsync.log | tr -d ,)
cmp -s <(BOOTFLEET_STORE=$work/dst "$IMGTOOL" versions big --json | /usr/bin/python3 -c 'import json,sys; print([v["disk_digest"] for v in json.load(sys.stdin)])') \
       <(BOOTFLEET_STORE=$work/src "$IMGTOOL" versions big --json | /usr/bin/python3 -c 'import json,sys; print([v["disk_digest"] for v in json.load(sys.stdin)])') \
  || { echo "FAIL: the server's digests differ from the source's"; exit 1; }

/usr/bin/python3 - "$http_port" "$token" > roundtrip.txt <<'PY'
import http.client, json, statistics, sys, time
port, token = int(sys.argv[1]), sys.argv[2]
conn = http.client.HTTPConnection("127.0.0.1", port)
def call(path, body):
    t = time.perf_counter()
    conn.request("POST", path, json.dumps(body), {"Authorization": "Bearer " + token, "Content-Type": "application/json"})
    r = conn.getresponse(); r.read()
    if r.status != 200: raise SystemExit(f"{path}: {r.status}")
    return (time.perf_counter() - t) * 1000
pub, rb = [], []
for _ in range(50):
    pub.append(call("/api/v1/images/big/publish", {"version": 2}))
    rb.append(call("/api/v1/images/big/rollback", {}))
q = lambda xs, p: sorted(xs)[min(len(xs) - 1, int(p * len(xs)))]
print(f"publish  p50 {statistics.median(pub):.1f} ms  p99 {q(pub, .99):.1f} ms")
print(f"rollback p50 {statistics.median(rb):.1f} ms  p99 {q(rb, .99):.1f} ms")
PY

awk -v a="$t0" -v b="$t1" -v c="$t2" -v ob="$ours_bytes" -v rb="$rsync_bytes" 'BEGIN {
  ours = b - a; peer = c - b
  printf "push of a 10 MiB patch of a 20 GiB image (loopback):\n"
  printf "  imgtool push  %7.2f s  %8.1f MiB sent\n", ours, ob / 1048576
  printf "  rsync delta   %7.2f s  %8.1f MiB sent\n", peer, rb / 1048576
  printf "  speed-up %.1fx; bytes %.2fx of rsync'"'"'s\n", peer / ours, ob / rb
}'
cat roundtrip.txt
