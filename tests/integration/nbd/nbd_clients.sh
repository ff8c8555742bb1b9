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
