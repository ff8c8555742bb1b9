#!/usr/bin/env bash
# ci/check-layers against this tree (every include follows docs/layers.md),
# and against copies of it made wrong on purpose: an include that runs up
# the layers, a folder with no row, a row naming an unknown layer. Each must
# fail, naming what is wrong.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
CHECK=$ROOT/ci/check-layers
WORK=$(mktemp -d "${TMPDIR:-/tmp}/check-layers-XXXXXX")
trap 'rm -rf "$WORK"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

# run_check DIR WANT_RC: output in $OUT.
run_check() {
  set +e; OUT=$(python3 "$CHECK" --root "$1" 2>&1); local rc=$?; set -e
  [ "$rc" -eq "$2" ] || fail "check-layers --root $1 exited $rc, expected $2: $OUT"
}
fresh_copy() {
  rm -rf "$WORK/tree"; mkdir -p "$WORK/tree/docs"
  cp -r "$ROOT/lib" "$ROOT/bootsrv" "$ROOT/imgtool" "$WORK/tree/"
  cp "$ROOT/docs/layers.md" "$WORK/tree/docs/"
}

run_check "$ROOT" 0
grep -q "follow docs/layers.md" <<<"$OUT" || fail "no summary line: $OUT"
echo "ok: this tree follows docs/layers.md ($OUT)"

# The protocol layer reaching the catalog; the line number is where it is.
fresh_copy
printf '#include "util/error.h"\n#include "store/store.h"\n' > "$WORK/tree/lib/nbd/zz_bad.cc"
run_check "$WORK/tree" 1
grep -qF 'lib/nbd/zz_bad.cc:2: layer '"'"'nbd'"'"' includes "store/..."' <<<"$OUT" || fail "not named: $OUT"
grep -q "zz_bad.cc:1" <<<"$OUT" && fail "util include reported: $OUT"
echo "ok: nbd including store/ is refused with file and line"

# Upward through a header, and the library layer including a program.
fresh_copy
printf '#include "imgtool/commands.h"\n' > "$WORK/tree/lib/util/zz_bad.h"
run_check "$WORK/tree" 1
grep -qF "lib/util/zz_bad.h:1: layer 'util' includes \"imgtool/...\"; util may include nothing but itself" <<<"$OUT" ||
  fail "util -> imgtool not named: $OUT"
fresh_copy
printf '#include "serve/exports.h"\n' > "$WORK/tree/lib/recipe/zz_bad.h"
run_check "$WORK/tree" 1
grep -qF "lib/recipe/zz_bad.h:1" <<<"$OUT" || fail "recipe -> serve not named: $OUT"
echo "ok: recipe including serve/ (through a header) is refused"

# libguestfs belongs to the guest layer: a recipe calling it directly is refused.
fresh_copy
printf '#include <guestfs.h>\n' > "$WORK/tree/lib/recipe/zz_bad.cc"
printf '#include <guestfs.h>\n' > "$WORK/tree/imgtool/zz_bad.cc"
run_check "$WORK/tree" 1
grep -qF "lib/recipe/zz_bad.cc:1: layer 'recipe' includes <guestfs.h>, which only 'guest' may include" <<<"$OUT" ||
  fail "recipe -> <guestfs.h> not named: $OUT"
grep -qF "imgtool/zz_bad.cc:1: layer 'imgtool' includes <guestfs.h>" <<<"$OUT" || fail "imgtool -> <guestfs.h>: $OUT"
echo "ok: <guestfs.h> outside lib/guest is refused"

# A folder with no row, and a row naming a layer with no row.
fresh_copy
mkdir "$WORK/tree/lib/newthing" && printf '#include "util/error.h"\n' > "$WORK/tree/lib/newthing/a.cc"
run_check "$WORK/tree" 1
grep -qF "lib/newthing/: layer 'newthing' has no row" <<<"$OUT" || fail "missing row not named: $OUT"
fresh_copy
sed -i 's/^| http | util |$/| http | util, sockets |/' "$WORK/tree/docs/layers.md"
run_check "$WORK/tree" 2
grep -qF "layer 'http' may include 'sockets', which has no row" <<<"$OUT" || fail "unknown edge not named: $OUT"
fresh_copy
rm "$WORK/tree/docs/layers.md"
run_check "$WORK/tree" 2
grep -q "cannot read the layer table" <<<"$OUT" || fail "missing table not named: $OUT"
echo "ok: a folder with no row, an edge to nowhere and a missing table are refused"
