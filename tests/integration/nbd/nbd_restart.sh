# Named sessions outlive bootsrv: real clients (qemu-io, nbdsh) write to
# lab/pc01, bootsrv is killed with SIGKILL (and later stopped with SIGTERM),
# another version is published meanwhile, bootsrv starts again, and the
# client reconnects: what it flushed reads back, on the version it pinned;
# what it had not flushed reads as the new data or the old, per 4 KiB, never
# anything else. Leases of the killed server are removed at the restart.
source "$(dirname "$0")/nbd_lib.sh"

make_image lab v1.raw
cp v1.raw v2.raw
dd if=/dev/urandom of=v2.raw bs=1M count=2 seek=8 conv=notrunc status=none  # lab@2 differs at 8 MiB
"$IMGTOOL" import lab v2.raw >/dev/null

start_server
# Flushed: qemu-io's write and flush; FUA: nbdsh with the FUA flag.
qemu-io -f raw "$(uri lab/pc01)" -c 'write -P 0xa1 8M 64k' -c flush >/dev/null
/usr/bin/python3 - "$(uri lab/pc01)" <<'EOF'
import nbd, sys
h = nbd.NBD(); h.connect_uri(sys.argv[1])
h.pwrite(b"\xb2" * 65536, 9 * 1024 * 1024, nbd.CMD_FLAG_FUA)
h.shutdown()
EOF
# Unflushed: a client that writes 2 MiB at 16 MiB and stays connected.
cat > unflushed.py <<'EOF'
import nbd, sys, time
h = nbd.NBD(); h.connect_uri(sys.argv[1])
for i in range(32):
    h.pwrite(bytes([0xc3]) * 65536, 16 * 1024 * 1024 + i * 65536)
open("unflushed.done", "w").close()
time.sleep(60)
EOF
/usr/bin/python3 unflushed.py "$(uri lab/pc01)" &
WRITER=$!
for _ in $(seq 1 100); do [ -e unflushed.done ] && break; sleep 0.1; done
[ -e unflushed.done ] || fail "the unflushed writer did not finish its writes"
grep -q "session lab/pc01 started on lab@1" server.log || fail "lab/pc01 did not start on lab@1: $(cat server.log)"
OLD=$SERVER
kill -9 $SERVER
wait $SERVER 2>/dev/null || true
kill $WRITER 2>/dev/null || true
wait $WRITER 2>/dev/null || true
"$IMGTOOL" publish lab@2 >/dev/null
# A lease of the killed server is still in the catalog.
leases() { /usr/bin/python3 -c "import sqlite3,sys; print(sqlite3.connect(sys.argv[1]).execute(\"select count(*) from leases where holder like '%:$1'\").fetchone()[0])" "$BOOTFLEET_STORE/catalog.db"; }
assert_eq "$(leases $OLD)" 1 "leases left by the killed server"

start_server
grep -q "session lab/pc01 reopened on lab@1" server.log || fail "lab/pc01 not reopened on lab@1: $(cat server.log)"
grep -q "removed 1 leases of bootsrv processes of this host that are gone" server.log || fail "old lease not removed: $(cat server.log)"
assert_eq "$(leases $OLD)" 0 "leases of the killed server after the restart"
assert_eq "$(leases $SERVER)" 1 "leases of the new server (the reopened session's)"
qemu-io -f raw "$(uri lab/pc01)" -c 'read -P 0xa1 8M 64k' -c 'read -P 0xb2 9M 64k' | grep -c "^read 65536" | grep -qx 2 ||
  fail "flushed and FUA writes did not survive kill -9"
pass "flushed and FUA writes to lab/pc01 survive kill -9 of bootsrv"
# The rest of the disk is lab@1's, although lab@2 is active now.
nbdcopy "$(uri lab/pc01)" pc01.raw
cmp -n 8M pc01.raw v1.raw || fail "lab/pc01 before 8 MiB is not lab@1's"
cmp -i 10M:10M -n 6M pc01.raw v1.raw || fail "lab/pc01 at 10..16 MiB is not lab@1's (lab@2 was published meanwhile)"
nbdcopy "$(uri lab)" anon.raw
cmp -i 8M:8M -n 2M anon.raw v2.raw || fail "a new anonymous session is not on lab@2"
pass "the reopened session is on the version it pinned (lab@1), new sessions on lab@2"
# Unflushed: every 4 KiB cluster is the write's or lab@1's.
/usr/bin/python3 - pc01.raw v1.raw <<'EOF' || fail "unflushed writes read back as neither old nor new data"
import sys
got = open(sys.argv[1], "rb").read()[16 << 20:18 << 20]
old = open(sys.argv[2], "rb").read()[16 << 20:18 << 20]
new = bytes([0xc3]) * 4096
kept = 0
for i in range(0, len(got), 4096):
    c = got[i:i + 4096]
    if c == new: kept += 1
    elif c != old[i:i + 4096]: sys.exit(f"cluster at {16 * 2**20 + i}: neither the write nor lab@1")
print(f"unflushed clusters kept: {kept} of 512")
EOF
pass "unflushed writes are there or not, never garbage"

# A graceful restart keeps what was written without a flush too.
/usr/bin/python3 - "$(uri lab/pc01)" <<'EOF'
import nbd, sys
h = nbd.NBD(); h.connect_uri(sys.argv[1])
h.pwrite(b"\xd4" * 4096, 20 * 1024 * 1024)
h.shutdown()
EOF
stop_server
start_server
qemu-io -f raw "$(uri lab/pc01)" -c 'read -P 0xd4 20M 4k' -c 'read -P 0xa1 8M 64k' | grep -c "^read" | grep -qx 2 ||
  fail "a graceful restart lost writes"
pass "SIGTERM and start: the session carries on with all its writes"

# A session that ended is refused, not replaced by an empty disk: here
# its version was removed while no server held its lease.
stop_server
rm -rf "$BOOTFLEET_STORE/cache/ended"
sed -i 's/^version 1$/version 99/' "$BOOTFLEET_STORE"/cache/sessions/lab%2Fpc01~*/session
start_server
grep -q "session lab/pc01 could not be reopened" server.log || fail "no message for the unreopenable session: $(cat server.log)"
expect_output_contains "has ended" qemu-io -f raw "$(uri lab/pc01)" -c 'read 0 4k'
expect_exit 1 nbdinfo "$(uri lab/pc01)"
grep -q "export 'lab/pc01'.*has ended.*boots again" server.log || fail "the refusal is not logged: $(tail -5 server.log)"
pass "a client whose session ended gets a refusal naming why, not a new disk"

# Two servers on one cache directory: the second is refused.
expect_exit 2 "$BOOTSRV" serve --listen 127.0.0.1:$(free_port)
expect_contains "another bootsrv uses this cache directory"
pass "a second bootsrv on the same cache directory is refused"
stop_server
