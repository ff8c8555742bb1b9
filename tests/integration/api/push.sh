#!/usr/bin/env bash
# imgtool push / publish --server / rollback --server / status --server
# against a real bootsrv on loopback (no appliance): a first push uploads
# every version (one stored as a new base goes up as a patch made from block
# digests), a second uploads nothing, digests match on both sides and the
# server's store verifies; publish and rollback through the API; errors that
# name what is wrong (no token, a refused token, forked histories, no server),
# two pushes racing, and a push while a client session reads.
HERE=$(cd "$(dirname "$0")" && pwd)
source "$HERE/../lib.sh"
BOOTSRV=${BOOTSRV:?set BOOTSRV to the bootsrv binary}
SERVER=
trap '[ -n "$SERVER" ] && kill -9 $SERVER 2>/dev/null; rm -rf "$WORK"' EXIT

random_disk d1.raw 16
cp d1.raw d2.raw
dd if=/dev/urandom of=d2.raw bs=4K count=9 seek=$(( 5 * 256 + 3 )) conv=notrunc status=none
dd if=/dev/urandom of=d2.raw bs=1M count=1 seek=9 conv=notrunc status=none
cp d2.raw d3.raw
dd if=/dev/urandom of=d3.raw bs=512 count=3 seek=$(( 12 * 2048 + 7 )) conv=notrunc status=none
cp d2.raw d3b.raw
dd if=/dev/urandom of=d3b.raw bs=512 count=5 seek=$(( 14 * 2048 + 1 )) conv=notrunc status=none
for s in src fork dst; do BOOTFLEET_STORE=$WORK/$s "$IMGTOOL" init >/dev/null; done
for d in d1 d2 d3; do BOOTFLEET_STORE=$WORK/src "$IMGTOOL" import lab $d.raw -m "$d" >/dev/null; done
BOOTFLEET_STORE=$WORK/src "$IMGTOOL" squash lab@3 -m "rebased" >/dev/null   # lab@4: a new base, same content as @3
for d in d1 d2 d3b; do BOOTFLEET_STORE=$WORK/fork "$IMGTOOL" import lab $d.raw -m "$d" >/dev/null; done
parent4=$(BOOTFLEET_STORE=$WORK/src "$IMGTOOL" versions lab --json | json '[v["parent"] for v in j if v["number"]==4][0]')
assert_eq "$parent4" None "lab@4 in the source is a new base"

start_api_bootsrv "$WORK/dst"
export BOOTFLEET_STORE=$WORK/src

# --- errors before anything is sent ---
expect_exit 2 "$IMGTOOL" push lab --server "$URL"
expect_contains "no token"
expect_contains "--token-file"
expect_exit 2 env -u BOOTFLEET_SERVER "$IMGTOOL" push lab --token-file token
expect_contains "no server"
expect_exit 2 "$IMGTOOL" push lab --server "$URL" --token-file bad-token
expect_contains "403"
expect_contains "refused"
grep -q "403" server.log || fail "the refused token is not in the server log"
expect_exit 2 "$IMGTOOL" push lab --server "http://127.0.0.1:$(free_port)" --token-file token
expect_contains "127.0.0.1"
expect_exit 2 "$IMGTOOL" push nosuch --server "$URL" --token-file token
expect_contains "nosuch"
assert_eq "$(BOOTFLEET_STORE=$WORK/dst "$IMGTOOL" images --json | json 'len(j)')" 0 "images on the server after refused pushes"
pass "no token, a refused token, no server, an unknown image: exit 2 naming why; nothing stored"

# --- the first push uploads everything, oldest first ---
export BOOTFLEET_SERVER=$URL BOOTFLEET_TOKEN_FILE=$WORK/token
expect_exit 0 "$IMGTOOL" push lab@2
expect_contains "lab@1: uploaded"
expect_contains "lab@2: uploaded"
expect_not_contains "lab@3"
expect_exit 0 "$IMGTOOL" push lab --json
echo "$OUT" > push.json
assert_eq "$(json '[v["action"] for v in j["versions"]]' < push.json)" "['skipped', 'skipped', 'uploaded', 'uploaded']" "second push's actions"
sent4=$(json '[v["bytes_sent"] for v in j["versions"] if v["version"]==4][0]' < push.json)
[ "$sent4" -lt $(( 4 * 1024 * 1024 )) ] || fail "lab@4 (a new base with the content of @3) sent $sent4 bytes; a patch on @3 is far smaller"
src_digests=$("$IMGTOOL" versions lab --json | json '[(v["number"], v["disk_digest"]) for v in j]')
dst_digests=$(BOOTFLEET_STORE=$WORK/dst "$IMGTOOL" versions lab --json | json '[(v["number"], v["disk_digest"]) for v in j]')
assert_eq "$dst_digests" "$src_digests" "version digests on the server"
msg=$(BOOTFLEET_STORE=$WORK/dst "$IMGTOOL" versions lab --json | json '[v["message"] for v in j]')
assert_eq "$msg" "['d1', 'd2', 'd3', 'rebased']" "messages carried to the server"
BOOTFLEET_STORE=$WORK/dst "$IMGTOOL" verify >/dev/null || fail "the server's store does not verify after the push"
pass "push lab@2 then lab: versions 1-4 on the server with the same digests; @4 went as a ${sent4}-byte patch"

expect_exit 0 "$IMGTOOL" push lab --json
assert_eq "$(json 'j["bytes_sent"]' <<<"$OUT")" 0 "bytes sent by a push with nothing new"
pass "a push with nothing new sends nothing"

# --- publish, rollback, status through the API ---
expect_exit 0 "$IMGTOOL" publish lab@3
expect_contains "active none -> @3"
expect_exit 0 "$IMGTOOL" publish lab@4
expect_contains "active @3 -> @4"
expect_exit 0 "$IMGTOOL" publish lab@4
expect_contains "already active"
expect_exit 0 "$IMGTOOL" rollback lab
expect_contains "-> @3 (rollback)"
active=$(BOOTFLEET_STORE=$WORK/dst "$IMGTOOL" images --json | json '[i["active"] for i in j if i["name"]=="lab"][0]')
assert_eq "$active" 3 "active version on the server after publish 3, 4 and a rollback"
local_active=$("$IMGTOOL" images --json | json '[i["active"] for i in j if i["name"]=="lab"][0]')
assert_eq "$local_active" None "the source store's active version (publish --server must not touch it)"
BOOTFLEET_STORE=$WORK/dst "$IMGTOOL" history lab --json | grep -q "api:ci" || fail "the API token's name is not in the server's history"
expect_exit 2 "$IMGTOOL" publish lab@9
expect_contains "lab@9"
expect_exit 0 "$IMGTOOL" status --json
assert_eq "$(json '[i["active"] for i in j["status"]["images"] if i["name"]=="lab"][0]' <<<"$OUT")" 3 "status --json: lab's active version"
expect_exit 0 "$IMGTOOL" status
expect_contains "lab"
expect_exit 0 "$IMGTOOL" publish lab@4 --store "$WORK/src"
expect_contains "active none -> @4"
pass "publish/rollback --server move the server's active version only; status shows it; --store forces local"

# --- forked histories ---
expect_exit 2 env BOOTFLEET_STORE=$WORK/fork "$IMGTOOL" push lab
expect_contains "lab@3 differs"
expect_contains "$(BOOTFLEET_STORE=$WORK/fork "$IMGTOOL" versions lab --json | json '[v["disk_digest"] for v in j if v["number"]==3][0]')"
expect_contains "$("$IMGTOOL" versions lab --json | json '[v["disk_digest"] for v in j if v["number"]==3][0]')"
pass "a forked history stops the push, naming both digests"

# --- two pushes racing into a new image, while a session reads ---
for d in d1 d2 d3; do "$IMGTOOL" import race $d.raw >/dev/null; done
BOOTFLEET_STORE=$WORK/dst "$IMGTOOL" client add 52:54:00:00:00:01 --name pc01 --image lab >/dev/null
nbdcopy "nbd://127.0.0.1:$NBD_PORT/lab" - > session-read.raw &
reader=$!
"$IMGTOOL" push race > race1.log 2>&1 & p1=$!
"$IMGTOOL" push race > race2.log 2>&1 & p2=$!
rc1=0; rc2=0; wait $p1 || rc1=$?; wait $p2 || rc2=$?
wait $reader || fail "a client reading lab during the pushes got an error"
[ "$rc1" -eq 0 ] && [ "$rc2" -eq 0 ] || fail "racing pushes: exit $rc1 and $rc2: $(cat race1.log race2.log)"
cmp -s -n "$(stat -c %s d3.raw)" session-read.raw d3.raw || fail "the session read during the pushes is not lab@3's content"
race_src=$("$IMGTOOL" versions race --json | json '[v["disk_digest"] for v in j]')
race_dst=$(BOOTFLEET_STORE=$WORK/dst "$IMGTOOL" versions race --json | json '[v["disk_digest"] for v in j]')
assert_eq "$race_dst" "$race_src" "race's versions on the server after two pushes at once"
BOOTFLEET_STORE=$WORK/dst "$IMGTOOL" verify >/dev/null || fail "the server's store does not verify after racing pushes"
kill -0 $SERVER || fail "bootsrv died"
pass "two pushes at once both succeed with one copy stored; a client read the active version throughout"
