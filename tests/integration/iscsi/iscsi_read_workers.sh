#!/usr/bin/env bash
# Large READs on the iSCSI connection's worker threads (iscsi.read_workers,
# lib/iscsi/connection.h) driven by real initiators on a disk of random
# bytes, so that every byte read is checked: QEMU's initiator converting
# with 16 requests in flight, then a raw-socket initiator (iscsi_inflight.py)
# pipelining READs of 4 KiB to 8 MiB and racing ABORT TASK, LUN RESET,
# Logout, RST and session reinstatement against READs in flight. The same
# convert with iscsi.read_workers: 0 (every command on the connection's
# thread), and a bad value refused naming the key.
source "$(dirname "$0")/iscsi_lib.sh"
head -c 64M /dev/urandom > v1.raw
"$IMGTOOL" import lab v1.raw --publish >/dev/null
"$IMGTOOL" export lab@1 export.raw --to raw >/dev/null
cmp -n "$(stat -c %s v1.raw)" v1.raw export.raw || fail "imgtool export differs from what was imported"
master_sum
start_server

# qemu-img convert reads in requests of up to 2 MiB; -m 16 keeps 16 in flight.
qemu-img convert -m 16 -W -f raw -O raw "$(iurl lab:version:1)" convert.raw || fail "qemu-img convert -m 16"
cmp convert.raw export.raw || fail "qemu-img convert -m 16 of lab:version:1 differs from imgtool export"
qemu-img convert -m 16 -W -f raw -O raw "$(iurl lab)" convert2.raw || fail "qemu-img convert -m 16 (anonymous)"
cmp convert2.raw export.raw || fail "qemu-img convert -m 16 of the anonymous target differs from imgtool export"
pass "qemu-img convert with 16 READs in flight (version and anonymous targets) equals imgtool export"

SEED=$RANDOM
echo "iscsi_inflight.py SEED=$SEED"
SEED=$SEED $PY "$HERE/iscsi_inflight.py" "$ISCSI_PORT" "$PREFIX" export.raw ||
  fail "READs in flight (above; rerun with SEED=$SEED); bootsrv log: $(tail -20 server.log)"
alive
! grep -q "connection failed" server.log || fail "a connection failed with an exception: $(grep 'connection failed' server.log)"
grep -q "task management function 1: response 0" server.log || fail "no ABORT TASK in the log"
grep -q "session reinstated" server.log || fail "no reinstatement in the log"
pass "READs in flight raced with ABORT TASK, LUN RESET, Logout, RST and reinstatement: answers whole, bootsrv serving"
stop_server
master_unchanged

printf 'iscsi:\n  read_workers: 0\n' > single.yaml
start_server --config single.yaml
qemu-img convert -m 16 -W -f raw -O raw "$(iurl lab:version:1)" single.raw || fail "qemu-img convert, read_workers 0"
cmp single.raw export.raw || fail "with iscsi.read_workers: 0, qemu-img convert differs from imgtool export"
pass "iscsi.read_workers: 0 (every READ on the connection's thread): qemu-img convert -m 16 equals imgtool export"
stop_server

printf 'iscsi:\n  read_workers: 99\n' > bad.yaml
expect_exit 2 "$BOOTSRV" serve --config bad.yaml --listen "127.0.0.1:$(free_port)"
expect_contains "iscsi.read_workers"
expect_contains "from 0"
pass "iscsi.read_workers: 99 is refused, naming the key and the range"
