#!/usr/bin/env bash
# Differencing chains of depth 1, 2 and 32 written by us, read by libvhdi with
# the parents attached: the same bytes as our reader and as the source.
source "$(dirname "$0")/lib.sh"
VHDI_READ=${VHDI_READ:?set VHDI_READ}

random_disk disk.raw 64
size=$(stat -c %s disk.raw)
"$IMGTOOL" convert disk.raw v1.vhd >/dev/null
files=(v1.vhd)
for n in $(seq 2 32); do
  # A few sectors and a whole block change at each step.
  dd if=/dev/urandom of=disk.raw bs=512 count=3 seek=$(( (n * 7919) % 131000 )) conv=notrunc status=none
  [ $(( n % 5 )) -eq 0 ] && dd if=/dev/urandom of=disk.raw bs=1M count=2 seek=$(( n % 60 )) conv=notrunc status=none
  "$IMGTOOL" convert disk.raw v$n.vhd --to vhd-diff --parent v$(( n - 1 )).vhd >/dev/null
  files=(v$n.vhd "${files[@]}")
  if [ "$n" = 2 ] || [ "$n" = 3 ] || [ "$n" = 32 ]; then
    depth=${#files[@]}
    cp disk.raw expect-$n.raw
    "$VHDI_READ" libvhdi-$n.raw "${files[@]}"
    "$IMGTOOL" convert v$n.vhd ours-$n.raw --to raw >/dev/null
    cmp libvhdi-$n.raw ours-$n.raw || fail "depth $depth: libvhdi and imgtool read different bytes"
    same_prefix ours-$n.raw expect-$n.raw "$size"
    expect_exit 0 "$IMGTOOL" check v$n.vhd
    chain=$("$IMGTOOL" info v$n.vhd --json | json 'len(j["chain"])')
    [ "$chain" = "$depth" ] || fail "info lists $chain files, the chain has $depth"
    pass "depth $depth: libvhdi, imgtool and the source agree"
  fi
done

# The relative locator finds parents after the whole chain moves.
mkdir moved && mv v*.vhd moved/
expect_exit 0 "$IMGTOOL" compare moved/v32.vhd expect-32.raw
pass "a moved chain still opens through its relative locators"

# qemu reads a differencing file as if it had no parent (the design notes it).
fmt=$(qemu-img info --output=json moved/v2.vhd | json 'j["format"]')
[ "$fmt" = vpc ] || fail "qemu-img sees format $fmt"
if qemu-img compare -q -f vpc -F raw moved/v2.vhd expect-2.raw; then
  fail "qemu-img read the parent's data through a differencing VHD"
fi
pass "qemu-img ignores the parent, as documented"
