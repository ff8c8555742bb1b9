#!/usr/bin/env bash
# The README runs as written, for a newcomer on a fresh clone: it says where
# the build puts the programs, makes nothing it does not create, installs
# the dnsmasq whose directory it writes to, says how long ci/demo takes, and
# lists every page of docs/ exactly once. docs/imgtool.md's usage blocks are
# what `imgtool COMMAND --help` prints (no internal option names).
source "$(dirname "$0")/lib.sh"
ROOT=$(cd "$HERE_LIB/../.." && pwd)
README=$ROOT/README.md

for page in "$ROOT"/docs/*.md; do
  name=docs/$(basename "$page")
  n=$(grep -c "^- \`$name\`" "$README" || true)
  assert_eq "$n" 1 "times README's documentation list names $name"
done
pass "README lists each of $(ls "$ROOT"/docs/*.md | wc -l) docs pages once"

grep -q "build/imgtool/imgtool" "$README" || fail "README does not say where the build puts imgtool"
grep -q "build/bootsrv/bootsrv" "$README" || fail "README does not say where the build puts bootsrv"
grep -qE "ci/demo.*takes about [0-9]+ minutes|ci/demo\` takes about [0-9]+" "$README" || fail "README does not say how long ci/demo takes"
if grep -q -- "--tftp-root /srv/tftp" "$README"; then
  grep -q "install -d /srv/tftp" "$README" || fail "README uses --tftp-root /srv/tftp without making it"
fi
if grep -q "/etc/dnsmasq.d" "$README"; then
  awk '/apt-get install.*dnsmasq/ {seen=1} /> *\/etc\/dnsmasq.d/ && !seen {exit 1}' "$README" ||
    fail "README writes to /etc/dnsmasq.d before installing the dnsmasq package"
fi
pass "README: where the programs are, ci/demo's duration, no directory it does not make, dnsmasq installed first"

# Every "Usage: imgtool COMMAND" block of docs/imgtool.md is that command's --help.
unset BOOTFLEET_STORE BOOTFLEET_SERVER
$PY - "$ROOT/docs/imgtool.md" "$IMGTOOL" <<'PY'
import re, subprocess, sys
doc, imgtool = sys.argv[1], sys.argv[2]
text = open(doc).read()
bad = []
blocks = re.findall(r"```\n(Usage: imgtool ([a-z-]+(?: group)?(?: (?:add|list|set|rm|cancel|start|commit|discard|status))?)[ \n].*?)```", text, re.S)
for block, command in blocks:
    out = subprocess.run([imgtool, *command.split(), "--help"], capture_output=True, text=True).stdout
    if "\n" not in block.strip():  # a synopsis line only
        out = out.splitlines()[0] if out else ""
    if out.strip() != block.strip():
        bad.append(command)
    for hidden in ("--file arg", "--image arg  ", "--mac arg"):
        if hidden in block and command not in ("client add", "client set", "client group add", "client group set"):
            bad.append(command + " lists " + hidden)
if len(blocks) < 20:
    bad.append(f"only {len(blocks)} usage blocks found")
if bad:
    sys.exit("docs/imgtool.md differs from --help for: " + ", ".join(bad))
print(f"{len(blocks)} usage blocks match")
PY
pass "docs/imgtool.md's usage blocks are imgtool's --help"
