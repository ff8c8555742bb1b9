#!/usr/bin/env bash
# The command line itself: help everywhere, usage errors, refusals, JSON.
source "$(dirname "$0")/lib.sh"

expect_exit 0 "$IMGTOOL" --help
expect_contains "Usage: imgtool COMMAND"
expect_exit 0 "$IMGTOOL" --version
commands=$("$IMGTOOL" --help | awk '/^Commands:/{on=1; next} on && /^  [a-z]/{print $1}')
[ "$(wc -w <<<"$commands")" -ge 18 ] || fail "only $(wc -w <<<"$commands") commands listed"
for c in $commands; do
  expect_exit 0 "$IMGTOOL" "$c" --help
  expect_contains "Usage: imgtool $c"
  expect_exit 0 "$IMGTOOL" help "$c"
done
pass "--help for: $(echo $commands)"

expect_exit 2 "$IMGTOOL" frobnicate
expect_contains "not a command"
expect_exit 2 "$IMGTOOL" convert
expect_contains "required"
expect_exit 2 "$IMGTOOL" convert a b --bogus
expect_contains "bogus"
head -c 1M /dev/urandom > a.raw
expect_exit 2 "$IMGTOOL" convert a.raw b.vhd --to qcow2
expect_contains "raw, vhd-fixed, vhd-dynamic or vhd-diff"
expect_exit 2 "$IMGTOOL" info missing.vhd
expect_contains "missing.vhd"
pass "usage errors exit 2 and name what is wrong"

"$IMGTOOL" create a.vhd --size 1M >/dev/null
expect_exit 2 "$IMGTOOL" create a.vhd --size 2M
expect_contains "already exists"
expect_exit 0 "$IMGTOOL" create a.vhd --size 2M --force
expect_exit 2 "$IMGTOOL" convert a.raw a.vhd
expect_exit 0 "$IMGTOOL" convert a.raw a.vhd --force
ls -A | grep -q tmp && fail "a temporary file was left behind: $(ls -A)"
pass "existing files are kept unless --force; no temporary files left"

"$IMGTOOL" info a.vhd --json | json 'j["virtual_size"]' >/dev/null
"$IMGTOOL" check a.vhd --json | json 'j["clean"]' | grep -q True || fail "check --json not clean"
expect_exit 0 "$IMGTOOL" compare a.vhd a.raw --json
$PY -c 'import json,sys; assert json.loads(sys.argv[1])["identical"] is True' "$OUT"
head -c 1M /dev/urandom > b.raw
expect_exit 1 "$IMGTOOL" compare a.vhd b.raw
expect_contains "first difference at byte offset"
pass "--json output parses; compare exits 1 on a difference"
