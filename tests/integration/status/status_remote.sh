#!/usr/bin/env bash
# Who may see the status data and /metrics from another machine: bootsrv
# in a network namespace of the test's own, on an address outside
# 127.0.0.0/8, asked from a second such address of that namespace. Plain HTTP from
# a remote peer is refused (403) unless api_plain_http; then a request
# without a token gets 401, an unknown token 403, a read-only status token
# and an API token 200; the page's own files need nothing. Chromium opens
# /status#token=T and shows the data without the token reaching any URL.
# Needs root for the namespace; skipped (77) without.
source "$(dirname "$0")/../lib.sh"
BOOTSRV=${BOOTSRV:?set BOOTSRV to the bootsrv binary}
skip() { echo "SKIP: $*"; exit 77; }
[ "$(id -u)" -eq 0 ] || skip "not root: the test makes a network namespace"
NS=bootfleet-status-$$
trap 'for p in $(ip netns pids "$NS" 2>/dev/null); do kill -9 "$p" 2>/dev/null || true; done; ip netns del "$NS" 2>/dev/null || true; rm -rf "$WORK"' EXIT
ip netns add "$NS" 2> netns.err || skip "cannot create a network namespace: $(cat netns.err)"
# Two addresses outside 127.0.0.0/8 on the namespace's own lo: what bootsrv
# sees is a peer that is not loopback, and nothing leaves the namespace.
{
  ip -n "$NS" link set lo up &&
  ip -n "$NS" addr add 10.77.0.1/32 dev lo &&
  ip -n "$NS" addr add 10.77.0.2/32 dev lo
} 2> netns.err || skip "cannot set up the namespace: $(cat netns.err)"
in_ns() { ip netns exec "$NS" "$@"; }

export BOOTFLEET_STORE=$WORK/store
"$IMGTOOL" init >/dev/null
truncate -s 4M d.raw
"$IMGTOOL" import lab d.raw --publish >/dev/null
STATUS_TOKEN=status-token-0123456789abcdef
API_TOKEN=api-token-0123456789abcdef0
printf 'grafana %s\n' "$STATUS_TOKEN" > status-tokens
printf 'ci %s\n' "$API_TOKEN" > api-tokens
config() {  # config PLAIN_HTTP
  printf 'store: %s\nlisten: 10.77.0.1:10809\nhttp:\n  listen: 10.77.0.1:8080\nstatus_tokens: %s\napi_tokens: %s\napi_plain_http: %s\n' \
    "$BOOTFLEET_STORE" "$PWD/status-tokens" "$PWD/api-tokens" "$1" > bootsrv.yaml
}
BASE=http://10.77.0.1:8080
# code [CURL ARGS...] PATH: the status of a GET from 10.77.0.2.
code() { local path=${*: -1}; in_ns curl -s -o body.txt -w '%{http_code}' --interface 10.77.0.2 "${@:1:$#-1}" "$BASE$path"; }

config false
: > server.log
ip netns exec "$NS" "$BOOTSRV" serve --config bootsrv.yaml >> server.log 2>&1 &  # ip execs bootsrv: $! is its pid
SERVER=$!
for _ in $(seq 100); do grep -q "listening for HTTP" server.log && break; sleep 0.05; done
grep -q "listening for HTTP" server.log || fail "bootsrv did not start: $(cat server.log)"
assert_eq "$(code -H "Authorization: Bearer $STATUS_TOKEN" /metrics)" 403 "plain HTTP from 10.77.0.2 without api_plain_http"
grep -q "api_plain_http" body.txt || fail "the 403 does not say what would be right: $(cat body.txt)"
assert_eq "$(code /status)" 200 "the page's HTML"
assert_eq "$(code /status/app.js)" 200 "the page's script"
grep -q 'status 10.77.0.2:[0-9]* "GET /metrics": 403' server.log || fail "the refusal is not logged with the peer: $(cat server.log)"
kill -TERM $SERVER; wait $SERVER || fail "bootsrv did not stop cleanly: $(tail -3 server.log)"
pass "a remote peer over plain HTTP is refused without api_plain_http; the page's files are served"

config true
: > server.log
ip netns exec "$NS" "$BOOTSRV" serve --config bootsrv.yaml >> server.log 2>&1 &  # ip execs bootsrv: $! is its pid
SERVER=$!
for _ in $(seq 100); do grep -q "listening for HTTP" server.log && break; sleep 0.05; done
assert_eq "$(code /metrics)" 401 "no token: $(cat body.txt) $(tail -3 server.log)"
assert_eq "$(code /status/data)" 401 "no token, the data"
grep -q '"status":401' body.txt || fail "the data's 401 is not JSON: $(cat body.txt)"
assert_eq "$(code -H "Authorization: Bearer wrong-token-0123456789" /metrics)" 403 "an unknown token"
assert_eq "$(code -H "Authorization: Bearer $STATUS_TOKEN" /metrics)" 200 "the read-only status token"
grep -q '^bootfleet_build_info' body.txt || fail "/metrics with the status token: $(head body.txt)"
assert_eq "$(code -H "Authorization: Bearer $API_TOKEN" /status/data)" 200 "an API token"
assert_eq "$(code -H "Authorization: Bearer $STATUS_TOKEN" -X POST -d '{}' /api/v1/images/lab/publish)" 403 \
  "the read-only token on the API"
pass "remote peers: 401 without a token, 403 with an unknown one, 200 with a status or API token; a status token opens no API"

# The page in Chromium, in the namespace, with the token in the fragment.
in_ns /usr/bin/python3 - "$BASE" "$STATUS_TOKEN" <<'PY' || fail "the page with #token in Chromium"
import sys, time
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
base, token = sys.argv[1], sys.argv[2]
o = webdriver.ChromeOptions()
o.binary_location = "/usr/bin/chromium"
for a in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"):
    o.add_argument(a)
o.set_capability("goog:loggingPrefs", {"browser": "ALL"})
d = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=o)
try:
    d.get(base + "/status#token=" + token)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and not d.find_elements(By.CSS_SELECTOR, '#images tr[data-image="lab"]'):
        time.sleep(0.2)
    assert d.find_elements(By.CSS_SELECTOR, '#images tr[data-image="lab"]'), "no image row with the token"
    assert token not in d.current_url, "the token stays in the address bar: " + d.current_url
    severe = [e for e in d.get_log("browser") if e["level"] == "SEVERE"]
    assert not severe, severe
    # Without a token (another tab's storage is its own): the page says what to do.
    d.execute_script("sessionStorage.clear();")
    d.get(base + "/status")
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and not d.find_element(By.ID, "problem").is_displayed():
        time.sleep(0.2)
    text = d.find_element(By.ID, "problem").text
    assert "#token=" in text and "401" in text, text
finally:
    d.quit()
PY
grep -qF "$STATUS_TOKEN" server.log && fail "the token reached the server's log: $(grep -F "$STATUS_TOKEN" server.log)"
kill -TERM $SERVER; wait $SERVER || fail "bootsrv did not stop cleanly"
pass "Chromium: /status#token=T shows the data, the token leaves the address bar and no log; without one the page says how"
