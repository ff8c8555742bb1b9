#!/usr/bin/env bash
# What the store promises: errors that list what exists, refusals that change
# nothing, versions that cost what changed, diff, export, squash, prune, gc,
# and verify finding a flipped byte.
source "$(dirname "$0")/../lib.sh"
export BOOTFLEET_STORE=$WORK/store
"$IMGTOOL" init >/dev/null
snapshot() { for c in images "versions lab" "history lab"; do "$IMGTOOL" $c --json; done | grep -v '"created' ; }

random_disk v1.raw 128
"$IMGTOOL" import lab v1.raw -m one >/dev/null
cp v1.raw v2.raw
for at in 5 30 60 90 120; do dd if=/dev/urandom of=v2.raw bs=1M count=2 seek=$at conv=notrunc status=none; done
"$IMGTOOL" import lab v2.raw -m "10 MiB changed" >/dev/null
stored=$("$IMGTOOL" versions lab --json | json 'j[1]["stored_bytes"]')
ondisk=$(du -B1 "$BOOTFLEET_STORE/images/lab/0002.vhd" | cut -f1)
[ "$stored" -le $(( 10 << 20 )) ] && [ "$stored" -ge $(( 10 << 20 )) ] || fail "stored $stored bytes for a 10 MiB change"
[ "$ondisk" -lt $(( 12 << 20 )) ] || fail "the version file takes $ondisk bytes on disk"
pass "a 10 MiB change stores $stored bytes ($ondisk on disk) of a 128 MiB disk"

# Errors list what exists; syntax errors name the column.
expect_exit 2 "$IMGTOOL" versions nope
expect_contains "images: lab"
expect_exit 2 "$IMGTOOL" export lab@9 x.raw
expect_contains "versions: 1, 2"
expect_exit 2 "$IMGTOOL" publish lab@two
expect_contains "column 5"
truncate -s 1G big.raw
expect_exit 2 "$IMGTOOL" import lab big.raw
expect_contains "larger than lab@2"
pass "unknown names list what exists; bad syntax names the column; a larger disk is refused"

# Refusals change nothing.
before=$(snapshot)
expect_exit 2 "$IMGTOOL" publish lab@7
expect_exit 2 "$IMGTOOL" rollback lab
expect_contains "no version was ever published"
"$IMGTOOL" publish lab@1 >/dev/null
before=$(snapshot)
expect_exit 2 "$IMGTOOL" prune lab@1
expect_contains "active version"
expect_exit 2 "$IMGTOOL" rollback lab
expect_contains "nothing to roll back to"
[ "$(snapshot)" = "$before" ] || fail "a refused command changed the catalog"
pass "refused: publishing a missing version, rolling back with no history, pruning the active version"

# diff from digests, then narrowed by reading.
expect_exit 1 "$IMGTOOL" diff lab@1 lab@2 --json
ranges=$($PY -c 'import json,sys; j=json.loads(sys.argv[1]); print([(r["offset"]>>20, r["length"]>>20) for r in j["ranges"]], j["data_read"])' "$OUT")
[ "$ranges" = "[(4, 4), (30, 2), (60, 2), (90, 2), (120, 2)] False" ] || fail "diff ranges $ranges"
expect_exit 1 "$IMGTOOL" diff lab@1 lab@2 --verify --json
narrowed=$($PY -c 'import json,sys; j=json.loads(sys.argv[1]); print(j["changed_bytes"], j["verified"])' "$OUT")
[ "$narrowed" = "$(( 10 << 20 )) True" ] || fail "diff --verify: $narrowed"
expect_exit 0 "$IMGTOOL" diff lab@2 lab@2
pass "diff: whole blocks from digests, exactly 10 MiB with --verify"

for to in raw vhd-dynamic vhd-fixed; do
  "$IMGTOOL" export lab@2 out.$to --to $to >/dev/null
  expect_exit 0 "$IMGTOOL" compare out.$to v2.raw
done
qemu-img compare -q -f vpc -F raw out.vhd-dynamic v2.raw || fail "qemu-img: export differs"
pass "export to raw, dynamic and fixed VHD round-trips"

"$IMGTOOL" squash lab@2 >/dev/null
"$IMGTOOL" versions lab --json | json '(j[2]["depth"], j[2]["parent"], j[2]["disk_digest"] == j[1]["disk_digest"])' \
  | grep -qx "(1, None, True)" || fail "squash: $("$IMGTOOL" versions lab --json)"
"$IMGTOOL" publish lab@3 >/dev/null
pass "squash: a depth-1 version with the same disk digest"

"$IMGTOOL" prune lab --keep 1 > prune.txt
grep -q "keep   @1  (rollback target)" prune.txt || fail "prune: $(cat prune.txt)"
grep -q "keep   @3  (among the newest 1, active)" prune.txt || fail "prune: $(cat prune.txt)"
grep -q "remove @2" prune.txt || fail "prune: $(cat prune.txt)"
[ ! -e "$BOOTFLEET_STORE/images/lab/0002.vhd" ] || fail "prune left 0002.vhd"
pass "prune keeps the active version and the rollback target, removes the rest"

echo junk > "$BOOTFLEET_STORE/images/lab/0099.vhd"
echo junk > "$BOOTFLEET_STORE/images/lab/notes.txt"
"$IMGTOOL" gc > gc.txt 2> open.txt
grep -q "removed images/lab/0099.vhd" open.txt || fail "opening the store did not remove the stray version file: $(cat open.txt)"
grep -q "removed images/lab/notes.txt" gc.txt || fail "gc did not remove the stray file: $(cat gc.txt)"
[ ! -e "$BOOTFLEET_STORE/images/lab/notes.txt" ] || fail "notes.txt still there"
pass "a stray version file goes when the store opens, any other file with gc"

expect_exit 0 "$IMGTOOL" verify
file="$BOOTFLEET_STORE/images/lab/0003.vhd"
offset=$($PY -c "
import struct; d=open('$file','rb').read(); t=struct.unpack_from('>Q',d,528)[0]
e=[struct.unpack_from('>I',d,t+4*i)[0] for i in range(64)]
b=[i for i,x in enumerate(e) if x!=0xFFFFFFFF][1]; print(b, e[b]*512+512+100)")
block=${offset% *}
printf '\x5a\xa5' | dd of="$file" bs=1 seek=${offset#* } conv=notrunc status=none
expect_exit 1 "$IMGTOOL" verify
expect_contains "lab@3: block $block"
pass "a flipped byte: verify names lab@3, block $block"
