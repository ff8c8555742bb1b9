#!/usr/bin/env bash
# Channels, groups, pins and scheduled publishes end to end, with curl on
# boot scripts and qemu-io/nbdinfo on the NBD exports they name: publish
# --channel test moves a test-group client to @2 while a production client
# stays on @1 (scripts and the bytes behind IMAGE/CLIENT); promote moves
# both; a client pin wins over its group; rollback per channel; the same
# through --server with --json and history naming api:ci; a scheduled
# publish fires once across a bootsrv SIGKILL and restart; unknown
# channels and groups are errors naming what exists; prune keeps what a
# channel, pin or schedule names. Clients boot by sanboot so imported disks
# (no kernel) do; seconds, no guest.
source "$(dirname "$0")/../lib.sh"
BOOTSRV=${BOOTSRV:?set BOOTSRV to the bootsrv binary}
SERVER=
trap '[ -n "$SERVER" ] && kill -9 $SERVER 2>/dev/null; rm -rf "$WORK"' EXIT
export BOOTFLEET_STORE=$WORK/store
"$IMGTOOL" init >/dev/null
# disk BYTE: an 8 MiB raw disk whose first 64 KiB are BYTE.
disk() { truncate -s 8M "d$1.raw"; $PY -c "import sys; sys.stdout.buffer.write(bytes([$1])*65536)" |
  dd of="d$1.raw" conv=notrunc status=none; echo "d$1.raw"; }
"$IMGTOOL" import lab "$(disk 1)" --publish >/dev/null
for n in 2 3 4; do "$IMGTOOL" import lab "$(disk $n)" >/dev/null; done
"$IMGTOOL" image set lab --boot-mode sanboot >/dev/null
"$IMGTOOL" client add 52:54:00:00:00:01 --name pc01 --image lab >/dev/null
"$IMGTOOL" client add 52:54:00:00:00:02 --name pc02 --image lab >/dev/null

# Bad input first: each error names what exists, and nothing changes.
expect_exit 2 "$IMGTOOL" client group add testers --image lab --channel tset
expect_contains "no channel 'tset'; channels: production, test"
expect_exit 2 "$IMGTOOL" client set pc02 --group testers
expect_contains "no group 'testers'; there is no group yet"
expect_exit 0 "$IMGTOOL" client group add testers --image lab --channel test --json
assert_eq "$(json '(j["name"], j["channel"], j["pin"])' <<<"$OUT")" "('testers', 'test', None)" "group add --json"
expect_exit 2 "$IMGTOOL" client set pc02 --group tester
expect_contains "no group 'tester'; groups: testers"
expect_exit 2 "$IMGTOOL" publish lab@2 --channel beta
expect_contains "no channel 'beta'; channels: production, test"
expect_exit 2 "$IMGTOOL" promote lab --from beta
expect_contains "channels: production, test"
expect_exit 2 "$IMGTOOL" promote lab --from test
expect_contains "channel 'test' has no version yet"
expect_exit 2 "$IMGTOOL" client set pc01 --pin 9
expect_contains "lab@9: no such version; versions: 1, 2, 3, 4"
expect_exit 2 "$IMGTOOL" publish lab@2 --at tomorrow
expect_contains "--at: 'tomorrow' is not a time"
expect_exit 2 "$IMGTOOL" client group rm nope
expect_contains "no group 'nope'; groups: testers"
expect_exit 0 "$IMGTOOL" client set pc02 --group testers
expect_contains "group testers"
expect_exit 2 "$IMGTOOL" client group rm testers
expect_contains "still has clients: pc02"
assert_eq "$("$IMGTOOL" channels lab --json | json '[(c["channel"], c["version"]) for c in j]')" \
  "[('production', 1), ('test', None)]" "channels before any test publish"
pass "unknown channels, groups, versions and times refused, naming what exists"

IQN=iqn.2026-11.org.bootfleet
ISCSI_PORT=$(free_port); NBD_PORT=$(free_port); HTTP_PORT=$(free_port)
TOKEN=ci-token-0123456789abcdef
printf 'ci %s\n' "$TOKEN" > tokens
echo "$TOKEN" > token
printf 'store: %s\nlisten: 127.0.0.1:%s\nhttp:\n  listen: 127.0.0.1:%s\napi_tokens: %s\niscsi:\n  listen: 127.0.0.1:%s\nheartbeat: 1s\n' \
  "$BOOTFLEET_STORE" "$NBD_PORT" "$HTTP_PORT" "$PWD/tokens" "$ISCSI_PORT" > bootsrv.yaml
start_bootsrv "listening for HTTP" serve --config bootsrv.yaml
BASE=http://127.0.0.1:$HTTP_PORT
# script MAC: the version pc0MAC's boot script names.
script() {
  curl -sf "$BASE/boot/52-54-00-00-00-0$1.ipxe" > "pc0$1.ipxe" || fail "pc0$1's script"
  sed -n 's/^echo bootfleet: booting lab@\([0-9]*\) as .*/\1/p' "pc0$1.ipxe"
}
# export_byte CLIENT BYTE: the session export lab/CLIENT reads as disk BYTE.
export_byte() {
  qemu-io -r -f raw "nbd://127.0.0.1:$NBD_PORT/lab/$1" -c "read -P $2 0 64k" > qemu-io.out 2>&1 ||
    fail "qemu-io on lab/$1: $(cat qemu-io.out)"
  ! grep -q "Pattern verification failed" qemu-io.out
}
# Both on production while test is empty (it follows production).
assert_eq "$(script 1)" 1 "pc01 before"
assert_eq "$(script 2)" 1 "pc02 (test group, empty test channel) before"
expect_exit 0 "$IMGTOOL" publish lab@2 --channel test
expect_contains "lab: channel test none -> @2"
assert_eq "$(script 1)" 1 "pc01 (production) after publish --channel test"
assert_eq "$(script 2)" 2 "pc02 (testers) after publish --channel test"
grep -q "boot 52:54:00:00:00:02 as pc02: lab@2, session lab/pc02, sanboot, by lab@2 (channel test of group testers)" server.log ||
  fail "the boot log does not say why: $(grep 'boot 52' server.log | tail -2)"
export_byte pc01 1 || fail "lab/pc01 does not read as @1"
export_byte pc02 2 || fail "lab/pc02 does not read as @2"
nbdinfo --json "nbd://127.0.0.1:$NBD_PORT/lab/pc02" | json 'j["exports"][0]["description"]' | grep -q "^lab@2, session lab/pc02" ||
  fail "lab/pc02's description: $(nbdinfo "nbd://127.0.0.1:$NBD_PORT/lab/pc02")"
pass "publish --channel test: the test group's client boots @2 (script, export bytes), production's @1"

expect_exit 0 "$IMGTOOL" promote lab --from test --to production
expect_contains "lab: active @1 -> @2 (promoted from test)"
assert_eq "$(script 1)" 2 "pc01 after promote"
assert_eq "$(script 2)" 2 "pc02 after promote"
export_byte pc01 2 || fail "lab/pc01 does not read as @2 after promote"
pass "promote test -> production moves both"

# Pins: the client's own wins over its group's channel; the group's over the channel.
"$IMGTOOL" publish lab@3 --channel test >/dev/null
"$IMGTOOL" client group set testers --pin 4 >/dev/null
assert_eq "$(script 2)" 4 "pc02 with its group pinned to @4"
"$IMGTOOL" client set pc02 --pin 1 >/dev/null
assert_eq "$(script 2)" 1 "pc02 pinned to @1 itself"
assert_eq "$("$IMGTOOL" client list --json | json '[(c["name"], c["group"], c["pin"], c["boots"]["version"], c["boots"]["source"]) for c in j]')" \
  "[('pc01', None, None, 2, 'production'), ('pc02', 'testers', 1, 1, 'client pin')]" "client list --json"
"$IMGTOOL" client set pc02 --pin none >/dev/null
"$IMGTOOL" client group set testers --pin none >/dev/null
assert_eq "$(script 2)" 3 "pc02 back on test (@3)"
pass "client pin -> group pin -> channel, at script time"

# Rollback per channel leaves the other one alone.
expect_exit 0 "$IMGTOOL" rollback lab --channel test
expect_contains "lab: channel test @3 -> @2 (rollback)"
assert_eq "$(script 1)" 2 "pc01 after a test rollback"
assert_eq "$(script 2)" 2 "pc02 after a test rollback"
pass "rollback --channel test leaves production alone"

# The same through the control API, with --json; history names api:ci.
export BOOTFLEET_TOKEN_FILE=$PWD/token
S=(--server "$BASE")
expect_exit 0 "$IMGTOOL" publish lab@4 --channel test "${S[@]}" --json
assert_eq "$(json '(j["channel"], j["version"], j["previous"], j["changed"])' <<<"$OUT")" "('test', 4, 2, True)" "publish --server --json"
assert_eq "$(script 2)" 4 "pc02 after a publish through the API"
expect_exit 0 "$IMGTOOL" promote lab --from test "${S[@]}" --json
assert_eq "$(json '(j["channel"], j["version"])' <<<"$OUT")" "('production', 4)" "promote --server"
assert_eq "$(script 1)" 4 "pc01 after a promote through the API"
expect_exit 0 "$IMGTOOL" rollback lab "${S[@]}"
expect_contains "lab on $BASE: active @4 -> @2 (rollback)"
expect_exit 2 "$IMGTOOL" promote lab --from nope "${S[@]}"
expect_contains "no channel 'nope'; channels: production, test"
expect_contains "404"
expect_exit 0 "$IMGTOOL" client group list "${S[@]}" --json
assert_eq "$(json '[(g["name"], g["members"]) for g in j]' <<<"$OUT")" "[('testers', ['pc02'])]" "group list --server"
expect_exit 0 "$IMGTOOL" client set pc01 --pin 3 "${S[@]}"
expect_contains "boots lab@3 (pinned on the client)"
assert_eq "$(script 1)" 3 "pc01 pinned through the API"
"$IMGTOOL" client set pc01 --pin none "${S[@]}" >/dev/null
expect_exit 0 "$IMGTOOL" history lab --json "${S[@]}"
assert_eq "$(json '[(h["action"], h["channel"], h["version"], h["by"]) for h in j][-3:]' <<<"$OUT")" \
  "[('publish', 'test', 4, 'api:ci'), ('promote', 'production', 4, 'api:ci'), ('rollback', 'production', 2, 'api:ci')]" \
  "history through the API"
expect_output_contains "promote  production   @2 (was @1)  by $(whoami)@" "$IMGTOOL" history lab
pass "publish, promote, rollback, groups and pins through --server with --json; history says who and which channel"

# The API's own refusals: names checked before anything repeats them, the
# right statuses.
api() {  # api METHOD PATH [BODY]: prints the status, the body in body.json
  curl -s -o body.json -w '%{http_code}' -X "$1" -H "Authorization: Bearer $TOKEN" ${3:+-d "$3"} "$BASE$2"
}
assert_eq "$(api POST /api/v1/images/lab/publish '{"version":2,"channel":"<b~d name>"}')" 400 "a bad channel name"
grep -q "the field 'channel' is not a name" body.json || fail "bad channel: $(cat body.json)"
grep -q "b~d" body.json && fail "the refusal repeats the value: $(cat body.json)"
assert_eq "$(api POST /api/v1/images/lab/publish '{"version":2,"at":"<~soon~>"}')" 400 "a bad time"
grep -q "the field 'at' is not a time" body.json || fail "bad time: $(cat body.json)"
assert_eq "$(api POST /api/v1/images/lab/promote '{"from":"test","to":"test"}')" 409 "promote to itself"
assert_eq "$(api DELETE /api/v1/groups/testers)" 409 "removing a group with clients"
grep -q "still has clients: pc02" body.json || fail "group removal: $(cat body.json)"
assert_eq "$(api POST /api/v1/clients/pc09 '{"pin":1}')" 404 "an unknown client"
grep -q "clients: pc01 (52:54:00:00:00:01), pc02" body.json || fail "unknown client: $(cat body.json)"
assert_eq "$(api POST /api/v1/clients/pc01 '{"pin":"two"}')" 400 "a pin that is not a number"
assert_eq "$(api DELETE /api/v1/schedules/x1)" 400 "a schedule id that is not a number"
assert_eq "$(api PUT /api/v1/groups)" 405 "PUT on /groups"
assert_eq "$(api GET /api/v1/images/lab/channels)" 200 "channels"
assert_eq "$(json '[c["channel"] for c in j["channels"]]' < body.json)" "['production', 'test']" "channels over the API"
pass "API refusals: bad names and times (not repeated) 400, conflicts 409, unknown client 404 listing them, 405"

# A scheduled publish fires once, across a SIGKILL and a restart of bootsrv.
expect_exit 0 "$IMGTOOL" publish lab@3 --at +4s "${S[@]}" --json
SID=$(json 'j["schedule"]["id"]' <<<"$OUT")
expect_output_contains "#$SID" "$IMGTOOL" schedule list
expect_output_contains "scheduled #$SID: publish lab@3 on production" "$IMGTOOL" status "${S[@]}"
kill -9 $SERVER; wait $SERVER 2>/dev/null || true
sleep 5  # past its time, no bootsrv running
assert_eq "$("$IMGTOOL" images --json | json 'j[0]["active"]')" 2 "nothing applied while bootsrv was down"
start_bootsrv "listening for HTTP" serve --config bootsrv.yaml
grep -q "schedule #$SID (by api:ci) done: lab@3 published on production (was @2)" server.log ||
  fail "the schedule was not applied at start: $(cat server.log)"
assert_eq "$(script 1)" 3 "pc01 after the scheduled publish"
kill -9 $SERVER; wait $SERVER 2>/dev/null || true
start_bootsrv "listening for HTTP" serve --config bootsrv.yaml
sleep 2  # housekeeping runs every second here
assert_eq "$(grep -c "schedule #$SID" server.log || true)" 0 "a second start applies nothing again"
assert_eq "$("$IMGTOOL" history lab --json | json '[h["by"] for h in j].count("schedule #'$SID' of api:ci")')" 1 \
  "exactly one publish by the schedule"
expect_exit 0 "$IMGTOOL" schedule list --all --json
assert_eq "$(json '[(s["id"], s["state"]) for s in j]' <<<"$OUT")" "[($SID, 'done')]" "schedule list --all"
# While it runs: a schedule applied by housekeeping, and a cancelled one never.
expect_exit 0 "$IMGTOOL" publish lab@3 --channel test --at +2s
S2=$(sed -n 's/.*scheduled #\([0-9]*\).*/\1/p' <<<"$OUT")
expect_exit 0 "$IMGTOOL" publish lab@1 --at +2s
S3=$(sed -n 's/.*scheduled #\([0-9]*\).*/\1/p' <<<"$OUT")
expect_exit 0 "$IMGTOOL" schedule cancel "$S3" "${S[@]}"
expect_exit 2 "$IMGTOOL" schedule cancel "$S3"
expect_contains "is cancelled"
for _ in $(seq 1 50); do grep -q "schedule #$S2 " server.log && break; sleep 0.2; done
grep -q "schedule #$S2 (by $(whoami)@.*) done: lab@3 published on test (was @4)" server.log || fail "schedule #$S2: $(tail server.log)"
sleep 1.5
assert_eq "$("$IMGTOOL" images --json | json 'j[0]["active"]')" 3 "the cancelled schedule changed nothing"
expect_output_contains "schedule #$S2 of" "$IMGTOOL" history lab --channel test
pass "scheduled publish: applied once across SIGKILL and restart, by housekeeping while running; cancelled never"

# Prune keeps what channels, pins and schedules name (@1 only by a pin here).
"$IMGTOOL" client set pc01 --pin 1 >/dev/null
"$IMGTOOL" publish lab@2 --at +1h >/dev/null
expect_exit 0 "$IMGTOOL" prune lab --keep 0
expect_contains "pinned by client pc01"
expect_contains "channel test"
expect_contains "scheduled for production"
assert_eq "$("$IMGTOOL" versions lab --json | json 'len(j)')" 4 "prune removed nothing named"
pass "prune keeps versions named by channels, pins and schedules"
