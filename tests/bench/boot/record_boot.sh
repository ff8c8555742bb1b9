#!/usr/bin/env bash
# Records one real network boot as a trace for replay_boot (README.md here
# describes the format): a diskless QEMU (TCG) client boots IMAGE from
# bootsrv on loopback exactly as tests/e2e/boot_http.sh does (iPXE → boot
# script, kernel and initrd over HTTP → root over NBD), except that its
# root goes through an nbdkit with the log filter in front of its session:
#
#   guest nbd-client → nbdkit --filter=log nbd → bootsrv IMAGE/CLIENT
#
# (the client's --cmdline names nbdkit's port in a second nbdroot=, which
# initramfs-tools' nbd hook takes over the first). nbdkit logs each request
# the guest's kernel sent, with its start and end; bootsrv's own log has
# one line per HTTP transfer; the guest's serial console is time-stamped
# line by line as it arrives. make_trace.py merges the three into the
# trace. The proxy adds a loopback hop to every request's recorded time;
# the replay keeps the order and the overlap of requests, not those times.
#
#   IMGTOOL=… BOOTSRV=… BOOTFLEET_SOURCE=… tests/bench/boot/record_boot.sh OUT.trace [RECIPE]
#
# tiny-linux is built into a fresh store (BOOTFLEET_TINY_STORE: a store
# already holding it, published, copied instead), then RECIPE, when given,
# on top of it (e.g. tests/bench/boot/userland.yaml); the published
# version is the one booted.
# ROOT_MARK / DONE_MARK: console lines (grep -E) that mark "root mounted"
# and "boot done"; the defaults fit tiny-linux.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
source "$HERE/../lib.sh"
IMGTOOL=${IMGTOOL:?}; BOOTSRV=${BOOTSRV:?}; SRC=${BOOTFLEET_SOURCE:?}
OUT=$(realpath -m "${1:?usage: record_boot.sh OUT.trace [RECIPE]}")
RECIPE=$(realpath "${2:-$SRC/recipes/tiny-linux.yaml}")
ROOT_MARK=${ROOT_MARK:-'EXT4-fs \(nbd0p1\): mounted filesystem'}
DONE_MARK=${DONE_MARK:-'reboot: Power down'}
work=$(mktemp -d "${BENCH_DIR:-/var/tmp}/bootfleet-record-XXXXXX")
pids=()
trap 'for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"' EXIT
cd "$work"
export TZ=UTC  # nbdkit stamps its log in local time, bootsrv in UTC
export BOOTFLEET_STORE=$work/store BOOTFLEET_GUEST_ACCEL=${BOOTFLEET_GUEST_ACCEL:-tcg}
tiny_store "$SRC"
if [ "$RECIPE" != "$(realpath "$SRC/recipes/tiny-linux.yaml")" ]; then
  echo "building $RECIPE on it…"
  timeout 1800 "$IMGTOOL" build "$RECIPE" --publish > build.log 2>&1 || { tail -20 build.log; exit 1; }
fi
IMAGE=$(awk '$1 == "image:" {print $2; exit}' "$RECIPE")
NBD_PORT=$(port); HTTP_PORT=$(port); KIT_PORT=$(port)
"$IMGTOOL" client add 52:54:00:00:9e:01 --name rec01 --image "$IMAGE" \
  --cmdline "nbdroot=10.0.2.2:$KIT_PORT/$IMAGE/rec01" >/dev/null
"$BOOTSRV" serve --listen 127.0.0.1:$NBD_PORT --http-listen 127.0.0.1:$HTTP_PORT > server.log 2>&1 & pids+=($!)
for _ in $(seq 1 100); do grep -q "listening for HTTP" server.log && break; sleep 0.05; done
nbdkit -f -i 127.0.0.1 -p "$KIT_PORT" --filter=log nbd hostname=127.0.0.1 port="$NBD_PORT" \
  export="$IMAGE/rec01" logfile="$work/nbd.log" & pids+=($!)
for _ in $(seq 1 100); do grep -q Ready nbd.log 2>/dev/null && break; sleep 0.05; done

# Each console line with the host's wall clock (the logs' clock) when it arrived.
cat > stamp.py <<'PY'
import sys, time
with open(sys.argv[1], "w") as out:
    for line in sys.stdin.buffer:
        t = time.time()
        out.write("%.6f %s\n" % (t, line.decode("utf-8", "replace").rstrip("\r\n")))
        out.flush()
PY
echo "booting $IMAGE in QEMU (TCG)…"
timeout 600 qemu-system-x86_64 -accel tcg -nographic -no-reboot -m 1024 -boot n \
  -netdev "user,id=n0,bootfile=http://10.0.2.2:$HTTP_PORT/boot.ipxe" \
  -device virtio-net-pci,netdev=n0,mac=52:54:00:00:9e:01 \
  -serial stdio -monitor none -display none < /dev/null 2>qemu.err | $PY stamp.py console.log
kill "${pids[1]}"; wait "${pids[1]}" 2>/dev/null || true   # nbdkit writes its last lines
grep -Eq "$DONE_MARK" console.log || { echo "the boot did not finish ('$DONE_MARK' not on the console):"; tail -30 console.log; exit 1; }
$PY "$HERE/make_trace.py" --image "$IMAGE" --root-mark "$ROOT_MARK" --done-mark "$DONE_MARK" \
  server.log nbd.log console.log > "$OUT"
echo "trace: $OUT ($(grep -vc '^#' "$OUT") lines)"
grep '^#' "$OUT" | tail -6
