#!/usr/bin/env bash
# The Windows path without Windows: an NTFS image carrying a real SOFTWARE
# hive (the shared test data's minimal hive), patched by a recipe of
# registry and file changes; diff --files reports the files and every
# registry value set. Three appliance launches.
source "$(dirname "$0")/../lib.sh"
SRC=${BOOTFLEET_SOURCE:?}
HIVE=$SRC/../shared/testdata/registry/minimal.hive
if [ ! -r "$HIVE" ]; then
  echo "SKIP: no test hive at ../shared/testdata/registry/minimal.hive"
  exit 0
fi
export BOOTFLEET_STORE=$WORK/store BOOTFLEET_GUEST_ACCEL=tcg
"$IMGTOOL" init >/dev/null

expect_exit 2 "$IMGTOOL" build "$SRC/recipes/lab-windows-base.yaml"
expect_contains "HIVE"
expect_exit 0 "$IMGTOOL" build "$SRC/recipes/lab-windows-base.yaml" --set "HIVE=$HIVE" --publish
expect_contains "/dev/sda1: ntfs, ntfs, label Windows"
pass "an NTFS base with SOFTWARE and SYSTEM hives"

expect_exit 0 "$IMGTOOL" build "$SRC/recipes/lab-windows-settings.yaml"
expect_contains "set Bootfleet\\Lab\\Seats = dword 0x00000018 (24)"
expect_contains "absent, nothing to delete: Bootfleet\\Retired"
stored=$("$IMGTOOL" versions lab-windows --json | json 'j[1]["stored_bytes"]')
[ "$stored" -lt $(( 1024 * 1024 )) ] || fail "the settings patch stored $stored bytes"
pass "lab-windows-settings is a small patch ($stored bytes)"

expect_exit 1 "$IMGTOOL" diff --files lab-windows@1 lab-windows@2
for line in \
  "+ /Users/Public/Desktop/lab-rules.txt (file, 70 B)" \
  "M /Windows/System32/config/SOFTWARE" \
  "M /Windows/win.ini (file, 49 B -> 72 B)" \
  "registry /Windows/System32/config/SOFTWARE:" \
  "+ Bootfleet\\Lab\\Seats = dword 0x00000018 (24)" \
  "+ Bootfleet\\Lab\\QuotaBytes = qword 0x0000000280000000" \
  "+ Bootfleet\\Lab\\Printers = multi-string [\"Room-101\", \"Room-102\"]" \
  "+ Bootfleet\\Lab\\ProfileRoot = expand-string \"%SystemDrive%\\Users\\Lab\"" \
  "+ Bootfleet\\Lab\\Token = binary de ad be ef" \
  "+ Microsoft\\Windows NT\\CurrentVersion\\RegisteredOrganization = string \"Bootfleet Lab\"" \
  "lab-windows@1 -> lab-windows@2: 3 files differ"; do
  expect_contains "$line"
done
pass "diff --files shows the files and every registry value the recipe set"

# The diskless iSCSI settings (docs/windows.md) on the SYSTEM and SOFTWARE
# hives, a patch on the active version (@1; the settings above were not
# published): every value the recipe names is in the diff, nothing else.
expect_exit 0 "$IMGTOOL" build "$SRC/recipes/lab-windows-iscsi.yaml"
expect_exit 1 "$IMGTOOL" diff --files lab-windows@1 lab-windows@3
for line in \
  "M /Windows/System32/config/SYSTEM" \
  "M /Windows/System32/config/SOFTWARE" \
  "registry /Windows/System32/config/SYSTEM:" \
  "+ ControlSet001\\Control\\Session Manager\\Memory Management\\PagingFiles = multi-string []" \
  "+ ControlSet001\\Control\\Session Manager\\Memory Management\\ExistingPageFiles = multi-string []" \
  "+ ControlSet001\\Control\\Power\\HibernateEnabled = dword 0x00000000 (0)" \
  "+ ControlSet001\\Control\\Power\\HibernateEnabledDefault = dword 0x00000000 (0)" \
  "+ ControlSet001\\Control\\Session Manager\\Power\\HiberbootEnabled = dword 0x00000000 (0)" \
  "+ ControlSet001\\Control\\CrashControl\\CrashDumpEnabled = dword 0x00000000 (0)" \
  "+ Policies\\Microsoft\\Windows NT\\SystemRestore\\DisableSR = dword 0x00000001 (1)" \
  "+ Policies\\Microsoft\\Windows NT\\SystemRestore\\DisableConfig = dword 0x00000001 (1)" \
  "+ Microsoft\\Dfrg\\BootOptimizeFunction\\Enable = string \"N\"" \
  "lab-windows@1 -> lab-windows@3: 2 files differ"; do
  expect_contains "$line"
done
expect_not_contains "lab-rules.txt"
expect_not_contains "win.ini"
pass "lab-windows-iscsi sets the diskless values on SYSTEM and SOFTWARE, and only them"
