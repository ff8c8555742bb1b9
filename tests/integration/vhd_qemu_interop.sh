#!/usr/bin/env bash
# Our VHDs as qemu-img and libvhdi see them, and qemu-img's VHDs and VHDXs as
# we see them: the same size for every reader, the same bytes.
source "$(dirname "$0")/lib.sh"
VHDI_READ=${VHDI_READ:?set VHDI_READ to the vhdi_read binary}

# qemu-img compare, asserting its exit status (0 identical, 1 different).
qemu_compare() {
  local want=$1; shift
  expect_exit "$want" qemu-img compare "$@"
  [ "$want" != 0 ] || expect_contains "Images are identical"
}
# nonzero_blocks FILE: how many 2 MiB blocks of FILE hold a non-zero byte.
nonzero_blocks() {
  $PY - "$1" <<'PY'
import sys
n = 0
with open(sys.argv[1], "rb") as f:
    while True:
        b = f.read(2 << 20)
        if not b:
            break
        n += b.count(0) != len(b)
print(n)
PY
}

# --- Sizes: every reader sees the size we print, and it is qemu-img's own.
for req in 1M 10000001 64M 100M 1G 127G 128G 200G 2040G; do
  for type in dynamic fixed; do
    expect_exit 0 "$IMGTOOL" create "c-$type-$req.vhd" --size "$req" --type "$type"
    printed=$(sed -n 's/.*(\([0-9]*\) bytes).*/\1/p' <<<"$OUT")
    [ -n "$printed" ] || fail "create printed no size: $OUT"
    assert_eq "$(vsize "c-$type-$req.vhd")" "$printed" "$type $req: info --json virtual_size"
    assert_eq "$(qsize "c-$type-$req.vhd")" "$printed" "$type $req: qemu-img info virtual-size"
    assert_eq "$("$VHDI_READ" --size "c-$type-$req.vhd")" "$printed" "$type $req: libvhdi media size"
    # The size is whole sectors, and whole CHS cylinders unless the geometry
    # is saturated (65535/16/255, from about 127 GiB up).
    $PY - "$printed" "$req" "$("$IMGTOOL" info --json "c-$type-$req.vhd")" <<'PY' || fail "$type $req: size/geometry"
import json, sys
size, req, info = int(sys.argv[1]), sys.argv[2], json.loads(sys.argv[3])
g = info["chain"][0]["geometry"]
chs = g["cylinders"] * g["heads"] * g["sectors_per_track"] * 512
saturated = (g["cylinders"], g["heads"], g["sectors_per_track"]) == (65535, 16, 255)
assert size % 512 == 0, size
assert saturated or chs == size, (size, g)
assert not saturated or chs <= size, (size, g)
PY
  done
  # qemu-img rounds a request the same way (its creator code "qemu" makes it
  # size disks by CHS), and we read its files at the size it reads them.
  qemu-img create -q -f vpc "q-$req.vhd" "$req"
  assert_eq "$(qsize "q-$req.vhd")" "$printed" "$req: qemu-img create's size vs ours"
  assert_eq "$(vsize "q-$req.vhd")" "$printed" "$req: our size of qemu-img's file"
  expect_exit 0 "$IMGTOOL" check "q-$req.vhd"
  rm -f c-*-"$req".vhd "q-$req.vhd"
done
pass "create: 1M to 2040G, dynamic and fixed: imgtool, qemu-img and libvhdi agree on every size"

# --- Content: raw -> our VHDs, read by qemu-img and libvhdi.
random_disk src.raw 100
src_size=$(stat -c %s src.raw)
for type in dynamic fixed; do
  expect_exit 0 "$IMGTOOL" convert src.raw "ours-$type.vhd" --to "vhd-$type"
  want=$(vsize "ours-$type.vhd")
  assert_eq "$(qsize "ours-$type.vhd")" "$want" "$type: qemu-img's virtual size"
  [ "$want" -ge "$src_size" ] || fail "$type: $want bytes is smaller than the source"
  assert_eq "$(qemu-img info -f vpc --output=json "ours-$type.vhd" | json 'j["format"]')" vpc "$type: qemu's format"
  qemu_compare 0 -f vpc -F raw "ours-$type.vhd" src.raw
  # qemu's vpc driver has no consistency check: assert exactly that, rather
  # than pretend it passed.
  expect_exit 63 qemu-img check -f vpc "ours-$type.vhd"
  expect_contains "This image format does not support checks"
  "$VHDI_READ" "vhdi-$type.raw" "ours-$type.vhd" || fail "$type: libvhdi cannot read it"
  same_prefix "vhdi-$type.raw" src.raw "$src_size"
  expect_exit 0 "$IMGTOOL" check "ours-$type.vhd"
  expect_exit 0 "$IMGTOOL" compare "ours-$type.vhd" src.raw
  pass "$type VHD: qemu-img and libvhdi read $want bytes, identical to the source"
done
# What the dynamic file holds: only the blocks with data, each 4 KiB aligned
# after its 512-byte bitmap; the header's data offset is all ones.
assert_eq "$("$IMGTOOL" info --json ours-dynamic.vhd | json 'j["chain"][0]["blocks"]["allocated"]')" \
  "$(nonzero_blocks src.raw)" "dynamic: allocated blocks vs non-zero 2 MiB blocks of the source"
assert_eq "$(vhd_patch ours-dynamic.vhd get header 8 8)" ffffffffffffffff "dynamic header data offset"
vhd_patch ours-dynamic.vhd bat-list | while read -r index sector; do
  [ $(( (sector * 512 + 512) % 4096 )) -eq 0 ] || fail "block $index: data at $(( sector * 512 + 512 )) is not 4 KiB aligned"
done
pass "dynamic VHD: zero blocks not stored, data page-aligned, header data offset all ones"

# Other block sizes are read the same by everyone.
for bs in 512K:524288 4M:4194304; do
  bytes=${bs#*:} bs=${bs%:*}
  expect_exit 0 "$IMGTOOL" convert src.raw "bs-$bs.vhd" --block-size "$bs"
  assert_eq "$("$IMGTOOL" info --json "bs-$bs.vhd" | json 'j["chain"][0]["block_size"]')" "$bytes" "block size $bs"
  qemu_compare 0 -f vpc -F raw "bs-$bs.vhd" src.raw
  "$VHDI_READ" "bs-$bs.raw" "bs-$bs.vhd"
  same_prefix "bs-$bs.raw" src.raw "$src_size"
  rm -f "bs-$bs.raw"
done
pass "dynamic VHDs with 512 KiB and 4 MiB blocks: qemu-img and libvhdi read the source"

# A difference is found by everyone (so the identical verdicts above mean something).
cp src.raw changed.raw
# The byte is inverted, so it always differs (src.raw is random there: a
# fixed byte written over it would match one time in 256).
$PY -c 'import sys; f = open(sys.argv[1], "r+b"); f.seek(54321); b = f.read(1)[0]; f.seek(54321); f.write(bytes([b ^ 0xFF]))' changed.raw
cmp -s src.raw changed.raw && fail "changed.raw is not changed"
qemu_compare 1 -f vpc -F raw ours-dynamic.vhd changed.raw
expect_exit 1 "$IMGTOOL" compare ours-fixed.vhd changed.raw --json
assert_eq "$(json 'j["first_difference"]' <<<"$OUT")" 54321 "first difference"
rm changed.raw
pass "a one-byte change is seen by qemu-img compare and imgtool compare at its offset"

# --- A size that is neither a multiple of 512 nor whole cylinders.
head -c 10000001 /dev/urandom > odd.raw
qemu-img create -q -f vpc odd-qemu.vhd 10000001
for type in dynamic fixed; do
  expect_exit 0 "$IMGTOOL" convert odd.raw "odd-$type.vhd" --to "vhd-$type"
  want=$(vsize "odd-$type.vhd")
  [ "$want" -ge 10000001 ] && [ $(( want % 512 )) -eq 0 ] || fail "odd size became $want"
  assert_eq "$(qsize "odd-$type.vhd")" "$want" "odd $type: qemu-img's size"
  assert_eq "$(qsize odd-qemu.vhd)" "$want" "odd $type: qemu-img create rounds 10000001 to"
  qemu_compare 0 -f vpc -F raw "odd-$type.vhd" odd.raw
  expect_exit 0 "$IMGTOOL" convert "odd-$type.vhd" "odd-$type.back" --to raw
  assert_eq "$(stat -c %s "odd-$type.back")" "$want" "odd $type: raw copy's size"
  same_prefix "odd-$type.back" odd.raw 10000001
  "$VHDI_READ" "odd-$type.vhdi" "odd-$type.vhd"
  same_prefix "odd-$type.vhdi" odd.raw 10000001
done
pass "10000001-byte disk: rounded up to $want bytes for us, qemu-img and libvhdi; content kept"

# --- Why we round: qemu sizes a VHD by CHS for most creator codes (ours,
# 'bflt', included) and by current_size for 'win ', 'qem2', ... So a file
# whose size is not whole cylinders looks smaller to qemu unless its creator
# is one qemu trusts.
qemu-img create -q -f vpc -o force_size=on chs.vhd 10000384
geometry=$($PY -c '
s = 10000384 // 512  # the spec algorithm, for sizes below 31 heads
spt = 17; ch = s // spt; h = max(4, (ch + 1023) // 1024); c = ch // h
print((c << 16) | (h << 8) | spt, c * h * spt * 512)')
vhd_patch chs.vhd set footer 56 4 "${geometry% *}"
vhd_patch chs.vhd bytes footer 28 62666c74  # 'bflt'
assert_eq "$(qsize chs.vhd)" "${geometry#* }" "qemu's size of a 'bflt' file with CHS smaller than current_size"
assert_eq "$(vsize chs.vhd)" 10000384 "our size of it (current_size, as Hyper-V and libvhdi)"
vhd_patch chs.vhd bytes footer 28 77696e20  # 'win '
assert_eq "$(qsize chs.vhd)" 10000384 "qemu's size of a 'win ' file"
pass "qemu sizes by CHS for creator 'bflt' (${geometry#* } < 10000384 bytes), by current_size for 'win '"

# --- qemu-img's files, read by us.
qemu-img create -q -f vpc empty-qemu.vhd 64M
empty_size=$(qsize empty-qemu.vhd)
assert_eq "$(vsize empty-qemu.vhd)" "$empty_size" "qemu-img create: our size"
truncate -s "$empty_size" zeros.raw
expect_exit 0 "$IMGTOOL" compare empty-qemu.vhd zeros.raw
expect_exit 0 "$IMGTOOL" convert empty-qemu.vhd empty-qemu.raw --to raw
cmp empty-qemu.raw zeros.raw || fail "qemu-img's empty VHD did not read as zeros"
expect_exit 0 "$IMGTOOL" check empty-qemu.vhd
pass "qemu-img create -f vpc: $empty_size bytes of zeros for us too"

qemu-img convert -O vpc src.raw qemu-dynamic.vhd
qemu-img convert -O vpc -o subformat=fixed src.raw qemu-fixed.vhd
qemu-img convert -O vhdx src.raw qemu-dynamic.vhdx
qemu-img convert -O vhdx -o subformat=fixed src.raw qemu-fixed.vhdx
qemu-img convert -O vhdx odd.raw qemu-odd.vhdx
for f in qemu-dynamic.vhd qemu-fixed.vhd qemu-dynamic.vhdx qemu-fixed.vhdx qemu-odd.vhdx; do
  case $f in *odd*) ref=odd.raw ;; *) ref=src.raw ;; esac
  case $f in *.vhdx) format=vhdx ;; *dynamic*) format=vhd-dynamic ;; *) format=vhd-fixed ;; esac
  assert_eq "$(vsize "$f")" "$(qsize "$f")" "$f: our size vs qemu-img's"
  assert_eq "$("$IMGTOOL" info --json "$f" | json 'j["format"]')" "$format" "$f: format"
  expect_exit 0 "$IMGTOOL" compare "$f" "$ref"
  expect_exit 0 "$IMGTOOL" convert "$f" "$f.raw" --to raw
  same_prefix "$f.raw" "$ref" "$(stat -c %s "$ref")"
  case $f in *.vhd) expect_exit 0 "$IMGTOOL" check "$f" ;; esac
  # and back: our VHD made from qemu's file is what qemu-img wrote.
  expect_exit 0 "$IMGTOOL" convert "$f" "$f.ours.vhd"
  qemu_compare 0 -f vpc -F raw "$f.ours.vhd" "$ref"
  rm -f "$f.raw" "$f.ours.vhd"
done
qemu_compare 0 -f vpc -F vpc ours-dynamic.vhd qemu-dynamic.vhd
pass "qemu-img's dynamic and fixed VHDs and VHDXs (one of odd size) read identically, and convert back"
