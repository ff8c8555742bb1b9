# Shared by the integration tests: a private work directory removed on exit,
# and assertions that say what was expected and what was found.
set -euo pipefail
IMGTOOL=${IMGTOOL:?set IMGTOOL to the imgtool binary}
WORK=$(mktemp -d "${TMPDIR:-/tmp}/bootfleet-it-XXXXXX")
trap 'rm -rf "$WORK"' EXIT
cd "$WORK"
PY=/usr/bin/python3

fail() { echo "FAIL: $*" >&2; exit 1; }
pass() { echo "ok: $*"; }

# expect_exit CODE CMD...: runs CMD, output in $OUT, fails unless it exits CODE.
expect_exit() {
  local want=$1; shift
  set +e; OUT=$("$@" 2>&1); local got=$?; set -e
  [ "$got" -eq "$want" ] || fail "'$*' exited $got, expected $want; output: $OUT"
}
# expect_contains TEXT: the last expect_exit output contains TEXT.
expect_contains() { grep -qF -- "$1" <<<"$OUT" || fail "expected '$1' in: $OUT"; }
# json FIELD-EXPR < json: prints a Python expression over the parsed JSON `j`.
json() { $PY -c "import json,sys; j=json.load(sys.stdin); print($1)"; }
# same_prefix A B N: the first N bytes of A and B are equal and the rest of A is zeros.
same_prefix() {
  cmp -n "$3" "$1" "$2" || fail "$1 and $2 differ in the first $3 bytes"
  local total; total=$(stat -c %s "$1")
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
