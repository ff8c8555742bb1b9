# For the hostile-peer tests: lib.sh, plus a peer helper in Python
# (hostile.py) and the server's threads and memory from /proc. Hostile
# peers come from other loopback addresses (127.0.0.2 and up: Linux routes
# all of 127/8 to lo), so per-peer caps can be told from caps in all while
# everything stays on loopback.
source "$(dirname "$0")/../lib.sh"
BOOTSRV=${BOOTSRV:?set BOOTSRV to the bootsrv binary}
HOSTILE="$PY $HERE_LIB/hostile/hostile.py"
SERVER=
trap '[ -n "$SERVER" ] && kill -9 $SERVER 2>/dev/null; rm -rf "$WORK"' EXIT
threads() { awk '/^Threads:/ {print $2}' /proc/$SERVER/status; }
rss_mib() { awk '/^VmRSS:/ {print int($2 / 1024)}' /proc/$SERVER/status; }
alive() { kill -0 $SERVER 2>/dev/null || fail "bootsrv died: $(tail -20 server.log)"; }
stop_server() {
  kill -TERM $SERVER 2>/dev/null || return 0
  wait $SERVER || fail "bootsrv exited $? on SIGTERM: $(tail -5 server.log)"
  SERVER=
}
