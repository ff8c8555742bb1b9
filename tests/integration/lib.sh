# Shared by the integration tests (also sourced by nbd/ and store/): a private
# work directory removed on exit, and assertions that say what was expected
# and what was found. Every assertion exits the test with "FAIL: ..." when it
# does not hold; lib_selftest.sh checks that each of them can fail.
set -euo pipefail
IMGTOOL=${IMGTOOL:?set IMGTOOL to the imgtool binary}
HERE_LIB=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
WORK=$(mktemp -d "${TMPDIR:-/tmp}/bootfleet-it-XXXXXX")
trap 'rm -rf "$WORK"' EXIT
cd "$WORK"
PY=/usr/bin/python3

fail() { echo "FAIL: $*" >&2; exit 1; }
pass() { echo "ok: $*"; }

# expect_exit CODE CMD...: runs CMD, output (stdout and stderr) in $OUT, fails
# unless it exits CODE. A crash (signal) is never an expected code.
expect_exit() {
  local want=$1; shift
  set +e; OUT=$("$@" 2>&1); local got=$?; set -e
  [ "$got" -eq "$want" ] || fail "'$*' exited $got, expected $want; output: $OUT"
}
# expect_contains TEXT: the last expect_exit output contains TEXT.
expect_contains() { grep -qF -- "$1" <<<"$OUT" || fail "expected '$1' in: $OUT"; }
# expect_not_contains TEXT: ... and does not.
expect_not_contains() { ! grep -qF -- "$1" <<<"$OUT" || fail "did not expect '$1' in: $OUT"; }
# expect_output_contains TEXT CMD...: runs CMD (any exit status below 128,
# kept in $RC) and fails unless its output contains TEXT.
expect_output_contains() {
  local text=$1; shift
  set +e; OUT=$("$@" 2>&1); RC=$?; set -e
  [ "$RC" -lt 128 ] || fail "'$*' died of signal $(( RC - 128 )); output: $OUT"
  grep -qF -- "$text" <<<"$OUT" || fail "expected '$text' in the output of '$*': $OUT"
}
# assert_eq GOT WANT WHAT
assert_eq() { [ "$1" = "$2" ] || fail "$3: got '$1', expected '$2'"; }
# json EXPR < json: prints a Python expression over the parsed JSON `j`;
# fails (naming the text) when stdin is not JSON.
json() {
  local text; text=$(cat)
  printf '%s' "$text" | $PY -c "import json,sys; j=json.load(sys.stdin); print($1)" ||
    fail "not JSON, or '$1' not in it: $text"
}
# is_json TEXT: TEXT parses as one JSON document.
is_json() { printf '%s' "$1" | $PY -c 'import json,sys; json.load(sys.stdin)' 2>/dev/null || fail "not JSON: $1"; }
# same_prefix A B N: the first N bytes of A and B are equal and the rest of A is zeros.
same_prefix() {
  cmp -n "$3" "$1" "$2" || fail "$1 and $2 differ in the first $3 bytes"
  local total; total=$(stat -c %s "$1")
  [ "$total" -ge "$3" ] || fail "$1 has $total bytes, fewer than $3"
  if [ "$total" -gt "$3" ]; then
    cmp -n $(( total - $3 )) <(tail -c +$(( $3 + 1 )) "$1") /dev/zero || fail "$1 is not zero past byte $3"
  fi
}
# random_disk FILE SIZE_MIB: a sparse disk with random data in a few places.
random_disk() {
  truncate -s "$2M" "$1"
  for at in 0 3 $(( $2 / 2 )) $(( $2 - 1 )); do
    dd if=/dev/urandom of="$1" bs=64K count=7 seek=$(( at * 16 )) conv=notrunc status=none
  done
}
# pattern_disk BYTE: makes dBYTE.raw, an 8 MiB raw disk whose first 64 KiB
# are BYTE (so a read tells which version it came from), and prints its name.
pattern_disk() {
  truncate -s 8M "d$1.raw"
  $PY -c "import sys; sys.stdout.buffer.write(bytes([$1])*65536)" | dd of="d$1.raw" conv=notrunc status=none
  echo "d$1.raw"
}
# vsize FILE: the virtual size imgtool reports; qsize FILE: qemu-img's (as vpc
# unless the name ends in .vhdx: qemu probes a fixed VHD as raw).
vsize() { "$IMGTOOL" info --json "$1" | json 'j["virtual_size"]'; }
qsize() {
  local fmt=vpc; case $1 in *.vhdx) fmt=vhdx ;; esac
  qemu-img info -f "$fmt" --output=json "$1" | json 'j["virtual-size"]'
}
# vhd_patch ARGS...: tests/integration/vhd_patch.py (see its header).
vhd_patch() { $PY "$HERE_LIB/vhd_patch.py" "$@"; }

# free_port: a TCP port on 127.0.0.1 that nothing listens on now.
free_port() { $PY -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# start_bootsrv READY ARGS...: runs "$BOOTSRV" ARGS in the background (its pid
# in SERVER, its output in server.log, which is emptied first) and waits until
# the log shows READY; fails with the log when bootsrv dies or is not ready
# within 5 s.
start_bootsrv() {
  local ready=$1; shift
  # Emptied here, not by the background job's redirection, which may run
  # after the first look for READY (and find the previous server's line).
  : > server.log
  "$BOOTSRV" "$@" >> server.log 2>&1 &
  SERVER=$!
  for _ in $(seq 1 100); do
    grep -q "$ready" server.log && return 0
    kill -0 $SERVER 2>/dev/null || fail "bootsrv died: $(cat server.log)"
    sleep 0.05
  done
  fail "bootsrv did not start: $(cat server.log)"
}

# start_api_bootsrv STORE: a bootsrv over STORE with NBD and HTTP on free
# loopback ports and the control API on, its token file "tokens" naming the
# token "ci"; "token" holds that token and "bad-token" one the server refuses.
# Sets SERVER, NBD_PORT, HTTP_PORT and URL.
start_api_bootsrv() {
  local token=ci-token-0123456789abcdef
  printf '# CI\nci %s\n' "$token" > tokens
  echo "$token" > token
  echo "wrong-token-0123456789abcdef" > bad-token
  NBD_PORT=$(free_port); HTTP_PORT=$(free_port)
  printf 'store: %s\nlisten: 127.0.0.1:%s\nhttp:\n  listen: 127.0.0.1:%s\napi_tokens: %s\n' \
    "$1" "$NBD_PORT" "$HTTP_PORT" "$PWD/tokens" > bootsrv.yaml
  start_bootsrv "listening for HTTP" serve --config bootsrv.yaml
  URL=http://127.0.0.1:$HTTP_PORT
}
