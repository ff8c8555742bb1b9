#!/usr/bin/env bash
# RFC 2347/2348/2349/7440 and hostile peers over raw UDP (tftp_rfc.py),
# then a normal tftp-hpa get: the server keeps serving.
source "$(dirname "$0")/tftp_lib.sh"
start_server 127.0.0.1
timeout 240 $PY "$(dirname "$0")/tftp_rfc.py" 127.0.0.1 "$TPORT" "$WORK/root" || fail "tftp_rfc.py: $(tail -20 server.log)"
alive
tftp_get 127.0.0.1 undionly.kpxe got && cmp got root/undionly.kpxe || fail "a normal get after the hostile cases"
grep -q "ERROR 5 to 127.0.0.1" server.log || fail "no ERROR 5 logged"
pass "a normal tftp get after every hostile case"
stop_server
