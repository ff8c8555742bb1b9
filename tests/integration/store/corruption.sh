#!/usr/bin/env bash
# Bytes flipped inside a data block of a version file: verify exits 1 and
# names the image, the version and the block; the versions below it stay ok.
source "$(dirname "$0")/lib.sh"

sparse_disk v1.raw 64
cp --sparse=always v1.raw v2.raw && write_random v2.raw $((10 * MiB + 4096)) $((5 * MiB))
cp --sparse=always v2.raw v3.raw && write_random v3.raw $((50 * MiB)) $MiB
for v in 1 2 3; do it import lab v$v.raw >/dev/null; done
it import other v1.raw >/dev/null
expect_exit 0 it verify
expect_contains "ok: 4 versions checked"

# A sector that version 2's file holds (its bit set in the block's sector
# bitmap), inside a block the file allocates: found by reading the VHD's own
# structures (footer, dynamic header, BAT, bitmap).
file=$BOOTFLEET_STORE/images/lab/0002.vhd
read -r block offset bytes < <($PY - "$file" <<'EOF'
import struct, sys
f = open(sys.argv[1], "rb").read()
footer = f[-512:]
assert footer[:8] == b"conectix", "no VHD footer"
header = struct.unpack_from(">Q", footer, 16)[0]
assert f[header:header + 8] == b"cxsparse", "no dynamic header"
table, entries, block_size = struct.unpack_from(">QII", f, header + 16)[0], *struct.unpack_from(">II", f, header + 28)
bitmap_size = (block_size // 512 // 8 + 511) // 512 * 512
allocated = [(b, e) for b in range(entries) if (e := struct.unpack_from(">I", f, table + 4 * b)[0]) != 0xFFFFFFFF]
block, sector_offset = allocated[len(allocated) // 2]  # one in the middle
bitmap = f[sector_offset * 512:sector_offset * 512 + bitmap_size]
sectors = [s for s in range(block_size // 512) if bitmap[s // 8] & (0x80 >> (s % 8))]
s = sectors[len(sectors) // 2]
at = sector_offset * 512 + bitmap_size + s * 512 + 100
flipped = bytes(b ^ 0xFF for b in f[at:at + 4])
print(block * block_size // (2 << 20), at, "".join("\\x%02x" % b for b in flipped))
EOF
)
printf "$bytes" | dd of="$file" bs=1 seek="$offset" conv=notrunc status=none
expect_exit 1 it verify
expect_contains "lab@2: block $block (bytes $((block * BLOCK))-$(((block + 1) * BLOCK - 1))): data hashes to"
expect_contains "PROBLEMS: 4 versions checked"
grep -q "^lab@1:\|^other@" <<<"$OUT" && fail "verify blamed a version that is fine: $OUT"
expect_exit 1 it verify lab@2
expect_contains "lab@2: block $block"
expect_exit 0 it verify lab@1
expect_exit 0 it verify other
expect_exit 1 it verify --json
assert_eq "verify --json: the problems' image, version, and block" "[['lab', 2, True]] False" \
  "$($PY -c "import json,sys; j=json.loads(sys.argv[1]); print([[p['image'], p['version'], p['problem'].startswith('block $block ')] for p in j['problems'] if p['version'] == 2], j['ok'])" "$OUT")"
pass "4 bytes flipped in block $block of lab@2's file: verify exits 1 naming lab@2 and block $block; lab@1 and other verify ok"

# Restored, verify is happy again; a missing file is named too.
printf "$(printf "$bytes" | $PY -c "import sys; print(''.join('\\\\x%02x' % (b ^ 0xFF) for b in sys.stdin.buffer.read()))")" |
  dd of="$file" bs=1 seek="$offset" conv=notrunc status=none
expect_exit 0 it verify
mv "$file" moved.vhd
expect_exit 1 it verify lab
expect_contains "lab@2: "
mv moved.vhd "$file"
expect_exit 0 it verify
pass "bytes flipped back: verify ok; a missing version file: verify exits 1 naming lab@2"
