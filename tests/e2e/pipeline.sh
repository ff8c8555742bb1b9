#!/usr/bin/env bash
# pipeline/build-and-publish end to end, as a CI runner runs it: a bootsrv on
# loopback over an empty store, with a token file and the control API; the
# runner has its own store (a copy of the tiny-linux@1 fixture) and a git
# checkout whose recipes/ gains tiny-linux-update.yaml in its last commit.
#
#   0. a refused token and an unreachable server: exit 2 before any build;
#   1. --since the commit before the recipe --publish --boot-firmware uefi:
#      exit 0; the server has tiny-linux@1 and @2 with the runner's digests
#      and @2 active; the report names the files the update changed and the
#      boot marker, booted on OVMF (the boot test a BIOS run would do anyway,
#      on the other firmware: no boot is added for the option);
#   2. the same again: the build cache reuses @2, no boot test, the push
#      sends nothing, @2 still active;
#   3. a recipe with a lint error: exit 1, nothing built, the report says why.
# One appliance launch for the build, one for its file diff, one boot test.
source "$(dirname "$0")/../integration/lib.sh"
BOOTSRV=${BOOTSRV:?set BOOTSRV to the bootsrv binary}
PIPELINE=$(cd "$HERE_LIB/../../pipeline" && pwd)/build-and-publish
SRC_RECIPES=$(cd "$HERE_LIB/../../recipes" && pwd)
export BOOTFLEET_GUEST_ACCEL=${BOOTFLEET_GUEST_ACCEL:-tcg}
SERVER=
trap '[ -n "$SERVER" ] && kill $SERVER 2>/dev/null; rm -rf "$WORK"' EXIT
started=$SECONDS

# The runner's store: tiny-linux@1, as the fixture built it.
RUNNER=$WORK/runner-store
if [ -n "${BOOTFLEET_TINY_STORE:-}" ]; then
  cp -a "$BOOTFLEET_TINY_STORE" "$RUNNER"
else
  BOOTFLEET_STORE=$RUNNER "$IMGTOOL" init >/dev/null
  timeout 900 env BOOTFLEET_STORE=$RUNNER "$IMGTOOL" build "$SRC_RECIPES/tiny-linux.yaml" --publish > fixture.log 2>&1 ||
    fail "fixture build: $(tail -20 fixture.log)"
fi
runner() { BOOTFLEET_STORE=$RUNNER "$IMGTOOL" "$@"; }
srv() { BOOTFLEET_STORE=$WORK/server-store "$IMGTOOL" "$@"; }

# The boot server: empty store, token file, API on loopback.
srv init >/dev/null
start_api_bootsrv "$WORK/server-store"

# The CI checkout: a repository whose last commit adds the update recipe.
mkdir repo
cd repo
git init -q -b main .
git config user.email ci@example.invalid
git config user.name ci
mkdir -p recipes/tiny-linux
echo "recipes for the lab" > README
git add README
git commit -qm "start"
BEFORE=$(git rev-parse HEAD)
cp "$SRC_RECIPES/tiny-linux-update.yaml" recipes/
cp -r "$SRC_RECIPES/tiny-linux/motd-package" recipes/tiny-linux/
git add recipes
git commit -qm "tiny-linux release 2"
AFTER=$(git rev-parse HEAD)

# pipeline ARGS...: the script as a CI job runs it (env for the server, as CI
# secrets would give it); output in $OUT, exit status in $RC.
pipeline() {
  set +e
  OUT=$(env BOOTFLEET_STORE="$RUNNER" BOOTFLEET_SERVER="$URL" BOOTFLEET_TOKEN_FILE="$WORK/token" \
        timeout 900 "$PIPELINE" --imgtool "$IMGTOOL" "$@" 2>&1)
  RC=$?
  set -e
}
versions_of() { "$@" versions tiny-linux --json | json '[(v["number"], v["disk_digest"]) for v in j]'; }
RUNNER_BEFORE=$(versions_of runner)

# 0. Infrastructure: exit 2, nothing built.
pipeline --since "$BEFORE" --publish --token-file "$WORK/bad-token" --report "$WORK/report0.md"
assert_eq "$RC" 2 "exit status with a refused token ($OUT)"
expect_contains "403"
grep -q "ERROR" "$WORK/report0.md" || fail "report0 does not say ERROR: $(cat "$WORK/report0.md")"
pipeline --since "$BEFORE" --server "http://127.0.0.1:$(free_port)" --report "$WORK/report0b.md"
assert_eq "$RC" 2 "exit status with no server listening ($OUT)"
expect_not_contains "==> build"
assert_eq "$(versions_of runner)" "$RUNNER_BEFORE" "the runner's versions after the refused runs"
# A bad --boot-firmware or --boot-mode: usage, before anything is built.
pipeline --since "$BEFORE" --boot-firmware bios,arm --report "$WORK/report0c.md"
assert_eq "$RC" 2 "exit status of --boot-firmware bios,arm ($OUT)"
expect_contains "--boot-firmware 'bios,arm': 'arm' is not a firmware type; use bios, uefi or bios,uefi"
pipeline --since "$BEFORE" --boot-firmware "" --report "$WORK/report0c.md"
assert_eq "$RC" 2 "exit status of an empty --boot-firmware ($OUT)"
pipeline --since "$BEFORE" --boot-mode netboot --report "$WORK/report0c.md"
assert_eq "$RC" 2 "exit status of --boot-mode netboot ($OUT)"
expect_contains "--boot-mode 'netboot': use linux or sanboot"
expect_not_contains "==> build"
pass "a refused token, an unreachable server, a bad --boot-firmware or --boot-mode: exit 2 before any build"

# 1. The change goes live.
t=$SECONDS
pipeline --since "$BEFORE" --publish --report "$WORK/report1.md" --boot-firmware uefi \
  --expect 'bootfleet-marker image={IMAGE} version={VERSION}( |$)' --boot-timeout 600
echo "$OUT" > "$WORK/run1.log"
assert_eq "$RC" 0 "run 1's exit status ($(tail -40 "$WORK/run1.log"))"
expect_contains "==> build recipes/tiny-linux-update.yaml"
expect_contains "==> boot-test tiny-linux@2 (uefi, linux)"
expect_contains "==> push tiny-linux@2"
expect_contains "--> passed ("
R1=$(cat "$WORK/report1.md")
assert_eq "$(versions_of srv)" "$(versions_of runner)" "the server's versions and digests"
assert_eq "$(srv versions tiny-linux --json | json 'len(j)')" 2 "versions on the server"
assert_eq "$(srv images --json | json '[i["active"] for i in j if i["name"]=="tiny-linux"][0]')" 2 "active on the server"
assert_eq "$(runner images --json | json '[i["active"] for i in j if i["name"]=="tiny-linux"][0]')" 1 "active in the runner's store (left alone)"
# What tiny-linux-update.yaml writes: an edit, a copied-in directory, a file, a symlink.
for f in '`/etc/bootfleet-release`' '`/usr/share/motd-package`' '`/usr/share/motd-package/motd`' \
         '`/usr/share/motd-package/README`' '`/etc/bootfleet-update`' '`/etc/motd`'; do
  grep -qF -- "$f" "$WORK/report1.md" || fail "report 1 does not name $f: $R1"
done
grep -qF -- "- \`/etc/bootfleet-release\` (file, 2 B -> 2 B)" "$WORK/report1.md" || fail "bootfleet-release not listed as changed: $R1"
grep -qF "against tiny-linux@1, the runner's previous version" "$WORK/report1.md" || fail "report 1's diff base: $R1"
grep -qF "the server has no active version of tiny-linux" "$WORK/report1.md" || fail "report 1 does not say why: $R1"
grep -qF "bootfleet-marker image=tiny-linux version=2" "$WORK/report1.md" || fail "no boot marker in report 1: $R1"
grep -qF "**Passed** on uefi (linux mode)" "$WORK/report1.md" || fail "report 1 does not say the boot was on UEFI: $R1"
grep -qF '````text' "$WORK/report1.md" || fail "no console block in report 1"
grep -qF "tiny-linux@1 uploaded" "$WORK/report1.md" || fail "report 1's push: $R1"
grep -qF "tiny-linux@2 uploaded" "$WORK/report1.md" || fail "report 1's push: $R1"
# @2 shares its kernel and initrd with @1: the server takes them from @1, so
# the push sends the patch only (the update writes a few KiB of files).
sent2=$(grep -o "tiny-linux@2 uploaded ([0-9]* bytes)" "$WORK/report1.md" | grep -o "([0-9]*" | tr -d '(')
[ -n "$sent2" ] && [ "$sent2" -lt $(( 8 * 1024 * 1024 )) ] || fail "tiny-linux@2's push sent '$sent2' bytes; its kernel and initrd are @1's and should not go again: $R1"
grep -qF "active none -> @2" "$WORK/report1.md" || fail "report 1's publish: $R1"
grep -q "^- result: \*\*passed\*\*" "$WORK/report1.md" || fail "report 1's result: $R1"
srv verify >/dev/null || fail "the server's store does not verify"
pass "run 1: built, boot-tested, pushed and published tiny-linux@2; the report names the 6 changed files ($(( SECONDS - t )) s)"

# 2. Nothing changed: the build cache answers, nothing is sent.
t=$SECONDS
pipeline --since "$BEFORE" --publish --report "$WORK/report2.md"
echo "$OUT" > "$WORK/run2.log"
assert_eq "$RC" 0 "run 2's exit status ($(tail -40 "$WORK/run2.log"))"
expect_contains "tiny-linux@2 reused from the build cache"
expect_contains "--> pushed: 0 bytes sent"
expect_not_contains "==> boot-test"
R2=$(cat "$WORK/report2.md")
grep -qF "Bytes sent: **0**" "$WORK/report2.md" || fail "report 2's push: $R2"
grep -qF "reused from the build cache" "$WORK/report2.md" || fail "report 2's build: $R2"
grep -qF "None: tiny-linux@2 is the version active on the server." "$WORK/report2.md" || fail "report 2's diff: $R2"
grep -qF "already holds tiny-linux@2 with the same disk digest" "$WORK/report2.md" || fail "report 2's boot test: $R2"
assert_eq "$(srv versions tiny-linux --json | json 'len(j)')" 2 "versions on the server after run 2"
assert_eq "$(runner versions tiny-linux --json | json 'len(j)')" 2 "versions in the runner's store after run 2"
assert_eq "$(srv images --json | json '[i["active"] for i in j if i["name"]=="tiny-linux"][0]')" 2 "active on the server after run 2"
pass "run 2: no recipe change: build cache, no boot test, 0 bytes pushed, @2 still active ($(( SECONDS - t )) s)"

# 3. A recipe with a lint error stops the run before any build.
cat > recipes/broken.yaml <<'YAML'
image: tiny-linux
base:
  version: tiny-linux@1
steps:
  - mkdir: etc/lab
YAML
git add recipes/broken.yaml
git commit -qm "a broken recipe"
t=$SECONDS
pipeline --since "$AFTER" --publish --report "$WORK/report3.md"
assert_eq "$RC" 1 "run 3's exit status ($OUT)"
expect_contains "lint found problems; nothing is built"
expect_not_contains "==> build"
R3=$(cat "$WORK/report3.md")
grep -qF "FAILED" "$WORK/report3.md" || fail "report 3's result: $R3"
grep -qF "recipes/broken.yaml" "$WORK/report3.md" || fail "report 3 does not name the recipe: $R3"
grep -qF "not an absolute guest path" "$WORK/report3.md" || fail "report 3 does not say why: $R3"
assert_eq "$(runner versions tiny-linux --json | json 'len(j)')" 2 "versions in the runner's store after run 3"
assert_eq "$(srv images --json | json '[i["active"] for i in j if i["name"]=="tiny-linux"][0]')" 2 "active on the server after run 3"
pass "run 3: a lint error: exit 1, nothing built, the report names the problem ($(( SECONDS - t )) s)"

kill -0 $SERVER || fail "bootsrv died"
pass "pipeline end to end in $(( SECONDS - started )) s"
