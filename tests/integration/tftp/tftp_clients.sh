#!/usr/bin/env bash
# bootsrv's TFTP server against real clients: tftp-hpa (RFC 1350, no
# options) and curl (blksize and tsize options), over IPv4 and IPv6, and a
# 40 MiB file whose block numbers wrap past 65535 at 512-byte blocks.
source "$(dirname "$0")/tftp_lib.sh"

start_server 127.0.0.1
for f in undionly.kpxe small.bin empty.bin exact-two-blocks.bin sub/medium.bin inside-link; do
  rm -f got
  tftp_get 127.0.0.1 "$f" got || fail "tftp get $f failed"
  cmp got "root/$f" || fail "tftp get $f: bytes differ"
done
pass "tftp-hpa gets undionly.kpxe, small, empty, exact-multiple, nested and symlinked-inside files"

tftp_get 127.0.0.1 /undionly.kpxe got && cmp got root/undionly.kpxe || fail "leading slash"
tftp_get 127.0.0.1 "$WORK/root/undionly.kpxe" got && cmp got root/undionly.kpxe || fail "the root's full path"
pass "absolute names are taken beneath the root"

# tftp-hpa prints the server's ERROR message and exits 0 or 1 by version;
# what counts is the message and that no file of the refused name arrives.
expect_output_contains "Error code 1: file not found" tftp_get 127.0.0.1 nosuch.bin got-nosuch
expect_output_contains "Error code 2: access violation" tftp_get 127.0.0.1 ../outside.txt got-escape
expect_output_contains "Error code 2: access violation" tftp_get 127.0.0.1 escape-link got-escape
[ ! -s got-escape ] || fail "bytes of a file outside the root arrived"
if [ "$AS_ROOT" = 1 ]; then
  tftp_get 127.0.0.1 trusted-link got-trusted && cmp got-trusted outside-loader.bin || fail "root's own symlink out of the root was not followed"
  chmod 775 root; stop_server; start_server 127.0.0.1
  expect_output_contains "Error code 2: access violation" tftp_get 127.0.0.1 trusted-link got-untrusted
  [ ! -s got-untrusted ] || fail "a symlink in a group-writable root was followed"
  chmod 755 root
  pass "root's own symlink out of a root-only root is followed; in a group-writable root it is refused"
else
  expect_output_contains "Error code 2: access violation" tftp_get 127.0.0.1 trusted-link got-untrusted
fi
expect_output_contains "Error code 2: read-only server" timeout 30 tftp -m binary 127.0.0.1 "$TPORT" -c put outside.txt up.txt
[ ! -e root/up.txt ] || fail "a put created a file"
pass "missing file, '..', symlink out of the root and put are refused"

for bs in 8 512 1024 1468 4096; do
  rm -f got
  timeout 60 curl -sS --tftp-blksize $bs -o got "tftp://127.0.0.1:$TPORT/sub/medium.bin" || fail "curl blksize $bs failed"
  cmp got root/sub/medium.bin || fail "curl blksize $bs: bytes differ"
done
grep -q "'sub/medium.bin': sent 300000 bytes in 205 blocks.*blksize 1468" server.log ||
  fail "blksize 4096 not lowered to 1468: $(grep medium server.log | tail -1)"
pass "curl with blksize 8, 512, 1024, 1468 and 4096 (lowered to 1468)"

# 40 MiB: 81921 blocks of 512 bytes, so block numbers wrap once.
truncate -s 40M root/big.bin
dd if=/dev/urandom of=root/big.bin bs=1M count=1 conv=notrunc status=none
dd if=/dev/urandom of=root/big.bin bs=1M count=1 seek=39 conv=notrunc status=none
tftp_get 127.0.0.1 big.bin got-big || fail "tftp get of 40 MiB failed"
cmp got-big root/big.bin || fail "40 MiB file: bytes differ after the block number wrapped"
rm -f got-big
grep -q "'big.bin': sent 41943040 bytes in 81921 blocks" server.log || fail "log: $(grep big.bin server.log)"
pass "40 MiB at 512-byte blocks: block numbers wrap past 65535, bytes equal"
alive
stop_server
grep -q "stopped" server.log || fail "no clean stop: $(tail -5 server.log)"

start_server "[::1]"
tftp_get -6 ::1 undionly.kpxe got6 || fail "tftp -6 failed"
cmp got6 root/undionly.kpxe || fail "IPv6: bytes differ"
timeout 60 curl -sS --tftp-blksize 1468 -o got6c "tftp://[::1]:$TPORT/undionly.kpxe" || fail "curl over IPv6 failed"
cmp got6c root/undionly.kpxe || fail "curl over IPv6: bytes differ"
grep -q "tftp \[::1\]:[0-9]* 'undionly.kpxe': sent 74213 bytes" server.log || fail "log: $(cat server.log)"
pass "IPv6 on ::1 with tftp-hpa and curl"
stop_server

# Debian's ipxe package: the default root is /usr/lib/ipxe; undionly.kpxe and
# snponly.efi are plain files, ipxe.efi a symlink to /boot made by the package
# (root's, in a directory only root writes), so it is followed.
TPORT=$(free_udp_port)
launch --tftp-listen 127.0.0.1:$TPORT
grep -q "serving $IPXE_DIR read-only" server.log || fail "default root: $(cat server.log)"
tftp_get 127.0.0.1 undionly.kpxe got-default && cmp got-default "$IPXE_DIR/undionly.kpxe" || fail "default root"
if [ -f "$IPXE_DIR/snponly.efi" ]; then
  tftp_get 127.0.0.1 snponly.efi got-snp && cmp got-snp "$IPXE_DIR/snponly.efi" || fail "snponly.efi"
fi
served="undionly.kpxe and snponly.efi"
if [ -e "$IPXE_DIR/ipxe.efi" ] && [ "$(stat -L -c %u "$IPXE_DIR")" = 0 ] && [ "$(stat -c %u "$IPXE_DIR/ipxe.efi")" = 0 ] &&
   [ $(( 0$(stat -c %a "$IPXE_DIR") & 022 )) = 0 ]; then
  tftp_get 127.0.0.1 ipxe.efi got-efi && cmp got-efi "$IPXE_DIR/ipxe.efi" || fail "ipxe.efi (a root-owned symlink) not served: $(tail -3 server.log)"
  served+=" and ipxe.efi (root's symlink to $(readlink "$IPXE_DIR/ipxe.efi"))"
fi
pass "default root $IPXE_DIR serves $served"
stop_server

# Configuration file keys.
TPORT=$(free_udp_port)
printf 'tftp:\n  listen: 127.0.0.1:%s\n  root: %s\n' "$TPORT" "$WORK/root" > bootsrv.yaml
launch --config bootsrv.yaml
tftp_get 127.0.0.1 small.bin got-cfg && cmp got-cfg root/small.bin || fail "tftp.listen/tftp.root from the config: $(cat server.log)"
stop_server
printf 'tftp:\n  port: 69\n' > bad.yaml
expect_exit 2 "$BOOTSRV" serve --config bad.yaml
expect_contains "bad.yaml:2:3: key 'tftp.port': unknown"
expect_exit 2 "$BOOTSRV" serve --listen 127.0.0.1:$(free_tcp_port) --tftp-listen 127.0.0.1:$(free_udp_port) --tftp-root "$WORK/nosuch"
expect_contains "TFTP root $WORK/nosuch"
pass "config keys tftp.listen and tftp.root; bad key and missing root name the problem"
