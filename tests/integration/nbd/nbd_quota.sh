# Write cache quotas over NBD: bootsrv's cache_quota for every session, a
# client's own quota from the registry over it. One session writes past its
# quota (ENOSPC, logged once) while another reads and writes without error.
source "$(dirname "$0")/nbd_lib.sh"

make_image lab v1.raw
"$IMGTOOL" client add 52:54:00:00:00:01 --name big --image lab --cache-quota 8M >/dev/null
expect_exit 0 "$IMGTOOL" client list --json
assert_eq "$(json '[c["cache_quota"] for c in j]' <<<"$OUT")" "[8388608]" "the client's quota in the registry"
expect_exit 2 "$IMGTOOL" client set big --cache-quota lots
expect_contains "--cache-quota"
expect_exit 2 "$IMGTOOL" client add 52:54:00:00:00:02 --image lab --cache-quota 0
expect_contains "above 0"

start_server --cache-quota 1M --cache-reserve 512K
/usr/bin/python3 - "$PORT" <<'EOF2' || fail "quota"
import errno, nbd, sys
port = int(sys.argv[1])
small = nbd.NBD(); small.connect_uri(f"nbd://127.0.0.1:{port}/lab/small")
big = nbd.NBD(); big.connect_uri(f"nbd://127.0.0.1:{port}/lab/big")
other = nbd.NBD(); other.connect_uri(f"nbd://127.0.0.1:{port}/lab/other")
def write(h, off, n=65536, byte=1):
    try:
        h.pwrite(bytes([byte]) * n, off)
        return 0
    except nbd.Error as e:
        return e.errno
failed = {"small": 0, "big": 0}
for i in range(40):  # 2.5 MiB each
    for name, h in (("small", small), ("big", big)):
        if write(h, i << 16) in (errno.ENOSPC, "ENOSPC"): failed[name] += 1
    # The other session meanwhile: writes, flushes and reads, no error.
    assert write(other, (i % 8) << 16, byte=i) == 0, "the other session got an error"
    other.flush()
    assert other.pread(65536, (i % 8) << 16) == bytes([i]) * 65536
assert failed == {"small": 24, "big": 0}, failed  # 1 MiB: 16 writes fit
assert write(small, 0, byte=9) == 0, "a rewrite within the quota failed"
assert small.pread(4096, 0) == b"\x09" * 4096
EOF2
alive
assert_eq "$(grep -c 'session lab/small: its write cache quota of 1048576 bytes is used up' server.log)" 1 "quota message (once)"
! grep -q "session lab/big: its write cache quota" server.log || fail "the client's own quota was not used"
pass "past its quota a session gets ENOSPC, logged once; a client's own quota wins; others keep writing"
stop_server
