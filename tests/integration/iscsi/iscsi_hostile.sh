#!/usr/bin/env bash
# Hostile initiators (iscsi_hostile.py, raw sockets) against bootsrv: the
# protocol's answer to each, bootsrv alive and serving after every one, and
# what its log says about them.
source "$(dirname "$0")/iscsi_lib.sh"
make_image lab v1.raw
master_sum
start_server
$PY "$HERE/iscsi_hostile.py" $ISCSI_PORT $PREFIX || fail "hostile initiators (above); bootsrv log: $(tail -20 server.log)"
alive
grep -q "key MaxBurstLength sent twice" server.log || fail "the repeated key is not named in the log: $(grep -i twice server.log)"
grep -q "header digest error" server.log || fail "the header digest error is not in the log"
master_unchanged
pass "after the hostile initiators: bootsrv alive, version file unchanged"
stop_server
