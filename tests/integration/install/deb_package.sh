#!/usr/bin/env bash
# The Debian package, as an admin gets it: built by CPack from a build
# configured like a packager's (prefix /usr: `ci/build release`), checked by
# lintian (no errors), installed with `apt-get install ./bootfleet_*.deb`,
# run, its units verified by systemd-analyze, reinstalled over a changed
# conffile, then removed and purged. It changes the machine (a package, a
# user, /var/lib/bootfleet), so it runs only as root with apt, and leaves
# the machine as it found it; otherwise it is skipped (77).
#
# BOOTFLEET_PACKAGE_BUILD names the packager's build (ci/test sets it); the
# test's own build will do when it was configured with prefix /usr.
HERE=$(cd "$(dirname "$0")" && pwd)
source "$HERE/../lib.sh"
skip() { echo "SKIP: $*"; exit 77; }
[ "$(id -u)" -eq 0 ] || skip "needs root (apt-get install of the package)"
command -v apt-get >/dev/null && command -v dpkg-deb >/dev/null || skip "needs apt-get and dpkg-deb (Debian)"
for tool in lintian cpack systemd-analyze dpkg-shlibdeps pandoc man; do
  command -v $tool >/dev/null || fail "$tool is missing: ci/install-deps installs it"
done
PKG_BUILD=${BOOTFLEET_PACKAGE_BUILD:-${BUILD_DIR:?set BUILD_DIR or BOOTFLEET_PACKAGE_BUILD}}
prefix=$(sed -n 's/^CMAKE_INSTALL_PREFIX:PATH=//p' "$PKG_BUILD/CMakeCache.txt" 2>/dev/null || true)
[ "$prefix" = /usr ] ||
  skip "$PKG_BUILD is configured with prefix '${prefix:-?}'; a package needs /usr: run ci/build release and set BOOTFLEET_PACKAGE_BUILD=\$PWD/build-release"
if dpkg-query -W -f='${Status}' bootfleet 2>/dev/null | grep -q installed; then
  skip "bootfleet is installed on this machine; this test would remove it"
fi
had_user=$(getent passwd bootfleet >/dev/null && echo yes || echo no)
had_store=$([ -e /var/lib/bootfleet ] && echo yes || echo no)
cleanup() {
  apt-get purge -y bootfleet >/dev/null 2>&1 || true
  [ "$had_store" = yes ] || rm -rf /var/lib/bootfleet
  [ "$had_user" = yes ] || userdel bootfleet 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

# 1. Build it.
version=$(sed -n 's/^CMAKE_PROJECT_VERSION:STATIC=//p' "$PKG_BUILD/CMakeCache.txt")
cmake --build "$PKG_BUILD" --target imgtool bootsrv man completion debian_changelog >build.log 2>&1 ||
  fail "building $PKG_BUILD: $(tail -20 build.log)"
(cd "$PKG_BUILD" && cpack -G DEB -B "$WORK/pkg") >cpack.log 2>&1 || fail "cpack: $(cat cpack.log)"
deb=$(ls "$WORK"/pkg/bootfleet_"$version"_*.deb 2>/dev/null | head -1)
[ -n "$deb" ] || fail "no bootfleet_${version}_*.deb from cpack: $(cat cpack.log)"
cp "$deb" ./ && deb=./$(basename "$deb")

# 2. Its control data: exact dependencies from the binaries, the conffile.
depends=$(dpkg-deb -f "$deb" Depends)
names=$(sed 's/ *([^)]*)//g; s/, */\n/g' <<<"$depends")  # one package name a line
for d in adduser libc6 libstdc++6 libguestfs0 libsqlite3-0 libssl3 libcurl4 libyaml-cpp0.7 libvhdi1 libhivex0; do
  grep -qxF "$d" <<<"$names" || fail "Depends lacks $d (dpkg-shlibdeps should find it): $depends"
done
for d in cmake catch2 qemu-utils libnbd0 libiscsi7; do
  ! grep -qxF "$d" <<<"$names" || fail "Depends names $d, which the programs do not link: $depends"
done
dpkg-deb -e "$deb" control
assert_eq "$(cat control/conffiles)" /etc/bootfleet/bootsrv.yaml "the package's conffiles"
contents=$(dpkg-deb -c "$deb")
for f in ./usr/bin/imgtool ./usr/bin/bootsrv ./etc/bootfleet/bootsrv.yaml ./lib/systemd/system/bootsrv.service \
         ./usr/share/man/man1/imgtool-build.1.gz ./usr/share/man/man8/bootsrv.8.gz ./usr/share/man/man5/bootsrv.yaml.5.gz \
         ./usr/share/bash-completion/completions/imgtool ./usr/share/initramfs-tools/hooks/bootfleet-nbd \
         ./usr/lib/bootfleet/bootfleet-nbd-client ./usr/share/doc/bootfleet/copyright ./usr/share/doc/bootfleet/changelog.gz; do
  grep -q " $f\$" <<<"$contents" || fail "the package lacks $f"
done
pass "cpack: $(basename "$deb"), Depends: $depends"

# 3. lintian: no errors; the warnings are docs/operations.md's list.
lintian --no-tag-display-limit "$deb" >lintian.log 2>&1 || true
if grep -q "^E: " lintian.log; then fail "lintian errors: $(grep '^E: ' lintian.log)"; fi
pass "lintian: no errors ($(grep -c '^W: ' lintian.log || true) warnings: $(grep '^W: ' lintian.log | awk '{print $3}' | sort -u | tr '\n' ' '))"

# 4. Install it as an admin would, and run it.
apt-get install -y "$deb" >apt.log 2>&1 || fail "apt-get install $deb: $(tail -20 apt.log)"
for p in imgtool bootsrv; do
  expect_exit 0 /usr/bin/$p --version
  expect_contains "$p (bootfleet) $version"
done
getent passwd bootfleet >/dev/null || fail "postinst did not create the user bootfleet"
assert_eq "$(stat -c %U:%G /var/lib/bootfleet)" bootfleet:bootfleet "the store directory's owner"
if [ "$had_store" = no ]; then
  [ -f /var/lib/bootfleet/catalog.db ] || fail "postinst did not make /var/lib/bootfleet a store: $(ls -la /var/lib/bootfleet)"
  assert_eq "$(stat -c %U /var/lib/bootfleet/catalog.db)" bootfleet "the catalog's owner"
fi
runuser -u bootfleet -- imgtool images --store /var/lib/bootfleet >/dev/null || fail "the bootfleet user cannot read its store"
man -w imgtool-publish >/dev/null 2>&1 || fail "man imgtool-publish does not find the installed page"
pass "apt-get install: --version, the user bootfleet, its store, man pages"

# 5. systemd-analyze verify on the installed unit (offline: no running systemd needed).
systemd-analyze verify /lib/systemd/system/bootsrv.service >verify.log 2>&1 || fail "systemd-analyze verify: $(cat verify.log)"
! grep -q "bootsrv.service" verify.log || fail "systemd-analyze verify complains about bootsrv.service: $(cat verify.log)"
systemd-analyze security --offline=true /lib/systemd/system/bootsrv.service >security.log 2>&1 || true
score=$(grep -Eo "Overall exposure level for bootsrv.service: [0-9.]+ [A-Z]+" security.log | grep -Eo "[0-9.]+ [A-Z]+" || true)
pass "systemd-analyze verify: clean${score:+; security exposure $score}"

# 6. An admin's change to the conffile survives a reinstall; remove keeps it, purge does not.
echo "# local change" >> /etc/bootfleet/bootsrv.yaml
apt-get install -y --reinstall -o Dpkg::Options::=--force-confold "$deb" >apt.log 2>&1 || fail "reinstall: $(tail -20 apt.log)"
grep -q "^# local change" /etc/bootfleet/bootsrv.yaml || fail "a reinstall overwrote the admin's /etc/bootfleet/bootsrv.yaml"
apt-get remove -y bootfleet >apt.log 2>&1 || fail "apt-get remove: $(tail -20 apt.log)"
[ ! -e /usr/bin/imgtool ] && [ ! -e /usr/bin/bootsrv ] || fail "apt-get remove left the programs"
[ -f /etc/bootfleet/bootsrv.yaml ] || fail "apt-get remove took the configuration (only purge should)"
apt-get purge -y bootfleet >apt.log 2>&1 || fail "apt-get purge: $(tail -20 apt.log)"
[ ! -e /etc/bootfleet/bootsrv.yaml ] || fail "apt-get purge left /etc/bootfleet/bootsrv.yaml"
[ -d /var/lib/bootfleet ] || fail "purge must keep the store (the admin's images)"
pass "conffile kept over a reinstall and a remove, gone after purge; the store stays"
