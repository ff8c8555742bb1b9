#!/usr/bin/env bash
# imgtool import killed (SIGKILL, via BOOTFLEET_CRASH_AT) at each named step,
# for a first version (a new base) and for a later one (differencing): the
# store opens and says what leftovers it removed, verify passes, and the
# version is either whole (its export reads as the input) or absent, with
# nothing left in tmp/ and nothing for gc.
source "$(dirname "$0")/lib.sh"

POINTS="import:before-write import:after-write import:after-rename import:after-commit"

# killed_at POINT CMD...: runs CMD with the crash point set; it must die of SIGKILL.
killed_at() {
  local point=$1; shift
  set +e
  BOOTFLEET_CRASH_AT=$point "$@" >crash.out 2>&1
  local rc=$?
  set -e
  [ "$rc" -eq 137 ] || fail "$point: '$*' should have been killed (exit 137), exited $rc: $(cat crash.out)"
}

# reopened: the first command after the crash opens the store; its stderr
# (the cleanup report) goes to $REPORT.
reopened() {
  expect_exit 0 it images
  REPORT=$ERR
}

# whole IMAGE N INPUT: IMAGE@N exists and reads exactly as INPUT.
whole() {
  it export "$1@$2" out.raw --to raw --force >/dev/null
  same_disk out.raw "$3"
  local size
  size=$(it versions "$1" --json | json "[v['virtual_size'] for v in j if v['number'] == $2][0]")
  assert_eq "$1@$2 disk digest" "$(disk_digest "$3" "$size")" \
    "$(it versions "$1" --json | json "[v['disk_digest'] for v in j if v['number'] == $2][0]")"
}

count() { it versions "$1" --json | json 'len(j)'; }

# expect_report POINT IMAGE N: the cleanup report matches what POINT leaves.
expect_report() {
  case $1 in
    import:before-write|import:after-commit)
      assert_eq "$1: the cleanup report" "" "$REPORT" ;;
    import:after-write)
      grep -qF "removed tmp/$2@$3.vhd, left by an interrupted write" <<<"$REPORT" ||
        fail "$1: the store did not report removing tmp/$2@$3.vhd: '$REPORT'" ;;
    import:after-rename)
      grep -qF "removed images/$2/$(printf %04d "$3").vhd, a version file no catalog row refers to" <<<"$REPORT" ||
        fail "$1: the store did not report removing images/$2/$(printf %04d "$3").vhd: '$REPORT'" ;;
  esac
}

# A first version: killed before its commit, the image does not exist at all.
sparse_disk base.raw 64
for point in $POINTS; do
  image=new-${point#import:}
  killed_at "$point" it import "$image" base.raw
  reopened
  expect_report "$point" "$image" 1
  expect_exit 0 it verify
  if [ "$point" = import:after-commit ]; then
    assert_eq "$point: versions of $image" 1 "$(count "$image")"
    whole "$image" 1 base.raw
  else
    expect_exit 2 it versions "$image"
    expect_contains "no image '$image'"
    [ -z "$(ls -A "$BOOTFLEET_STORE/images/$image" 2>/dev/null)" ] ||
      fail "$point: files of $image remain: $(ls -A "$BOOTFLEET_STORE/images/$image")"
    # The import done again gets version 1.
    it import "$image" base.raw >/dev/null
    whole "$image" 1 base.raw
  fi
  store_clean "$point (first version)"
  pass "first version killed at $point: report '${REPORT:-nothing}', verify ok, whole or absent"
done

# Later versions, on one image, each killed at one step and then done again.
it import lab base.raw >/dev/null
cp --sparse=always base.raw v1.raw
n=1
for point in $POINTS; do
  cp --sparse=always "v$n.raw" "v$((n + 1)).raw"
  write_random "v$((n + 1)).raw" $(((n * 7 + 3) * MiB + 4096)) $((3 * MiB))
  killed_at "$point" it import lab "v$((n + 1)).raw" -m "v$((n + 1))" --publish
  reopened
  expect_report "$point" lab $((n + 1))
  expect_exit 0 it verify
  if [ "$point" = import:after-commit ]; then
    assert_eq "$point: versions of lab" $((n + 1)) "$(count lab)"
  else
    assert_eq "$point: versions of lab (the killed import must not appear)" $n "$(count lab)"
    it import lab "v$((n + 1)).raw" -m "v$((n + 1))" >/dev/null
  fi
  n=$((n + 1))
  whole lab $n "v$n.raw"
  store_clean "$point (version $n)"
  pass "version $n killed at $point: report '${REPORT:-nothing}', verify ok, version $n whole"
done
for v in 1 2 3 4; do whole lab "$v" "v$v.raw"; done
it versions lab --json | json '[(v["number"], v["parent"]) for v in j]' | grep -qxF "[(1, None), (2, 1), (3, 2), (4, 3), (5, 4)]" ||
  fail "lab's versions are not a chain 1..5: $(it versions lab)"

# Squash writes a version the same way.
killed_at import:after-rename it squash lab@5
reopened
expect_report import:after-rename lab 6
assert_eq "versions after a killed squash" 5 "$(count lab)"
it squash lab@5 >/dev/null
whole lab 6 v5.raw
expect_exit 0 it verify
store_clean "squash"
sqlite_clean
pass "a killed squash leaves nothing; done again it is whole"

# import --publish killed after its commit: the version is there, not
# published. Run again, the import finds the same disk and only publishes.
cp v4.raw v7.raw
dd if=/dev/urandom of=v7.raw bs=64K count=3 seek=40 conv=notrunc status=none
killed_at import:after-commit it import lab v7.raw --publish
reopened
assert_eq "versions after the killed import --publish" 7 "$(count lab)"
active() { it images --json | json '[i["active"] for i in j if i["name"] == "lab"][0]'; }
[ "$(active)" != 7 ] || fail "lab@7 was published before the crash point"
expect_exit 0 it import lab v7.raw --publish
expect_contains "is the same disk as lab@7 (its latest version): nothing stored; lab@7 published"
assert_eq "versions after the import ran again" 7 "$(count lab)"
assert_eq "the active version" 7 "$(active)"
expect_exit 0 it import lab v7.raw
expect_contains "nothing stored"
expect_not_contains "published"
assert_eq "versions after a third import" 7 "$(count lab)"
whole lab 7 v7.raw
store_clean "import again"
pass "an import equal to the latest version stores nothing and only publishes"
