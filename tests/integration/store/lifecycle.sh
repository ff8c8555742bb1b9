#!/usr/bin/env bash
# squash makes a depth-1 version with the same content; prune --keep K keeps
# the active version, the rollback target and every needed parent, saying
# why, and removes the rest with their files; gc removes stray files.
source "$(dirname "$0")/lib.sh"

sparse_disk v1.raw 64
cp --sparse=always v1.raw v2.raw && write_random v2.raw $((9 * MiB)) $((3 * MiB))
cp --sparse=always v2.raw v3.raw && write_random v3.raw $((40 * MiB + 512)) $((2 * MiB))
cp --sparse=always v3.raw v5.raw && write_random v5.raw $((20 * MiB)) $MiB
for v in 1 2 3; do it import lab v$v.raw -m "v$v" >/dev/null; done
size=$(it versions lab --json | json 'j[0]["virtual_size"]')

# squash lab@3 -> lab@4: a new base with lab@3's content.
expect_exit 0 it squash lab@3 -m flat
expect_contains "squashed lab@3 (depth 3) into lab@4 (a new base"
it versions lab --json >v.json
assert_eq "lab@4: depth, parent, message" "1 None flat" "$(json '" ".join(map(str, (j[3]["depth"], j[3]["parent"], j[3]["message"])))' <v.json)"
assert_eq "lab@3's depth" 3 "$(json 'j[2]["depth"]' <v.json)"
assert_eq "lab@4's disk digest (= lab@3's)" "$(json 'j[2]["disk_digest"]' <v.json)" "$(json 'j[3]["disk_digest"]' <v.json)"
assert_eq "lab@4's disk digest (of v3.raw)" "$(disk_digest v3.raw "$size")" "$(json 'j[3]["disk_digest"]' <v.json)"
expect_exit 0 it diff lab@3 lab@4 --verify
qemu-img info --output=json "$BOOTFLEET_STORE/images/lab/0004.vhd" | json '"backing-filename" in j' | grep -qx False ||
  fail "0004.vhd has a parent"
it export lab@4 out.raw --to raw >/dev/null
same_disk out.raw v3.raw
it import lab v5.raw -m v5 >/dev/null
assert_eq "lab@5's parent and depth" "4 2" "$(it versions lab --json | json '"%s %s" % (j[4]["parent"], j[4]["depth"])')"
expect_exit 0 it verify
pass "squash lab@3 -> lab@4: depth 1, no parent file, same disk digest, same data; lab@5 builds on it"

# Active @5, rollback target @2: prune --keep 1 must keep 5 (newest, active),
# 4 (its parent), 2 (rollback target), 1 (its parent) and remove only 3.
it publish lab@2 >/dev/null
it publish lab@5 >/dev/null
before=$(catalog lab)
expect_exit 0 it prune lab --keep 1 --dry-run
assert_eq "prune --dry-run" "keep   @1  (parent of @2)
keep   @2  (rollback target)
would remove @3
keep   @4  (parent of @5)
keep   @5  (among the newest 1, active)
lab: would remove 1 of 5 versions" "$OUT"
assert_eq "the store after prune --dry-run" "$before" "$(catalog lab)"
expect_exit 0 it prune lab --keep 1 --json
assert_eq "prune --json" "[[1, True, ['parent of @2']], [2, True, ['rollback target']], [3, False, []], [4, True, ['parent of @5']], [5, True, ['among the newest 1', 'active']]] False" \
  "$(json '[[v["version"], v["keep"], v["reasons"]] for v in j["versions"]], j["dry_run"]' <<<"$OUT" | sed 's/^(//; s/)$//; s/\], False/] False/')"
[ ! -e "$BOOTFLEET_STORE/images/lab/0003.vhd" ] || fail "prune left images/lab/0003.vhd"
for v in 1 2 4 5; do [ -e "$BOOTFLEET_STORE/images/lab/000$v.vhd" ] || fail "prune removed images/lab/000$v.vhd"; done
assert_eq "versions after prune" "[1, 2, 4, 5]" "$(it versions lab --json | json '[v["number"] for v in j]')"
assert_eq "active, rollback target after prune" "5 2" "$(it images --json | json '"%s %s" % (j[0]["active"], j[0]["previous"])')"
expect_exit 0 it verify
store_clean "after prune"
pass "prune --keep 1: keeps @5 (newest, active), @4 (parent of @5), @2 (rollback target), @1 (parent of @2); removes @3 and its file"

# Once the rollback target is on the squashed chain, the old chain can go.
it rollback lab --to 4 >/dev/null
it publish lab@5 >/dev/null
expect_exit 0 it prune lab --keep 0
assert_eq "prune --keep 0 with the rollback target on the new base" "remove @1
remove @2
keep   @4  (rollback target, parent of @5)
keep   @5  (active)
lab: removed 2 of 4 versions" "$OUT"
assert_eq "version files after prune --keep 0" "0004.vhd 0005.vhd" "$(ls "$BOOTFLEET_STORE/images/lab" | tr '\n' ' ' | sed 's/ $//')"
expect_exit 0 it verify
it export lab@5 out.raw --to raw --force >/dev/null
same_disk out.raw v5.raw
pass "prune --keep 0: the old chain (@1, @2) goes once nothing needs it; @5 still reads whole"

it import lab v1.raw -m again >/dev/null
assert_eq "the next version's number and parent (numbers are never reused)" "6 5" "$(it versions lab --json | json '"%s %s" % (j[-1]["number"], j[-1]["parent"])')"
expect_exit 0 it prune lab@6
expect_contains "removed lab@6"
[ ! -e "$BOOTFLEET_STORE/images/lab/0006.vhd" ] || fail "prune lab@6 left its file"
pass "prune IMAGE@N removes one version and its file; numbers are not reused"

# gc: stray files under images/ go; a stray .vhd already when the store opens.
echo junk >"$BOOTFLEET_STORE/images/lab/notes.txt"
mkdir -p "$BOOTFLEET_STORE/images/ghost" && echo junk >"$BOOTFLEET_STORE/images/ghost/0001.bin"
before=$(catalog lab)
expect_exit 0 it gc --dry-run
expect_contains "would remove images/ghost/0001.bin"
expect_contains "would remove images/lab/notes.txt"
expect_contains "in 2 files"
[ -e "$BOOTFLEET_STORE/images/lab/notes.txt" ] || fail "gc --dry-run removed notes.txt"
expect_exit 0 it gc
expect_contains "removed images/lab/notes.txt"
expect_contains "freed 10 B in 2 files"
[ ! -e "$BOOTFLEET_STORE/images/lab/notes.txt" ] || fail "gc left images/lab/notes.txt"
[ ! -e "$BOOTFLEET_STORE/images/ghost" ] || fail "gc left images/ghost"
assert_eq "the catalog after gc" "$(grep -v 'notes.txt\|ghost' <<<"$before")" "$(catalog lab)"
cp "$BOOTFLEET_STORE/images/lab/0005.vhd" "$BOOTFLEET_STORE/images/lab/0099.vhd"
expect_exit 0 it versions lab
expect_contains "removed images/lab/0099.vhd, a version file no catalog row refers to"
[ ! -e "$BOOTFLEET_STORE/images/lab/0099.vhd" ] || fail "images/lab/0099.vhd is still there"
expect_exit 0 it verify
store_clean "after gc"
sqlite_clean
pass "gc removes stray files (dry run first), a stray version file goes when the store opens; versions untouched"

# A store moved (or restored from backup) to another path still opens its
# chains: the relative parent locators point from each version file's own
# place in images/, not from tmp/ where it was written.
it export lab@5 before-move.raw --to raw >/dev/null
mv "$BOOTFLEET_STORE" "$PWD/moved-store"
BOOTFLEET_STORE=$PWD/moved-store
expect_exit 0 it verify
expect_exit 0 it export lab@5 after-move.raw --to raw
cmp before-move.raw after-move.raw || fail "lab@5 reads differently after the store moved"
pass "a moved store still reads its chains (relative parent locators)"
