#!/usr/bin/env bash
# Real initiators against bootsrv's iSCSI target: libiscsi's tools
# (discovery, INQUIRY, READ CAPACITY 16), QEMU's initiator (convert,
# write/read/flush/discard, reconnect, header digests), the same named
# session over NBD, a read-only version target, CHAP one-way and mutual,
# and the refusals (wrong secret, unknown target) with what the log says.
source "$(dirname "$0")/iscsi_lib.sh"
make_image lab v1.raw
master_sum
start_server
"$IMGTOOL" export lab@1 export.raw --to raw >/dev/null
SIZE=$(stat -c %s export.raw)

expect_exit 0 iscsi-ls -s "iscsi://127.0.0.1:$ISCSI_PORT"
expect_contains "Target:$PREFIX:lab Portal:127.0.0.1:$ISCSI_PORT,1"
expect_contains "Lun:0    Type:DIRECT_ACCESS (Size:64M)"
grep -q "logged in (discovery)" server.log || fail "no discovery login in the log: $(tail server.log)"
pass "iscsi-ls: SendTargets discovery lists $PREFIX:lab with its LUN 0"

expect_exit 0 iscsi-inq "$(iurl lab)"
expect_contains "Peripheral Device Type:DIRECT_ACCESS"
expect_contains "Vendor:BOOTFLT"
# VPD 0x80 (unit serial number): stable per export, different between exports.
# (iscsi-inq reads the page code in decimal.)
serial() { iscsi-inq -e 1 -c 128 "$(iurl "$1")" | grep 'Unit Serial Number:\[.' || fail "no unit serial number for $1"; }
s1=$(serial lab:pc01); s2=$(serial lab:pc01); s3=$(serial lab:pc02)
assert_eq "$s2" "$s1" "VPD 0x80 of lab:pc01 on two logins"
[ "$s1" != "$s3" ] || fail "lab:pc01 and lab:pc02 have the same unit serial number: $s1"
expect_exit 0 iscsi-inq -e 1 -c 131 "$(iurl lab:pc01)"
expect_contains "Designator:[$PREFIX:lab:pc01]"
expect_contains "Designator Type:(3) NAA"
pass "iscsi-inq: a direct-access disk, its VPD 0x80 stable per session and distinct between sessions, VPD 0x83"

expect_exit 0 iscsi-readcapacity16 "$(iurl lab:version:1)"
expect_contains "Total size:$SIZE"
expect_contains "LOGICAL BLOCK LENGTH IN BYTES:512"
pass "iscsi-readcapacity16: $SIZE bytes in 512-byte blocks, as imgtool export writes"

qemu-img convert -f raw -O raw "$(iurl lab)" anon.raw
cmp anon.raw export.raw || fail "qemu-img convert of the anonymous target differs from imgtool export"
qemu-img convert -f raw -O raw "$(iurl lab:version:active)" active.raw
cmp active.raw export.raw || fail "qemu-img convert of lab:version:active differs from imgtool export"
pass "qemu-img convert of the anonymous and version:active targets equals imgtool export"

# QEMU asks for header digests when told to; the log says they are in force.
qemu-img convert --image-opts -O raw \
  "driver=iscsi,transport=tcp,portal=127.0.0.1:$ISCSI_PORT,target=$PREFIX:lab:version:1,lun=0,header-digest=crc32c" digest.raw
cmp digest.raw export.raw || fail "qemu-img convert with header digests differs"
grep -q "target $PREFIX:lab:version:1: logged in.*header digest" server.log || fail "no login with header digests in the log"
pass "qemu-img convert with CRC32C header digests"

# A named session: writes, zeroes, discard, flush; back after a reconnect.
qemu-io -f raw "$(iurl lab:pc01)" -c 'write -P 0xab 1M 64k' -c 'write -z 40M 1M' -c 'discard 8M 64k' \
  -c 'write -P 0xcd 512 4096' -c 'write -P 0xee 3M 3M' -c flush > io.txt 2>&1 || fail "qemu-io writes: $(cat io.txt)"
grep -q -i "error\|failed" io.txt && fail "qemu-io writes: $(cat io.txt)"
qemu-io -f raw -r "$(iurl lab:pc01)" -c 'read -P 0xab 1M 64k' -c 'read -P 0 40M 1M' -c 'read -P 0 8M 64k' \
  -c 'read -P 0xcd 512 4096' -c 'read -P 0xee 3M 3M' > io2.txt 2>&1 || fail "reconnect: $(cat io2.txt)"
grep -q -i "verification failed\|error" io2.txt && fail "read back after a reconnect: $(cat io2.txt)"
qemu-io -f raw -r "$(iurl lab:pc02)" -c 'read -P 0xab 1M 64k' > io3.txt 2>&1 || true
grep -q "Pattern verification failed" io3.txt || fail "lab:pc02 sees lab:pc01's writes: $(cat io3.txt)"
qemu-io -f raw -r "$(iurl lab)" -c 'read -P 0xab 1M 64k' > io4.txt 2>&1 || true
grep -q "Pattern verification failed" io4.txt || fail "an anonymous session sees lab:pc01's writes"
pass "qemu-io in a named session: write, write -z, discard, flush; back after a reconnect, not seen by other sessions"

# The same session over NBD (export lab/pc01) sees the iSCSI writes, and the
# other way round.
qemu-io -f raw -r "nbd://127.0.0.1:$PORT/lab/pc01" -c 'read -P 0xab 1M 64k' -c 'read -P 0 40M 1M' \
  -c 'read -P 0xcd 512 4096' > nbd1.txt 2>&1 || fail "NBD read of lab/pc01: $(cat nbd1.txt)"
grep -q -i "verification failed" nbd1.txt && fail "NBD does not see the iSCSI writes: $(cat nbd1.txt)"
qemu-io -f raw "nbd://127.0.0.1:$PORT/lab/pc01" -c 'write -P 0x5a 20M 128k' -c flush > nbd2.txt 2>&1 ||
  fail "NBD write to lab/pc01: $(cat nbd2.txt)"
qemu-io -f raw -r "$(iurl lab:pc01)" -c 'read -P 0x5a 20M 128k' -c 'read -P 0xab 1M 64k' > io5.txt 2>&1 ||
  fail "iSCSI read of lab:pc01: $(cat io5.txt)"
grep -q -i "verification failed" io5.txt && fail "iSCSI does not see the NBD write: $(cat io5.txt)"
pass "one named session over iSCSI and NBD: each sees the other's writes"

# The read-only version target: QEMU refuses to open it read-write (it reads
# the WP bit with MODE SENSE), and libiscsi's ReadOnly family checks that
# every write is refused with DATA PROTECT.
expect_exit 1 qemu-io -f raw "$(iurl lab:version:1)" -c 'write -P 1 0 4k'
expect_contains "write protected"
timeout 120 iscsi-test-cu --dataloss --test=SCSI.ReadOnly "$(iurl lab:version:1)" > ro.txt 2>&1 || true
read -r ran passed failed < <($CU_REPORT summary ro.txt) || fail "SCSI.ReadOnly: $(tail ro.txt)"
[ "$ran" -ge 1 ] && [ "$failed" -eq 0 ] || fail "SCSI.ReadOnly against lab:version:1: $($CU_REPORT list ro.txt)"
# The family skips, saying so, on a target without the WP bit; what it may
# skip here are only commands bootsrv does not implement (ORWRITE).
! grep -q "not write-protected" ro.txt || fail "SCSI.ReadOnly finds lab:version:1 not write protected: $(cat ro.txt)"
asserts=$(awk '/asserts/ {print $3}' ro.txt)
[ "${asserts:-0}" -ge 10 ] || fail "SCSI.ReadOnly checked only ${asserts:-0} things: $(cat ro.txt)"
pass "lab:version:1 is write protected: MODE SENSE WP (QEMU refuses read-write), writes get DATA PROTECT ($passed of $ran)"

alive
master_unchanged
pass "the version file is unchanged (sha256, imgtool verify)"

# A target that does not exist: refused as such, named in the log.
expect_exit 10 iscsi-inq "$(iurl nosuchimage)"
expect_contains "Target not found"
grep -q "target '$PREFIX:nosuchimage'" server.log || fail "the log does not name the unknown target: $(tail -3 server.log)"
pass "an unknown target: login refused (target not found), named in the log"
stop_server

# CHAP. pc02 proves itself (one-way); pc03 proves itself and bootsrv proves
# itself back (mutual); everyone else logs in without CHAP.
SECRET2=pc02-secret-0123 SECRET3=pc03-secret-4567 TSECRET=bootsrv-proves-89ab WRONG=not-the-secret-xyz
printf '# clients with CHAP\npc02 pc02user %s\npc03 pc03user %s bootsrv %s\n' $SECRET2 $SECRET3 $TSECRET > chap.secrets
chmod 600 chap.secrets
printf 'iscsi:\n  chap_secrets: %s\n' "$PWD/chap.secrets" > chap.yaml
start_server --config chap.yaml
chapurl() { echo "iscsi://$1@127.0.0.1:$ISCSI_PORT/$PREFIX:$2/0"; }

expect_exit 0 iscsi-inq "$(chapurl pc02user%$SECRET2 lab:pc02)"
expect_contains "Vendor:BOOTFLT"
pass "one-way CHAP with the right secret"
expect_exit 10 iscsi-inq "$(chapurl pc02user%$WRONG lab:pc02)"
expect_contains "Login Failed"
expect_exit 10 iscsi-inq "$(iurl lab:pc02)"
expect_contains "Login Failed"
grep -q "127.0.0.1:[0-9]*.*target $PREFIX:lab:pc02.*login refused (status 0x0201)" server.log ||
  fail "a wrong CHAP secret is not logged as refused (0x0201) with the peer: $(tail -5 server.log)"
pass "a wrong secret and no secret are refused (authentication failure), logged with the peer"

export LIBISCSI_CHAP_TARGET_USERNAME=bootsrv LIBISCSI_CHAP_TARGET_PASSWORD=$TSECRET
expect_exit 0 iscsi-inq "$(chapurl pc03user%$SECRET3 lab:pc03)"
expect_contains "Vendor:BOOTFLT"
grep -q "target $PREFIX:lab:pc03: logged in" server.log || fail "pc03 not logged in: $(tail -3 server.log)"
# An initiator expecting another target secret refuses bootsrv's proof.
LIBISCSI_CHAP_TARGET_PASSWORD=$WRONG expect_exit 10 iscsi-inq "$(chapurl pc03user%$SECRET3 lab:pc03)"
expect_exit 10 iscsi-inq "$(chapurl pc03user%$WRONG lab:pc03)"
unset LIBISCSI_CHAP_TARGET_USERNAME LIBISCSI_CHAP_TARGET_PASSWORD
pass "mutual CHAP: both prove their secrets; a wrong target secret fails the initiator's check, a wrong initiator secret is refused"

expect_exit 0 iscsi-inq "$(iurl lab:pc01)"
pass "a client without a CHAP line logs in without CHAP"
assert_eq "$(serial lab:pc01)" "$s1" "VPD 0x80 of lab:pc01 after a restart of bootsrv"
pass "a session's unit serial number survives a restart of bootsrv (Windows sees the same disk)"
alive
for s in $SECRET2 $SECRET3 $TSECRET $WRONG; do
  ! grep -qF -- "$s" server.log || fail "the log contains a secret: $(grep -F -- "$s" server.log)"
done
pass "no secret, right or wrong, in the log"
stop_server
