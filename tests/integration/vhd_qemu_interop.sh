#!/usr/bin/env bash
# Our VHDs as qemu-img sees them, and qemu-img's VHDs and VHDXs as we see them.
source "$(dirname "$0")/lib.sh"

random_disk src.raw 100

for type in dynamic fixed; do
  "$IMGTOOL" convert src.raw ours-$type.vhd --to vhd-$type >/dev/null
  want=$("$IMGTOOL" info ours-$type.vhd --json | json 'j["virtual_size"]')
  # -f vpc: qemu probes a fixed VHD (no header at offset 0) as raw.
  got=$(qemu-img info -f vpc --output=json ours-$type.vhd | json 'j["virtual-size"]')
  [ "$want" = "$got" ] || fail "$type: qemu-img sees $got bytes, we wrote $want"
  qemu-img compare -q -f vpc -F raw ours-$type.vhd src.raw || fail "$type: qemu-img compare differs"
  # qemu's vpc driver has no consistency check; say so rather than pretend.
  expect_exit 63 qemu-img check -f vpc ours-$type.vhd
  expect_contains "does not support checks"
  pass "$type VHD: qemu-img reads $got bytes, identical to the source"
done

# A size that is neither a multiple of 512 nor of whole cylinders.
head -c 10000001 /dev/urandom > odd.raw
"$IMGTOOL" convert odd.raw odd.vhd >/dev/null
want=$("$IMGTOOL" info odd.vhd --json | json 'j["virtual_size"]')
got=$(qemu-img info -f vpc --output=json odd.vhd | json 'j["virtual-size"]')
[ "$want" = "$got" ] || fail "odd size: qemu-img sees $got, we report $want"
[ "$want" -ge 10000001 ] || fail "odd size shrank to $want"
"$IMGTOOL" convert odd.vhd odd-back.raw --to raw >/dev/null
same_prefix odd-back.raw odd.raw 10000001
pass "10000001-byte disk rounds up to $want bytes for every reader, content kept"

# qemu-img's files, read by us.
qemu-img create -q -f vpc empty-qemu.vhd 64M
expect_exit 0 "$IMGTOOL" compare empty-qemu.vhd /dev/null
qemu-img convert -O vpc src.raw qemu-dyn.vhd
qemu-img convert -O vpc -o subformat=fixed src.raw qemu-fixed.vhd
qemu-img convert -O vhdx src.raw qemu.vhdx
for f in qemu-dyn.vhd qemu-fixed.vhd qemu.vhdx; do
  expect_exit 0 "$IMGTOOL" compare "$f" src.raw
  "$IMGTOOL" convert "$f" "$f.raw" --to raw >/dev/null
  same_prefix "$f.raw" src.raw $(stat -c %s src.raw)
  expect_exit 0 "$IMGTOOL" info "$f"
done
expect_exit 0 "$IMGTOOL" check qemu-dyn.vhd
pass "qemu-img's dynamic, fixed and VHDX files read identically"
