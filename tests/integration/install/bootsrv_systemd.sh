#!/usr/bin/env bash
# bootsrv as systemd runs it (Type=notify, WatchdogSec, ExecReload=kill -HUP),
# with this script playing systemd's side of the notify socket
# (notify_listener.py):
#   - READY=1 comes once, after every listener's "listening" line;
#   - WATCHDOG=1 comes at about half of WATCHDOG_USEC, again and again, and
#     stops while housekeeping is stuck on a catalog another writer holds;
#   - SIGHUP (systemctl reload) says RELOADING=1 then READY=1, re-reads the
#     token file and idle_timeout, and keeps a connected NBD session, its
#     connection and its written data;
#   - a configuration that no longer parses changes nothing and still ends
#     with READY=1 (systemd must not think the reload hangs);
#   - SIGTERM says STOPPING=1 and exits 0;
#   - an unusable NOTIFY_SOCKET is logged once and bootsrv serves anyway;
#     without NOTIFY_SOCKET nothing is said about systemd at all.
HERE=$(cd "$(dirname "$0")" && pwd)
source "$HERE/../lib.sh"
BOOTSRV=${BOOTSRV:?set BOOTSRV to the bootsrv binary}
SERVER= LISTENER= HOLDER= LOCKER=
trap 'for p in $SERVER $LISTENER $HOLDER $LOCKER; do kill -9 $p 2>/dev/null; done; rm -rf "$WORK"' EXIT
export BOOTFLEET_STORE=$WORK/store
"$IMGTOOL" init >/dev/null
truncate -s 8M disk.raw
"$IMGTOOL" import lab disk.raw --publish >/dev/null

NBD_PORT=$(free_port); HTTP_PORT=$(free_port)
first_token=first-token-0123456789abcdef
late_token=late-token-0123456789abcdef
printf 'first %s\n' "$first_token" > tokens
write_config() { # idle_timeout
  printf 'store: %s\nlisten: 127.0.0.1:%s\nhttp:\n  listen: 127.0.0.1:%s\napi_tokens: %s\nheartbeat: 1s\nidle_timeout: %s\n' \
    "$BOOTFLEET_STORE" "$NBD_PORT" "$HTTP_PORT" "$WORK/tokens" "$1" > bootsrv.yaml
}
write_config 1h
status_with() { curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $1" "http://127.0.0.1:$HTTP_PORT/api/v1/status"; }
# wait_for TEXT FILE [SECONDS]: until FILE has a line containing TEXT.
wait_for() {
  local deadline=$(( $(date +%s) + ${3:-10} ))
  until grep -qF -- "$1" "$2" 2>/dev/null; do
    [ "$(date +%s)" -lt "$deadline" ] || fail "no '$1' in $2 within ${3:-10} s: $(cat "$2" 2>/dev/null); server log: $(cat server.log)"
    kill -0 $SERVER 2>/dev/null || fail "bootsrv died: $(cat server.log)"
    sleep 0.05
  done
}
# wait_for_more WHAT BEFORE WHY [SECONDS]: until notes holds more than
# BEFORE lines with WHAT (within SECONDS, 10 unless told; the listener
# appends as the notes arrive).
wait_for_more() {
  for _ in $(seq 1 $(( ${4:-10} * 20 ))); do [ "$(grep -c "$1" notes)" -gt "$2" ] && return 0; sleep 0.05; done
  fail "no $1 $3 within ${4:-10} s: $(cat notes)"
}

# --- 1. READY=1 after every listener, then the watchdog ---
/usr/bin/python3 "$HERE/notify_listener.py" "$WORK/notify.sock" notes server.log &
LISTENER=$!
for _ in $(seq 1 100); do [ -e notes.bound ] && break; sleep 0.05; done
[ -e notes.bound ] || fail "the notify listener did not start"
: > server.log
NOTIFY_SOCKET=$WORK/notify.sock WATCHDOG_USEC=2000000 "$BOOTSRV" serve --config bootsrv.yaml >> server.log 2>&1 &
SERVER=$!
wait_for "READY=1" notes
[ -e notes.ready-1 ] || fail "READY=1 arrived but the listener kept no log snapshot"
grep -q "listening for NBD on 127.0.0.1:$NBD_PORT" notes.ready-1 || fail "READY=1 before the NBD listener: $(cat notes.ready-1)"
grep -q "listening for HTTP on 127.0.0.1:$HTTP_PORT" notes.ready-1 || fail "READY=1 before the HTTP listener: $(cat notes.ready-1)"
grep -q "READY=1|STATUS=serving store $BOOTFLEET_STORE" notes || fail "READY=1 without the STATUS line: $(cat notes)"
assert_eq "$(status_with $first_token)" 200 "the API with the first token"
pass "READY=1 (with STATUS) once every listener is bound"

wait_for "WATCHDOG=1" notes 5
# Three pings, then their spacing: about 1 s apart (a loaded machine may
# stretch it; never pings much faster than asked).
for _ in $(seq 1 200); do [ "$(grep -c "WATCHDOG=1" notes)" -ge 3 ] && break; sleep 0.05; done
pings=$(grep -c "WATCHDOG=1" notes)
[ "$pings" -ge 3 ] || fail "WATCHDOG_USEC=2000000 should bring a ping about every second; $pings in 10 s: $(cat notes)"
span=$(grep "WATCHDOG=1" notes | awk 'NR==1{a=$1} {b=$1} END{printf "%.0f", (b-a)*1000}')
[ "$span" -ge $(( (pings - 1) * 800 )) ] || fail "$pings pings within $span ms: faster than every WATCHDOG_USEC/2: $(cat notes)"
grep -q "systemd watchdog: WATCHDOG=1 every 1000 ms" server.log || fail "the watchdog interval is not logged: $(cat server.log)"
pass "WATCHDOG=1 at half of WATCHDOG_USEC ($pings pings over $span ms)"

# --- 1b. a stuck catalog stops the pings; they resume when it is free ---
# Another writer holds the catalog (BEGIN EXCLUSIVE) for 8 s: the lease
# heartbeat waits on it, housekeeping stalls, and after three missed rounds
# (heartbeat 1s) bootsrv stops telling systemd it is alive.
/usr/bin/python3 - "$BOOTFLEET_STORE/catalog.db" <<'PY' &
import sqlite3, sys, time
db = sqlite3.connect(sys.argv[1], isolation_level=None)
db.execute("BEGIN EXCLUSIVE")
open("locked", "w").close()
time.sleep(8)
db.execute("COMMIT")
PY
LOCKER=$!
for _ in $(seq 1 100); do [ -e locked ] && break; sleep 0.05; done
wait_for "systemd watchdog: housekeeping has not run for" server.log 10
held=$(grep -c "WATCHDOG=1" notes)
sleep 1.5
assert_eq "$(grep -c "WATCHDOG=1" notes)" "$held" "WATCHDOG=1 pings while housekeeping is stuck"
wait $LOCKER
for _ in $(seq 1 200); do [ "$(grep -c "WATCHDOG=1" notes)" -gt "$held" ] && break; sleep 0.05; done
[ "$(grep -c "WATCHDOG=1" notes)" -gt "$held" ] || fail "no WATCHDOG=1 after the catalog was free again: $(tail -5 notes)"
assert_eq "$(grep -c "housekeeping has not run" server.log)" 1 "lines about the stuck housekeeping"
LOCKER=
pass "a catalog held by another writer stops WATCHDOG=1 (logged once); the pings resume when it is free"

# --- 2. systemctl reload (SIGHUP) with a session connected ---
/usr/bin/python3 "$HERE/hold_session.py" "$NBD_PORT" lab/pc01 go held &
HOLDER=$!
for _ in $(seq 1 200); do [ -e held.written ] && break; sleep 0.05; done
[ -e held.written ] || fail "the NBD client did not write: $(cat server.log)"
grep -q "session lab/pc01 started" server.log || fail "no session for lab/pc01: $(cat server.log)"
echo "late $late_token" >> tokens
assert_eq "$(status_with $late_token)" 403 "a token added but not yet reloaded"
write_config 1s
readies=$(grep -c "READY=1" notes)
kill -HUP $SERVER
wait_for "configuration reloaded" server.log
# Polled: READY=1 may reach the listener after the log line (a snapshot of
# notes taken once, as here before, missed it under load).
wait_for_more "READY=1" "$readies" "after the reload"
grep -n "RELOADING=1\|READY=1" notes | tail -2 | tr '\n' ' ' | grep -q "RELOADING=1.*READY=1" ||
  fail "a reload should say RELOADING=1 and then READY=1: $(cat notes)"
assert_eq "$(status_with $late_token)" 200 "the token added before SIGHUP"
assert_eq "$(status_with $first_token)" 200 "the first token after SIGHUP"
touch go
wait $HOLDER || fail "the NBD session did not survive the reload: $(cat server.log)"
HOLDER=
assert_eq "$(cat held)" ok "the held session's read-back"
# idle_timeout 1h -> 1s took effect: the session, now without connections,
# ends within a few seconds (under 1h it would stay an hour).
wait_for "session lab/pc01 ended" server.log 10
pass "SIGHUP: RELOADING=1/READY=1, tokens and idle_timeout re-read, the connected session kept its connection and data"

# --- 3. a broken file: nothing changes, READY=1 still follows ---
readies=$(grep -c "READY=1" notes)
printf 'store: %s\nidle_timeout: soon\n' "$BOOTFLEET_STORE" > bootsrv.yaml
kill -HUP $SERVER
wait_for "configuration not reloaded" server.log
grep -q "configuration not reloaded: .*bootsrv.yaml:2:.*idle_timeout.*'soon' is not a duration" server.log ||
  fail "the refused reload should name the file, line and key: $(grep 'not reloaded' server.log)"
wait_for_more "READY=1" "$readies" "after a refused reload" 5
assert_eq "$(status_with $late_token)" 200 "the API after a refused reload"
nbdinfo --size "nbd://127.0.0.1:$NBD_PORT/lab" >/dev/null || fail "NBD after a refused reload: $(cat server.log)"
pass "a reload of a broken file changes nothing, names the line, and still says READY=1"

# --- 4. SIGTERM: STOPPING=1, exit 0 ---
kill -TERM $SERVER
wait $SERVER || fail "bootsrv exited $? on SIGTERM: $(cat server.log)"
SERVER=
wait_for "STOPPING=1" notes 5
pass "SIGTERM: STOPPING=1 and exit 0"

# --- 5. an unusable NOTIFY_SOCKET, and none ---
write_config 1h
: > server.log
NOTIFY_SOCKET=relative/notify.sock WATCHDOG_USEC=400000 "$BOOTSRV" serve --config bootsrv.yaml >> server.log 2>&1 &
SERVER=$!
wait_for "systemd notification failed: NOTIFY_SOCKET 'relative/notify.sock': not an absolute path" server.log
sleep 1  # several watchdog rounds: still one line
assert_eq "$(grep -c "systemd notification failed" server.log)" 1 "lines about the unusable socket"
nbdinfo --size "nbd://127.0.0.1:$NBD_PORT/lab" >/dev/null || fail "NBD with a bad NOTIFY_SOCKET: $(cat server.log)"
kill -TERM $SERVER; wait $SERVER || fail "exit status with a bad NOTIFY_SOCKET"
SERVER=
start_bootsrv "serving store" serve --config bootsrv.yaml
! grep -qi "systemd" server.log || fail "without NOTIFY_SOCKET bootsrv should say nothing about systemd: $(cat server.log)"
kill -TERM $SERVER; wait $SERVER
SERVER=
pass "an unusable NOTIFY_SOCKET is logged once and bootsrv serves; none: not a word"
kill $LISTENER; wait $LISTENER 2>/dev/null || true
LISTENER=
