#!/usr/bin/env bash
# bootsrv's HTTP side with curl: the chain script, boot scripts for known and
# unknown MACs (URLs, nbdroot, the pinned version), artifacts with GET, HEAD
# and Range (206, 416), hostile paths and headers, and a server that still
# answers after all of them. Needs a version with kernel artifacts, so it
# builds tiny-linux once.
source "$(dirname "$0")/../lib.sh"
BOOTSRV=${BOOTSRV:?set BOOTSRV to the bootsrv binary}
RECIPES=$(cd "$HERE_LIB/../../recipes" && pwd)
export BOOTFLEET_STORE=$WORK/store BOOTFLEET_GUEST_ACCEL=${BOOTFLEET_GUEST_ACCEL:-tcg}
# BOOTFLEET_TINY_STORE: a store holding only tiny-linux@1, published, copied
# instead of building (saves the appliance launch when iterating).
if [ -n "${BOOTFLEET_TINY_STORE:-}" ]; then
  cp -a "$BOOTFLEET_TINY_STORE" "$BOOTFLEET_STORE"
else
  "$IMGTOOL" init >/dev/null
  timeout 600 "$IMGTOOL" build "$RECIPES/tiny-linux.yaml" --publish > build.log 2>&1 || fail "build: $(tail -20 build.log)"
fi
pass "tiny-linux@1 built and published"
"$IMGTOOL" client add 52:54:00:00:00:01 --name pc01 --image tiny-linux --cmdline "quiet loglevel=3" >/dev/null
"$IMGTOOL" client add 52-54-00-00-00-02 --image tiny-linux >/dev/null

NBD_PORT=$(free_port)
HTTP_PORT=$(free_port)
TFTP_PORT=$(free_port)
mkdir tftp-root
"$BOOTSRV" serve --listen 127.0.0.1:$NBD_PORT --http-listen 127.0.0.1:$HTTP_PORT \
  --tftp-listen 127.0.0.1:$TFTP_PORT --tftp-root "$WORK/tftp-root" > server.log 2>&1 &
SERVER=$!
trap 'kill -9 $SERVER 2>/dev/null || true; rm -rf "$WORK"' EXIT
for _ in $(seq 1 100); do
  grep -q "listening for HTTP" server.log && break
  kill -0 $SERVER 2>/dev/null || fail "bootsrv died: $(cat server.log)"
  sleep 0.05
done
grep -q "listening for HTTP" server.log || fail "bootsrv did not start: $(cat server.log)"
BASE=http://127.0.0.1:$HTTP_PORT
# status URL [curl args...]: prints the HTTP status; the body goes to body.out.
status() { local url=$1; shift; curl -s --path-as-is -o body.out -w '%{http_code}' "$@" "$url"; }

assert_eq "$(status $BASE/boot.ipxe)" 200 "GET /boot.ipxe"
head -1 body.out | grep -qx '#!ipxe' || fail "boot.ipxe is not an iPXE script: $(cat body.out)"
grep -qF "chain $BASE/boot/\${mac:hexhyp}.ipxe" body.out || fail "boot.ipxe does not chain by MAC: $(cat body.out)"
status $BASE/boot.ipxe -H "Host: boot.example:8080" >/dev/null
grep -qF "chain http://boot.example:8080/boot/" body.out || fail "URLs do not follow the Host header: $(cat body.out)"
pass "boot.ipxe chains /boot/\${mac:hexhyp}.ipxe on the host the client used"
curl -s "tftp://127.0.0.1:$TFTP_PORT/boot.ipxe" -o tftp-boot.ipxe || fail "boot.ipxe over TFTP"
grep -qF "chain http://127.0.0.1:$HTTP_PORT/boot/\${mac:hexhyp}.ipxe" tftp-boot.ipxe || fail "TFTP boot.ipxe: $(cat tftp-boot.ipxe)"
pass "boot.ipxe over TFTP chains to the HTTP server"

assert_eq "$(status $BASE/boot/52-54-00-00-00-99.ipxe)" 200 "unknown MAC"
grep -qF "52:54:00:00:00:99 is not registered" body.out || grep -qF "MAC 52:54:00:00:00:99) is not registered" body.out ||
  fail "unknown MAC script: $(cat body.out)"
grep -q '^sleep 30' body.out && grep -qF "chain $BASE/boot.ipxe" body.out || fail "unknown MAC does not wait and retry: $(cat body.out)"
pass "an unknown MAC gets a message naming it, a 30 s wait and the chain again"

assert_eq "$(status $BASE/boot/52-54-00-00-00-01.ipxe)" 200 "known MAC"
cp body.out pc01.ipxe
grep -qxF "kernel $BASE/artifacts/tiny-linux@1/vmlinuz initrd=initrd.img ip=dhcp root=/dev/nbd0p1 nbdroot=127.0.0.1:$NBD_PORT/tiny-linux/pc01 rw init=/sbin/init console=tty0 console=ttyS0 panic=-1 bootfleet.image=tiny-linux bootfleet.version=1 bootfleet.client=pc01 quiet loglevel=3" pc01.ipxe ||
  fail "pc01's kernel line: $(cat pc01.ipxe)"
grep -qxF "initrd $BASE/artifacts/tiny-linux@1/initrd.img" pc01.ipxe || fail "pc01's initrd line: $(cat pc01.ipxe)"
grep -qx boot pc01.ipxe || fail "no boot line: $(cat pc01.ipxe)"
grep -q "session tiny-linux/pc01 started on tiny-linux@1" server.log || fail "no session started: $(tail server.log)"
# HEAD shows a boot script's headers without starting a session.
curl -sfI "$BASE/boot/52-54-00-00-00-02.ipxe" > head-script.out || fail "HEAD of a boot script"
grep -q "session tiny-linux/52-54-00-00-00-02 started" server.log && fail "HEAD started a session"
# The same MAC in the other written forms, and the default name.
assert_eq "$(status $BASE/boot/525400000002.ipxe)" 200 "MAC without separators"
grep -qF "nbdroot=127.0.0.1:$NBD_PORT/tiny-linux/52-54-00-00-00-02 " body.out || fail "default client name: $(cat body.out)"
pass "a known MAC gets kernel and initrd of the pinned version, nbdroot to its session, its own arguments"

# The session is pinned when the script is made: a publish afterwards does
# not change what the attach gets.
"$IMGTOOL" squash tiny-linux@1 -m "same content, new base" >/dev/null
"$IMGTOOL" publish tiny-linux@2 >/dev/null
nbdinfo --size "nbd://127.0.0.1:$NBD_PORT/tiny-linux/pc01" >/dev/null || fail "pc01's export"
grep -q "export 'tiny-linux/pc01': connected, tiny-linux@1" server.log || fail "pc01 not on @1: $(grep pc01 server.log)"
assert_eq "$(status $BASE/boot/52-54-00-00-00-01.ipxe)" 200 "pc01's next boot"
grep -qF "/artifacts/tiny-linux@2/vmlinuz" body.out && grep -qF "bootfleet.version=2" body.out || fail "next boot not on @2: $(cat body.out)"
"$IMGTOOL" rollback tiny-linux >/dev/null
pass "a publish after the script leaves the attach on the pinned version; the next boot gets the new one"

# A boot script fetched while the PC's session has a connection (anyone on
# the boot network may fetch it) keeps that session: same disk, same version.
/usr/bin/python3 - "nbd://127.0.0.1:$NBD_PORT/tiny-linux/pc01" <<'PY' &
import nbd, sys, time
h = nbd.NBD(); h.connect_uri(sys.argv[1])
h.pwrite(b"\x5a" * 4096, 1 << 20); h.flush()
open("held", "w").close()
time.sleep(30)
PY
HOLDER=$!
for _ in $(seq 1 100); do [ -e held ] && break; sleep 0.1; done
[ -e held ] || fail "the NBD client holding pc01 did not start"
assert_eq "$(status $BASE/boot/52-54-00-00-00-01.ipxe)" 200 "pc01's script while it runs"
grep -qF "bootfleet.version=2" body.out || fail "the script does not name the running session's version (@2): $(cat body.out)"
grep -q "boot of tiny-linux/pc01 while its session has 1 connections: the running session is kept" server.log ||
  fail "keeping the session is not logged: $(grep pc01 server.log | tail -3)"
qemu-io -f raw "nbd://127.0.0.1:$NBD_PORT/tiny-linux/pc01" -c 'read -P 0x5a 1M 4k' | grep -q "^read 4096" ||
  fail "pc01's disk changed under its connection"
kill $HOLDER; wait $HOLDER 2>/dev/null || true
sleep 0.3  # the server notices the disconnect
assert_eq "$(status $BASE/boot/52-54-00-00-00-01.ipxe)" 200 "pc01's real reboot"
grep -qF "bootfleet.version=1" body.out || fail "a reboot without connections does not start on the active @1: $(cat body.out)"
! qemu-io -f raw "nbd://127.0.0.1:$NBD_PORT/tiny-linux/pc01" -c 'read -P 0x5a 1M 4k' | grep -q "^read 4096" ||
  fail "the rebooted pc01 still has its old write cache"
pass "a boot script never pulls a connected session's disk; a reboot without connections starts a fresh one"

K=$("$IMGTOOL" versions tiny-linux --json | json 'j[0]["file"]')
KERNEL=$BOOTFLEET_STORE/${K%.vhd}.artifacts/vmlinuz
SIZE=$(stat -c %s "$KERNEL")
assert_eq "$(status $BASE/artifacts/tiny-linux@1/vmlinuz)" 200 "GET vmlinuz"
cmp body.out "$KERNEL" || fail "GET vmlinuz differs from the artifact"
curl -s "$BASE/artifacts/tiny-linux%401/vmlinuz" -o again.out
cmp again.out "$KERNEL" || fail "a second GET (with %40) differs"
curl -sI "$BASE/artifacts/tiny-linux@1/vmlinuz" > head.out
grep -qi "^content-length: $SIZE" head.out || fail "HEAD Content-Length: $(cat head.out)"
grep -qi "^accept-ranges: bytes" head.out || fail "HEAD Accept-Ranges: $(cat head.out)"
assert_eq "$(status $BASE/artifacts/tiny-linux@1/vmlinuz -r 100-4195)" 206 "Range 100-4195"
cmp body.out <(tail -c +101 "$KERNEL" | head -c 4096) || fail "206 body is not bytes 100-4195"
curl -s -D hdr.out -o /dev/null -r 100-4195 "$BASE/artifacts/tiny-linux@1/vmlinuz"
grep -qi "^content-range: bytes 100-4195/$SIZE" hdr.out || fail "Content-Range: $(cat hdr.out)"
assert_eq "$(status $BASE/artifacts/tiny-linux@1/vmlinuz -r -1000)" 206 "suffix Range"
cmp body.out <(tail -c 1000 "$KERNEL") || fail "suffix range body"
assert_eq "$(status $BASE/artifacts/tiny-linux@1/vmlinuz -r $SIZE-)" 416 "Range past the end"
curl -s -D hdr.out -o /dev/null -r "$SIZE-" "$BASE/artifacts/tiny-linux@1/vmlinuz"
grep -qi "^content-range: bytes \*/$SIZE" hdr.out || fail "416 Content-Range: $(cat hdr.out)"
# Pieces fetched with ranges over one keep-alive connection add up to the file.
curl -s -r 0-999999 "$BASE/artifacts/tiny-linux@1/vmlinuz" -o p1 --next -s -r 1000000- "$BASE/artifacts/tiny-linux@1/vmlinuz" -o p2
cat p1 p2 | cmp - "$KERNEL" || fail "ranged pieces do not add up to the artifact"
pass "artifacts: GET, HEAD, Range 206 (with Content-Range), 416 past the end, pieces add up"

for bad in "/artifacts/..%2f..%2fcatalog.db" "/artifacts/x@1/../../catalog.db" "/artifacts/tiny-linux@1/..%2f..%2f..%2fcatalog.db" \
           "/artifacts/tiny-linux@1/%2e%2e" "/artifacts/tiny-linux@1//vmlinuz" "/boot/../catalog.db" "/artifacts/tiny-linux@1/vmlinuz%00" \
           "/boot/zz-54-00-00-00-01.ipxe" "/boot/52-54-00-00-00-01" "/boot/52:54:00:00:00:01%0a.ipxe"; do
  code=$(status "$BASE$bad")
  [[ $code == 400 || $code == 404 ]] || fail "$bad answered $code: $(head -c 300 body.out)"
  cmp -s body.out "$BOOTFLEET_STORE/catalog.db" && fail "$bad served the catalog"
done
assert_eq "$(status $BASE/artifacts/tiny-linux@1/catalog.db)" 404 "artifact not in the list"
assert_eq "$(status $BASE/artifacts/tiny-linux@9/vmlinuz)" 404 "version that does not exist"
assert_eq "$(status $BASE/artifacts/nope@1/vmlinuz)" 404 "image that does not exist"
assert_eq "$(status $BASE/artifacts/tiny-linux/vmlinuz)" 400 "no version number"
assert_eq "$(status $BASE/nothing-here)" 404 "unknown path"
assert_eq "$(status $BASE/boot.ipxe -H 'Host: evil/path')" 400 "a Host with a slash"
assert_eq "$(status $BASE/boot.ipxe -X POST)" 405 "POST"
# Raw hostile requests: garbage, an endless header, a body.
$PY - "$HTTP_PORT" <<'PY' || fail "raw hostile requests"
import socket, sys
port = int(sys.argv[1])
def send(data):
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    s.sendall(data)
    out = b""
    while True:
        chunk = s.recv(65536)
        if not chunk: break
        out += chunk
    s.close()
    return out
assert send(b"GET / HTTP/1.1\r\n" + b"X: " + b"a" * 20000 + b"\r\n\r\n").startswith(b"HTTP/1.1 431"), "long head"
assert send(b"\x00\xff\r\n\r\n").startswith(b"HTTP/1.1 400"), "binary"
assert send(b"GET /boot.ipxe HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc").startswith(b"HTTP/1.1 413"), "body"
# Half a request, then close: the server must shrug.
s = socket.create_connection(("127.0.0.1", port)); s.sendall(b"GET /boot"); s.close()
PY
pass "traversal attempts, bad MACs, unknown versions and artifacts, bad Host, POST, raw garbage: 400/404/405/413/431, never a file outside the list"

assert_eq "$(status $BASE/boot.ipxe)" 200 "still answering"
kill -0 $SERVER || fail "bootsrv died"
grep -qE 'http 127\.0\.0\.1:[0-9]+ "GET /artifacts/tiny-linux@1/vmlinuz" 206 4096' server.log || fail "no per-request log line: $(tail -5 server.log)"
kill -TERM $SERVER
wait $SERVER || fail "bootsrv exited $? on SIGTERM"
pass "the server still answers after all of it, logs peer, request, status and bytes, and stops cleanly"

"$BOOTSRV" dhcp-config --server-ip 192.168.7.5 --interface eth1 --http-port 8081 > dnsmasq.conf
for line in "dhcp-range=192.168.7.5,proxy" "interface=eth1" "dhcp-userclass=set:ipxe,iPXE" \
            "dhcp-match=set:bios,option:client-arch,0" "dhcp-match=set:efi64,option:client-arch,7" \
            "dhcp-match=set:efi64,option:client-arch,9" "dhcp-boot=tag:ipxe,http://192.168.7.5:8081/boot.ipxe" \
            'pxe-service=tag:!ipxe,x86PC,"bootfleet (BIOS)",undionly.kpxe,192.168.7.5' \
            'pxe-service=tag:!ipxe,X86-64_EFI,"bootfleet (UEFI)",snponly.efi,192.168.7.5' \
            'pxe-service=tag:!ipxe,BC_EFI,"bootfleet (UEFI)",snponly.efi,192.168.7.5' \
            "dhcp-boot=tag:!ipxe,tag:bios,undionly.kpxe,,192.168.7.5" "dhcp-boot=tag:!ipxe,tag:efi64,snponly.efi,,192.168.7.5" \
            'pxe-service=tag:ipxe,X86-64_EFI,"bootfleet",http://192.168.7.5:8081/boot.ipxe' "port=0"; do
  grep -qxF -- "$line" dnsmasq.conf || fail "dhcp-config lacks '$line': $(cat dnsmasq.conf)"
done
grep -q '^enable-tftp' dnsmasq.conf && fail "dhcp-config turns dnsmasq's TFTP on"
if command -v dnsmasq >/dev/null; then  # dnsmasq itself accepts it (ci/install-deps has dnsmasq-base)
  expect_exit 0 dnsmasq --test --conf-file="$WORK/dnsmasq.conf"
  expect_contains "syntax check OK"
fi
# No loop: every line that hands out a loader excludes iPXE, and iPXE gets only the script.
grep -E '^(pxe-service|dhcp-boot)=' dnsmasq.conf | grep -E '\.(kpxe|efi),' | grep -v 'tag:!ipxe' &&
  fail "a loader is offered to iPXE itself (a loop): $(cat dnsmasq.conf)"
grep -E '^(pxe-service|dhcp-boot)=tag:ipxe,' dnsmasq.conf | grep -vF 'http://192.168.7.5:8081/boot.ipxe' &&
  fail "iPXE is offered something other than the script: $(cat dnsmasq.conf)"
"$BOOTSRV" dhcp-config --server-ip 192.168.7.5 --efi-loader ipxe.efi > dnsmasq-ipxe.conf
grep -qxF "dhcp-boot=tag:!ipxe,tag:efi64,ipxe.efi,,192.168.7.5" dnsmasq-ipxe.conf || fail "--efi-loader ipxe.efi: $(cat dnsmasq-ipxe.conf)"
grep -v "^#" dnsmasq-ipxe.conf | grep snponly > /dev/null && fail "--efi-loader ipxe.efi still offers snponly.efi"
expect_exit 2 "$BOOTSRV" dhcp-config --server-ip 192.168.7.5 --efi-loader grub.efi
expect_contains "use snponly.efi or ipxe.efi"
expect_exit 2 "$BOOTSRV" dhcp-config --server-ip 192.168.7
expect_contains "is not an IPv4 address"
expect_exit 2 "$BOOTSRV" dhcp-config --server-ip 192.168.7.5 --interface 'eth1;rm'
expect_exit 2 "$BOOTSRV" dhcp-config
pass "bootsrv dhcp-config: proxy range, BIOS/UEFI loaders by option 93, iPXE to HTTP (no loop), dnsmasq TFTP off; bad input refused"

# default_image: unknown MACs boot it, as clients named after their MAC.
HTTP_PORT=$(free_port)
printf 'default_image: tiny-linux\nhttp:\n  listen: 127.0.0.1:%s\n' "$HTTP_PORT" > bootsrv.yaml
"$BOOTSRV" serve --config bootsrv.yaml --listen 127.0.0.1:$NBD_PORT > server2.log 2>&1 &
SERVER=$!
for _ in $(seq 1 100); do grep -q "listening for HTTP" server2.log && break; sleep 0.05; done
assert_eq "$(status http://127.0.0.1:$HTTP_PORT/boot/52-54-00-00-00-99.ipxe)" 200 "unknown MAC with a default image"
grep -qF "nbdroot=127.0.0.1:$NBD_PORT/tiny-linux/52-54-00-00-00-99 " body.out && grep -qF "bootfleet.client=52-54-00-00-00-99" body.out ||
  fail "default image script: $(cat body.out)"
kill -TERM $SERVER
wait $SERVER || fail "bootsrv exited $? on SIGTERM"
printf 'http:\n  listen: 127.0.0.1:1\n  port: 2\n' > bad.yaml
expect_exit 2 "$BOOTSRV" serve --config bad.yaml
expect_contains "bad.yaml:3:3: key 'http.port': unknown"
pass "with default_image (from the configuration file) an unknown MAC boots it as a client named after its MAC"
