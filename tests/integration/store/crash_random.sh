#!/usr/bin/env bash
# imgtool import of a 200 MiB disk killed with SIGKILL after a random delay,
# about 15 times (bounded in time): each time the store opens, verify
# passes, the new version is either whole (its export reads as the input)
# or absent, and nothing is left in tmp/ or for gc.
source "$(dirname "$0")/lib.sh"

ms() { echo $(($(date +%s%N) / 1000000)); }
count() {  # versions of IMAGE, 0 when there is no such image
  local v
  if v=$(it versions "$1" --json 2>/dev/null); then json 'len(j)' <<<"$v"; else echo 0; fi
}

head -c 200M /dev/urandom >big.raw
truncate -s 256M big.raw  # 200 MiB of data in a 256 MiB disk
start=$(ms)
it import big big.raw -m "version 1" >/dev/null
base_ms=$(($(ms) - start))
write_random big.raw $((3 * MiB)) $((40 * MiB))
start=$(ms)
it import big big.raw -m "version 2" >/dev/null
diff_ms=$(($(ms) - start))
echo "an import takes ${base_ms} ms as a new base, ${diff_ms} ms as a 40 MiB change"

deadline=$((SECONDS + 60))
rounds=0 whole=0 absent=0 reports=""
for i in $(seq 1 15); do
  [ $SECONDS -lt $deadline ] || break
  rounds=$i
  # Every third round writes a new base (a new image), the others a
  # differencing version with 40 MiB changed in 5 places.
  if [ $((i % 3)) -eq 0 ]; then image=fresh$i max=$((base_ms * 3 / 2 + 20)); else image=big max=$((diff_ms * 3 / 2 + 20)); fi
  for k in 0 1 2 3 4; do write_random big.raw $((((i * 37 + k * 41) % 240) * MiB + k * 4096)) $((8 * MiB)); done
  before=$(count "$image")
  delay=$((RANDOM % max))
  "$IMGTOOL" import "$image" big.raw -m "round $i" >/dev/null 2>&1 &
  pid=$!  # imgtool itself, not a subshell
  sleep "$((delay / 1000)).$(printf %03d $((delay % 1000)))"
  kill -9 $pid 2>/dev/null || true
  set +e; wait $pid; rc=$?; set -e
  [ "$rc" -eq 0 ] || [ "$rc" -eq 137 ] || fail "round $i: the import exited $rc (expected 0, or 137 when killed)"

  # The store opens, cleaning up; verify passes.
  expect_exit 0 it images
  [ -z "$ERR" ] || reports+="  round $i: $(sed 's/^imgtool: store [^:]*: //' <<<"$ERR")"$'\n'
  expect_exit 0 it verify
  after=$(count "$image")
  if [ "$after" -eq $((before + 1)) ]; then
    it export "$image@$after" out.raw --to raw --force >/dev/null
    same_disk out.raw big.raw
    assert_eq "round $i: the new version's message" "round $i" \
      "$(it versions "$image" --json | json 'j[-1]["message"]')"
    whole=$((whole + 1)) state="whole"
  elif [ "$after" -eq "$before" ]; then
    [ "$rc" -eq 137 ] || fail "round $i: the import succeeded but $image has no new version"
    absent=$((absent + 1)) state="absent"
  else
    fail "round $i: $image went from $before to $after versions"
  fi
  store_clean "round $i (killed after ${delay} ms)"
  echo "round $i: $image killed after $delay ms (exit $rc): version $state"
done
[ "$rounds" -ge 8 ] || fail "only $rounds rounds ran in the time allowed"
[ "$absent" -ge 1 ] || fail "no kill landed before a commit in $rounds rounds (delays too long?)"
echo "leftovers the store reported removing:"
echo -n "${reports:-  none}"
expect_exit 0 it verify
n=$(count big)
it versions big --json | json "[v['number'] for v in j] == list(range(1, $n + 1)) and all(v['parent'] == v['number'] - 1 for v in j[1:])" |
  grep -qx True || fail "big's versions are not a chain 1..$n: $(it versions big)"
sqlite_clean
pass "$rounds random kills: $whole versions whole, $absent absent; verify ok and nothing left over after each"
