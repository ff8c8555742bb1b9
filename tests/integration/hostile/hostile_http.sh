#!/usr/bin/env bash
# HTTP against slow and nosy peers (issue 15, points 3 and 6):
#   - 320 slowloris sockets from 8 addresses, one header byte a second:
#     /healthz, a boot script and the authenticated /api/v1/status still
#     answer 200 while they last (per-peer caps, and a full server evicts
#     the oldest connection that has not sent a whole request head);
#   - a request head trickled byte by byte is cut at the whole-request
#     deadline (10 s by default), not kept alive by each byte;
#   - a token in a query string is refused and never written to the log;
#   - a trailing slash after a file is refused, not served as the file;
#   - Range: bytes=0-18446744073709551615 is clamped to a 206 of the file;
#   - a Host header that is not a host name or address is refused, and a
#     script names only the host this client asked for.
source "$(dirname "$0")/hostile_lib.sh"
export BOOTFLEET_STORE=$WORK/store
"$IMGTOOL" init >/dev/null
random_disk d1.raw 8
"$IMGTOOL" import lab d1.raw --publish >/dev/null
# The version's artifacts, as a build's copy-out leaves them.
vhd=$(ls "$BOOTFLEET_STORE"/images/lab/*.vhd | head -1)
mkdir "${vhd%.vhd}.artifacts"
head -c 100000 /dev/urandom > "${vhd%.vhd}.artifacts/vmlinuz"
cp "${vhd%.vhd}.artifacts/vmlinuz" kernel.ref
start_api_bootsrv "$BOOTFLEET_STORE"
AUTH="Authorization: Bearer $(cat token)"
code() { curl -s -m 20 -o body.out -w '%{http_code}' "$@"; }

# --- slowloris, and one trickled head timed
$HOSTILE http-slowloris $HTTP_PORT 127.0.0.2,127.0.0.3,127.0.0.4,127.0.0.5,127.0.0.6,127.0.0.7,127.0.0.8,127.0.0.9 40 9 ready &
loris=$!
for _ in $(seq 1 150); do [ -s ready ] && break; sleep 0.1; done
[ -s ready ] || fail "the slowloris did not get going"
# Started after the slowloris: the oldest waiting connections, evicted
# first when the server is full, are the slowloris's, not this one.
$HOSTILE http-deadline $HTTP_PORT 127.0.0.20 25 > deadline.json &
probe=$!
sleep 1
assert_eq "$(code $URL/healthz)" 200 "/healthz during the slowloris"
assert_eq "$(code $URL/boot/52-54-00-00-00-99.ipxe)" 200 "a boot script during the slowloris"
assert_eq "$(code -H "$AUTH" $URL/api/v1/status)" 200 "/api/v1/status during the slowloris"
assert_eq "$(code $URL/artifacts/lab@1/vmlinuz)" 200 "a kernel during the slowloris"
cmp body.out kernel.ref || fail "the kernel served during the slowloris differs"
grep -q "HTTP 127.0.0.2: refused: 32 connections from this address already" server.log ||
  fail "per-peer cap not logged: $(grep -c refused server.log) refusals"
grep -q "HTTP 127.0.0.[0-9]*: closed: evicted: the server is full (256 connections)" server.log ||
  fail "no eviction logged with 256 slow sockets and new clients"
wait $loris
wait $probe
secs=$(json 'j["seconds"]' < deadline.json)
$PY -c "import sys; sys.exit(0 if 9 <= $secs <= 14 else 1)" ||
  fail "a head trickled byte by byte was closed after $secs s (deadline 10 s)"
grep -q "HTTP 127.0.0.20: closed: did not finish its handshake or request within 10 s" server.log ||
  fail "the request deadline is not logged"
alive
pass "320 slowloris sockets from 8 addresses (32 admitted each): healthz, boot script, API and kernel served; trickled head cut at ${secs} s"

# --- tokens in query strings are not logged
SECRET=query-secret-0123456789abcdef
assert_eq "$(code "$URL/api/v1/status?token=$SECRET")" 401 "a token in the query string"
assert_eq "$(code "$URL/api/v1/status?access_token=$SECRET&x=1")" 401 "access_token in the query string"
assert_eq "$(code -H "$AUTH" "$URL/api/v1/images/lab/versions?token=$SECRET")" 200 "a query with a token on a good request"
sleep 0.3
! grep -q "$SECRET" server.log || fail "a token from a query string was logged: $(grep "$SECRET" server.log | head -2)"
grep -q 'GET /api/v1/status?token=' server.log || fail "the request line is not logged at all"
pass "tokens in query strings: refused and never logged (query values are not logged)"

# --- a trailing slash is an empty segment
assert_eq "$(code $URL/artifacts/lab@1/vmlinuz)" 200 "the kernel"
assert_eq "$(code $URL/artifacts/lab@1/vmlinuz/)" 400 "the kernel with a trailing slash"
assert_eq "$(code -H "$AUTH" $URL/api/v1/images/lab/versions/)" 400 "versions with a trailing slash"
pass "a trailing slash after a file or a list is refused (400)"

# --- ranges past 64 bits are clamped
assert_eq "$(code -D hdr.txt -H 'Range: bytes=0-18446744073709551615' $URL/artifacts/lab@1/vmlinuz)" 206 "0-(2^64-1)"
grep -qi '^content-range: bytes 0-99999/100000' hdr.txt || fail "Content-Range: $(cat hdr.txt)"
cmp body.out kernel.ref || fail "the clamped range is not the file"
assert_eq "$(code -D hdr.txt -H 'Range: bytes=99990-99999999999999999999999' $URL/artifacts/lab@1/vmlinuz)" 206 "a last byte past 64 bits"
assert_eq "$(stat -c %s body.out)" 10 "bytes of 99990-(huge)"
assert_eq "$(code -H 'Range: bytes=99999999999999999999999-' $URL/artifacts/lab@1/vmlinuz)" 416 "a first byte past 64 bits"
assert_eq "$(code -H 'Range: bytes=-99999999999999999999999' $URL/artifacts/lab@1/vmlinuz)" 206 "a suffix past 64 bits"
cmp body.out kernel.ref || fail "a huge suffix is not the whole file"
pass "Range numbers past 64 bits: clamped to the file (206), or 416 for a first byte past it"

# --- Host headers
for host in 'evil.example/x' 'a b' 'evil@x' 'x:99999' "$(printf 'h%.0s' $(seq 1 300))"; do
  assert_eq "$(code -H "Host: $host" $URL/boot.ipxe)" 400 "Host: ${host:0:20}"
done
assert_eq "$(code -H 'Host: boot.example:8080' $URL/boot.ipxe)" 200 "a host name"
grep -qF 'http://boot.example:8080/boot/' body.out || fail "the script does not name the asked host: $(cat body.out)"
assert_eq "$(code $URL/boot.ipxe)" 200 "without Host"
grep -qF "http://127.0.0.1:$HTTP_PORT/boot/" body.out || fail "another client's script names someone else's host: $(cat body.out)"
pass "Host: only a name or address and port is used, and only in the asking client's own script"
alive
stop_server
