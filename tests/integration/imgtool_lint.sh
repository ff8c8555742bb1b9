#!/usr/bin/env bash
# imgtool lint: exit codes, one problem per line with its position, --set,
# the environment, --json.
source "$(dirname "$0")/lib.sh"

mkdir files
echo hi > files/motd
cat > good.yaml <<'YAML'
image: lab
base: lab@1
steps:
  - copy-in: {from: files, to: /etc}
  - run: echo ${RELEASE}
YAML
expect_exit 0 "$IMGTOOL" lint good.yaml --set RELEASE=1
assert_eq "$OUT" "good.yaml: ok (2 steps)" "lint output of a good recipe"
RELEASE=2 expect_exit 0 "$IMGTOOL" lint good.yaml
expect_exit 1 "$IMGTOOL" lint good.yaml
expect_contains "good.yaml:5:10: steps[1].run: unknown variable \${RELEASE}"
pass "a clean recipe exits 0; variables come from --set or the environment"

cat > bad.yaml <<'YAML'
image: lab
base: lab@1
steps:
  - mkdir: etc
  - copy-in: {from: nothere, to: /etc}
  - chmod: {path: /x, mode: 9}
YAML
expect_exit 1 "$IMGTOOL" lint bad.yaml
expect_contains "bad.yaml:4:12: steps[0].mkdir: 'etc' is not an absolute guest path"
expect_contains "bad.yaml:5:21: steps[1].copy-in.from: 'nothere'"
expect_contains "bad.yaml:6:29: steps[2].chmod.mode:"
assert_eq "$(wc -l <<<"$OUT")" 3 "one line per problem"
pass "every problem is reported, one per line, with file:line:column and field"

expect_exit 1 "$IMGTOOL" lint bad.yaml --json
is_json "$OUT"
assert_eq "$(json 'len(j["problems"])' <<<"$OUT")" 3 "problems in --json"
assert_eq "$(json 'j["problems"][2]["line"], j["problems"][2]["column"], j["problems"][2]["field"]' <<<"$OUT")" \
  "6 29 steps[2].chmod.mode" "a problem in --json"
expect_exit 0 "$IMGTOOL" lint good.yaml --json --set RELEASE=1
assert_eq "$(json 'j["ok"], j["problems"]' <<<"$OUT")" "True []" "--json of a clean recipe"
pass "--json lists the same problems"

expect_exit 2 "$IMGTOOL" lint missing.yaml
expect_contains "missing.yaml"
expect_exit 2 "$IMGTOOL" lint good.yaml --set RELEASE
expect_contains "expected NAME=VALUE"
expect_exit 0 "$IMGTOOL" lint --help
expect_contains "Usage: imgtool lint"
pass "an unreadable recipe and bad usage exit 2"
