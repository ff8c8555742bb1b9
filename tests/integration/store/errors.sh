#!/usr/bin/env bash
# Bad input: unknown names list what exists, IMAGE@N mistakes name the
# column, and refused commands say why and change nothing.
source "$(dirname "$0")/lib.sh"

sparse_disk d1.raw 64
cp --sparse=always d1.raw d2.raw && write_random d2.raw $((10 * MiB)) $MiB
cp --sparse=always d2.raw d3.raw && write_random d3.raw $((30 * MiB)) $MiB
it import lab d1.raw -m one >/dev/null
it import lab d2.raw -m two >/dev/null
it import lab d3.raw -m three >/dev/null
it import other d1.raw >/dev/null

# Unknown images and versions: the error lists what there is.
for cmd in "versions nope" "history nope" "rollback nope" "prune nope --keep 1" "verify nope" \
           "export nope@1 x.raw" "publish nope@1" "diff nope@1 lab@1" "squash nope@1"; do
  # shellcheck disable=SC2086
  expect_exit 2 it $cmd
  expect_contains "no image 'nope'"
  expect_contains "images: lab, other"
done
for cmd in "export lab@9 x.raw" "publish lab@9" "diff lab@1 lab@9" "verify lab@9" "squash lab@9" "prune lab@9" \
           "rollback lab --to 9"; do
  # shellcheck disable=SC2086
  expect_exit 2 it $cmd
  expect_contains "lab@9: no such version; versions: 1, 2, 3"
done
[ ! -e x.raw ] || fail "a refused export left x.raw"
expect_exit 2 it export lab x.raw
expect_contains "lab@active: image 'lab' has no active version"
expect_contains "imgtool publish lab@N"
expect_exit 2 it versions lab --store "$WORK/elsewhere"
expect_contains "$WORK/elsewhere: not a bootfleet store"
expect_contains "imgtool init"
pass "unknown images and versions: the errors list the images and versions there are"

# IMAGE@N syntax: the column of the mistake.
check_column() {  # TEXT COLUMN [WORDS]: every command taking a version says so
  local cmd
  for cmd in publish export diff verify squash prune; do
    case $cmd in
      export) expect_exit 2 it export "$1" out.raw ;;
      diff) expect_exit 2 it diff lab@1 "$1" ;;
      *) expect_exit 2 it $cmd "$1" ;;
    esac
    expect_contains "$1: "
    expect_contains "column $2"
    [ -z "${3:-}" ] || expect_contains "$3"
  done
}
check_column "lab@x" 5 "found 'x'"
check_column "lab@12x" 7 "found 'x'"
check_column "lab@" 5 "expected a version number or 'active'"
check_column "lab@-1" 5 "found '-'"
check_column "lab@1@2" 6 "found '@'"
check_column "Lab@1" 1 "'L' is not allowed"
check_column "la b@1" 3 "' ' is not allowed"
check_column "lab/x@1" 4 "'/' is not allowed"
check_column "_lab@1" 1 "starting with a letter or digit"
expect_exit 2 it publish lab
expect_contains "lab: column 4: expected '@N' or '@active'"
expect_exit 2 it squash lab
expect_contains "column 4"
expect_exit 2 it publish lab@0
expect_contains "column 5: versions are numbered from 1"
expect_exit 2 it import Lab d1.raw
expect_contains "column 1"
expect_exit 2 it import "lab@2" d1.raw
expect_contains "column 4"
[ ! -e "$BOOTFLEET_STORE/images/Lab" ] || fail "a refused import created images/Lab"
pass "IMAGE@N mistakes name the column (publish, export, diff, verify, squash, prune, import)"

# Refusals change nothing: the catalog (images, versions, history) and the
# version files are the same before and after.
refused() {  # CODE TEXT CMD...: refused with TEXT in the message, nothing changed
  local code=$1 text=$2; shift 2
  local before after
  before=$(catalog lab)
  expect_exit "$code" "$@"
  expect_contains "$text"
  after=$(catalog lab)
  [ "$before" = "$after" ] || fail "'$*' was refused but changed the store:
$(diff <(echo "$before") <(echo "$after") || true)"
}
refused 2 "lab@7: no such version; versions: 1, 2, 3" it publish lab@7
refused 2 "no version was ever published" it rollback lab
refused 2 "lab@7: no such version; versions: 1, 2, 3" it rollback lab --to 7
it publish lab@1 >/dev/null
refused 2 "nothing to roll back to: no version was active before @1" it rollback lab
refused 2 "lab@1 is the active version" it prune lab@1
refused 2 "lab@7: no such version" it publish lab@7
it publish lab@3 >/dev/null
refused 2 "lab@3 is the active version" it prune lab@3
refused 2 "lab@1 is the rollback target" it prune lab@1
refused 2 "lab@2 is the parent of @3" it prune lab@2
refused 2 "--keep must be 0 or more" it prune lab --keep -1
refused 2 "--keep and IMAGE@N exclude each other" it prune lab@2 --keep 1
# A larger disk: the message names both sizes.
truncate -s 1G big.raw
refused 2 "the disk is $((1 << 30)) bytes (1 GiB) but lab@3 is $(it versions lab --json | json 'j[2]["virtual_size"]') bytes" \
  it import lab big.raw
expect_contains "versions of an image keep its size"
expect_contains "--resize"
refused 2 "missing.raw: No such file or directory" it import lab missing.raw
pass "refused with the reason, catalog and files unchanged: publishing a missing version, rolling back with no history, pruning the active version, the rollback target or a parent, a larger disk"

# After all those refusals the store is intact and works.
expect_exit 0 it verify
expect_exit 0 it rollback lab
expect_contains "active @3 -> @1 (rollback)"
store_clean "after the refusals"
sqlite_clean
pass "after the refusals: verify ok, rollback works, nothing left over"
