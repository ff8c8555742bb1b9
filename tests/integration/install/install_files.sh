#!/usr/bin/env bash
# What `cmake --install` lays out, checked as a user meets it (no root: a
# DESTDIR install of this build):
#   - both programs with --version, the unit naming the installed bootsrv
#     and configuration file, the example configuration, docs;
#   - a man page per command `imgtool --help` lists, plus imgtool(1),
#     bootsrv(8), bootsrv.yaml(5), each rendered by man(1) with no groff
#     complaint but wide tables, each with its NAME line;
#   - bash completion driven by real bash: commands, subcommands, options,
#     and nothing offered for an unknown command;
#   - the example configuration starts bootsrv (its addresses overridden to
#     loopback), and a typo in it is refused by line.
HERE=$(cd "$(dirname "$0")" && pwd)
source "$HERE/../lib.sh"
BOOTSRV=${BOOTSRV:?set BOOTSRV to the bootsrv binary}
BUILD=${BUILD_DIR:?set BUILD_DIR to the build directory}
SRC=$(cd "$HERE/../../.." && pwd)

prefix=$(sed -n 's/^CMAKE_INSTALL_PREFIX:PATH=//p' "$BUILD/CMakeCache.txt")
[ -n "$prefix" ] || fail "no CMAKE_INSTALL_PREFIX in $BUILD/CMakeCache.txt"
DESTDIR=$WORK/root cmake --install "$BUILD" >install.log 2>&1 || fail "cmake --install: $(cat install.log)"
R=$WORK/root
if [ "$prefix" = /usr ]; then etc=/etc; units=/lib/systemd/system; else etc=$prefix/etc; units=$prefix/lib/systemd/system; fi

# 1. Programs, unit, configuration, docs.
version=$(sed -n 's/^CMAKE_PROJECT_VERSION:STATIC=//p' "$BUILD/CMakeCache.txt")
for p in imgtool bootsrv; do
  [ -x "$R$prefix/bin/$p" ] || fail "no $prefix/bin/$p in the install: $(cat install.log)"
  expect_exit 0 "$R$prefix/bin/$p" --version
  expect_contains "$p (bootfleet) $version"
done
unit=$R$units/bootsrv.service
[ -f "$unit" ] || fail "no $units/bootsrv.service: $(cat install.log)"
grep -qx "ExecStart=$prefix/bin/bootsrv --config $etc/bootfleet/bootsrv.yaml serve" "$unit" ||
  fail "the unit should start the installed bootsrv with the installed configuration: $(grep ExecStart "$unit")"
for key in Type=notify WatchdogSec= ExecReload= User=bootfleet AmbientCapabilities=CAP_NET_BIND_SERVICE \
           CapabilityBoundingSet=CAP_NET_BIND_SERVICE ProtectSystem=strict ReadWritePaths=/var/lib/bootfleet \
           PrivateTmp=yes NoNewPrivileges=yes; do
  grep -q "^$key" "$unit" || fail "bootsrv.service lacks $key"
done
cmp "$R$etc/bootfleet/bootsrv.yaml" "$SRC/packaging/bootsrv.yaml" || fail "the installed bootsrv.yaml is not packaging/bootsrv.yaml"
[ -f "$R$prefix/share/doc/bootfleet/operations.md" ] || fail "docs/operations.md not installed"
pass "cmake --install: programs ($version), a unit naming them, the example configuration, docs"

# 2. Man pages: one per command, each rendered cleanly.
man_dir=$R$prefix/share/man
[ -d "$man_dir" ] || fail "no man pages installed (pandoc missing at build time? ci/install-deps installs it)"
commands=$("$IMGTOOL" --help | sed -n '/^Commands:/,/^$/p' | awk 'NF > 1 && $1 != "Commands:" {print $1}')
[ "$(wc -w <<<"$commands")" -ge 20 ] || fail "too few commands in imgtool --help: $commands"
pages="man1/imgtool.1.gz man8/bootsrv.8.gz man5/bootsrv.yaml.5.gz"
for c in $commands; do pages+=" man1/imgtool-$c.1.gz"; done
for page in $pages; do
  f=$man_dir/$page
  [ -f "$f" ] || fail "no man page $page (from docs/; every command imgtool --help lists needs one)"
  # Tables of docs/ wider than 80 columns only make groff say so (and
  # lintian's groff-message, a warning): anything else is a broken page.
  out=$(LC_ALL=C.UTF-8 MANWIDTH=80 man --warnings -E UTF-8 -l "$f" 2>&1 >/dev/null) || fail "man $page: $out"
  out=$(grep -v -e "table wider than line width" -e "cannot adjust line" -e "^warning: file '<standard input>', around line" <<<"$out" || true)
  [ -z "$out" ] || fail "groff complains about $page: $out"
  name=$(basename "$page" .gz); name=${name%.*}
  LC_ALL=C.UTF-8 MANWIDTH=200 man -l "$f" 2>/dev/null | grep -q "^ *$name - " || fail "$page has no NAME line '$name - ...'"
done
LC_ALL=C.UTF-8 MANWIDTH=200 man -l "$man_dir/man5/bootsrv.yaml.5.gz" | grep -q "RELOAD" || fail "bootsrv.yaml(5) lacks RELOAD"
LC_ALL=C.UTF-8 MANWIDTH=200 man -l "$man_dir/man1/imgtool-client.1.gz" | grep -q "IMGTOOL CLIENT ADD" || fail "imgtool-client(1) lacks its subcommands"
pass "man pages: $(wc -w <<<"$pages") pages render without errors, one per imgtool command"

# 3. Bash completion, in bash.
complete_words() { # FILE WORDS... (the last one is being completed)
  bash --norc --noprofile -c '
    source "$1"; shift
    COMP_WORDS=("$@"); COMP_CWORD=$(( $# - 1 ))
    fn=$(complete -p "$1" | sed -E "s/.* -F ([^ ]+) .*/\1/")
    "$fn" "$1" "${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[COMP_CWORD-1]}"
    printf "%s\n" "${COMPREPLY[@]}"' _ "$R$prefix/share/bash-completion/completions/$1" "${@:2}"
}
assert_eq "$(complete_words imgtool imgtool bu)" build "imgtool bu<TAB>"
assert_eq "$(complete_words imgtool imgtool diff --ve)" --verify "imgtool diff --ve<TAB>"
assert_eq "$(complete_words imgtool imgtool --store /x client a | tr '\n' ' ')" "add " "imgtool --store DIR client a<TAB>"
assert_eq "$(complete_words imgtool imgtool client add --boot | tr '\n' ' ')" "--boot-mode " "imgtool client add --boot<TAB>"
assert_eq "$(complete_words imgtool imgtool import --store '')" "" "imgtool import --store <TAB> (a directory: bash's own)"
assert_eq "$(complete_words imgtool imgtool nosuch --)" "" "imgtool nosuch --<TAB>"
assert_eq "$(complete_words bootsrv bootsrv serve --tftp-r)" --tftp-root "bootsrv serve --tftp-r<TAB>"
assert_eq "$(complete_words bootsrv bootsrv d)" dhcp-config "bootsrv d<TAB>"
pass "bash completion: commands, subcommands and options from --help"

# 4. The example configuration is one bootsrv reads; a typo in it is refused.
export BOOTFLEET_STORE=$WORK/store
"$IMGTOOL" init >/dev/null
mkdir tftp
start_bootsrv "serving store" serve --config "$R$etc/bootfleet/bootsrv.yaml" --store "$BOOTFLEET_STORE" \
  --listen 127.0.0.1:0 --http-listen 127.0.0.1:0 --tftp-listen 127.0.0.1:0 --tftp-root "$WORK/tftp"
grep -q "listening for TFTP on 127.0.0.1:0" server.log || fail "the example's TFTP: $(cat server.log)"
kill -TERM $SERVER; wait $SERVER || fail "bootsrv with the example configuration exited $?"
sed 's/^idle_timeout:/idle_timout:/' "$R$etc/bootfleet/bootsrv.yaml" > typo.yaml
expect_exit 2 "$BOOTSRV" serve --config typo.yaml --store "$BOOTFLEET_STORE" --listen 127.0.0.1:0
expect_contains "key 'idle_timout': unknown (did you mean 'idle_timeout'?)"
pass "the example configuration starts bootsrv; a typo in it is refused with the line"
