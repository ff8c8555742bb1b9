# Sourced by ci/demo: what it prints, the same way to a terminal and to a
# log. Colour only when stdout is a terminal and NO_COLOR is unset, so a
# log never holds raw escape sequences. tests/integration/ci_terminal.sh
# checks both.
if [ -t 1 ] && [ -z "${NO_COLOR:-}" ]; then bold=$'\033[1m' plain=$'\033[0m'; else bold='' plain=''; fi

# say TEXT: a header line.
say() { printf '\n%s# %s%s\n' "$bold" "$*" "$plain"; }

# build_progress LOG: reads a build's output (cmake's "[ NN%]" lines) on
# stdin, keeps all of it in LOG and shows only its progress: one updating
# line on a terminal, a line per tenth otherwise.
build_progress() {
  local log=$1 line pct shown=-10 begin=$SECONDS
  : > "$log"
  while IFS= read -r line; do
    printf '%s\n' "$line" >> "$log"
    [[ $line =~ ^\[\ *([0-9]+)%\] ]] || continue
    pct=$((10#${BASH_REMATCH[1]}))
    if [ -t 1 ]; then
      printf '\r  built %3d%% (%d s)' "$pct" $(( SECONDS - begin ))
    elif [ "$pct" -ge $(( shown + 10 )) ]; then
      printf '  built %3d%% (%d s)\n' "$pct" $(( SECONDS - begin ))
      shown=$pct
    fi
  done
  if [ -t 1 ]; then printf '\n'; fi
}
