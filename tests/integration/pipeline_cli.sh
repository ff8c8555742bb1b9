#!/usr/bin/env bash
# pipeline/: the script parses (bash -n), its --help documents the options
# and exit codes, usage errors exit 2, --lint-only passes a clean recipe and
# fails a broken one (exit 1, the report names the problem), a --since with
# no changed recipe does nothing; both CI templates are valid YAML with the
# jobs docs/pipeline.md describes. No appliance, no QEMU, no server.
source "$(dirname "$0")/lib.sh"
PIPELINE_DIR=$(cd "$HERE_LIB/../../pipeline" && pwd)
PIPELINE=$PIPELINE_DIR/build-and-publish

bash -n "$PIPELINE" || fail "bash -n $PIPELINE"
expect_exit 0 "$PIPELINE" --help
for word in --store --server --token-file --ca-file --imgtool --since --recipes --report --publish \
            --no-boot-test --expect --boot-timeout --set --lint-only --no-push "Exit status" "BOOTFLEET_STORE"; do
  expect_contains "$word"
done
pass "bash -n and --help (options and exit codes)"

expect_exit 2 "$PIPELINE" --imgtool "$IMGTOOL" --frobnicate
expect_contains "unknown option '--frobnicate'"
expect_exit 2 env -u BOOTFLEET_SERVER "$PIPELINE" --imgtool "$IMGTOOL" --publish x.yaml
expect_contains "--publish needs --server"
expect_exit 2 "$PIPELINE" --imgtool "$IMGTOOL" --server http://127.0.0.1:1 --token-file "$WORK/none" x.yaml
expect_contains "token file"
expect_exit 2 "$PIPELINE" --imgtool "$WORK/no-imgtool" x.yaml
expect_contains "no-imgtool"
expect_exit 2 "$PIPELINE" --imgtool "$IMGTOOL" --lint-only "$WORK/missing.yaml"
expect_contains "missing.yaml"
# Outside a repository, as a newcomer first runs it: refused, nothing made.
mkdir -p outside/recipes && touch outside/recipes/x.yaml
expect_exit 2 bash -c "cd outside && '$PIPELINE' --imgtool '$IMGTOOL' --since origin/main"
expect_contains "--since 'origin/main' is not a commit"
[ -z "$(ls outside | grep -v '^recipes$')" ] || fail "a refused run left files: $(ls outside)"
pass "usage errors exit 2, name the problem and leave nothing behind"

mkdir -p repo/recipes
cd repo
git init -q -b main .
git config user.email ci@example.invalid
git config user.name ci
cat > recipes/ok.yaml <<'YAML'
image: lab
base:
  create: {size: 16M}
steps:
  - mkdir: /etc
YAML
git add recipes && git commit -qm ok
expect_exit 0 "$PIPELINE" --imgtool "$IMGTOOL" --lint-only --report "$WORK/lint-ok.md"
expect_contains "every recipe is clean"
grep -qF '| `recipes/ok.yaml` | ok |' "$WORK/lint-ok.md" || fail "lint-ok.md: $(cat "$WORK/lint-ok.md")"
grep -qF "mode: lint only" "$WORK/lint-ok.md" || fail "lint-ok.md: $(cat "$WORK/lint-ok.md")"
expect_exit 0 "$PIPELINE" --imgtool "$IMGTOOL" --since HEAD --store "$WORK/store" --report "$WORK/none.md"
grep -qF "none changed since" "$WORK/none.md" || fail "none.md: $(cat "$WORK/none.md")"
[ ! -e "$WORK/store" ] || fail "a run with nothing to build created the store"
pass "--lint-only on a clean recipe; --since with no changed recipe builds nothing"

printf 'image: lab\nbase:\n  create: {size: 16M}\nsteps:\n  - mkdir: etc\n' > recipes/broken.yaml
git add recipes && git commit -qm broken
expect_exit 1 "$PIPELINE" --imgtool "$IMGTOOL" --since HEAD~1 --store "$WORK/store" --report "$WORK/broken.md"
expect_contains "lint found problems; nothing is built"
grep -qF "recipes/broken.yaml" "$WORK/broken.md" || fail "broken.md: $(cat "$WORK/broken.md")"
grep -qF "not an absolute guest path" "$WORK/broken.md" || fail "broken.md: $(cat "$WORK/broken.md")"
grep -qF "recipes/ok.yaml" "$WORK/broken.md" && fail "--since HEAD~1 linted a recipe that did not change"
grep -qF "FAILED" "$WORK/broken.md" || fail "broken.md: $(cat "$WORK/broken.md")"
pass "a lint error: exit 1, the report names the recipe and the problem, only changed recipes linted"

$PY - "$PIPELINE_DIR/gitlab-ci.yml" "$PIPELINE_DIR/github-actions.yml" <<'PYEOF' || fail "the CI templates"
import sys, yaml
gl = yaml.safe_load(open(sys.argv[1]))
for job in ("lint", "build-and-boot-test", "publish", "rollback"):
    assert job in gl, f"gitlab-ci.yml has no job {job}"
    assert "script" in gl[job], f"gitlab-ci.yml: {job} has no script"
assert gl["default"]["image"] == "debian:12", "gitlab-ci.yml: not debian:12"
assert any(r.get("when") == "manual" for r in gl["rollback"]["rules"]), "gitlab-ci.yml: rollback is not manual"
assert "--publish" in "".join(gl["publish"]["script"]), "gitlab-ci.yml: publish does not --publish"
gh = yaml.safe_load(open(sys.argv[2]))
on = gh.get("on", gh.get(True))  # YAML 1.1 reads a bare `on` as true
for event in ("pull_request", "push", "workflow_dispatch"):
    assert event in on, f"github-actions.yml: no {event} trigger"
assert "rollback_image" in on["workflow_dispatch"]["inputs"]
for job in ("lint", "build-and-boot-test", "publish", "rollback"):
    assert job in gh["jobs"], f"github-actions.yml has no job {job}"
    assert "self-hosted" in gh["jobs"][job]["runs-on"], f"github-actions.yml: {job} not on a self-hosted runner"
assert any("GITHUB_STEP_SUMMARY" in s.get("run", "") for s in gh["jobs"]["build-and-boot-test"]["steps"])
assert gl["variables"]["BOOTFLEET_BOOT_FIRMWARE"] == "bios,uefi", "gitlab-ci.yml: not boot-tested on both firmware types"
assert "bios,uefi" in gh["env"]["BOOTFLEET_BOOT_FIRMWARE"], "github-actions.yml: not boot-tested on both firmware types"
PYEOF
pass "gitlab-ci.yml and github-actions.yml parse, with the lint/build/publish/rollback jobs"

# A boot test that fails, with a stand-in imgtool whose `build` imports a
# small disk (no appliance) and whose `boot-test` fails as a panicking guest
# does: exit 1, the reason and the console's tail in the report, the version
# removed from the runner's store, nothing pushed.
cat > "$WORK/fake-imgtool" <<FAKE
#!/usr/bin/env bash
set -euo pipefail
REAL="$IMGTOOL"
case \$1 in
  build)
    image=\$(awk '/^image:/ {print \$2}' "\$2")
    truncate -s 8M "\$BOOTFLEET_STORE/../disk.raw"
    printf 'release' | dd of="\$BOOTFLEET_STORE/../disk.raw" conv=notrunc status=none
    "\$REAL" import "\$image" "\$BOOTFLEET_STORE/../disk.raw" -m "fake build" >&2
    v=\$("\$REAL" versions "\$image" --json | jq '.[-1]')
    file=\$(jq -r .file <<<"\$v")
    mkdir -p "\$BOOTFLEET_STORE/\${file%.vhd}.artifacts"
    touch "\$BOOTFLEET_STORE/\${file%.vhd}.artifacts/vmlinuz" "\$BOOTFLEET_STORE/\${file%.vhd}.artifacts/initrd.img"
    jq '{cached: false, version: {image, version: .number, parent, file, file_size, disk_digest, recipe_hash}, changed_blocks: 1, seconds: 0.5}' <<<"\$v"
    ;;
  boot-test)
    echo "\$*" >> "\$BOOTFLEET_STORE/../boot-tests.log"
    console=\$(sed -n 's/.*--console \([^ ]*\).*/\1/p' <<<"\$*")
    if [ "\${FAKE_BOOT:-fail}" = pass ]; then
      mode=\$(sed -n 's/.*--mode \([^ ]*\).*/\1/p' <<<"\$*")
      echo "bootfleet-marker image=\${2%@*}" > "\$console"
      echo "{\"passed\": true, \"accel\": \"tcg\", \"seconds\": 1.5, \"mode\": \"\${mode:-linux}\", \"matched_line\": \"bootfleet-marker\"}"
      exit 0
    fi
    printf 'Linux version 6.1\r\nKernel panic - not syncing: Attempted to kill init!\n\033[0m---[ end Kernel panic ]---\n' > "\$console"
    echo "imgtool boot-test: FAILED: \$2: QEMU exited" >&2
    echo '{"passed": false, "reason": "QEMU exited with status 0 (the guest powered off, rebooted or panicked) after 41 s"}'
    exit 1 ;;
  *) exec "\$REAL" "\$@" ;;
esac
FAKE
chmod +x "$WORK/fake-imgtool"
printf 'image: panics\nbase:\n  create: {size: 8M}\nsteps:\n  - mkdir: /etc\n' > "$WORK/panics.yaml"
expect_exit 1 env -u BOOTFLEET_SERVER "$PIPELINE" --imgtool "$WORK/fake-imgtool" --store "$WORK/fake-store" \
  --report "$WORK/panics.md" "$WORK/panics.yaml"
expect_contains "==> boot-test panics@1"
expect_contains "--> FAILED"
R=$(cat "$WORK/panics.md")
for text in "FAILED (a recipe failed: exit 1)" "boot test: panics@1" "**FAILED** on bios: QEMU exited with status 0" \
            "Kernel panic - not syncing" "end Kernel panic" "removed from the runner's store" "Not pushed." \
            "Not compared: panics@1 is the image's first version (no server was given)"; do
  grep -qF -- "$text" "$WORK/panics.md" || fail "'$text' not in the report: $R"
done
grep -q $'\r\|\033' "$WORK/panics.md" && fail "control characters from the console in the report"
assert_eq "$(BOOTFLEET_STORE=$WORK/fake-store "$IMGTOOL" versions panics --json | json 'len(j)')" 0 "versions of panics after its failed boot test"
pass "a failed boot test: exit 1, reason and console tail in the report, the version pruned, nothing pushed"

# --boot-firmware bios,uefi and --boot-mode, with the stand-in imgtool: one
# boot test per firmware type with the mode passed on; the first failure
# ends the test (no boot on the next firmware).
rm -f "$WORK/boot-tests.log"
printf 'image: boots\nbase:\n  create: {size: 8M}\nsteps:\n  - mkdir: /etc\n' > "$WORK/boots.yaml"
expect_exit 0 env -u BOOTFLEET_SERVER FAKE_BOOT=pass "$PIPELINE" --imgtool "$WORK/fake-imgtool" --store "$WORK/fake-store" \
  --boot-firmware bios,uefi --boot-mode sanboot --report "$WORK/boots.md" "$WORK/boots.yaml"
expect_contains "==> boot-test boots@1 (bios, sanboot)"
expect_contains "==> boot-test boots@1 (uefi, sanboot)"
assert_eq "$(grep -c -- '--firmware' "$WORK/boot-tests.log")" 2 "boot tests run"
grep -q -- "--firmware bios --mode sanboot" "$WORK/boot-tests.log" && grep -q -- "--firmware uefi --mode sanboot" "$WORK/boot-tests.log" ||
  fail "the boot tests' arguments: $(cat "$WORK/boot-tests.log")"
for text in "**Passed** on bios (sanboot mode)" "**Passed** on uefi (sanboot mode)" "boots@1.bios.console.log" "boots@1.uefi.console.log"; do
  grep -qF -- "$text" "$WORK/boots.md" || fail "'$text' not in the report: $(cat "$WORK/boots.md")"
done
rm -f "$WORK/boot-tests.log"
printf 'image: panics2\nbase:\n  create: {size: 8M}\nsteps:\n  - mkdir: /etc\n' > "$WORK/panics2.yaml"
expect_exit 1 env -u BOOTFLEET_SERVER BOOTFLEET_BOOT_FIRMWARE=bios,uefi "$PIPELINE" --imgtool "$WORK/fake-imgtool" \
  --store "$WORK/fake-store" --report "$WORK/panics2.md" "$WORK/panics2.yaml"
assert_eq "$(grep -c -- '--firmware' "$WORK/boot-tests.log")" 1 "boot tests after a failure on bios"
expect_not_contains "(uefi, linux)"
pass "--boot-firmware bios,uefi (or BOOTFLEET_BOOT_FIRMWARE) boots once per firmware with --boot-mode passed on; a failure stops before the next"
