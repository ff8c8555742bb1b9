#!/usr/bin/env bash
# The assertions of lib.sh can fail: each is run on a case where it must, in
# a subshell, and must exit non-zero with a FAIL message. (An assertion that
# cannot fail would make every test using it pass vacuously.)
source "$(dirname "$0")/lib.sh"

# must_fail DESCRIPTION CMD...: CMD (a lib.sh assertion) fails loudly.
must_fail() {
  local what=$1; shift
  local out rc
  set +e; out=$( ("$@") 2>&1 ); rc=$?; set -e
  [ "$rc" -ne 0 ] || { echo "FAIL: $what: the assertion passed" >&2; exit 1; }
  grep -q '^FAIL: ' <<<"$out" || { echo "FAIL: $what: no FAIL message, got: $out" >&2; exit 1; }
}
# must_pass DESCRIPTION CMD...
must_pass() {
  local what=$1; shift
  ("$@") >/dev/null 2>&1 || { echo "FAIL: $what: the assertion failed" >&2; exit 1; }
}

must_pass "expect_exit 0 true" expect_exit 0 true
must_fail "expect_exit 0 false" expect_exit 0 false
must_fail "expect_exit 1 on exit 2" expect_exit 1 bash -c 'exit 2'
must_fail "expect_exit 2 on a crash" expect_exit 2 bash -c 'kill -SEGV $$'
must_pass "expect_contains" bash -c 'source "$0"; expect_exit 0 echo hello world; expect_contains "lo wo"' "$HERE_LIB/lib.sh"
must_fail "expect_contains missing" bash -c 'source "$0"; expect_exit 0 echo hello; expect_contains "bye"' "$HERE_LIB/lib.sh"
must_fail "expect_not_contains present" bash -c 'source "$0"; expect_exit 0 echo hello; expect_not_contains "ell"' "$HERE_LIB/lib.sh"
must_pass "expect_output_contains" expect_output_contains "oops" bash -c 'echo oops >&2; exit 2'
must_fail "expect_output_contains missing" expect_output_contains "oops" echo fine
must_fail "expect_output_contains on a crash" expect_output_contains "x" bash -c 'echo x; kill -ABRT $$'
must_pass "assert_eq" assert_eq 1 1 same
must_fail "assert_eq differs" assert_eq 1 2 differs
must_pass "json" bash -c 'source "$0"; [ "$(echo "{\"a\": 3}" | json "j[\"a\"]")" = 3 ]' "$HERE_LIB/lib.sh"
must_fail "json on non-JSON" bash -c 'source "$0"; v=$(echo "nope" | json "j"); echo "$v"' "$HERE_LIB/lib.sh"
must_pass "is_json" is_json '{"a": [1, 2]}'
must_fail "is_json on non-JSON" is_json '{"a": '

head -c 4096 /dev/urandom > a
# Byte 100 is made 'a', so the 'x' written there below always changes it
# (a random byte is 'x' one time in 256, and then d would equal b).
printf 'a' | dd of=a bs=1 seek=100 conv=notrunc status=none
cp a b
truncate -s 8192 a
must_pass "same_prefix with a zero tail" same_prefix a b 4096
cp a c
printf 'x' | dd of=c bs=1 seek=6000 conv=notrunc status=none
must_fail "same_prefix with a non-zero tail" same_prefix c b 4096
cp b d
printf 'x' | dd of=d bs=1 seek=100 conv=notrunc status=none
must_fail "same_prefix with a different prefix" same_prefix a d 4096
must_fail "same_prefix of a short file" same_prefix b a 8192
pass "every lib.sh assertion fails when it should"
