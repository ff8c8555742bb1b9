# Shared by the store integration tests (sourced, never run).
#
# Gives each test a private work directory (removed on exit, background jobs
# the test started are killed first), a fresh store in $BOOTFLEET_STORE, and
# assertions that say what was expected and what was found.
set -euo pipefail
IMGTOOL=${IMGTOOL:?set IMGTOOL to the imgtool binary}
PY=/usr/bin/python3
MiB=$((1 << 20))
BLOCK=$((2 << 20))  # the store's digest block

WORK=$(mktemp -d "${TMPDIR:-/tmp}/bootfleet-store-it-XXXXXX")
on_exit() {
  local rc=$?
  local pids
  pids=$(jobs -p)
  if [ -n "$pids" ]; then
    # shellcheck disable=SC2086
    kill -9 $pids 2>/dev/null || true
    wait 2>/dev/null || true
  fi
  rm -rf "$WORK"
  exit $rc
}
trap on_exit EXIT
cd "$WORK"
export BOOTFLEET_STORE=$WORK/store
unset BOOTFLEET_CRASH_AT
"$IMGTOOL" init >/dev/null

it() { "$IMGTOOL" "$@"; }
fail() { echo "FAIL: $*" >&2; exit 1; }
pass() { echo "ok [${SECONDS}s]: $*"; }

# expect_exit CODE CMD...: runs CMD; stdout in $OUT, stderr in $ERR, both in
# $ALL; fails unless it exits CODE.
expect_exit() {
  local want=$1; shift
  set +e
  "$@" >"$WORK/.out" 2>"$WORK/.err"
  local got=$?
  set -e
  OUT=$(cat "$WORK/.out"); ERR=$(cat "$WORK/.err"); ALL="$OUT"$'\n'"$ERR"
  [ "$got" -eq "$want" ] || fail "'$*' exited $got, expected $want
  stdout: $OUT
  stderr: $ERR"
}
# expect_contains TEXT: the output of the last expect_exit contains TEXT.
expect_contains() { grep -qF -- "$1" <<<"$ALL" || fail "expected '$1' in the output of the last command: $ALL"; }
expect_not_contains() { ! grep -qiF -- "$1" <<<"$ALL" || fail "did not expect '$1' in: $ALL"; }
# assert_eq WHAT EXPECTED ACTUAL
assert_eq() {
  [ "$2" = "$3" ] && return
  if [ "$(wc -l <<<"$2")" -gt 3 ]; then
    fail "$1: differs from what was expected (- expected, + found):
$(diff -u <(echo "$2") <(echo "$3") | tail -n +3 || true)"
  fi
  fail "$1: expected '$2', found '$3'"
}
# assert_lt WHAT A B: A < B (integers)
assert_lt() { [ "$2" -lt "$3" ] || fail "$1: expected $2 < $3"; }

# json PYTHON-EXPR: evaluates the expression over the JSON on stdin (as `j`).
json() { $PY -c "import json,sys; j=json.load(sys.stdin); print($1)"; }

# write_random FILE OFFSET LENGTH (bytes): overwrites that range with random data.
write_random() {
  dd if=/dev/urandom of="$1" bs=1M iflag=count_bytes oflag=seek_bytes seek="$2" count="$3" \
    conv=notrunc status=none
}
# sparse_disk FILE MIB: a sparse disk with random data in a few places.
sparse_disk() {
  truncate -s "$2M" "$1"
  local at
  for at in 0 3 $(($2 / 2)) $(($2 - 1)); do write_random "$1" $((at * MiB)) $((448 << 10)); done
}

# same_disk EXPORTED INPUT [FORMAT]: EXPORTED (raw, or vpc for VHD) reads as
# INPUT: equal over INPUT's length and zeros after it (a version's size is
# rounded up to a whole CHS geometry). Checked by qemu-img, not by us.
same_disk() {
  local n total
  n=$(stat -c %s "$2")
  total=$(qemu-img info --output=json -f "${3:-raw}" "$1" | json 'j["virtual-size"]')
  [ "$total" -ge "$n" ] || fail "$1 is a disk of $total bytes, smaller than $2 ($n bytes)"
  qemu-img compare -q -f "${3:-raw}" -F raw "$1" "$2" ||
    fail "$1 does not read as $2: $(qemu-img compare -f "${3:-raw}" -F raw "$1" "$2" 2>&1 || true)"
}

# disk_digest FILE SIZE: the digest the store must record for FILE read as a
# disk of SIZE bytes: SHA-256 over the SHA-256 of each 2 MiB block (zeros past
# the file's end). Computed independently of imgtool.
disk_digest() {
  $PY - "$1" "$2" <<'EOF'
import hashlib, os, sys
path, size = sys.argv[1], int(sys.argv[2])
B = 2 << 20
h = hashlib.sha256()
fd = os.open(path, os.O_RDONLY)
end = os.fstat(fd).st_size
for off in range(0, size, B):
    n = min(B, size - off)
    try:  # a block in a hole reads as zeros: no need to read it
        hole = off >= end or os.lseek(fd, off, os.SEEK_DATA) >= off + n
    except OSError:  # ENXIO: no data after off
        hole = True
    data = b"" if hole else os.pread(fd, n, off)
    h.update(hashlib.sha256(data + bytes(n - len(data))).digest())
print(h.hexdigest())
EOF
}

# catalog IMAGE: everything the catalog says about IMAGE and the store's
# images, as JSON, plus the files under images/, for before/after comparisons.
catalog() {
  it images --json
  it versions "$1" --json
  it history "$1" --json
  (cd "$BOOTFLEET_STORE" && find images -type f -printf '%p %s %T@\n' | sort)
}

# store_clean: no leftovers in tmp/ and nothing gc would remove.
store_clean() {
  local left gc
  left=$(ls -A "$BOOTFLEET_STORE/tmp")
  [ -z "$left" ] || fail "${1:-}: leftovers in tmp/: $left"
  gc=$(it gc --dry-run)
  grep -q "in 0 files$" <<<"$gc" || fail "${1:-}: gc --dry-run finds unreferenced files: $gc"
}

# sqlite_clean: SQLite's own checks of the catalog find nothing.
sqlite_clean() {
  local check
  check=$(sqlite3 "$BOOTFLEET_STORE/catalog.db" 'PRAGMA integrity_check; PRAGMA foreign_key_check;')
  assert_eq "sqlite integrity_check + foreign_key_check" ok "$check"
}
