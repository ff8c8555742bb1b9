#!/usr/bin/env bash
# A full disk that changed 10 MiB in 5 places costs about 10 MiB; diff finds
# exactly the changed blocks from digests, and --verify narrows them to the
# sectors written; export to raw, dynamic and fixed VHD reads as the input.
source "$(dirname "$0")/lib.sh"

# A 128 MiB disk full of data.
head -c 128M /dev/urandom >v1.raw
it import lab v1.raw -m one >/dev/null
size=$(it versions lab --json | json 'j[0]["virtual_size"]')

# 10 MiB changed in 5 places, some across block boundaries, some not on any
# 4 KiB boundary: OFFSET:LENGTH in bytes, sector-aligned.
CHANGES="$((5 * MiB)):$((2 * MiB)) $((20 * MiB)):$((2 * MiB)) $((41 * MiB + 1536)):$((2 * MiB)) \
$((70 * MiB - 512)):$((2 * MiB)) $((125 * MiB)):$((2 * MiB))"
cp v1.raw v2.raw
for c in $CHANGES; do write_random v2.raw "${c%:*}" "${c#*:}"; done
expect_exit 0 it import lab v2.raw -m "10 MiB changed"
expect_contains "as lab@2: differencing on @1, 9 blocks changed"

it versions lab --json >v.json
stored=$(json 'j[1]["stored_bytes"]' <v.json)
file_size=$(json 'j[1]["file_size"]' <v.json)
on_disk=$(du -B1 "$BOOTFLEET_STORE/images/lab/0002.vhd" | cut -f1)
[ "$stored" -ge $((10 * MiB)) ] || fail "stored_bytes $stored is less than the 10 MiB that changed"
assert_lt "stored_bytes of a 10 MiB change (at most 10 MiB + 5 blocks)" "$stored" $((10 * MiB + 5 * BLOCK))
assert_lt "the version file's size, against the disk's $size bytes" "$file_size" $((size / 4))
assert_lt "the version file's blocks on disk (du)" "$on_disk" $((10 * MiB + 5 * BLOCK))
assert_eq "lab@2's parent" 1 "$(json 'j[1]["parent"]' <v.json)"
assert_eq "lab@2's disk digest" "$(disk_digest v2.raw "$size")" "$(json 'j[1]["disk_digest"]' <v.json)"
pass "10 MiB changed in 5 places of a full 128 MiB disk: stored $stored bytes, file $file_size bytes ($on_disk on disk)"

# What the ranges must be: whole blocks from the digests, exact sectors with --verify.
expected_ranges() {  # GRANULARITY: merged [offset, length] pairs covering CHANGES
  $PY - "$1" "$size" $CHANGES <<'EOF'
import sys
g, size = int(sys.argv[1]), int(sys.argv[2])
units = set()
for c in sys.argv[3:]:
    off, length = map(int, c.split(":"))
    units.update(range(off // g, (off + length - 1) // g + 1))
ranges = []
for u in sorted(units):
    start, end = u * g, min((u + 1) * g, size)
    if ranges and ranges[-1][0] + ranges[-1][1] == start:
        ranges[-1][1] += end - start
    else:
        ranges.append([start, end - start])
print(ranges)
EOF
}
ranges_of() { json '[[r["offset"], r["length"]] for r in j["ranges"]]'; }

expect_exit 1 it diff lab@1 lab@2 --json
echo "$OUT" >d.json
assert_eq "diff ranges (whole blocks)" "$(expected_ranges $BLOCK)" "$(ranges_of <d.json)"
assert_eq "diff totals: changed, added, removed, modified, data read, granularity" "$((18 * MiB)) 0 0 9 False $BLOCK" \
  "$(json '" ".join(map(str, (j["changed_bytes"], j["blocks"]["added"], j["blocks"]["removed"], j["blocks"]["modified"], j["data_read"], j["granularity"])))' <d.json)"
expect_exit 1 it diff lab@2 lab@1 --json
assert_eq "diff ranges, the other way round" "$(expected_ranges $BLOCK)" "$(ranges_of <<<"$OUT")"
pass "diff --json: 9 whole blocks in 5 ranges, from the digests ($(expected_ranges $BLOCK | tr -d ' '))"

expect_exit 1 it diff lab@1 lab@2 --json --verify
echo "$OUT" >dv.json
assert_eq "diff --verify ranges (sectors)" "$(expected_ranges 512)" "$(ranges_of <dv.json)"
assert_eq "diff --verify totals: changed, data read, verified, problems, granularity" "$((10 * MiB)) True True [] 512" \
  "$(json '" ".join(map(str, (j["changed_bytes"], j["data_read"], j["verified"], j["verify_problems"], j["granularity"])))' <dv.json)"
expect_exit 0 it diff lab@2 lab@2 --json
assert_eq "diff of a version with itself" "0 []" "$(json '" ".join(map(str, (j["changed_bytes"], j["ranges"])))' <<<"$OUT")"
expect_exit 0 it diff lab@1 lab@1 --verify
pass "diff --verify: exactly the 5 ranges written, 10 MiB"

# Export, flattened, in each format: qemu-img and imgtool compare read it as the input.
for to in raw vhd-dynamic vhd-fixed; do
  expect_exit 0 it export lab@2 "out.$to" --to $to
  format=$([ $to = raw ] && echo raw || echo vpc)
  # (qemu only probes a VHD by the footer copy at its start: not in a fixed VHD)
  [ $to = vhd-fixed ] || assert_eq "export --to $to: qemu-img's idea of the format" "$format" \
    "$(qemu-img info --output=json "out.$to" | json 'j["format"]')"
  same_disk "out.$to" v2.raw $format
  expect_exit 0 it compare "out.$to" v2.raw
  expect_exit 1 it compare "out.$to" v1.raw
done
expect_exit 0 it check out.vhd-dynamic
it export lab@1 out1.raw --to raw >/dev/null
same_disk out1.raw v1.raw
expect_exit 2 it export lab@1 out.raw --to raw
expect_contains "out.raw: already exists"
same_disk out.raw v2.raw
pass "export lab@2 to raw, vhd-dynamic and vhd-fixed reads as the input (qemu-img compare, imgtool compare); an existing file is kept"
