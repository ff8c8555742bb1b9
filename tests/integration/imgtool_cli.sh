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
expect_contains "missing IN (imgtool convert IN OUT"
expect_exit 2 "$IMGTOOL" convert a b --bogus
expect_contains "bogus"
expect_not_contains "convert: convert:"
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

export BOOTFLEET_STORE=$WORK/client-store
"$IMGTOOL" init >/dev/null
truncate -s 4M lab.raw
"$IMGTOOL" import lab lab.raw >/dev/null
expect_exit 0 "$IMGTOOL" client add 52-54-00-AB-CD-01 --image lab
expect_contains "added 52-54-00-ab-cd-01 (52:54:00:ab:cd:01): image lab"
expect_exit 0 "$IMGTOOL" client add 5254.00ab.cd02 --name pc02 --image lab --cmdline "quiet"
expect_exit 0 "$IMGTOOL" client list --json
assert_eq "$(json '[c["name"] for c in j]' <<<"$OUT")" "['52-54-00-ab-cd-01', 'pc02']" "client names"
assert_eq "$(json 'j[1]["cmdline"]' <<<"$OUT")" "quiet" "pc02's cmdline"
expect_exit 0 "$IMGTOOL" client set 525400abcd02 --name front --cmdline ""
expect_contains "changed front (52:54:00:ab:cd:02): image lab"
expect_exit 0 "$IMGTOOL" client list
expect_contains "front"
expect_exit 2 "$IMGTOOL" client add 52:54:00:ab:cd:0z --image lab
expect_contains "is not a MAC address"
expect_exit 2 "$IMGTOOL" client add 52:54:00:ab:cd:03 --image nope
expect_contains "no image 'nope'"
expect_exit 2 "$IMGTOOL" client add 52:54:00:ab:cd:01 --image lab
expect_contains "already exists"
expect_exit 2 "$IMGTOOL" client set front
expect_contains "nothing to change"
expect_exit 2 "$IMGTOOL" client frobnicate
expect_contains "not a client subcommand"
for sub in add list set rm; do
  expect_exit 0 "$IMGTOOL" client $sub --help
  expect_contains "Usage: imgtool client $sub"
done
expect_exit 0 "$IMGTOOL" client rm front
expect_exit 2 "$IMGTOOL" client rm front
expect_contains "no client 'front'"
pass "client add/list/set/rm: MAC forms, default names, --json, errors exit 2 naming the problem, --help on each"

# What a newcomer met (issue 17): the top-level help, global options before
# the command, positional arguments called by their synopsis words.
expect_exit 0 "$IMGTOOL" --help
expect_contains "--version"
expect_contains "verify found problems"
expect_contains "compare or diff found a difference"
expect_exit 2 "$IMGTOOL" import
expect_contains "missing IMAGE (imgtool import IMAGE FILE"
expect_not_contains "--image"
expect_exit 2 "$IMGTOOL" import lab
expect_contains "missing FILE (imgtool import IMAGE FILE"
expect_not_contains "--file"
expect_exit 2 "$IMGTOOL" client add
expect_contains "missing MAC (imgtool client add MAC"
expect_exit 2 "$IMGTOOL" export lab@1
expect_contains "missing OUT"
expect_exit 2 "$IMGTOOL" info a.b c.d
expect_contains "too many arguments (imgtool info FILE"
for c in "import" "info" "export" "diff" "client add" "boot-test"; do
  # shellcheck disable=SC2086
  expect_exit 0 "$IMGTOOL" $c --help
  for hidden in --file --mac --version --a --b --out --in; do
    grep -qE -- "^ +$hidden( |$)" <<<"$OUT" && fail "'imgtool $c --help' lists the positional $hidden: $OUT"
  done
done
expect_exit 0 "$IMGTOOL" import --help
expect_contains "--resize"
pass "imgtool --help lists --version and every exit status; missing and extra positionals are named as in the synopsis"

other=$WORK/other-store
expect_exit 0 "$IMGTOOL" --store "$other" init
expect_exit 0 "$IMGTOOL" --store "$other" import far lab.raw
expect_exit 0 "$IMGTOOL" --store="$other" images
expect_contains "far"
expect_not_contains "lab"
expect_exit 0 "$IMGTOOL" images
expect_not_contains "far"
expect_exit 2 "$IMGTOOL" --store
expect_contains "--store needs a value"
expect_exit 2 "$IMGTOOL" --store "$other"
expect_contains "no command after --store"
pass "global options before the command: imgtool --store DIR COMMAND"

# A version of another size is refused with both sizes unless --resize; an
# empty file never is a disk; sizes rounded to CHS cylinders are said.
: > empty.raw
expect_exit 2 "$IMGTOOL" import lab empty.raw
expect_contains "empty.raw: 0 bytes: an empty file is not a disk"
expect_exit 2 "$IMGTOOL" import fresh empty.raw
expect_contains "0 bytes"
truncate -s 2M small.raw
expect_exit 2 "$IMGTOOL" import lab small.raw
expect_contains "small.raw: the disk is 2097152 bytes (2 MiB) but lab@1 is"
expect_contains "--resize"
expect_exit 0 "$IMGTOOL" versions lab --json
assert_eq "$(json 'len(j)' <<<"$OUT")" 1 "versions after refused imports"
expect_exit 0 "$IMGTOOL" import lab small.raw --resize
expect_contains "as lab@2: new base"
expect_contains "blocks with data"
truncate -s 64M big.raw
expect_exit 0 "$IMGTOOL" import chs big.raw
expect_contains "as chs@1: new base, 0 blocks with data"
expect_not_contains "changed"
expect_contains "the disk is 67125248 bytes (64.0 MiB): rounded up from 67108864 bytes to whole CHS cylinders"
expect_exit 0 "$IMGTOOL" import chs big.raw
expect_contains "big.raw is the same disk as chs@1 (its latest version): nothing stored"
expect_exit 0 "$IMGTOOL" export chs@1 out.raw
expect_contains "67125248 bytes, the image's size in whole CHS cylinders"
pass "import: an empty or differently sized file is refused with both sizes, --resize makes a new base, CHS rounding is said"
