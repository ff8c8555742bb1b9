#!/usr/bin/env bash
# libiscsi's conformance suite (iscsi-test-cu --dataloss, every test) against
# bootsrv and against Debian's tgtd serving the same version as a raw file,
# in one run: both tallies, every test either fails or skips and why, and a
# failure when bootsrv fails a test tgt passes. Then the whole suite again
# with CRC32C header digests (through digest_proxy.py, since libiscsi's
# tools never ask for them), which must pass what the plain run passed.
# bootsrv is tested on a client's named session: the suite's writes go to
# its write cache and the version file must not change.
source "$(dirname "$0")/iscsi_lib.sh"
make_image lab v1.raw
master_sum
# The suite logs in and out hundreds of times from one address, and a
# connection that logged out holds its slot until its session's cache is
# synced: on a loaded machine more than the default 8 per address overlap.
printf 'limits:\n  iscsi_per_peer: 64\n' > limits.yaml
start_server --config limits.yaml
"$IMGTOOL" export lab@1 tgt.raw --to raw >/dev/null
start_tgtd "$PWD/tgt.raw"

# run_suite NAME URL: the whole suite, its output in cu_NAME.txt. A hung
# target (the suite waits forever on a dead connection) fails the test.
run_suite() {
  set +e
  timeout 400 iscsi-test-cu --dataloss --test=ALL "$2" > "cu_$1.txt" 2>&1
  local rc=$?
  set -e
  [ $rc -ne 124 ] || fail "iscsi-test-cu against $1 did not finish in 400 s: $(tail -5 "cu_$1.txt")"
  [ $rc -lt 128 ] || fail "iscsi-test-cu against $1 died of signal $(( rc - 128 )): $(tail -5 "cu_$1.txt")"
  $CU_REPORT summary "cu_$1.txt" > /dev/null || fail "iscsi-test-cu against $1 gave no summary: $(tail -20 "cu_$1.txt")"
}
report() { # NAME
  read -r ran passed failed < <($CU_REPORT summary "cu_$1.txt")
  echo "== $1: $passed of $ran tests passed, $failed failed; failures and skips:"
  $CU_REPORT list "cu_$1.txt"
}

run_suite bootsrv "$(iurl lab:pc01)"
alive
run_suite tgt "iscsi://127.0.0.1:$TGT_PORT/iqn.2026-11.test:tgt/1"
report bootsrv
report tgt
$CU_REPORT regressions cu_bootsrv.txt cu_tgt.txt > regressions.txt ||
  fail "bootsrv fails tests tgt passes:
$(cat regressions.txt)"
read -r ran passed _ < <($CU_REPORT summary cu_tgt.txt)
[ "$ran" -ge 200 ] || fail "only $ran tests ran against tgt: is the suite complete? $(tail -20 cu_tgt.txt)"
pass "bootsrv passes every test tgt passes ($($CU_REPORT summary cu_bootsrv.txt | cut -d' ' -f2) vs $passed of $ran)"

# The families the issue names: every test in them passes against bootsrv.
$CU_REPORT passed cu_bootsrv.txt > passed.txt
for family in iSCSIcmdsn iSCSIdatasn iSCSIResiduals iSCSITMF; do
  grep -q "^$family\." passed.txt || fail "no test of $family passed against bootsrv"
  $CU_REPORT list cu_bootsrv.txt | grep "FAILED  $family\." && fail "$family has failures against bootsrv"
done
pass "iSCSIcmdsn, iSCSIdatasn, iSCSIResiduals and iSCSITMF pass against bootsrv"

# Header digests, the whole suite again.
PROXY_PORT=$(free_port)
$PY "$HERE/digest_proxy.py" $PROXY_PORT $ISCSI_PORT digest.counts > proxy.log 2>&1 &
PROXY=$!
EXTRA_PIDS=$PROXY
for _ in $(seq 1 100); do grep -q relaying proxy.log && break; sleep 0.05; done
before=$(grep -c ', header digest' server.log || true)
run_suite bootsrv_digest "iscsi://127.0.0.1:$PROXY_PORT/$PREFIX:lab:pc01/0"
kill $PROXY; wait $PROXY 2>/dev/null || true
report bootsrv_digest
read -r offers accepted < digest.counts || fail "the digest relay saw no connection"
[ "$offers" -gt 0 ] && [ "$accepted" -ge "$offers" ] ||
  fail "header digests were offered on $offers logins and accepted on $accepted"
after=$(grep -c ', header digest' server.log || true)
[ $(( after - before )) -ge "$offers" ] || fail "bootsrv logged $(( after - before )) logins with header digests, expected $offers"
$CU_REPORT regressions cu_bootsrv_digest.txt cu_bootsrv.txt > regressions.txt ||
  fail "with header digests bootsrv fails tests it passes without:
$(cat regressions.txt)"
pass "with CRC32C header digests on all $offers logins, bootsrv passes what it passes without"

alive
master_unchanged
pass "the version file is unchanged after the suite's writes into the session (sha256, imgtool verify)"
stop_server
