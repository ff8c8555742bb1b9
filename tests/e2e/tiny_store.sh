#!/usr/bin/env bash
# Fixture for the boot tests: builds tiny-linux@1 once, publishes it, and
# leaves the store at $TINY_STORE for each test to copy (BOOTFLEET_TINY_STORE).
# One appliance launch instead of one per test.
source "$(dirname "$0")/../integration/lib.sh"
TINY_STORE=${TINY_STORE:?set TINY_STORE to where the fixture store goes}
RECIPES=$(cd "$HERE_LIB/../../recipes" && pwd)
rm -rf "$TINY_STORE" "$TINY_STORE.tmp"
export BOOTFLEET_STORE=$TINY_STORE.tmp BOOTFLEET_GUEST_ACCEL=${BOOTFLEET_GUEST_ACCEL:-tcg}
"$IMGTOOL" init >/dev/null
started=$SECONDS
timeout 900 "$IMGTOOL" build "$RECIPES/tiny-linux.yaml" --publish > build.log 2>&1 || fail "build: $(tail -20 build.log)"
"$IMGTOOL" verify >/dev/null || fail "the fixture store does not verify"
mv "$BOOTFLEET_STORE" "$TINY_STORE"
pass "tiny-linux@1 built and published in $TINY_STORE ($(( SECONDS - started )) s)"
