#!/usr/bin/env bash
# Real clients against bootsrv: nbdinfo, nbdcopy, qemu-img, qemu-io.
source "$(dirname "$0")/nbd_lib.sh"
make_image lab v1.raw
start_server

nbdinfo --list "nbd://127.0.0.1:$PORT" > list.txt
grep -q 'export="lab"' list.txt || fail "nbdinfo --list: $(cat list.txt)"
nbdinfo --json "$(uri lab@1)" > info.json
$PY -c 'import json; j=json.load(open("info.json"))["exports"][0]; assert j["is_read_only"] and j["can_multi_conn"], j' \
  || fail "lab@1 should be read-only with multi-conn"
nbdinfo --json "$(uri lab)" | $PY -c 'import json,sys; j=json.load(sys.stdin)["exports"][0]; assert not j["is_read_only"] and not j["can_multi_conn"], j' \
  || fail "an anonymous session must not advertise multi-conn"
pass "nbdinfo --list and flags (read-only version, no multi-conn for anonymous sessions)"

nbdinfo --map "$(uri lab@1)" > map.txt
expect="0 4194304 0 data|4194304 29360128 3 hole,zero|33554432 2097152 0 data|35651584"
got=$(awk '{printf "%s %s %s %s|", $1, $2, $3, $4}' map.txt)
[[ "$got" == "0 4194304 0 data|4194304 29360128 3 hole,zero|33554432 2097152 0 data|35651584"* ]] || fail "map: $got"
pass "nbdinfo --map follows the version's allocation"

"$IMGTOOL" export lab@1 export.raw --to raw >/dev/null
nbdcopy "$(uri lab@1)" copy.raw
cmp copy.raw export.raw || fail "nbdcopy differs from imgtool export"
qemu-img convert -f raw -O raw "$(uri lab@1)" qemu.raw
cmp qemu.raw export.raw || fail "qemu-img convert differs"
pass "nbdcopy and qemu-img convert read exactly what imgtool export writes"

# Reads the page cache cannot answer go to worker threads (the rest are
# answered on the connection's thread): evict the version file and copy again.
evict() { /usr/bin/python3 -c 'import os,sys
for p in sys.argv[1:]:
    fd = os.open(p, os.O_RDONLY); os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED); os.close(fd)' "$@"; }
evict "$BOOTFLEET_STORE"/images/lab/*.vhd
nbdcopy --requests=16 --request-size=65536 "$(uri lab@1)" cold.raw  # small enough to be tried inline first
cmp cold.raw export.raw || fail "nbdcopy of an evicted version differs"
evict "$BOOTFLEET_STORE"/images/lab/*.vhd
qemu-img convert -f raw -O raw "$(uri lab/cold)" cold2.raw
cmp cold2.raw export.raw || fail "a session over an evicted version reads wrong data"
pass "reads that must wait for the disk (version evicted from the page cache) return the same bytes"

sha256sum "$BOOTFLEET_STORE"/images/lab/*.vhd > master.sum
qemu-io -f raw "$(uri lab/pc01)" -c 'write -P 0xab 1M 64k' -c 'write -z 40M 1M' -c 'discard 8M 64k' \
  -c 'write -P 0xcd 100 1000' -c flush > io.txt 2>&1 || fail "qemu-io writes: $(cat io.txt)"
qemu-io -f raw -r "$(uri lab/pc01)" -c 'read -P 0xab 1M 64k' -c 'read -P 0 40M 1M' -c 'read -P 0xcd 100 1000' \
  > io2.txt 2>&1 || fail "reconnect: $(cat io2.txt)"
grep -q "Pattern verification failed" io2.txt && fail "reconnect read: $(cat io2.txt)"
qemu-io -f raw -r "$(uri lab/pc02)" -c 'read -P 0xab 1M 64k' > io3.txt 2>&1 || true
grep -q "Pattern verification failed" io3.txt || fail "pc02 sees pc01's write: $(cat io3.txt)"
qemu-io -f raw -r "$(uri lab)" -c 'read -P 0xab 1M 64k' > io4.txt 2>&1 || true
grep -q "Pattern verification failed" io4.txt || fail "an anonymous session sees pc01's write"
sha256sum -c --quiet master.sum || fail "a version file changed"
pass "qemu-io write, write -z, discard, flush; the data is back on reconnect, other sessions don't see it, masters unchanged"

# Two connections to one named session see each other's flushed writes.
$PY - "$PORT" <<'PY' || fail "multi-connection session"
import nbd, sys
port = sys.argv[1]
a, b = nbd.NBD(), nbd.NBD()
a.connect_uri(f"nbd://127.0.0.1:{port}/lab/pc03"); b.connect_uri(f"nbd://127.0.0.1:{port}/lab/pc03")
assert a.can_multi_conn()
a.pwrite(b"\x5a" * 4096, 8192); a.flush()
assert b.pread(4096, 8192) == b"\x5a" * 4096
PY
pass "two connections of one named session share its cache"
alive
stop_server
grep -q "stopped" server.log || fail "no 'stopped' in the log"
grep -q "127.0.0.1:[0-9]* export 'lab/pc01': connected" server.log || fail "log lines do not name peer and export"
pass "SIGTERM: exit 0; logs name the client and the export"

# Busy polling off, and a bad value named with its place.
printf 'nbd_busy_poll_us: 0\n' > nopoll.yaml
start_server --config nopoll.yaml
nbdcopy "$(uri lab@1)" nopoll.raw
cmp nopoll.raw export.raw || fail "nbdcopy with nbd_busy_poll_us: 0 differs"
stop_server
printf 'store: %s\nnbd_busy_poll_us: -5\n' "$BOOTFLEET_STORE" > badpoll.yaml
"$BOOTSRV" serve --config badpoll.yaml > badpoll.log 2>&1 && fail "a negative nbd_busy_poll_us was accepted"
grep -q "badpoll.yaml:2:19: key 'nbd_busy_poll_us': expected microseconds from 0" badpoll.log || fail "bad nbd_busy_poll_us: $(cat badpoll.log)"
pass "nbd_busy_poll_us: 0 serves the same bytes; -5 is refused naming file, line and key"
