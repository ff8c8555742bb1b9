# Maintenance sessions with real peers: pc01 in maintenance on lab@1 writes
# through NBD (qemu-io, nbdsh: writes, TRIM, WRITE_ZEROES), "reboots" (its
# boot script fetched again), bootsrv is killed and restarted, and its
# writes are still there; a commit while it is connected is refused; a
# commit killed with SIGKILL (in bootsrv, and in imgtool on its own) leaves
# no version and the session intact; the commit through the control API
# makes lab@2, checked from outside with qemu-img compare against the same
# operations applied to a copy of lab@1, trimmed and zeroed ranges zeros.
# Bad input: no session, a second start, unknown image, client, version.
source "$(dirname "$0")/nbd_lib.sh"
trap 'kill -9 ${SERVER:-0} 2>/dev/null || true; [ -z "${HOLDER:-}" ] || kill -9 $HOLDER 2>/dev/null || true; rm -rf "$WORK"' EXIT

make_image lab v1.raw
# Artifacts as a build keeps them: the linux boot path needs them, and the
# commit must carry them over.
ART=$BOOTFLEET_STORE/images/lab/0001.artifacts
mkdir -p "$ART" && echo kernel > "$ART/vmlinuz" && echo initrd > "$ART/initrd.img"
"$IMGTOOL" client add 52:54:00:00:00:01 --name pc01 --image lab >/dev/null
"$IMGTOOL" client add 52:54:00:00:00:02 --name pc02 --image lab >/dev/null

# Bad input, each naming what exists.
expect_exit 2 "$IMGTOOL" maintenance commit lab -m x
expect_contains "lab has no maintenance session (no image has one)"
expect_exit 2 "$IMGTOOL" maintenance discard lab
expect_contains "lab has no maintenance session"
expect_exit 2 "$IMGTOOL" maintenance start nosuch --client pc01
expect_contains "no image 'nosuch'"; expect_contains "images: lab"
expect_exit 2 "$IMGTOOL" maintenance start lab --client pc09
expect_contains "no client 'pc09'"; expect_contains "pc01 (52:54:00:00:00:01)"
expect_exit 2 "$IMGTOOL" maintenance start lab --client pc01 --from lab@7
expect_contains "lab@7: no such version; versions: 1"
expect_exit 2 "$IMGTOOL" maintenance start lab --client pc01 --from other@1
expect_contains "starts from a version of lab"
expect_exit 2 "$IMGTOOL" maintenance bogus
expect_contains "not a maintenance subcommand"
pass "bad input refused, naming the images, clients and versions there are"

"$IMGTOOL" maintenance start lab --client pc01 --json > start.json
assert_eq "$(json 'j["client"], j["base"], j["session"]' < start.json)" "pc01 1 lab/pc01" "start --json"
expect_exit 2 "$IMGTOOL" maintenance start lab --client pc02
expect_contains "lab already has a maintenance session (pc01 on lab@1"
assert_eq "$("$IMGTOOL" maintenance status --json | json 'len(j), j[0]["image"]')" "1 lab" "status --json"
pass "one maintenance session per image: a second start is refused naming the first"

start_api_bootsrv "$BOOTFLEET_STORE"
export BOOTFLEET_SERVER=$URL BOOTFLEET_TOKEN_FILE=$WORK/tokens
PORT=$NBD_PORT
boot() { curl -sf "$URL/boot/$1.ipxe" -o "$2" || fail "boot script of $1"; }
boot 52-54-00-00-00-01 pc01.ipxe
grep -qF "bootfleet.mode=maintenance" pc01.ipxe || fail "no bootfleet.mode=maintenance: $(cat pc01.ipxe)"
grep -qF "/artifacts/lab@1/vmlinuz" pc01.ipxe || fail "pc01 does not boot lab@1: $(cat pc01.ipxe)"
grep -qF "MAINTENANCE" pc01.ipxe || fail "the console line: $(cat pc01.ipxe)"
boot 52-54-00-00-00-02 pc02.ipxe
! grep -qF "maintenance" pc02.ipxe || fail "pc02 is not in maintenance: $(cat pc02.ipxe)"
pass "pc01's boot script says bootfleet.mode=maintenance; pc02's does not"

# Writes: data over data (1 MiB) and over zeros (40 MiB), TRIM over data
# (2 MiB) and over a write of its own (48 MiB), WRITE_ZEROES over data (3 MiB).
qemu-io -f raw "$(uri lab/pc01)" -c 'write -P 0xa1 1M 64k' -c 'write -P 0xb2 40M 1M' -c flush >/dev/null
/usr/bin/python3 - "$(uri lab/pc01)" <<'PYEOF'
import nbd, sys
h = nbd.NBD(); h.connect_uri(sys.argv[1])
h.pwrite(b"\xc3" * 65536, 48 << 20)
h.trim(512 * 1024, 2 << 20)
h.trim(65536, 48 << 20)
h.zero(256 * 1024, 3 << 20)
h.flush()
h.shutdown()
PYEOF
cp v1.raw expected.raw
printf '\xa1%.0s' $(seq 1 65536) | dd of=expected.raw bs=1M seek=1 conv=notrunc status=none
dd if=/dev/zero bs=1M count=1 status=none | tr '\0' '\262' | dd of=expected.raw bs=1M seek=40 conv=notrunc status=none
dd if=/dev/zero of=expected.raw bs=1K count=512 seek=2048 conv=notrunc status=none
dd if=/dev/zero of=expected.raw bs=1K count=256 seek=3072 conv=notrunc status=none
nbdcopy "$(uri lab/pc01)" pc01.raw
truncate -s "$(stat -c %s pc01.raw)" expected.raw  # the image's size is whole CHS cylinders
cmp pc01.raw expected.raw || fail "the session does not read as lab@1 with pc01's writes"

# A reboot (boot script fetched again) and a restart of bootsrv by SIGKILL keep it.
boot 52-54-00-00-00-01 pc01.ipxe
kill -9 $SERVER; wait $SERVER 2>/dev/null || true
start_api_bootsrv "$BOOTFLEET_STORE"; PORT=$NBD_PORT; export BOOTFLEET_SERVER=$URL
grep -q "session lab/pc01 reopened on lab@1" server.log || fail "not reopened: $(cat server.log)"
boot 52-54-00-00-00-01 pc01.ipxe
grep -qF "bootfleet.mode=maintenance" pc01.ipxe || fail "after the restart: $(cat pc01.ipxe)"
nbdcopy "$(uri lab/pc01)" pc01.raw
cmp pc01.raw expected.raw || fail "pc01's writes did not survive a reboot and kill -9 of bootsrv"
pass "pc01's maintenance writes survive its reboot and SIGKILL of bootsrv"

"$IMGTOOL" maintenance status lab --json > status.json
assert_eq "$(json 'j[0]["booted"], j[0]["connections"], j[0]["cache_bytes"] > 1000000' < status.json)" \
  "True 0 True" "status --server: booted, connections, cache bytes"

# Connected: refused, naming why.
/usr/bin/python3 - "$(uri lab/pc01)" <<'PYEOF' &
import nbd, sys, time
h = nbd.NBD(); h.connect_uri(sys.argv[1])
open("held", "w").close()
time.sleep(60)
PYEOF
HOLDER=$!
for _ in $(seq 1 100); do [ -e held ] && break; sleep 0.1; done
expect_exit 2 "$IMGTOOL" maintenance commit lab -m "too early"
expect_contains "pc01 is still connected to its maintenance session lab/pc01 (1 connections"
expect_contains "--force"
kill $HOLDER; wait $HOLDER 2>/dev/null || true; HOLDER=
for _ in $(seq 1 50); do
  [ "$("$IMGTOOL" maintenance status lab --json | json 'j[0]["connections"]')" = 0 ] && break; sleep 0.1
done
pass "a commit while pc01 is connected is refused (HTTP 409) saying so"

# SIGKILL of bootsrv inside the commit's catalog transaction: no version, session intact.
kill -TERM $SERVER; wait $SERVER || true
BOOTFLEET_CRASH_AT=import:before-commit start_api_bootsrv "$BOOTFLEET_STORE"; PORT=$NBD_PORT; export BOOTFLEET_SERVER=$URL
expect_exit 2 "$IMGTOOL" maintenance commit lab -m "killed"
wait $SERVER 2>/dev/null || true
start_api_bootsrv "$BOOTFLEET_STORE"; PORT=$NBD_PORT; export BOOTFLEET_SERVER=$URL
assert_eq "$(BOOTFLEET_SERVER= "$IMGTOOL" versions lab --json | json 'len(j)')" 1 "versions after a killed commit"
[ -z "$(ls "$BOOTFLEET_STORE/tmp")" ] || fail "leftovers in tmp/: $(ls "$BOOTFLEET_STORE/tmp")"
nbdcopy "$(uri lab/pc01)" pc01.raw
cmp pc01.raw expected.raw || fail "the session changed after a killed commit"
# And imgtool committing on its own (no bootsrv), killed after writing the file.
kill -TERM $SERVER; wait $SERVER || true
expect_exit 137 env BOOTFLEET_SERVER= BOOTFLEET_CRASH_AT=import:after-rename "$IMGTOOL" maintenance commit lab -m killed
assert_eq "$(BOOTFLEET_SERVER= "$IMGTOOL" versions lab --json | json 'len(j)')" 1 "versions after a killed local commit"
assert_eq "$(BOOTFLEET_SERVER= "$IMGTOOL" maintenance status --json | json 'j[0]["client"]')" pc01 "the session's record"
start_api_bootsrv "$BOOTFLEET_STORE"; PORT=$NBD_PORT; export BOOTFLEET_SERVER=$URL
grep -q "session lab/pc01 reopened on lab@1" server.log || fail "not reopened after the killed commits: $(cat server.log)"
nbdcopy "$(uri lab/pc01)" pc01.raw
cmp pc01.raw expected.raw || fail "the session changed after a killed local commit"
pass "a commit killed with SIGKILL (bootsrv's, imgtool's) leaves no version and the session intact"

# Local commit with bootsrv running: refused, pointing at --server.
expect_exit 2 env BOOTFLEET_SERVER= "$IMGTOOL" maintenance commit lab -m x
expect_contains "a bootsrv is running on"

"$IMGTOOL" maintenance commit lab -m "installed things" > commit.out; cat commit.out
grep -qE "committed pc01's maintenance session on @1 as lab@2 \(on @1\): .* stored" commit.out || fail "commit: $(cat commit.out)"
"$IMGTOOL" versions lab --json > versions.json
assert_eq "$(json 'j[1]["source"], j[1]["message"], j[1]["parent"], j[1]["created_by"]' < versions.json)" \
  "maintenance on pc01 from lab@1 installed things 1 api:ci" "lab@2's record"
STORED=$(json 'j[1]["stored_bytes"]' < versions.json)
# 64 KiB + 1 MiB written, 512 KiB trimmed and 256 KiB zeroed over data; the
# 64 KiB written and trimmed again at 48 MiB is as lab@1 was there: nothing.
assert_eq "$STORED" $(( (64 + 1024 + 512 + 256) * 1024 )) "bytes lab@2 stores"
"$IMGTOOL" export lab@2 v2.raw --to raw --store "$BOOTFLEET_STORE" >/dev/null
qemu-img compare -f raw -F raw v2.raw expected.raw || fail "lab@2 is not lab@1 with pc01's writes"
qemu-io -f raw -r "$(uri lab@2)" -c 'read -P 0 2M 512k' -c 'read -P 0 3M 256k' -c 'read -P 0 48M 64k' |
  grep -c "^read" | grep -qx 3 || fail "trimmed or zeroed ranges of lab@2 do not read as zeros"
"$IMGTOOL" verify lab@2 --store "$BOOTFLEET_STORE" >/dev/null || fail "lab@2 does not verify"
cmp "$BOOTFLEET_STORE/images/lab/0002.artifacts/vmlinuz" "$ART/vmlinuz" || fail "lab@2 lacks lab@1's kernel"
assert_eq "$("$IMGTOOL" maintenance status --json | json 'len(j)')" 0 "maintenance sessions after the commit"
pass "commit: lab@2 is lab@1 plus exactly pc01's writes ($STORED bytes stored), zeros where it trimmed, verified"

boot 52-54-00-00-00-01 pc01.ipxe
! grep -qF "maintenance" pc01.ipxe || fail "pc01 still in maintenance after the commit: $(cat pc01.ipxe)"
grep -qF "bootfleet.version=1" pc01.ipxe || fail "pc01 should boot the active lab@1 (lab@2 not published): $(cat pc01.ipxe)"
pass "after the commit pc01 boots ordinarily, the active version"

# The base of a session is never pruned: lab@2 (a leaf, not active) as base.
"$IMGTOOL" maintenance start lab --client pc02 --from lab@2 >/dev/null
BOOTFLEET_SERVER= "$IMGTOOL" prune lab --keep 0 > prune.out || true
grep -q "base of pc02's maintenance session" prune.out || fail "prune does not keep the base: $(cat prune.out)"
# pc02 booted before its maintenance session started: that session is not it.
expect_exit 2 "$IMGTOOL" maintenance commit lab -m nothing
expect_contains "session lab/pc02 (on lab@1) started before the maintenance session"
expect_exit 2 env BOOTFLEET_SERVER= "$IMGTOOL" maintenance status nosuch
expect_contains "no image 'nosuch'"
# The API's statuses: a second start 409, an unknown client 404, a bad body 400.
api() { curl -s -o api.out -w '%{http_code}' -H "Authorization: Bearer $(cat token)" "$@"; }
assert_eq "$(api -X POST -d '{"client":"pc01"}' "$URL/api/v1/images/lab/maintenance")" 409 "a second start"
grep -qF "lab already has a maintenance session (pc02" api.out || fail "409 body: $(cat api.out)"
assert_eq "$(api -X POST -d '{"client":"pc01"}' "$URL/api/v1/images/nosuch/maintenance")" 404 "an unknown image"
assert_eq "$(api -X POST -d '{"message":7}' "$URL/api/v1/images/lab/maintenance/commit")" 400 "a message that is a number"
grep -qF "'message' must be a string" api.out || fail "400 body: $(cat api.out)"
assert_eq "$(api -X PUT "$URL/api/v1/images/lab/maintenance")" 405 "PUT"
"$IMGTOOL" maintenance discard lab > discard.out
grep -qF "discarded pc02's maintenance session of lab@2" discard.out || fail "discard: $(cat discard.out)"
assert_eq "$("$IMGTOOL" maintenance status --json | json 'len(j)')" 0 "after discard"
assert_eq "$(api "$URL/api/v1/images/lab/maintenance")" 404 "GET of a session that was discarded"
pass "prune keeps a maintenance session's base; discard ends it; commit before its boot is refused"
stop_server
# Without a server: commit of a session that never booted says so.
"$IMGTOOL" client add 52:54:00:00:00:03 --name pc03 --image lab >/dev/null
"$IMGTOOL" maintenance start lab --client pc03 --store "$BOOTFLEET_STORE" >/dev/null
expect_exit 2 "$IMGTOOL" maintenance commit lab -m x --store "$BOOTFLEET_STORE"
expect_contains "pc03 has not booted in its maintenance session of lab@1 yet"
"$IMGTOOL" maintenance discard lab --store "$BOOTFLEET_STORE" >/dev/null
pass "local commit of a session not booted is refused; local discard"
