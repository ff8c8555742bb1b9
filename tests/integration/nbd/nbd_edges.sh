#!/usr/bin/env bash
# Edge cases and hostile peers: each gets the protocol's answer, and the
# server keeps serving everyone else.
source "$(dirname "$0")/nbd_lib.sh"
make_image lab v1.raw
start_server

$PY - "$PORT" <<'PY' || fail "edge cases"
import errno, nbd, socket, struct, sys
port = int(sys.argv[1])
uri = lambda e: f"nbd://127.0.0.1:{port}/{e}"

def expect_errno(fn, want, what):
    try:
        fn()
    except nbd.Error as e:
        assert e.errno in (want, errno.errorcode[want]), f"{what}: errno {e.errno}, expected {errno.errorcode[want]} ({e})"
        return
    raise AssertionError(f"{what}: no error")

h = nbd.NBD()
h.set_strict_mode(0)          # let us send what a careless client would
h.connect_uri(uri("lab/edge"))
size = h.get_size()
expect_errno(lambda: h.pread(4096, size - 2048), errno.EINVAL, "read past the end")
expect_errno(lambda: h.pread(0, 0), errno.EINVAL, "zero-length read")
expect_errno(lambda: h.pread(64 << 20, 0) if size > (64 << 20) else h.pread(33 << 20, 0), errno.EINVAL, "oversized read")
expect_errno(lambda: h.pwrite(b"x" * 512, size), errno.ENOSPC, "write past the end")
h.pwrite(b"unaligned!", 1001)
assert h.pread(10, 1001) == b"unaligned!", "unaligned write/read"
h.shutdown()

ro = nbd.NBD(); ro.connect_uri(uri("lab@1"))
expect_errno(lambda: ro.pwrite(b"x" * 512, 0), errno.EPERM, "write to a read-only export")
ro.shutdown()

try:
    bad = nbd.NBD(); bad.connect_uri(uri("nosuch")); raise AssertionError("unknown export accepted")
except nbd.Error as e:
    assert "nosuch" in str(e) or "unknown" in str(e).lower(), e

def handshake(s, flags=3):
    hello = s.recv(18, socket.MSG_WAITALL)
    assert hello[:8] == b"NBDMAGIC" and hello[8:16] == b"IHAVEOPT", hello
    s.sendall(struct.pack(">I", flags))

def closed(s):
    """The server dropped us: EOF, or a reset when our bytes were unread."""
    try:
        return s.recv(100) == b""
    except ConnectionResetError:
        return True

OPT = 0x49484156454F5054
s = socket.create_connection(("127.0.0.1", port)); handshake(s)
s.sendall(struct.pack(">QII", OPT, 4242, 3) + b"abc")
magic, opt, rep, ln = struct.unpack(">QIII", s.recv(20, socket.MSG_WAITALL))
assert opt == 4242 and rep == 0x80000001, hex(rep)        # NBD_REP_ERR_UNSUP
s.recv(ln, socket.MSG_WAITALL)
name = b"lab/raw"
s.sendall(struct.pack(">QII", OPT, 1, len(name)) + name)    # EXPORT_NAME
s.recv(10, socket.MSG_WAITALL)                               # NO_ZEROES was asked
s.sendall(struct.pack(">IHHQQI", 0x25609513, 0, 99, 7, 0, 0)) # unknown command
magic, err, cookie = struct.unpack(">IIQ", s.recv(16, socket.MSG_WAITALL))
assert (magic, err, cookie) == (0x67446698, 22, 7), (hex(magic), err, cookie)
# Requests in flight, then gone.
for i in range(32):
    s.sendall(struct.pack(">IHHQQI", 0x25609513, 0, 0, i, i * 65536, 65536))
s.close()

# Hostile peers.
for junk in [b"\xff" * 300, b"", struct.pack(">Q", OPT)[:5]]:
    s = socket.create_connection(("127.0.0.1", port)); handshake(s); s.sendall(junk); s.close()
s = socket.create_connection(("127.0.0.1", port)); s.recv(10); s.close()   # handshake cut half way
s = socket.create_connection(("127.0.0.1", port)); handshake(s, flags=0)    # not fixed newstyle
assert closed(s); s.close()
s = socket.create_connection(("127.0.0.1", port)); handshake(s)
s.sendall(struct.pack(">QII", OPT, 1, len(name)) + name); s.recv(10, socket.MSG_WAITALL)
s.sendall(struct.pack(">IHHQQI", 0x25609513, 0, 1, 1, 0, 0xFFFFFFFF) + b"x" * 4096)  # 4 GiB write
s.settimeout(5)
assert closed(s), "a 4 GiB write must close the connection"
s.close()
s = socket.create_connection(("127.0.0.1", port)); handshake(s)
s.sendall(struct.pack(">QII", OPT, 7, 0xFFFFFFF0))             # absurd option length
s.settimeout(5); assert closed(s); s.close()
s = socket.create_connection(("127.0.0.1", port)); handshake(s)
s.sendall(struct.pack(">QII", OPT, 1, len(name)) + name); s.recv(10, socket.MSG_WAITALL)
s.sendall(b"\xde\xad\xbe\xef" + bytes(24))                    # bad request magic
s.settimeout(5); assert closed(s); s.close()

# Everyone else is still served.
ok = nbd.NBD(); ok.connect_uri(uri("lab@1")); assert len(ok.pread(65536, 0)) == 65536; ok.shutdown()
PY
alive
pass "past the end, zero-length, oversized, unaligned, read-only, unknown export/option/command, requests in flight, hostile bytes"

# A full cache disk: ENOSPC for that client, service for others.
stop_server
mkdir cache && mount -t tmpfs -o size=4M tmpfs cache || fail "cannot mount a tmpfs (root needed)"
trap 'kill -9 ${SERVER:-0} 2>/dev/null || true; umount "$WORK/cache" 2>/dev/null || true; rm -rf "$WORK"' EXIT
start_server --cache-dir "$WORK/cache"
$PY - "$PORT" <<'PY' || fail "ENOSPC"
import errno, nbd, sys, os
port = int(sys.argv[1])
h = nbd.NBD(); h.connect_uri(f"nbd://127.0.0.1:{port}/lab/full")
other = nbd.NBD(); other.connect_uri(f"nbd://127.0.0.1:{port}/lab@1")
got = None
for i in range(16):
    try:
        h.pwrite(os.urandom(1 << 20), i << 20)
    except nbd.Error as e:
        got = e.errno; break
assert got in (errno.ENOSPC, "ENOSPC"), f"expected ENOSPC, got {got}"
assert len(other.pread(1 << 20, 0)) == 1 << 20
assert len(h.pread(4096, 0)) == 4096      # the full client can still read
PY
alive
pass "a full cache disk gives ENOSPC to that client only"
stop_server
umount cache

# Publish while a session copies: the session keeps its version; new ones get the new one.
cp v1.raw v2.raw && dd if=/dev/urandom of=v2.raw bs=1M count=8 seek=10 conv=notrunc status=none
"$IMGTOOL" import lab v2.raw >/dev/null
start_server
qemu-io -f raw -r "$(uri lab/pinned)" -c 'read 0 4k' >/dev/null 2>&1   # session starts on @1
nbdcopy "$(uri lab/pinned)" during.raw & copy=$!
sleep 0.1
"$IMGTOOL" publish lab@2 >/dev/null
wait $copy || fail "nbdcopy failed during the publish"
"$IMGTOOL" export lab@1 v1-export.raw --to raw >/dev/null
cmp during.raw v1-export.raw || fail "the pinned session's data changed during a publish"
nbdcopy "$(uri lab/newcomer)" after.raw
"$IMGTOOL" export lab@2 v2-export.raw --to raw >/dev/null
cmp after.raw v2-export.raw || fail "a session started after the publish did not get @2"
grep -q "session lab/newcomer started on lab@2" server.log || fail "log: $(grep newcomer server.log)"
pass "publish during nbdcopy: the live session keeps @1, a new one gets @2"
stop_server

# A client that asks for a lot and never reads its replies: the others are
# still served, and SIGTERM still ends the server with exit 0 (shutting the
# read side frees a TCP send here; where it would not, the 10 s grace of
# util::ConnectionSet does, see its unit test).
start_server
$PY - "$PORT" > stuck.log 2>&1 <<'PY' &
import socket, struct, sys, time
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
s.recv(18, socket.MSG_WAITALL)
s.sendall(struct.pack(">I", 3))                                          # fixed newstyle, no zeroes
name = b"lab@1"
s.sendall(struct.pack(">QII", 0x49484156454F5054, 1, len(name)) + name)  # EXPORT_NAME
s.recv(10, socket.MSG_WAITALL)
for i in range(48):                                                      # 48 MiB asked for, never read
    s.sendall(struct.pack(">IHHQQI", 0x25609513, 0, 0, i, (i % 32) << 20, 1 << 20))
print("sent", flush=True)
time.sleep(120)
PY
stuck=$!
for _ in $(seq 1 100); do grep -q sent stuck.log && break; sleep 0.1; done
grep -q sent stuck.log || fail "the stuck client could not send its requests: $(cat stuck.log)"
nbdcopy "$(uri lab@1)" while-stuck.raw
cmp while-stuck.raw v1-export.raw || fail "another client was not served while one did not read"
start=$(date +%s)
stop_server
took=$(( $(date +%s) - start ))
kill $stuck 2>/dev/null || true
(( took <= 25 )) || fail "SIGTERM took ${took}s with a client that does not read"
pass "a client that never reads its replies: others served; SIGTERM exits 0 (${took}s)"
