#!/usr/bin/env bash
# imgtool build on the tiny-linux recipes, with real appliances: broken
# recipes refused before any slow work, the base built from a blank disk
# with its artifacts, the build cache, a patch that stores only what it
# changed, diff --files reporting exactly the patch, a failing guest step
# that stores nothing, and inspect. Five appliance launches in all.
source "$(dirname "$0")/../lib.sh"
SRC=${BOOTFLEET_SOURCE:?}
export BOOTFLEET_STORE=$WORK/store
"$IMGTOOL" init >/dev/null
catalog() { sqlite3 "$BOOTFLEET_STORE/catalog.db" "SELECT image_id, number, file, disk_digest FROM versions ORDER BY 1, 2"; ls -R "$BOOTFLEET_STORE/images"; }

# 1. Broken recipes: refused with file:line:column, nothing stored, no appliance.
printf 'image: tiny-linux\nbase: {create: {size: 64M}\nsteps: [' > bad-yaml.yaml
expect_exit 2 "$IMGTOOL" build bad-yaml.yaml
expect_contains "bad-yaml.yaml:"
cat > unknown-step.yaml <<'R'
image: tiny-linux
base:
  create: {size: 64M, partition_table: mbr, partitions: [{type: linux, filesystem: ext4}]}
steps:
  - mkdir: /etc
  - frobnicate: /x
  - copy-in: {from: no-such-file, to: /etc}
R
expect_exit 2 "$IMGTOOL" build unknown-step.yaml
expect_contains "unknown-step.yaml:6:5"
expect_contains "unknown-step.yaml:7:"
expect_contains "no-such-file"
expect_contains "2 problems; nothing was built"
cat > no-base.yaml <<'R'
image: tiny-linux
base: {version: tiny-linux@7}
steps: [{mkdir: /x}]
R
expect_exit 2 "$IMGTOOL" build no-base.yaml
expect_contains "no-base.yaml:2:"
assert_eq "$(catalog | grep -c vhd || true)" 0 "version files after broken recipes"
pass "broken recipes are refused with file:line:column and store nothing"

# 2. The base, from a blank disk. This first build lets imgtool choose KVM
# or TCG itself: if KVM fails it must say so once and carry on.
unset BOOTFLEET_GUEST_ACCEL
expect_exit 0 "$IMGTOOL" build "$SRC/recipes/tiny-linux.yaml"
notes=$(grep -c "retrying with TCG" <<<"$OUT" || true)
[ "$notes" -le 1 ] || fail "the TCG fallback was announced $notes times"
expect_contains "built tiny-linux@1 (a new base)"
expect_contains "[26/26] copy-out /boot/initrd.img -> artifact initrd.img"
export BOOTFLEET_GUEST_ACCEL=tcg
art="$BOOTFLEET_STORE/images/tiny-linux/0001.artifacts"
cmp "$art/vmlinuz" /vmlinuz || fail "artifact vmlinuz differs from the host kernel"
cmp "$art/initrd.img" /initrd.img || fail "artifact initrd.img differs from the host initramfs"
"$IMGTOOL" versions tiny-linux --json > v.json
assert_eq "$(json 'j[0]["recipe_hash"] is not None and len(j[0]["recipe_hash"])' < v.json)" 64 "recipe hash recorded"
pass "tiny-linux built from a blank disk, kernel and initrd kept as artifacts"

# 3. The build cache: the same recipe on the same base is not built again.
before=$(catalog)
expect_exit 0 "$IMGTOOL" build "$SRC/recipes/tiny-linux.yaml"
expect_contains "build cache: tiny-linux@1 was built from the same base, recipe and inputs"
expect_not_contains "launching the appliance"
assert_eq "$(catalog)" "$before" "catalog after a cached build"
"$IMGTOOL" publish tiny-linux@1 >/dev/null
before=$(catalog)
expect_exit 0 "$IMGTOOL" build "$SRC/recipes/tiny-linux-update.yaml" --dry-run
expect_contains "[1/4] edit /etc/bootfleet-release"
expect_contains "dry run: nothing built"
assert_eq "$(catalog)" "$before" "catalog after a dry run"
pass "identical builds are reused; --dry-run builds nothing"

# 4. The patch stores only what it changed.
expect_exit 0 "$IMGTOOL" build "$SRC/recipes/tiny-linux-update.yaml" --json
stored=$("$IMGTOOL" versions tiny-linux --json | json 'j[1]["stored_bytes"]')
[ "$stored" -lt $(( 1024 * 1024 )) ] || fail "the patch stored $stored bytes, expected under 1 MiB"
assert_eq "$("$IMGTOOL" versions tiny-linux --json | json 'j[1]["parent"]')" 1 "the patch's parent"
pass "tiny-linux-update is a differencing version of $stored stored bytes"

# 5. diff --files reports exactly the recipe's changes.
expect_exit 1 "$IMGTOOL" diff --files tiny-linux@1 tiny-linux@2
got=$(grep -E '^[-+M] ' <<<"$OUT" | sort)
want=$(printf '%s\n' \
  "+ /etc/bootfleet-update (file, 23 B)" \
  "+ /etc/motd (symlink, 28 B)" \
  "+ /usr/share (directory, 1 KiB)" \
  "+ /usr/share/motd-package (directory, 1 KiB)" \
  "+ /usr/share/motd-package/README (file, 54 B)" \
  "+ /usr/share/motd-package/motd (file, 34 B)" \
  "M /etc/bootfleet-release (file, 2 B -> 2 B)" | sort)
assert_eq "$got" "$want" "diff --files tiny-linux@1 tiny-linux@2"
pass "diff --files shows exactly what the patch changed (copy-in made /usr/share)"

# 5b. Building the patch again with --no-cache gives the same guest-visible
# files: only times may differ.
expect_exit 0 "$IMGTOOL" build "$SRC/recipes/tiny-linux-update.yaml" --no-cache
expect_not_contains "build cache"
expect_contains "built tiny-linux@3"
expect_output_contains "files differ" "$IMGTOOL" diff --files tiny-linux@2 tiny-linux@3
[ -z "$(grep -E '^[-+M] ' <<<"$OUT" || true)" ] || fail "a --no-cache rebuild differs in content: $OUT"
pass "a --no-cache rebuild has the same files (only times differ)"

# 6. A step that fails in the guest: its place, the guest's error, nothing stored.
cat > failing.yaml <<'R'
image: tiny-linux
base: {version: tiny-linux@active}
steps:
  - write: {path: /etc/half-done, content: "x"}
  - run: "echo about to fail; exit 3"
R
before=$(catalog)
expect_exit 2 "$IMGTOOL" build failing.yaml
expect_contains "failing.yaml:5:5: step 2 of 2 (run echo about to fail; exit 3) failed"
assert_eq "$(catalog)" "$before" "catalog after a failed build"
[ -z "$(ls -A "$BOOTFLEET_STORE/tmp")" ] || fail "a failed build left files in tmp/: $(ls "$BOOTFLEET_STORE/tmp")"
pass "a failing step names itself and stores nothing"

# 7. inspect sees the filesystem.
expect_exit 0 "$IMGTOOL" inspect tiny-linux@2 --json
assert_eq "$(json '[(f["type"], f["label"]) for f in j["filesystems"]]' <<<"$OUT")" "[('ext4', 'root')]" "inspect filesystems"
pass "inspect lists the image's filesystem"
