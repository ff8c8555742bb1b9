#!/usr/bin/env bash
# Regenerates the hand-made seeds of corpus/vhd/ (files named seed-*): small
# VHDs written by imgtool (4 KiB and 512-byte blocks keep them under 64 KiB)
# and copies of them damaged in one field each, checksums fixed up where the
# point is to get past them. Other files in corpus/vhd/ (crash regressions)
# are left alone. Usage: IMGTOOL=build/imgtool/imgtool tests/fuzz/make_vhd_seeds.sh
set -euo pipefail
IMGTOOL=${IMGTOOL:?set IMGTOOL to the imgtool binary}
case $IMGTOOL in */*) IMGTOOL=$(realpath "$IMGTOOL") ;; esac
out=$(cd "$(dirname "$0")" && pwd)/corpus/vhd
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"
q() { "$IMGTOOL" "$@" >/dev/null; }

# A 64 KiB raw disk: data blocks, a zero block, a block zero but for one
# sector, and a last block that is only partly data.
python3 - <<'PY'
import random
r = random.Random(7)
d = bytearray(64 * 1024)
for blk in (0, 1, 5, 9, 15):
    d[blk * 4096:(blk + 1) * 4096] = bytes(r.getrandbits(8) for _ in range(4096))
d[7 * 4096 + 1536:7 * 4096 + 2048] = b"\x5a" * 512
open("disk.raw", "wb").write(d)
# The same disk with a few sectors changed, for a differencing file.
e = bytearray(d)
e[512:1024] = b"\x11" * 512          # one sector of block 0
e[3 * 4096:3 * 4096 + 4096] = b"\x22" * 4096  # all of an empty block
e[9 * 4096 + 3584:9 * 4096 + 4096] = bytes(512)  # data turned to zeros
open("changed.raw", "wb").write(e)
# 34 KiB (the smallest whole-cylinder size) with data in five sectors.
f = bytearray(34 * 1024)
for at in (0, 512, 1536, 20 * 1024, 34 * 1024 - 512):
    f[at:at + 512] = bytes(r.getrandbits(8) for _ in range(512))
open("small512.raw", "wb").write(f)
PY
q create seed-dynamic-empty.vhd --size 64K --block-size 4K
q convert disk.raw seed-dynamic.vhd --block-size 4K
q convert small512.raw seed-dynamic-512.vhd --block-size 512
head -c 32768 disk.raw > small.raw
q convert small.raw seed-fixed.vhd --to vhd-fixed
q convert disk.raw parent.vhd --block-size 4K
q convert changed.raw seed-diff.vhd --to vhd-diff --parent parent.vhd --block-size 4K
q create seed-diff-empty.vhd --parent parent.vhd

python3 - <<'PY'
import struct

def csum(b, at):
    return ~(sum(b) - sum(b[at:at + 4])) & 0xFFFFFFFF

def fix_footer(b, at):
    struct.pack_into(">I", b, at + 64, csum(b[at:at + 512], 64))

def fix_header(b, at):
    struct.pack_into(">I", b, at + 36, csum(b[at:at + 1024], 36))

def damaged(src, dst, change):
    b = bytearray(open(src, "rb").read())
    change(b)
    open(dst, "wb").write(b)

def footer_field(fmt, off, value):
    def change(b):
        for at in (0, len(b) - 512):
            struct.pack_into(fmt, b, at + off, value)
            fix_footer(b, at)
    return change

def header_field(fmt, off, value):
    def change(b):
        struct.pack_into(fmt, b, 512 + off, value)
        fix_header(b, 512)
    return change

def bat_entry(i, value):
    def change(b):
        table = struct.unpack_from(">Q", b, 512 + 16)[0]
        struct.pack_into(">I", b, table + 4 * i, value)
    return change

dyn = "seed-dynamic.vhd"
damaged(dyn, "seed-bad-footer-checksum.vhd", lambda b: b.__setitem__(len(b) - 512 + 64, b[len(b) - 512 + 64] ^ 1))
damaged(dyn, "seed-bad-header-checksum.vhd", lambda b: b.__setitem__(512 + 36, b[512 + 36] ^ 1))
damaged(dyn, "seed-footer-copy-differs.vhd", lambda b: b.__setitem__(40, b[40] ^ 0x80))
damaged(dyn, "seed-truncated.vhd", lambda b: b.__delitem__(slice(len(b) - 4096, None)))
damaged(dyn, "seed-bat-past-end.vhd", bat_entry(1, 0x7FFFFF))
damaged(dyn, "seed-bat-overlap.vhd", lambda b: (bat_entry(1, struct.unpack_from(">I", b, 1536)[0])(b)))
damaged(dyn, "seed-bat-in-header.vhd", bat_entry(0, 1))
damaged(dyn, "seed-block-size-odd.vhd", header_field(">I", 32, 3000))
damaged(dyn, "seed-few-bat-entries.vhd", header_field(">I", 28, 3))
damaged(dyn, "seed-size-larger.vhd", footer_field(">Q", 48, 8 << 20))
damaged(dyn, "seed-size-unaligned.vhd", footer_field(">Q", 48, 65536 + 100))
damaged(dyn, "seed-type-unknown.vhd", footer_field(">I", 60, 5))
damaged(dyn, "seed-data-offset-far.vhd", footer_field(">Q", 16, 1 << 40))
damaged("seed-fixed.vhd", "seed-fixed-511-footer.vhd", lambda b: b.__delitem__(len(b) - 1))
damaged("seed-fixed.vhd", "seed-fixed-short.vhd", lambda b: b.__delitem__(slice(0, 4096)))
damaged("seed-diff.vhd", "seed-diff-nil-parent.vhd", header_field("16s", 40, bytes(16)))
# Parent locator data pointing into the BAT.
def locator_into_bat(b):
    struct.pack_into(">Q", b, 512 + 576 + 16, 1536)
    fix_header(b, 512)
damaged("seed-diff.vhd", "seed-diff-locator-overlap.vhd", locator_into_bat)
# Every bitmap bit set, also past the end of the disk in the last block.
def bitmaps_full(b):
    table = struct.unpack_from(">Q", b, 512 + 16)[0]
    entries = struct.unpack_from(">I", b, 512 + 28)[0]
    for i in range(entries):
        e = struct.unpack_from(">I", b, table + 4 * i)[0]
        if e != 0xFFFFFFFF:
            b[e * 512:e * 512 + 512] = b"\xff" * 512
damaged("seed-diff.vhd", "seed-diff-bitmap-full.vhd", bitmaps_full)
PY
rm -f "$out"/seed-*.vhd
cp seed-*.vhd "$out"/
ls -l "$out"
