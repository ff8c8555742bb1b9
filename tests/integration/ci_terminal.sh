#!/usr/bin/env bash
# ci/demo's output (ci/terminal.sh): a build's progress instead of silence,
# and no raw colour escapes unless stdout is a terminal.
source "$(dirname "$0")/lib.sh"
TERMINAL_SH=$(cd "$HERE_LIB/../../ci" && pwd)/terminal.sh
command -v script >/dev/null || fail "script(1) is missing (bsdutils)"

# cmake-like output: percentages 0..100 with other lines between. A script on
# PATH, not an exported function: script(1) runs its command with $SHELL, and
# a dash there drops bash's exported functions from the environment.
mkdir -p bin
cat > bin/fake_build <<'FAKE'
#!/usr/bin/env bash
for i in $(seq 0 2 100); do printf '[%3d%%] Building CXX object lib/x%d.cc.o\n' "$i" "$i"; echo "warning-free line $i"; done
FAKE
chmod +x bin/fake_build
export PATH="$PWD/bin:$PATH"

# Not a terminal (a log): headers without escapes, a progress line per tenth.
bash -c "source '$TERMINAL_SH'; say 'A header'; fake_build | build_progress build.log" > out.log 2>&1
! grep -q $'\x1b' out.log || fail "escape sequences in a log: $(cat -v out.log)"
grep -qx '# A header' out.log || fail "no plain header: $(cat out.log)"
lines=$(grep -c '^  built ' out.log)
[ "$lines" -ge 10 ] && [ "$lines" -le 11 ] || fail "$lines progress lines for 0-100%, expected one per tenth: $(cat out.log)"
grep -q '^  built 100% ' out.log || fail "no 100% line: $(cat out.log)"
assert_eq "$(wc -l < build.log)" 102 "lines kept in the build log"
pass "not a terminal: plain headers, $lines progress lines, the whole build output in the log"

# NO_COLOR on a terminal: still no escapes.
script -qec "NO_COLOR=1 bash -c \"source '$TERMINAL_SH'; say 'A header'\"" /dev/null > nocolor.log
! grep -q $'\x1b' nocolor.log || fail "escapes with NO_COLOR: $(cat -v nocolor.log)"

# A terminal: bold headers, one line updated in place.
script -qec "bash -c \"source '$TERMINAL_SH'; say 'A header'; fake_build | build_progress build.log\"" /dev/null > tty.log
grep -q $'\x1b\\[1m# A header' tty.log || fail "no bold header on a terminal: $(cat -v tty.log)"
grep -q $'\r  built 100%' tty.log || fail "no updating progress line on a terminal: $(cat -v tty.log)"
pass "a terminal: bold headers and one updating progress line; NO_COLOR turns colour off"
