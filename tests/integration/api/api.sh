#!/usr/bin/env bash
# bootsrv's control API with curl and Python, over small stores made by
# imgtool import (no appliance): authentication (401/403 logged with the
# peer), every read route, publish/rollback and idempotent publish, session
# reset seen through NBD, TLS with a self-signed certificate and a plain
# client on the TLS port, uploads end to end (api_uploads.py), SIGHUP token
# reload, upload expiry, and `imgtool verify` clean on the server's store.
HERE=$(cd "$(dirname "$0")" && pwd)
source "$HERE/../lib.sh"
BOOTSRV=${BOOTSRV:?set BOOTSRV to the bootsrv binary}
SERVER=
trap '[ -n "$SERVER" ] && kill -9 $SERVER 2>/dev/null; rm -rf "$WORK"' EXIT

# Sources: lab@1..3 in SRC; SRC2 has the same lab@1, @2 and another @3.
# The server's store DST starts with the same lab@1 only.
random_disk d1.raw 16
cp d1.raw d2.raw
dd if=/dev/urandom of=d2.raw bs=4K count=9 seek=$(( 5 * 256 + 3 )) conv=notrunc status=none   # inside block 2
dd if=/dev/urandom of=d2.raw bs=1M count=1 seek=9 conv=notrunc status=none                  # block 4, was zero
cp d2.raw d3.raw
dd if=/dev/urandom of=d3.raw bs=512 count=3 seek=$(( 12 * 2048 + 7 )) conv=notrunc status=none
cp d2.raw d3b.raw
dd if=/dev/urandom of=d3b.raw bs=512 count=5 seek=$(( 14 * 2048 + 1 )) conv=notrunc status=none
for s in src src2 dst; do BOOTFLEET_STORE=$WORK/$s "$IMGTOOL" init >/dev/null; done
for d in d1 d2 d3; do BOOTFLEET_STORE=$WORK/src "$IMGTOOL" import lab $d.raw -m "$d" >/dev/null; done
for d in d1 d2 d3b; do BOOTFLEET_STORE=$WORK/src2 "$IMGTOOL" import lab $d.raw -m "$d" >/dev/null; done
export BOOTFLEET_STORE=$WORK/dst
"$IMGTOOL" import lab d1.raw -m d1 --publish >/dev/null
"$IMGTOOL" client add 52:54:00:00:00:01 --name pc01 --image lab >/dev/null
pass "stores made: src lab@1-3, src2 lab@1-3 (another @3), dst lab@1"

openssl req -x509 -newkey rsa:2048 -nodes -keyout key.pem -out cert.pem -days 1 -subj /CN=localhost \
  -addext subjectAltName=IP:127.0.0.1 2>/dev/null
TOKEN=ci-token-0123456789abcdef
cat > tokens <<EOF
# the CI pipeline
ci $TOKEN

admin admin-token-0123456789abcdef
EOF
NBD_PORT=$(free_port); HTTP_PORT=$(free_port); HTTPS_PORT=$(free_port)
UPLOADS=$WORK/uploads
write_config() { # upload_ttl
  cat > bootsrv.yaml <<EOF
store: $WORK/dst
listen: 127.0.0.1:$NBD_PORT
http:
  listen: 127.0.0.1:$HTTP_PORT
https_listen: 127.0.0.1:$HTTPS_PORT
tls_cert: $WORK/cert.pem
tls_key: $WORK/key.pem
api_tokens: $WORK/tokens
upload_dir: $UPLOADS
upload_ttl: $1
max_uploads: 4
EOF
}
start_server() {
  start_bootsrv "listening for HTTPS" serve --config bootsrv.yaml
}
write_config 1h
start_server
BASE=http://127.0.0.1:$HTTP_PORT
AUTH="Authorization: Bearer $TOKEN"
# api METHOD PATH [curl args...]: prints the status; the body goes to body.json.
api() { local m=$1 p=$2; shift 2; curl -s -o body.json -w '%{http_code}' -X "$m" -H "$AUTH" "$@" "$BASE$p"; }
j() { json "$1" < body.json; }

# --- health, authentication ---
assert_eq "$(curl -s -o body.json -w '%{http_code}' $BASE/healthz)" 200 "/healthz without a token"
assert_eq "$(j 'j["status"]')" ok "/healthz"
code=$(curl -s -D hdr.txt -o body.json -w '%{http_code}' $BASE/api/v1/images)
assert_eq "$code" 401 "no token"
grep -qi '^www-authenticate: bearer' hdr.txt || fail "401 without WWW-Authenticate: $(cat hdr.txt)"
assert_eq "$(j 'j["error"]["status"]')" 401 "401 body"
assert_eq "$(curl -s -o body.json -w '%{http_code}' -H 'Authorization: Bearer wrong-token-0123456789' $BASE/api/v1/images)" 403 "wrong token"
sleep 0.2
grep -q 'api 127.0.0.1:[0-9]* "GET /api/v1/images": 401 no bearer token' server.log || fail "401 not logged with the peer: $(grep api server.log)"
grep -q 'api 127.0.0.1:[0-9]* "GET /api/v1/images": 403 unknown token' server.log || fail "403 not logged with the peer"
grep -q "wrong-token" server.log && fail "a presented token was logged"
assert_eq "$(api GET /api/v1/healthz)" 200 "/api/v1/healthz"
assert_eq "$(j 'j["status"], type(j["uptime_seconds"]).__name__, bool(j["version"])')" "ok int True" "/api/v1/healthz body"
pass "/healthz open; /api/ needs a bearer token: 401 with WWW-Authenticate, 403 wrong, both logged with the peer"

# --- reads ---
assert_eq "$(api GET /api/v1/images)" 200 "GET images"
assert_eq "$(j '[(i["name"], i["active"], i["previous"], i["versions"], i["latest"], i["size"] > 0, i["bytes_on_disk"] > 0) for i in j["images"]]')" \
  "[('lab', 1, None, 1, 1, True, True)]" "images"
assert_eq "$(api GET /api/v1/images/lab/versions)" 200 "GET versions"
assert_eq "$(j 'set(j["versions"][0]) >= {"number","parent","size","file_size","disk_digest","created_at","created_by","message","source","recipe","recipe_hash","depth","active","artifacts"}')" True "version fields"
DIG1=$(BOOTFLEET_STORE=$WORK/dst "$IMGTOOL" versions lab --json | json 'j[0]["disk_digest"]')
assert_eq "$(j 'j["versions"][0]["disk_digest"], j["versions"][0]["active"], j["versions"][0]["message"]')" "$DIG1 True d1" "version 1"
assert_eq "$(api GET /api/v1/images/lab/versions/1)" 200 "GET versions/1"
assert_eq "$(j 'j["number"]')" 1 "versions/1"
assert_eq "$(api GET /api/v1/images/lab/versions/7)" 404 "a version that is not there"
j 'j["error"]["message"]' | grep -q "lab" || fail "404 does not name the image: $(cat body.json)"
assert_eq "$(api GET /api/v1/images/lab/versions/x)" 400 "a version that is not a number"
assert_eq "$(api GET /api/v1/images/nope/versions)" 404 "an image that is not there"
assert_eq "$(api GET /api/v1/images/Bad%20Name/versions)" 400 "a bad image name"
assert_eq "$(api GET /api/v1/clients)" 200 "GET clients"
assert_eq "$(j '[(c["mac"], c["name"], c["image"], c["cmdline"]) for c in j["clients"]]')" "[('52:54:00:00:00:01', 'pc01', 'lab', None)]" "clients"
assert_eq "$(api GET /api/v1/nothing)" 404 "unknown route"
assert_eq "$(j 'j["error"]["status"]')" 404 "unknown route body"
code=$(curl -s -D hdr.txt -o body.json -w '%{http_code}' -X DELETE -H "$AUTH" $BASE/api/v1/images)
assert_eq "$code" 405 "DELETE images"
grep -qi '^allow: GET' hdr.txt || fail "405 without Allow: $(cat hdr.txt)"
assert_eq "$(api POST /api/v1/images/lab/publish -d '{"version":1}' -H 'Transfer-Encoding: chunked')" 411 "a chunked body"
assert_eq "$(api POST /api/v1/images/lab/publish --data-binary @<(head -c 1200000 /dev/zero))" 413 "a JSON body over 1 MiB"
assert_eq "$(curl -s -o /dev/null -w '%{http_code}' -X POST $BASE/boot.ipxe)" 405 "POST on a boot route"
pass "images, versions, version N, clients; 404/400/405 (Allow)/411/413 as JSON errors"

# --- publish and rollback ---
assert_eq "$(api POST /api/v1/images/lab/publish -d '{"version":1}')" 200 "publish the active version"
assert_eq "$(j 'j["changed"], j["active"]')" "False 1" "idempotent publish"
j 'j["message"]' | grep -q "already active" || fail "idempotent publish message: $(cat body.json)"
assert_eq "$(api POST /api/v1/images/lab/publish -d '{"version":9}')" 404 "publish a missing version"
assert_eq "$(api POST /api/v1/images/lab/publish -d '{}')" 400 "publish without a version"
assert_eq "$(api POST /api/v1/images/lab/rollback -d '{}')" 409 "nothing to roll back to"
pass "publish of the active version is a no-op (changed=false); missing version 404; rollback with no history 409"

# --- sessions: attach, write, reset, reconnect refused ---
NBD=nbd://127.0.0.1:$NBD_PORT
qemu-io -f raw "$NBD/lab/pc01" -c 'write -P 0xab 2M 4k' >/dev/null || fail "write to lab/pc01"
qemu-io -f raw "$NBD/lab/pc01" -c 'read -P 0xab 2M 4k' | grep -q "read 4096" || fail "lab/pc01 lost its write on reconnect"
sleep 0.3  # the server notices the disconnect
assert_eq "$(api GET /api/v1/sessions)" 200 "GET sessions"
assert_eq "$(j '[(s["export"], s["image"], s["client"], s["version"], s["cache_bytes"], s["connections"], s["connected_since"]) for s in j["sessions"]]')" \
  "[('lab/pc01', 'lab', 'pc01', 1, 4096, 0, None)]" "sessions"
assert_eq "$(api GET /api/v1/status)" 200 "GET status"
assert_eq "$(j 'j["images"], j["sessions"], j["cache_bytes"], j["uploads"]')" \
  "[{'active': 1, 'latest': 1, 'name': 'lab', 'previous': None}] 1 4096 0" "status"
assert_eq "$(api DELETE /api/v1/images/lab/sessions/pc01)" 200 "reset pc01"
assert_eq "$(j 'j')" "{'client': 'pc01', 'image': 'lab', 'reset': True}" "reset answer"
assert_eq "$(api DELETE /api/v1/images/lab/sessions/pc01)" 404 "reset again"
# A reset ends the session: its client is refused (not handed an empty
# disk) until it boots again; another client name starts fresh.
! qemu-io -f raw "$NBD/lab/pc01" -c 'read 2M 4k' >/dev/null 2>&1 || fail "lab/pc01 was served after its reset"
qemu-io -f raw "$NBD/lab/pc02" -c 'read -P 0 2M 4k' | grep -q "read 4096" || fail "lab/pc02 is not a fresh session"
sleep 0.2
grep -q "api ci (127.0.0.1:[0-9]*): reset session lab/pc01" server.log || fail "reset not logged with the token name"
grep -q "export 'lab/pc01'.*has ended (reset)" server.log || fail "the refusal after the reset is not logged"
pass "sessions list the client's cache; DELETE resets it (404 the second time); its reconnect is refused"

# --- TLS ---
assert_eq "$(curl -s --cacert cert.pem -o body.json -w '%{http_code}' -H "$AUTH" https://127.0.0.1:$HTTPS_PORT/api/v1/status)" 200 "status over HTTPS"
assert_eq "$(curl -s -o plain.txt -w '%{http_code}' http://127.0.0.1:$HTTPS_PORT/healthz)" 400 "plain HTTP on the HTTPS port"
grep -q "speaks HTTPS" plain.txt || fail "plain client on the TLS port: $(cat plain.txt)"
$PY - "$HTTPS_PORT" <<'PY' || fail "raw garbage on the TLS port"
import socket, sys
port = int(sys.argv[1])
s = socket.create_connection(("127.0.0.1", port)); s.sendall(b"\x16\x03\x01\x00\x05hello"); s.close()
s = socket.create_connection(("127.0.0.1", port)); s.close()
s = socket.create_connection(("127.0.0.1", port), timeout=5); s.sendall(b"\x00\x01")
try:
    s.recv(10)  # closed by the server (a reset is fine: it had unread bytes)
except ConnectionResetError:
    pass
s.close()
PY
curl -s -o /dev/null --cacert cert.pem https://127.0.0.1:$HTTPS_PORT/healthz || fail "HTTPS after hostile clients"
assert_eq "$(curl -s -o /dev/null -w '%{http_code}' $BASE/healthz)" 200 "HTTP after hostile TLS clients"
sleep 0.2
grep -q "https 127.0.0.1:[0-9]*: connection ended: TLS" server.log || fail "TLS failures not logged: $(grep https server.log)"
pass "HTTPS with a self-signed certificate; plain HTTP and garbage on the TLS port are answered or closed, logged, and hurt nobody"

# --- uploads end to end ---
API_PORT=$HTTP_PORT API_TOKEN=$TOKEN SRC_STORE=$WORK/src SRC2_STORE=$WORK/src2 DST_STORE=$WORK/dst \
  UPLOAD_DIR=$UPLOADS WORK=$WORK IMGTOOL=$IMGTOOL $PY "$HERE/api_uploads.py" || fail "uploads (see above)"
"$IMGTOOL" verify > verify.out 2>&1 || fail "imgtool verify on the server's store: $(cat verify.out)"
pass "imgtool verify is clean on the server's store after every upload, good and bad"
curl -sf "$BASE/artifacts/lab@2/vmlinuz" -o kernel.out || fail "the pushed artifact over HTTP"
assert_eq "$(stat -c %s kernel.out)" 300000 "the pushed artifact's size"

# --- publish/rollback round trip, history by token name ---
assert_eq "$(api POST /api/v1/images/lab/publish -d '{"version":2}')" 200 "publish lab@2"
assert_eq "$(j 'j["changed"], j["active"], j["previous"]')" "True 2 1" "publish lab@2"
assert_eq "$(api POST /api/v1/images/lab/publish -d '{"version":3}')" 200 "publish lab@3"
assert_eq "$(api POST /api/v1/images/lab/rollback -d '{}')" 200 "rollback"
assert_eq "$(j 'j["active"], j["previous"], j["changed"]')" "2 3 True" "rollback"
assert_eq "$(api POST /api/v1/images/lab/rollback -d '{"to":1}')" 200 "rollback to 1"
assert_eq "$(j 'j["active"]')" 1 "rollback --to 1"
assert_eq "$(api GET /api/v1/images/lab/history)" 200 "history"
assert_eq "$(j '[(h["version"], h["previous"], h["action"], h["by"]) for h in j["history"]]')" \
  "[(1, None, 'publish', '$(whoami)@$(hostname)'), (2, 1, 'publish', 'api:ci'), (3, 2, 'publish', 'api:ci'), (2, 3, 'rollback', 'api:ci'), (1, 2, 'rollback', 'api:ci')]" "history"
grep -q "api ci (127.0.0.1:[0-9]*): publish lab@2 (was @1)" server.log || fail "publish not logged with the token name"
pass "publish/rollback round trip over the API; history says api:ci"

# --- SIGHUP re-reads the tokens ---
echo "late late-token-0123456789abcdef" >> tokens
assert_eq "$(curl -s -o /dev/null -w '%{http_code}' -H 'Authorization: Bearer late-token-0123456789abcdef' $BASE/api/v1/status)" 403 "a token not yet loaded"
kill -HUP $SERVER
for _ in $(seq 1 50); do grep -q "configuration reloaded" server.log && break; sleep 0.1; done
assert_eq "$(curl -s -o /dev/null -w '%{http_code}' -H 'Authorization: Bearer late-token-0123456789abcdef' $BASE/api/v1/status)" 200 "a token after SIGHUP"
pass "SIGHUP re-reads the token file"

# --- expiry: upload_ttl 1s ---
kill -TERM $SERVER; wait $SERVER || true
write_config 1
start_server
$PY - "$HTTP_PORT" "$TOKEN" <<'PY' || fail "expiry"
import http.client, json, sys, time
port, token = int(sys.argv[1]), sys.argv[2]
def call(m, p, body=None):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    c.request(m, p, body=json.dumps(body) if body is not None else None, headers={"Authorization": "Bearer " + token})
    r = c.getresponse(); t = r.read(); c.close()
    return r.status, json.loads(t)
s, versions = call("GET", "/api/v1/images/lab/versions")
v3 = [v for v in versions["versions"] if v["number"] == 3][0]
decl = {"version": 4, "parent": 3, "parent_digest": v3["disk_digest"], "size": v3["size"], "file_size": 4096,
        "disk_digest": v3["disk_digest"], "block_digests": [], "artifacts": []}
s, b = call("POST", "/api/v1/images/lab/uploads", decl)
assert s == 201, (s, b)
time.sleep(2.5)
s, b = call("GET", "/api/v1/uploads/" + b["upload"])
assert s == 404 and "expired or unknown; start again" in b["error"]["message"], (s, b)
PY
pass "an upload untouched for upload_ttl is gone: 404 'expired or unknown; start again'"

# --- configuration errors name the place ---
printf 'store: %s\ntls_cert: %s\n' "$WORK/dst" "$WORK/cert.pem" > half-tls.yaml
expect_exit 2 "$BOOTSRV" serve --config half-tls.yaml
expect_contains "half-tls.yaml:2:1: key 'tls_cert': needs 'tls_key' too"
printf 'bad name here\n' > bad-tokens
printf 'store: %s\nhttp_listen: 127.0.0.1:0\napi_tokens: %s\n' "$WORK/dst" "$WORK/bad-tokens" > bad-tokens.yaml
printf 'store: %s\nhttp:\n  listen: 127.0.0.1:0\napi_tokens: %s\n' "$WORK/dst" "$WORK/bad-tokens" > bad-tokens.yaml
expect_exit 2 "$BOOTSRV" serve --config bad-tokens.yaml --listen 127.0.0.1:0
expect_contains "bad-tokens:1: more than two fields"
pass "configuration errors name file:line:key, token file errors file:line"
