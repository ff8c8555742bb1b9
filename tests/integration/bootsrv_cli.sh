#!/usr/bin/env bash
# bootsrv's command line and configuration file, as a newcomer meets them:
# ports outside 1-65535 refused by name (never wrapped to another port),
# global options before the command, a failing listener failing before any
# "listening" line, every unknown configuration key reported with its likely
# meaning, SIGHUP without a configuration file, and `nbdinfo --list` not
# starting sessions.
source "$(dirname "$0")/lib.sh"
BOOTSRV=${BOOTSRV:?set BOOTSRV to the bootsrv binary}
export BOOTFLEET_STORE=$WORK/store
"$IMGTOOL" init >/dev/null
truncate -s 4M disk.raw
"$IMGTOOL" import lab disk.raw --publish >/dev/null

# 1. Ports: each listener option, on the command line and in the file.
for bad in "--listen 127.0.0.1:99999" "--listen :65536" "--http-listen 127.0.0.1:165536" "--tftp-listen 127.0.0.1:70000" \
           "--listen 127.0.0.1:-1" "--http-listen 127.0.0.1:http"; do
  opt=${bad%% *} value=${bad#* }
  # shellcheck disable=SC2086
  expect_exit 2 timeout 10 "$BOOTSRV" serve --listen 127.0.0.1:0 $bad
  expect_contains "$opt: '$value': port"
  expect_not_contains "listening"
done
printf 'store: %s\nlisten: 127.0.0.1:99999\n' "$BOOTFLEET_STORE" > bad-port.yaml
expect_exit 2 timeout 10 "$BOOTSRV" serve --config bad-port.yaml
expect_contains "bad-port.yaml:2:9: key 'listen': '127.0.0.1:99999': port 99999 is outside"
printf 'tftp:\n  listen: :70000\nhttp:\n  listen: 127.0.0.1:165536\n' > bad-tftp.yaml
expect_exit 2 timeout 10 "$BOOTSRV" serve --config bad-tftp.yaml
expect_contains "bad-tftp.yaml:2:11: key 'tftp.listen': ':70000': port 70000"
expect_exit 2 "$BOOTSRV" dhcp-config --server-ip 10.0.0.1 --http-port 0
expect_contains "--http-port: port 0 is outside 1-65535"
expect_exit 2 "$BOOTSRV" dhcp-config --server-ip 10.0.0.1 --http-port 99999
expect_contains "--http-port: port 99999 is outside 1-65535"
pass "ports outside 1-65535 are refused, naming the option or FILE:LINE:COL; nothing listens"

# 2. Every unknown key at once, each with its likely meaning; a missing file says why.
printf 'lisen: 127.0.0.1:0\nstore: %s\ncache_rma: 1G\ntftp:\n  rot: /x\n' "$BOOTFLEET_STORE" > typos.yaml
expect_exit 2 timeout 10 "$BOOTSRV" serve --config typos.yaml
expect_contains "typos.yaml:1:1: key 'lisen': unknown (did you mean 'listen'?)"
expect_contains "typos.yaml:3:1: key 'cache_rma': unknown (did you mean 'cache_ram'?)"
expect_contains "typos.yaml:5:3: key 'tftp.rot': unknown (did you mean 'root'?)"
printf 'store: %s\nhttp:\n\tlisten: :8080\n' "$BOOTFLEET_STORE" > tabs.yaml
expect_exit 2 timeout 10 "$BOOTSRV" serve --config tabs.yaml
expect_contains "YAML forbids tabs for indentation and line 3 is indented with one"
expect_exit 2 timeout 10 "$BOOTSRV" serve --config nosuch.yaml
expect_contains "nosuch.yaml: cannot read the configuration file: No such file or directory"
pass "the configuration file: all unknown keys with 'did you mean', tabs explained, a missing file's reason"

# 3. A TFTP root that does not exist: refused before any "listening" line.
expect_exit 2 timeout 10 "$BOOTSRV" serve --listen 127.0.0.1:0 --http-listen 127.0.0.1:0 \
  --tftp-listen 127.0.0.1:0 --tftp-root "$WORK/no-such-tftp-root"
expect_contains "no-such-tftp-root"
expect_not_contains "listening"
pass "a failing listener fails before anything says it is listening"

# 4. Global options before the command.
NBD_PORT=$(free_port)
printf 'store: %s\nlisten: 127.0.0.1:%s\n' "$BOOTFLEET_STORE" "$NBD_PORT" > good.yaml
start_bootsrv "listening for NBD" --config good.yaml serve
grep -q "listening for NBD on 127.0.0.1:$NBD_PORT (port $NBD_PORT)" server.log || fail "not on its port: $(cat server.log)"

# 5. nbdinfo --list asks OPT_INFO of every export: no session for that.
nbdinfo --list "nbd://127.0.0.1:$NBD_PORT" > list.out 2>&1 || fail "nbdinfo --list: $(cat list.out)"
grep -q "lab" list.out || fail "lab not listed: $(cat list.out)"
grep -q "export-size: [0-9]" list.out || fail "no size in the list: $(cat list.out)"
sleep 0.2
! grep -q "session lab#" server.log || fail "nbdinfo --list started sessions: $(cat server.log)"
# A connection that reads does get its session (so the check above can fail).
nbdinfo --size "nbd://127.0.0.1:$NBD_PORT/lab" > size.out
[ "$(cat size.out)" -ge $(( 4 << 20 )) ] || fail "size $(cat size.out)"
for _ in $(seq 1 50); do grep -q "session lab#.* ended" server.log && break; sleep 0.1; done
grep -q "session lab#1 started" server.log || fail "no session for a real connection: $(cat server.log)"
pass "global --config before serve; nbdinfo --list and --size start no session"
kill -TERM $SERVER; wait $SERVER || true

# 6. SIGHUP without --config: nothing to reload, and it says so.
start_bootsrv "listening for NBD" --store "$BOOTFLEET_STORE" serve --listen 127.0.0.1:0
kill -HUP $SERVER
for _ in $(seq 1 50); do grep -q "SIGHUP" server.log && break; sleep 0.1; done
grep -q "SIGHUP: nothing to reload (bootsrv was started without --config)" server.log || fail "SIGHUP: $(cat server.log)"
! grep -q "configuration reloaded" server.log || fail "claims a reload without a file: $(cat server.log)"
kill -TERM $SERVER; wait $SERVER || true
pass "global --store before serve; SIGHUP without --config says there is nothing to reload"
