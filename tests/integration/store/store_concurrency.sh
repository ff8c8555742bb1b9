#!/usr/bin/env bash
# Two importers of one image, one of another, and a publisher, all at once.
source "$(dirname "$0")/../lib.sh"
export BOOTFLEET_STORE=$WORK/store
"$IMGTOOL" init >/dev/null
random_disk base.raw 64
"$IMGTOOL" import lab base.raw --publish >/dev/null
"$IMGTOOL" import other base.raw --publish >/dev/null

importer() { # image tag rounds
  for r in $(seq 1 "$3"); do
    cp --sparse=always base.raw "$2-$r.raw"
    dd if=/dev/urandom of="$2-$r.raw" bs=64K count=4 seek=$(( (r * 37 + ${#2}) % 900 )) conv=notrunc status=none
    "$IMGTOOL" import "$1" "$2-$r.raw" -m "$2 $r" >/dev/null 2>>"errors-$2.txt" || echo "import $2 $r failed" >>failures.txt
  done
}
publisher() {
  for r in $(seq 1 40); do
    n=$("$IMGTOOL" versions lab --json 2>/dev/null | json 'j[-1]["number"]') || continue
    "$IMGTOOL" publish lab@$n >/dev/null 2>>errors-pub.txt || echo "publish $n failed" >>failures.txt
    "$IMGTOOL" rollback lab >/dev/null 2>>errors-pub.txt || true  # may have nothing to roll back to
  done
}
importer lab a 6 & p1=$!
importer lab b 6 & p2=$!
importer other c 6 & p3=$!
publisher & p4=$!
wait $p1 $p2 $p3 $p4
[ ! -s failures.txt ] || fail "$(cat failures.txt; cat errors-*.txt)"
! grep -qi "locked\|busy" errors-*.txt || fail "lock errors: $(cat errors-*.txt)"

for image in lab other; do
  numbers=$("$IMGTOOL" versions $image --json | json '[v["number"] for v in j]')
  want=$($PY -c "print(list(range(1, $( [ $image = lab ] && echo 14 || echo 8 ))))")
  [ "$numbers" = "$want" ] || fail "$image versions $numbers, expected $want"
  "$IMGTOOL" versions $image --json | json 'all(v["parent"] in (None, v["number"] - 1) for v in j)' | grep -q True \
    || fail "$image: a parent is not the version before"
done
expect_exit 0 "$IMGTOOL" verify
check=$(sqlite3 "$BOOTFLEET_STORE/catalog.db" 'PRAGMA integrity_check; PRAGMA foreign_key_check;')
[ "$check" = ok ] || fail "sqlite: $check"
pass "13 + 7 versions from three importers and a publisher: numbered without gaps, verify ok, catalog intact"
