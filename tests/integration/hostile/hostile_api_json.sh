#!/usr/bin/env bash
# JSON bodies from a token holder (issue 15, point 1): 100 000 nested '['
# in a field of /publish, /rollback and /uploads once overflowed a thread's
# stack and killed bootsrv with every session in it. Each route refuses deep
# and large bodies with 400/413, never echoes what it refused, and the
# server keeps serving.
source "$(dirname "$0")/hostile_lib.sh"
export BOOTFLEET_STORE=$WORK/store
"$IMGTOOL" init >/dev/null
random_disk d1.raw 8
"$IMGTOOL" import lab d1.raw --publish >/dev/null
start_api_bootsrv "$BOOTFLEET_STORE"
AUTH="Authorization: Bearer $(cat token)"
# post PATH FILE: the status; the answer in body.json
post() { curl -s -o body.json -w '%{http_code}' -X POST -H "$AUTH" --data-binary @"$2" "$URL$1"; }
nest() { $PY -c "import sys; d=int(sys.argv[1]); print('{\"$1\": ' + '['*d + ']'*d + '}')" "$2"; }

for depth in 100000 60000 17; do
  nest version $depth > publish.json
  nest to $depth > rollback.json
  nest version $depth > upload.json
  for route in publish:publish.json rollback:rollback.json uploads:upload.json; do
    code=$(post /api/v1/images/lab/${route%%:*} ${route#*:})
    alive
    assert_eq "$code" 400 "${route%%:*} with $depth nested arrays"
    grep -q 'nests arrays and objects more than 16 deep' body.json || fail "${route%%:*}: $(head -c 300 body.json)"
    ! grep -q '\[\[' body.json || fail "${route%%:*} echoes the refused value: $(head -c 300 body.json)"
  done
done
pass "100 000, 60 000 and 17 nested arrays in publish, rollback and uploads: 400 naming the limit, no echo, server alive"

# Values refused for their type or range are named by kind, never echoed.
for body in '{"version": "<script>alert(1)</script>"}' '{"version": [1,2,"<evil>"]}' '{"version": {"a": "<evil>"}}' \
            '{"version": -7}' '{"version": 1.5}' '{"version": 99999999999999999999}'; do
  printf '%s' "$body" > b.json
  code=$(post /api/v1/images/lab/publish b.json)
  [ "$code" = 400 ] || [ "$code" = 404 ] || fail "publish $body: $code $(cat body.json)"
  ! grep -qE 'evil|script|alert|99999|-7|1\.5' body.json || fail "publish echoes $body: $(cat body.json)"
done
printf '{"version": 1, "parent": null, "size": 4096, "file_size": 8192, "disk_digest": "<evil>", "block_digests": []}' > b.json
assert_eq "$(post /api/v1/images/lab/uploads b.json)" 400 "upload with a bad digest"
! grep -q 'evil' body.json || fail "uploads echoes a digest: $(cat body.json)"
printf '{"version": 1, "parent" null <evil>' > b.json
assert_eq "$(post /api/v1/images/lab/publish b.json)" 400 "not JSON"
! grep -q 'evil' body.json || fail "a syntax error echoes the body: $(cat body.json)"
pass "strings, lists, objects, negative, fractional, huge numbers and syntax errors: refused by kind, never echoed"

head -c 1048577 /dev/zero | tr '\0' '[' > big.json
assert_eq "$(post /api/v1/images/lab/publish big.json)" 413 "a body over 1 MiB"
printf '{"version": 1}' > ok.json
assert_eq "$(post /api/v1/images/lab/publish ok.json)" 200 "a good publish after all that"
stop_server
pass "1 MiB + 1 body: 413; a good request still works; bootsrv stops cleanly"
