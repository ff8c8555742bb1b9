#!/usr/bin/env bash
# Two importers of one image, a third of another image, a publisher (publish
# and rollback in a loop, on both images) and a reader, all on one store at
# once. Every command succeeds or fails cleanly (never a crash, never
# "database is locked"), and the catalog stays consistent: versions 1..N
# without gaps, each on the one before, each holding what was imported,
# verify ok, SQLite's own checks clean, the publish history a stack.
source "$(dirname "$0")/lib.sh"

sparse_disk base.raw 64
it import lab base.raw -m "base" --publish >/dev/null
it import other base.raw -m "base" --publish >/dev/null
ROUNDS=6

# record NAME RC: every command's exit status, one line each.
record() { echo "$2" >>"rc-$1.txt"; }

importer() {  # IMAGE TAG
  local r
  for r in $(seq 1 $ROUNDS); do
    cp --sparse=always base.raw "$2-$r.raw"
    write_random "$2-$r.raw" $(((r * 5 + ${#2} * 17) % 60 * MiB + 512 * r)) $((1 * MiB + 4096 * r))
    set +e; "$IMGTOOL" import "$1" "$2-$r.raw" -m "$2 $r" >/dev/null 2>>"err-$2.txt"; record "$2" $?; set -e
  done
}
publisher() {
  local r image n
  for r in $(seq 1 25); do
    for image in lab other; do
      set +e
      n=$("$IMGTOOL" versions $image --json 2>>err-pub.txt | json 'j[-1]["number"]'); record pub $?
      "$IMGTOOL" publish "$image@$n" >/dev/null 2>>err-pub.txt; record pub $?
      "$IMGTOOL" rollback $image >/dev/null 2>>err-pub.txt; record pub $?
      set -e
    done
  done
}
reader() {
  local r
  for r in $(seq 1 15); do
    set +e
    "$IMGTOOL" verify lab@active >/dev/null 2>>err-read.txt; record read $?
    "$IMGTOOL" diff lab@1 other@1 >/dev/null 2>>err-read.txt; record read $?
    "$IMGTOOL" gc --dry-run >/dev/null 2>>err-read.txt; record read $?
    set -e
  done
}
importer lab a & p1=$!
importer lab b & p2=$!
importer other c & p3=$!
publisher & p4=$!
reader & p5=$!
wait $p1 $p2 $p3 $p4 $p5

# Importers and readers always succeed; the publisher may only be refused a
# rollback with nothing to roll back to (when its publish found the version
# already active).
for who in a b c read; do
  bad=$(grep -cvx 0 "rc-$who.txt" || true)
  [ "$bad" -eq 0 ] || fail "$who: $bad commands failed (exit codes $(sort "rc-$who.txt" | uniq -c | tr '\n' ' ')): $(cat "err-$who.txt")"
done
grep -qvx '[02]' rc-pub.txt && fail "the publisher got exit codes other than 0 and 2: $(sort rc-pub.txt | uniq -c | tr '\n' ' ')"
unexpected=$(grep -v "waiting for another writer" err-*.txt | grep -v "nothing to roll back to: no version was active before" || true)
[ -z "$unexpected" ] || fail "unexpected errors: $unexpected"
pass "$(cat rc-*.txt | wc -l) commands from 3 importers, a publisher and a reader: all ok or cleanly refused"

# Versions 1..N, each on the one before, each holding its input.
for image in lab other; do
  want=$([ $image = lab ] && echo $((1 + 2 * ROUNDS)) || echo $((1 + ROUNDS)))
  it versions $image --json >v.json
  json '[v["number"] for v in j]' <v.json | grep -qxF "$($PY -c "print(list(range(1, $want + 1)))")" ||
    fail "$image: versions $(json '[v["number"] for v in j]' <v.json), expected 1..$want"
  json 'all(v["parent"] == v["number"] - 1 for v in j[1:]) and j[0]["parent"] is None' <v.json | grep -qx True ||
    fail "$image: a version's parent is not the one before it: $(json '[(v["number"], v["parent"]) for v in j]' <v.json)"
  while read -r number message digest size; do
    file=$message.raw  # the message names the input, "a 3" for a-3.raw
    assert_eq "$image@$number ('$message') disk digest" "$(disk_digest "$file" "$size")" "$digest"
  done < <(json '"\n".join("%d %s %s %d" % (v["number"], v["message"].replace(" ", "-"), v["disk_digest"], v["virtual_size"]) for v in j)' <v.json)
done
expect_exit 0 it verify
sqlite_clean
store_clean "after the concurrent writers"
pass "lab 1..$((1 + 2 * ROUNDS)) and other 1..$((1 + ROUNDS)): no gaps, each on the one before, each the disk imported; verify ok, SQLite clean"

# The publish history is one sequence: each entry's 'previous' is the version
# the entry before made active, and replaying it gives what images reports.
for image in lab other; do
  it history $image --json >h.json
  it images --json >i.json
  $PY - "$image" <<'EOF' || fail "$image: the history is not consistent (see above)"
import json, sys
image = sys.argv[1]
history = json.load(open("h.json"))
info = [i for i in json.load(open("i.json")) if i["name"] == image][0]
stack, active = [], None
for k, a in enumerate(history):
    if a["previous"] != active:
        sys.exit(f"entry {k} ({a}) says the active version was {a['previous']}, it was {active}")
    if a["action"] == "rollback" and len(stack) >= 2 and stack[-2] == a["version"]:
        stack.pop()
    else:
        stack.append(a["version"])
    active = a["version"]
if info["active"] != active or info["previous"] != (stack[-2] if len(stack) >= 2 else None):
    sys.exit(f"images says active {info['active']} previous {info['previous']}; the history gives {active}, stack {stack}")
print(f"{image}: {len(history)} publishes and rollbacks, active @{active}")
EOF
done
pass "publish history: a single sequence, consistent with the active version and rollback target"
