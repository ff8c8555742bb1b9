#!/usr/bin/env bash
# bootsrv's status page and /metrics, with real clients: a sanboot PC's
# boot seen from its requests (curl fetches the chain and boot scripts,
# qemu-io logs in over iSCSI), NBD clients (qemu-io, libnbd) reading and
# writing, /metrics checked by promtool and against what the clients did,
# bad requests and exports counted as errors, and the page itself in
# headless Chromium (status_browser.py): the sessions shown, a new one
# appearing without a reload, a publish changing the active version, no
# console errors, a screenshot in $OUT_DIR.
source "$(dirname "$0")/../lib.sh"
BOOTSRV=${BOOTSRV:?set BOOTSRV to the bootsrv binary}
OUT_DIR=${OUT_DIR:-$WORK/out}
mkdir -p "$OUT_DIR"
export BOOTFLEET_STORE=$WORK/store
"$IMGTOOL" init >/dev/null
"$IMGTOOL" import lab "$(pattern_disk 1)" --publish >/dev/null
"$IMGTOOL" import lab "$(pattern_disk 2)" >/dev/null
"$IMGTOOL" client add 52:54:00:00:00:01 --name pc01 --image lab --boot-mode sanboot >/dev/null

IQN=iqn.2026-11.org.bootfleet
NBD_PORT=$(free_port); HTTP_PORT=$(free_port); ISCSI_PORT=$(free_port); TFTP_PORT=$(free_port)
mkdir tftp-root && head -c 70000 /dev/urandom > tftp-root/undionly.kpxe
printf 'grafana status-token-0123456789abcdef\n' > status-tokens
printf 'store: %s\nlisten: 127.0.0.1:%s\nhttp:\n  listen: 127.0.0.1:%s\niscsi:\n  listen: 127.0.0.1:%s\nstatus_tokens: %s\ntftp:\n  listen: 127.0.0.1:%s\n  root: %s\n' \
  "$BOOTFLEET_STORE" "$NBD_PORT" "$HTTP_PORT" "$ISCSI_PORT" "$PWD/status-tokens" "$TFTP_PORT" "$PWD/tftp-root" > bootsrv.yaml
# A status_tokens file that is missing or wrong stops bootsrv before it serves, naming it.
sed "s|status-tokens|missing-tokens|" bootsrv.yaml > missing.yaml
expect_exit 2 "$BOOTSRV" serve --config missing.yaml
expect_contains "status_tokens: cannot read the token file $PWD/missing-tokens"
expect_not_contains "listening"
printf 'viewer short\n' > short-tokens
sed "s|status-tokens|short-tokens|" bootsrv.yaml > short.yaml
expect_exit 2 "$BOOTSRV" serve --config short.yaml
expect_contains "short-tokens:1: the token of 'viewer' is 5 characters"
sed "s|status_tokens|status_token|" bootsrv.yaml > typo.yaml
expect_exit 2 "$BOOTSRV" serve --config typo.yaml
expect_contains "did you mean 'status_tokens'"
pass "bad status_tokens files and a misspelt key stop bootsrv, naming the file, line and key"

start_bootsrv "listening for HTTP" serve --config bootsrv.yaml
trap 'kill -9 $SERVER 2>/dev/null || true; rm -rf "$WORK"' EXIT
BASE=http://127.0.0.1:$HTTP_PORT
grep -qF "the status page /status, /metrics" server.log || fail "the HTTP line does not name the status page: $(cat server.log)"

# metric NAME{LABELS}: its value in a fresh scrape (0 when absent).
metric() { curl -sf "$BASE/metrics" | awk -v k="$1" '$1 == k { print $2; found=1 } END { if (!found) print 0 }'; }
check_metrics() {
  curl -sf "$BASE/metrics" > metrics.txt || fail "GET /metrics"
  promtool check metrics < metrics.txt > promtool.out 2>&1 || fail "promtool check metrics: $(cat promtool.out)"
}

# A fresh server: every family a dashboard needs is there, and promtool takes it.
check_metrics
for family in bootfleet_build_info bootfleet_start_time_seconds bootfleet_sessions bootfleet_cache_bytes \
    bootfleet_cache_disk_free_bytes bootfleet_store_disk_free_bytes bootfleet_store_bytes \
    bootfleet_image_active_version bootfleet_activations_total bootfleet_clients bootfleet_boot_stage_seconds \
    bootfleet_connections_total bootfleet_connections_open; do
  grep -q "^# TYPE $family " metrics.txt || fail "no family $family in /metrics: $(cat metrics.txt)"
done
grep -qE '^bootfleet_build_info\{version="[0-9.]+"\} 1$' metrics.txt || fail "build info: $(grep build_info metrics.txt)"
assert_eq "$(metric 'bootfleet_image_active_version{image="lab"}')" 1 "lab's active version in /metrics"
assert_eq "$(metric 'bootfleet_activations_total{action="publish"}')" 1 "publishes in /metrics (import --publish)"
grep -q '^Content-Type: text/plain; version=0.0.4' <(curl -sfi "$BASE/metrics" | tr -d '\r') || fail "the exposition format's content type"
pass "/metrics on a fresh server: every family, promtool check metrics passes"

# pc01 boots by sanboot: the loader over TFTP, the chain script over TFTP,
# its boot script over HTTP, then its iSCSI login.
timeout 30 curl -sS -o got.kpxe "tftp://127.0.0.1:$TFTP_PORT/undionly.kpxe" || fail "the loader over TFTP"
cmp got.kpxe tftp-root/undionly.kpxe || fail "the loader's bytes"
timeout 30 curl -sS -o got.ipxe "tftp://127.0.0.1:$TFTP_PORT/boot.ipxe" || fail "boot.ipxe over TFTP"
grep -qF "chain http://127.0.0.1:$HTTP_PORT/boot/" got.ipxe || fail "boot.ipxe over TFTP: $(cat got.ipxe)"
curl -sf "$BASE/boot/52-54-00-00-00-01.ipxe" > pc01.ipxe || fail "pc01's boot script"
grep -qF "sanboot iscsi:127.0.0.1::$ISCSI_PORT:0:$IQN:lab:pc01" pc01.ipxe || fail "pc01's script: $(cat pc01.ipxe)"
curl -sf "$BASE/status/data" > data.json || fail "GET /status/data"
assert_eq "$(json '[c["state"] for c in j["clients"] if c["name"] == "pc01"]' < data.json)" "['booting']" \
  "pc01 between its script and its root"
qemu-io -r --image-opts "driver=iscsi,transport=tcp,portal=127.0.0.1:$ISCSI_PORT,target=$IQN:lab:pc01,lun=0,initiator-name=$IQN:initiator:pc01" \
  -c "read -P 1 0 64k" > qemu-io.out 2>&1 || fail "qemu-io over iSCSI: $(cat qemu-io.out)"
curl -sf "$BASE/status/data" > data.json
$PY - data.json <<'PY' || fail "pc01's boot in /status/data: $(cat data.json)"
import json, sys
d = json.load(open(sys.argv[1]))
pc01 = [c for c in d["clients"] if c["name"] == "pc01"][0]
assert pc01["mac"] == "52:54:00:00:00:01", pc01
assert pc01["version"] == 1, pc01
assert pc01["read_bytes"] >= 65536, pc01
b = pc01["last_boot"]
assert b["complete"], b
assert set(b["stages"]) == {"loader", "script", "root", "total"}, b   # sanboot: no kernel, no initrd
assert 0 <= b["stages"]["root"] <= b["stages"]["total"] < 60, b
assert b["stages"]["loader"] + b["stages"]["script"] <= b["stages"]["total"], b
kinds = [e["kind"] for e in d["events"]]
assert kinds[:4] == ["root", "script", "chain", "tftp"], kinds
assert d["events"][2]["protocol"] == "tftp" and d["events"][3]["detail"] == "undionly.kpxe", d["events"][:4]
assert d["events"][0]["protocol"] == "iscsi" and d["events"][0]["session"] == "lab/pc01", d["events"][0]
assert [i["active"] for i in d["images"]] == [1], d["images"]
PY
for stage in loader script root total; do
  assert_eq "$(metric "bootfleet_boot_stage_seconds_count{stage=\"$stage\"}")" 1 "boots measured at stage $stage"
done
assert_eq "$(metric 'bootfleet_boot_stage_seconds_count{stage="kernel"}')" 0 "a sanboot fetches no kernel"
[ "$(metric 'bootfleet_client_read_bytes_total{export="lab/pc01"}')" -ge 65536 ] || fail "pc01's bytes read"
[ "$(metric 'bootfleet_block_read_bytes_total{protocol="iscsi"}')" -ge 65536 ] || fail "iSCSI bytes read"
[ "$(metric 'bootfleet_connections_total{protocol="iscsi"}')" -ge 1 ] || fail "iSCSI connections"
assert_eq "$(metric 'bootfleet_connections_total{protocol="tftp"}')" 2 "TFTP transfers"
assert_eq "$(metric 'bootfleet_connections_open{protocol="tftp"}')" 0 "TFTP transfers running"
pass "a PXE sanboot seen as stages (loader, script, root, total), pc01's reads counted under lab/pc01 and iSCSI"

# NBD: a client that is not registered writes 3 x 4 KiB; a read-only view reads.
qemu-io -f raw "nbd://127.0.0.1:$NBD_PORT/lab/pc03" -c 'write -P 7 0 4k' -c 'write -P 7 8k 4k' -c 'write -P 7 1M 4k' \
  > qemu-io.out 2>&1 || fail "qemu-io write: $(cat qemu-io.out)"
qemu-io -r -f raw "nbd://127.0.0.1:$NBD_PORT/lab@2" -c 'read -P 2 0 64k' > qemu-io.out 2>&1 || fail "qemu-io read: $(cat qemu-io.out)"
assert_eq "$(metric 'bootfleet_client_write_bytes_total{export="lab/pc03"}')" 12288 "pc03's bytes written"
assert_eq "$(metric 'bootfleet_client_write_requests_total{export="lab/pc03"}')" 3 "pc03's writes"
[ "$(metric 'bootfleet_client_read_bytes_total{export="lab@2"}')" -ge 65536 ] || fail "lab@2's bytes read"
[ "$(metric 'bootfleet_session_cache_bytes{export="lab/pc03"}')" -ge 12288 ] || fail "pc03's write cache"
assert_eq "$(metric 'bootfleet_sessions{kind="named"}')" 2 "named sessions (pc01, pc03)"
curl -sf "$BASE/status/data" > data.json
assert_eq "$(json '[(c["state"], c["mac"], c["write_bytes"]) for c in j["clients"] if c["name"] == "pc03"]' < data.json)" \
  "[('off', None, 12288.0)]" "pc03 (no client row, a session) on the page"
pass "NBD reads and writes counted per export, sessions and caches in /metrics and /status/data"

# Bad input: a missing export and unknown paths count as errors; wrong methods refused.
errors_before=$(metric 'bootfleet_protocol_errors_total{protocol="nbd"}')
expect_exit 1 qemu-io -r -f raw "nbd://127.0.0.1:$NBD_PORT/nosuchimage" -c 'read 0 4k'
assert_eq "$(metric 'bootfleet_protocol_errors_total{protocol="nbd"}')" $(( errors_before + 1 )) "a refused NBD export"
http_errors=$(metric 'bootfleet_protocol_errors_total{protocol="http"}')
assert_eq "$(curl -s -o /dev/null -w '%{http_code}' "$BASE/status/nope")" 404 "an unknown file of the page"
assert_eq "$(curl -s -o /dev/null -w '%{http_code}' -X POST "$BASE/metrics")" 405 "POST /metrics"
assert_eq "$(curl -s -o /dev/null -w '%{http_code}' -X DELETE "$BASE/status/data")" 405 "DELETE /status/data"
[ "$(metric 'bootfleet_protocol_errors_total{protocol="http"}')" -ge $(( http_errors + 3 )) ] || fail "HTTP errors counted"
[ "$(metric 'bootfleet_http_requests_total{code="4xx"}')" -ge 3 ] || fail "4xx responses counted"
curl -sf "$BASE/boot/52-54-00-00-00-99.ipxe" >/dev/null || fail "an unknown MAC's script"
curl -sf "$BASE/status/data" > data.json
$PY - data.json <<'PY' || fail "the recent errors in /status/data: $(cat data.json)"
import json, sys
errors = [e["message"] for e in json.load(open(sys.argv[1]))["errors"]]
assert "unknown MAC, not booted" in errors[0], errors
assert any("unknown export 'nosuchimage'" in e for e in errors), errors
assert not any(e.startswith("http ") for e in errors), errors   # access lines are counted, not listed
PY
curl -sfi "$BASE/status" | tr -d '\r' > page.txt
grep -q "^Content-Security-Policy: default-src 'self'" page.txt || fail "the page's CSP: $(head -20 page.txt)"
grep -q '<script src="/status/app.js"' page.txt || fail "the page's script: $(cat page.txt)"
grep -qE 'https?://' <(curl -sf "$BASE/status"; curl -sf "$BASE/status/app.js"; curl -sf "$BASE/status/style.css") &&
  fail "the page names an external URL (it must work without the internet)"
check_metrics
# The Grafana dashboard is JSON and asks only for families bootsrv has.
ROOT=$(cd "$HERE_LIB/../.." && pwd)
$PY - "$ROOT/docs/grafana-bootfleet.json" metrics.txt <<'PY' || fail "docs/grafana-bootfleet.json"
import json, re, sys
dash = json.load(open(sys.argv[1]))
families = set(re.findall(r"^# TYPE (\S+) ", open(sys.argv[2]).read(), re.M))
exprs = [t["expr"] for p in dash["panels"] for t in p["targets"]]
used = {re.sub(r"_(bucket|count|sum)$", "", m) for e in exprs for m in re.findall(r"bootfleet_[a-z_]+", e)}
missing = sorted(used - families)
assert not missing, "the dashboard uses metrics bootsrv does not have: %s" % missing
assert len(used) >= 15, "the dashboard uses only %d metrics" % len(used)
PY
pass "bad exports and requests counted as errors, 404/405 answered; the page is self-contained; promtool still passes; the Grafana dashboard's metrics exist"

# The page in a real browser.
IMGTOOL="$IMGTOOL" NBD_PORT=$NBD_PORT /usr/bin/python3 "$(dirname "$0")/status_browser.py" "$BASE" "$OUT_DIR" ||
  fail "the page in Chromium (screenshot and console in $OUT_DIR)"
assert_eq "$(metric 'bootfleet_activations_total{action="publish"}')" 2 "the publish the browser saw, in /metrics"
assert_eq "$(metric 'bootfleet_image_active_version{image="lab"}')" 2 "lab@2 active in /metrics"
[ -s "$OUT_DIR/status-page.png" ] || fail "no screenshot in $OUT_DIR"
check_metrics
pass "the page in Chromium: sessions, live updates, publish, no console errors; screenshot $OUT_DIR/status-page.png"

# What a client follows, and maintenance: pc02 in a test group, then in a
# maintenance session; pc01 pinned.
"$IMGTOOL" client group add lab-test --image lab --channel test >/dev/null
"$IMGTOOL" client add 52:54:00:00:00:02 --name pc02 --image lab >/dev/null
"$IMGTOOL" client set pc02 --group lab-test >/dev/null
"$IMGTOOL" client set pc01 --pin 1 >/dev/null
"$IMGTOOL" maintenance start lab --client pc02 >/dev/null
curl -sf "$BASE/status/data" > data.json
$PY - data.json <<'PY' || fail "groups, pins and maintenance in /status/data: $(cat data.json)"
import json, sys
rows = {c["name"]: c for c in json.load(open(sys.argv[1]))["clients"]}
pc01, pc02 = rows["pc01"], rows["pc02"]
assert pc02["state"] == "maintenance", pc02
assert pc02["group"] == "lab-test" and pc02["channel"] == "test", pc02
assert pc02["maintenance_base"] == 2, pc02
assert pc01["pin"] == 1 and pc01["channel"] == "production" and pc01["group"] is None, pc01
assert pc01["state"] != "maintenance", pc01
PY
curl -sf "$BASE/metrics" > metrics.txt
grep -qx 'bootfleet_clients{state="maintenance"} 1' metrics.txt ||
  fail "no client counted in maintenance: $(grep bootfleet_clients metrics.txt)"
promtool check metrics < metrics.txt > promtool.out 2>&1 || fail "promtool: $(cat promtool.out)"
"$IMGTOOL" maintenance discard lab >/dev/null
pass "a client's group, channel and pin, and its maintenance session, in /status/data and /metrics"

# SIGHUP re-reads the token files; a broken one keeps the old and says so.
printf 'broken\n' > status-tokens
kill -HUP $SERVER
for _ in $(seq 50); do grep -q "configuration not reloaded" server.log && break; sleep 0.1; done
grep -q "status-tokens:1: 'broken' has no token" server.log || fail "a broken status_tokens file on SIGHUP: $(tail -3 server.log)"
curl -sf "$BASE/metrics" >/dev/null || fail "/metrics after a refused reload"
kill -TERM $SERVER; wait $SERVER || fail "bootsrv did not stop cleanly: $(tail server.log)"
pass "SIGHUP with a broken status_tokens file keeps serving"
