#!/usr/bin/env bash
# Damaged and hostile VHDs: each gets a clear error naming the file, never a crash.
source "$(dirname "$0")/lib.sh"
PATCH="$PY $(cd "$(dirname "$0")" && pwd)/vhd_patch.py"

random_disk disk.raw 16
"$IMGTOOL" convert disk.raw good.vhd >/dev/null
"$IMGTOOL" convert disk.raw good-fixed.vhd --to vhd-fixed >/dev/null
size=$(stat -c %s good.vhd)

# damaged NAME EXPECTED-TEXT CHECK-CODE: convert and compare refuse it (exit
# 2) naming the file; info shows what it can, names the problem (the file
# once) and exits 0, as docs/imgtool.md says; check exits 1 (readable,
# problems listed) or 2 (unreadable).
damaged() {
  local f=$1 text=$2 check_code=$3
  expect_exit 0 "$IMGTOOL" info "$f"
  expect_contains "$text"
  expect_contains "PROBLEMS"
  expect_not_contains "$f: $f:"
  expect_exit 0 "$IMGTOOL" info "$f" --json
  is_json "$OUT"
  for cmd in "convert $f out.raw --to raw" "compare $f disk.raw"; do
    # shellcheck disable=SC2086
    expect_exit 2 "$IMGTOOL" $cmd
    expect_contains "$f"
    expect_contains "$text"
  done
  expect_exit "$check_code" "$IMGTOOL" check "$f"
  expect_contains "$text"
  pass "$f: '$text'"
}

cp good.vhd truncated.vhd && truncate -s $(( size - 100000 )) truncated.vhd
damaged truncated.vhd "no VHD footer" 2

cp good.vhd footer-sum.vhd && $PATCH footer-sum.vhd set footer 48 8 0x1000000 --keep-checksum
# The footer is unusable for reads when its checksum fails, but still
# identifies the file, so check can list every problem.
expect_exit 0 "$IMGTOOL" info footer-sum.vhd
expect_contains "PROBLEMS"
expect_exit 2 "$IMGTOOL" compare footer-sum.vhd disk.raw
expect_contains "footer checksum"
expect_exit 1 "$IMGTOOL" check footer-sum.vhd
expect_contains "footer checksum"
pass "bad footer checksum: found"

cp good.vhd header-sum.vhd && $PATCH header-sum.vhd set header 32 4 0x200000 --keep-checksum
printf '\x01' | dd of=header-sum.vhd bs=1 seek=$(( 512 + 1000 )) conv=notrunc status=none
damaged header-sum.vhd "header checksum" 1

cp good.vhd bat-past-end.vhd && $PATCH bat-past-end.vhd bat 0 0x7FFFFFF0
damaged bat-past-end.vhd "past the footer" 1

cp good.vhd bat-overlap.vhd
first=$($PY -c "
import struct; d=open('good.vhd','rb').read(); t=struct.unpack_from('>Q',d,528)[0]
print([struct.unpack_from('>I',d,t+4*i)[0] for i in range(8) if struct.unpack_from('>I',d,t+4*i)[0]!=0xFFFFFFFF][0])")
$PATCH bat-overlap.vhd bat 7 "$first"
damaged bat-overlap.vhd "overlap" 1

cp good.vhd too-big.vhd && $PATCH too-big.vhd set footer 48 8 $(( 3 << 40 ))
damaged too-big.vhd "2040 GiB" 1

cp good.vhd bad-type.vhd && $PATCH bad-type.vhd set footer 60 4 9
damaged bad-type.vhd "disk type is 9" 2

# Chains: a missing parent, a parent with another unique id, a loop.
"$IMGTOOL" convert disk.raw base.vhd >/dev/null
dd if=/dev/urandom of=disk.raw bs=512 count=1 seek=5 conv=notrunc status=none
"$IMGTOOL" convert disk.raw child.vhd --to vhd-diff --parent base.vhd >/dev/null
mv base.vhd base.moved
expect_exit 2 "$IMGTOOL" compare child.vhd disk.raw
expect_contains "not found"
expect_contains "base.vhd"
expect_exit 1 "$IMGTOOL" check child.vhd
expect_contains "not found"
pass "missing parent: named, with the places tried"

"$IMGTOOL" create base.vhd --size 16M >/dev/null  # same name, new unique id
expect_exit 2 "$IMGTOOL" compare child.vhd disk.raw
expect_contains "is not the parent's"
pass "parent with another unique id: refused"

# A loop: make base.vhd a differencing disk whose parent is child.vhd.
mv base.moved base.vhd
cid=$("$IMGTOOL" info child.vhd --json | json 'j["chain"][0]["unique_id"].replace("-","")')
"$IMGTOOL" convert disk.raw loop-top.vhd --to vhd-diff --parent child.vhd >/dev/null
$PY - "$cid" <<'PY'
import struct, sys
# Turn base.vhd into a differencing file pointing at loop-top.vhd's parent
# (child.vhd) by copying loop-top's header and footer type onto it.
top = bytearray(open("loop-top.vhd", "rb").read())
base = bytearray(open("base.vhd", "rb").read())
def fix(block, at):
    struct.pack_into(">I", block, at, 0)
    struct.pack_into(">I", block, at, (~sum(block)) & 0xFFFFFFFF)
for start in (0, len(base) - 512):
    f = base[start:start + 512]; struct.pack_into(">I", f, 60, 4); fix(f, 64); base[start:start + 512] = f
h = base[512:1536]
h[40:56] = bytes.fromhex(sys.argv[1])          # parent id: child.vhd
h[64:576] = top[512 + 64:512 + 576]            # parent name
fix(h, 36)
base[512:1536] = h
open("base.vhd", "wb").write(base)
PY
expect_exit 2 "$IMGTOOL" compare child.vhd disk.raw
expect_contains "loops"
expect_exit 1 "$IMGTOOL" check child.vhd
expect_contains "loops"
pass "a chain that loops: refused"

# A 511-byte footer (old tools): drop the last reserved byte.
cp good-fixed.vhd short-footer.vhd && truncate -s -1 short-footer.vhd
expect_exit 0 "$IMGTOOL" compare short-footer.vhd good-fixed.vhd
pass "511-byte footer read"

expect_exit 2 "$IMGTOOL" create huge.vhd --size 3T
expect_contains "2040 GiB"
expect_exit 2 "$IMGTOOL" create junk.vhd --size 12X
expect_contains "unknown unit"
[ ! -e huge.vhd ] && [ ! -e junk.vhd ] || fail "a refused create left a file"
pass "sizes beyond the limit or malformed are refused"
