#!/usr/bin/env bash
# TFTP against spoofable UDP and a root that changes under the server
# (issue 15, points 4 and 5):
#   - 70 read requests from one address asking for timeout 255, never
#     ACKed: the timeout is not granted (the OACK leaves it out), one
#     address gets at most tftp_per_peer transfers, the rest "busy";
#   - 80 such requests from 80 addresses: a real client still gets its
#     file (the oldest never-acknowledged transfer is evicted for it);
#   - a transfer nobody acknowledges ends by tftp_give_up (15 s), however
#     long a timeout it negotiated;
#   - a root-owned symlink out of the root is served while only root can
#     write the root, refused as soon as the root becomes group-writable,
#     and a root writable by everyone serves nothing (and cannot be started).
source "$(dirname "$0")/hostile_lib.sh"
export BOOTFLEET_STORE=$WORK/store
"$IMGTOOL" init >/dev/null
mkdir root
head -c 300000 /dev/urandom > root/loader.bin
head -c 5000 /dev/urandom > outside-loader.bin
ln -s "$WORK/outside-loader.bin" root/linked.efi
chmod 755 root
[ "$(id -u)" -eq 0 ] && AS_ROOT=1 || AS_ROOT=0
TPORT=$(free_port)
start_bootsrv "listening for TFTP" serve --listen 127.0.0.1:$(free_port) --tftp-listen 127.0.0.1:$TPORT --tftp-root "$WORK/root"
tftp_get() { timeout 60 tftp -m binary 127.0.0.1 "$TPORT" -c get "$1" "$2"; }
tftp_get loader.bin got.bin && cmp got.bin root/loader.bin || fail "a real client at the start"

# --- one address, 70 requests with timeout 255
OUT=$($HOSTILE tftp-flood $TPORT 127.0.0.2 70 loader.bin)
echo "$OUT"
assert_eq "$(json 'j["oacks"], j["oack_timeouts"], j["error_count"]' <<<"$OUT")" "8 [''] 62" \
  "70 requests from one address: OACKs (per-peer cap 8), timeouts granted, refusals"
json 'j["errors"]' <<<"$OUT" | grep -q "busy" || fail "refusals do not say busy: $OUT"
grep -q "tftp 127.0.0.2:[0-9]* 'loader.bin': refused: 8 transfers from this address already" server.log ||
  fail "per-peer refusal not logged"
tftp_get loader.bin got.bin && cmp got.bin root/loader.bin || fail "a real client after one address's flood"
pass "70 requests for timeout 255 from one address: 8 transfers, timeout not granted, 62 told busy; real client served"

# --- 80 addresses (what spoofed UDP costs nothing to send)
srcs=$(seq -s, -f '127.0.0.%g' 3 82)
OUT=$($HOSTILE tftp-flood $TPORT "$srcs" 1 loader.bin)
tftp_get loader.bin got.bin && cmp got.bin root/loader.bin || fail "a real client while 80 addresses hold every slot"
grep -q "evicted: 64 transfers running" server.log || fail "no eviction logged: $(grep -c busy server.log) busy"
pass "80 never-acknowledged transfers from 80 addresses: the oldest are evicted, a real client is served"

# --- total time without progress
$PY - $TPORT <<'PY' &
import socket, struct, sys, time
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); u.bind(("127.0.0.90", 0))
u.sendto(struct.pack(">H", 1) + b"loader.bin\0octet\0timeout\0005\0", ("127.0.0.1", int(sys.argv[1])))
time.sleep(40)
PY
probe=$!
start=$(date +%s)
for _ in $(seq 1 60); do
  grep -q "tftp 127.0.0.90:[0-9]* 'loader.bin': .*gave up" server.log && break
  sleep 0.5
done
took=$(( $(date +%s) - start ))
kill $probe 2>/dev/null || true
grep -q "tftp 127.0.0.90:[0-9]* 'loader.bin': .*gave up" server.log || fail "an unacknowledged transfer still running after ${took} s"
[ "$took" -le 18 ] || fail "an unacknowledged transfer with timeout 5 ran ${took} s (tftp_give_up is 15 s)"
pass "a transfer with timeout 5 that nobody acknowledges gives up after ${took} s (tftp_give_up 15 s)"

# --- trust in the root, decided per request
if [ $AS_ROOT = 1 ]; then
  tftp_get linked.efi got.bin && cmp got.bin outside-loader.bin || fail "root's own link out of a root-only root"
  chmod 775 root
  rm -f got.bin
  tftp_get linked.efi got.bin > tftp.out 2>&1 || true
  ! cmp -s got.bin outside-loader.bin || fail "a link out of a root made group-writable while running was served"
  grep -qi "error code 2" tftp.out || fail "the client was not told access violation: $(cat tftp.out)"
  grep -q "'linked.efi': access violation: .*the root is not owned by root or is writable by group or others" server.log ||
    fail "the refusal of the link does not say why: $(grep linked.efi server.log | tail -2)"
  chmod 755 root
  tftp_get linked.efi got.bin && cmp got.bin outside-loader.bin || fail "the link once the root is root's alone again"
  pass "a root-owned link out of the root: served at 755, refused once the root is 775 (decided per request), served at 755 again"
fi
chmod 777 root
rm -f got.bin
tftp_get loader.bin got.bin > tftp.out 2>&1 || true
! cmp -s got.bin root/loader.bin || fail "a file from a root writable by everyone was served"
grep -qi "error code 2" tftp.out || fail "the client was not told access violation: $(cat tftp.out)"
grep -q "'loader.bin': access violation: the served directory is writable by every user" server.log ||
  fail "refusal from a world-writable root not logged: $(tail -3 server.log)"
chmod 755 root
tftp_get loader.bin got.bin && cmp got.bin root/loader.bin || fail "served again once the root is 755"
alive
stop_server
chmod 777 root
expect_exit 2 "$BOOTSRV" serve --listen 127.0.0.1:$(free_port) --tftp-listen 127.0.0.1:$TPORT --tftp-root "$WORK/root"
expect_contains "writable by every user"
chmod 755 root
pass "a root writable by everyone: nothing served while it is (logged), and bootsrv will not start on one"
