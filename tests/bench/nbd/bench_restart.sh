#!/usr/bin/env bash
# bootsrv restarted under writing clients (tests/bench/nbd/restart_campaign.py):
# SESSIONS clients write and flush on their own named sessions while bootsrv
# is killed (SIGKILL) KILLS times at random moments and stopped (SIGTERM)
# GRACEFUL times, each time started again at once. Prints the pause the
# clients saw (p50/p99/max), the server's start time, and the writes lost
# (every acknowledged write is read back after every restart; 0 expected).
# Also the fault campaign: run it with a large KILLS by hand.
#   IMGTOOL=… BOOTSRV=… tests/bench/nbd/bench_restart.sh [SESSIONS [KILLS [GRACEFUL]]]
set -euo pipefail
IMGTOOL=${IMGTOOL:?}; BOOTSRV=${BOOTSRV:?}
SESSIONS=${1:-20}; KILLS=${2:-10}; GRACEFUL=${3:-5}
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d "${BENCH_DIR:-/var/tmp}/bootfleet-bench-restart-XXXXXX")
trap 'rm -rf "$work"' EXIT
cd "$work"
export BOOTFLEET_STORE=$work/store
"$IMGTOOL" init >/dev/null
truncate -s 256M disk.raw
dd if=/dev/urandom of=disk.raw bs=1M count=32 conv=notrunc status=none
"$IMGTOOL" import lab disk.raw --publish >/dev/null
/usr/bin/python3 "$here/restart_campaign.py" --bootsrv "$BOOTSRV" --store "$BOOTFLEET_STORE" --image lab \
  --sessions "$SESSIONS" --kills "$KILLS" --graceful "$GRACEFUL" --log "$work/bootsrv.log" ||
  { echo "FAIL: losses or errors; the server's log:"; tail -30 "$work/bootsrv.log"; exit 1; }
