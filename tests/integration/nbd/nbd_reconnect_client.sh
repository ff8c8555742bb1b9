#!/usr/bin/env bash
# bootfleet-nbd-client (client/nbd_client.cc) without a kernel to attach to:
# its handshake against bootsrv (--probe: NBD_OPT_GO, the same code a
# reconnect runs),
# the refusals it must see as refusals (an unknown export, a session that
# ended, a port nobody listens on), its wrong arguments, and, as the
# initramfs hook's $NBDCLIENT, that it passes nbd-client's failure on and
# starts no daemon. The reconnect itself (netlink, a real /dev/nbd0) is
# tests/e2e/boot_restart.sh's.
source "$(dirname "$0")/nbd_lib.sh"
CLIENT=${BOOTFLEET_NBD_CLIENT_BINARY:?set BOOTFLEET_NBD_CLIENT_BINARY to the bootfleet-nbd-client binary}

make_image lab v1.raw
start_server --idle-timeout 1s

expect_exit 0 "$CLIENT" --help
expect_contains "--probe HOST -N EXPORT [PORT]"
expect_contains "bootfleet.nbd.dead=SECONDS"

# A named session's export, as a PC's initramfs names it.
expect_exit 0 "$CLIENT" --probe 127.0.0.1 -N lab/pc01 "$PORT"
assert_eq "$OUT" "127.0.0.1:$PORT export 'lab/pc01': $(nbdinfo --size "$(uri lab/pc01)") bytes" "--probe of lab/pc01"
grep -q "session lab/pc01 started on lab@1" server.log || fail "the probe did not reach lab/pc01's session: $(tail -5 server.log)"
pass "--probe negotiates lab/pc01 with bootsrv (fixed newstyle, NBD_OPT_GO) and reads its size as nbdinfo does"

# Refusals: no such image; the session ended (idle for 1 s); nobody there.
expect_exit 1 "$CLIENT" --probe 127.0.0.1 -N nosuch/pc01 "$PORT"
expect_contains "export 'nosuch/pc01': refused (NBD_REP_ERR_UNKNOWN): "
expect_contains "nosuch"
# Housekeeping ends lab/pc01 a little after its 1 s idle timeout.
for _ in $(seq 1 150); do grep -q "session lab/pc01 expired after idling" server.log && break; sleep 0.1; done
grep -q "session lab/pc01 expired after idling" server.log || fail "lab/pc01 did not end after its idle timeout: $(tail -5 server.log)"
expect_exit 1 "$CLIENT" --probe 127.0.0.1 -N lab/pc01 "$PORT"
# bootsrv's reason reaches the PC's log: the session ended, reboot.
expect_contains "export 'lab/pc01': refused (NBD_REP_ERR_UNKNOWN): "
expect_contains "has ended"
grep -q "export 'lab/pc01'.*has ended" server.log || fail "bootsrv did not refuse the ended session: $(tail -5 server.log)"
expect_exit 1 "$CLIENT" --probe 127.0.0.1 -N lab/pc01 "$(free_port)"
expect_contains "Connection refused"
pass "an unknown export, an ended session (with bootsrv's reason) and a closed port are refusals (exit 1), never a disk"

# Wrong arguments: exit 2, saying what is missing.
expect_exit 2 "$CLIENT"
expect_contains "expected HOST [PORT] /dev/nbdN"
expect_exit 2 "$CLIENT" 127.0.0.1 10809 /dev/nbd0
expect_contains "no export name (-N NAME)"
expect_exit 2 "$CLIENT" 127.0.0.1 -N lab/pc01 10809 /dev/sda
expect_contains "'/dev/sda' is not /dev/nbdN"
expect_exit 2 "$CLIENT" 127.0.0.1 -N
expect_contains "option -N needs a value"
expect_exit 2 "$CLIENT" --probe 127.0.0.1 -N lab/pc01 10809 /dev/nbd0
expect_contains "--probe takes HOST [PORT]"
pass "wrong arguments exit 2 and name what is wrong"

# As $NBDCLIENT: nbd-client runs with the very arguments; its failure is
# ours, and no watcher stays behind.
cat > fake-nbd-client <<'EOF'
#!/bin/sh
echo "$@" > fake.args
exit 3
EOF
chmod +x fake-nbd-client
set +e
BOOTFLEET_NBD_CLIENT=$PWD/fake-nbd-client "$CLIENT" 127.0.0.1 -N lab/pc01 10809 /dev/nbd0 -swap -persist -systemd-mark
rc=$?
set -e
assert_eq "$rc" 3 "exit status when nbd-client fails"
assert_eq "$(cat fake.args)" "127.0.0.1 -N lab/pc01 10809 /dev/nbd0 -swap -persist -systemd-mark" "nbd-client's arguments"
pgrep -f "^@.*nbd-client 127.0.0.1 -N lab/pc01" >/dev/null && fail "a watcher was left running after nbd-client failed"
BOOTFLEET_NBD_CLIENT=$PWD/nosuch expect_exit 127 "$CLIENT" 127.0.0.1 -N lab/pc01 10809 /dev/nbd0
expect_contains "cannot run $PWD/nosuch"
pass "as \$NBDCLIENT it runs nbd-client with the hook's arguments and passes its failure on (3, 127)"
stop_server
