#!/usr/bin/env bash
# NBD against peers that hold what they can (issue 15, point 2):
#   - sockets that connect and never speak are closed at the handshake
#     deadline, and one address holds at most nbd_per_peer of them;
#   - clients that pipeline 32 MiB reads and never read a reply pin about a
#     read piece each, not 32 MiB (the server's RSS is measured);
#   - a server full of half-open sockets still admits a real client (the
#     oldest connection still in its handshake is evicted, and logged);
# and a real client reads the right bytes throughout.
source "$(dirname "$0")/hostile_lib.sh"
export BOOTFLEET_STORE=$WORK/store
"$IMGTOOL" init >/dev/null
random_disk disk.raw 64
dd if=/dev/urandom of=disk.raw bs=1M count=48 conv=notrunc status=none  # real data where the reads go
"$IMGTOOL" import lab disk.raw --publish >/dev/null
PORT=$(free_port)
start_bootsrv "listening for NBD" serve --listen 127.0.0.1:$PORT
real_read() { # a real client from 127.0.0.1 reads the whole disk
  rm -f got.raw
  timeout 60 nbdcopy "nbd://127.0.0.1:$PORT/lab@1" got.raw && cmp -s -n $(( 48 << 20 )) got.raw disk.raw ||
    fail "a real client could not read lab@1 $1"
}
real_read "at the start"
base_threads=$(threads)

# --- half-open sockets: capped per peer, closed at the handshake deadline (10 s by default)
OUT=$($HOSTILE nbd-halfopen $PORT 127.0.0.2 40 14)
assert_eq "$(json 'j["opened"], j["greeted"], j["closed_at_once"]' <<<"$OUT")" "40 16 24" \
  "40 silent sockets from one address: greeted (the default cap per peer) and closed at once"
assert_eq "$(json 'j["closed_later"], j["still_open"]' <<<"$OUT")" "16 0" "the 16 admitted ones after 14 s (deadline 10 s)"
grep -q "NBD 127.0.0.2: refused: 16 connections from this address already" server.log || fail "per-peer refusal not logged"
grep -q "NBD 127.0.0.2: closed: did not finish its handshake or request within 10 s" server.log ||
  fail "handshake deadline not logged: $(grep 127.0.0.2 server.log | tail -3)"
sleep 0.5
[ "$(threads)" -le $(( base_threads + 2 )) ] || fail "threads after the half-open sockets: $(threads), were $base_threads"
alive; real_read "after half-open sockets"
pass "silent sockets: 16 per address, each closed at the 10 s handshake deadline (logged), threads back to $(threads)"

# --- clients that never read their replies
rss0=$(rss_mib)
pids=()
for i in $(seq 10 19); do
  $HOSTILE nbd-noread $PORT 127.0.0.$i lab@1 40 60 ready.$i & pids+=($!)
done
for i in $(seq 10 19); do
  for _ in $(seq 1 100); do [ -s ready.$i ] && break; sleep 0.1; done
  [ -s ready.$i ] || fail "attacker 127.0.0.$i did not get going"
done
sleep 3  # the server reads, fills the sockets, and blocks
real_read "while 10 clients leave 32 MiB replies unread"
rss1=$(rss_mib)
echo "RSS: $rss0 MiB before, $rss1 MiB with 10 clients not reading 32 MiB replies"
[ $(( rss1 - rss0 )) -lt 120 ] || fail "10 clients that do not read their 32 MiB replies grew the server by $(( rss1 - rss0 )) MiB (at most ~8 MiB each expected)"
kill "${pids[@]}" 2>/dev/null; wait "${pids[@]}" 2>/dev/null || true
alive
pass "10 clients pipelining 32 MiB reads they never read: server RSS +$(( rss1 - rss0 )) MiB (was 34-48 MiB each)"
stop_server

# --- full of half-open sockets: a real client still gets in
cat > limits.yaml <<EOF2
limits:
  nbd_connections: 12
  nbd_per_peer: 4
  nbd_handshake_timeout: 30s
EOF2
start_bootsrv "listening for NBD" serve --listen 127.0.0.1:$PORT --config limits.yaml
pids=()
for i in 2 3 4 5; do $HOSTILE nbd-halfopen $PORT 127.0.0.$i 4 8 > halfopen.$i & pids+=($!); sleep 0.2; done
sleep 1.5
real_read "while the server is full of half-open sockets"
wait "${pids[@]}"
grep -q "NBD 127.0.0.2: closed: evicted: the server is full (12 connections)" server.log ||
  fail "no eviction logged: $(grep -E 'evicted|refused' server.log | head -5)"
assert_eq "$(cat halfopen.5 | json 'j["greeted"]')" 4 "the 4th attacker, arriving at a full server, got in by evicting"
alive
pass "a server full of half-open sockets (nbd_connections 12) evicts the oldest for newcomers, real client included"
stop_server
