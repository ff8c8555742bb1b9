#!/usr/bin/env bash
# GET /loaders/NAME (bootsrv/loaders_http.h): the TFTP root's iPXE loaders
# over HTTP, for UEFI HTTP boot, with curl: the bytes TFTP would send, HEAD,
# and every name TFTP would refuse refused here too (.., nested names, dot
# files, missing files, a symlink out of a root others may write); a bootsrv
# without TFTP and without the directory still starts. And `bootsrv
# dhcp-config --http-boot`: its lines, its refusals, and both of its
# configurations accepted by dnsmasq --test. No boot (boot_pxe_netns.sh
# boots OVMF by HTTP).
source "$(dirname "$0")/../lib.sh"
BOOTSRV=${BOOTSRV:?set BOOTSRV to the bootsrv binary}
export BOOTFLEET_STORE=$WORK/store
"$IMGTOOL" init >/dev/null
SERVER=
trap '[ -z "$SERVER" ] || kill -9 $SERVER 2>/dev/null || true; rm -rf "$WORK"' EXIT

mkdir -p root/sub
head -c 300000 /dev/urandom > root/snponly.efi
echo nested > root/sub/x.efi
echo hidden > root/.hidden
echo outside > outside.txt
chmod 755 root
HTTP_PORT=$(free_port); TFTP_PORT=$(free_port)
start_bootsrv "listening for HTTP" serve --listen 127.0.0.1:0 --http-listen 127.0.0.1:$HTTP_PORT \
  --tftp-listen 127.0.0.1:$TFTP_PORT --tftp-root "$WORK/root"
URL=http://127.0.0.1:$HTTP_PORT

# code PATH [CURL ARGS...]: the HTTP status of PATH; the body in body.out.
code() { local p=$1; shift; curl -s -o body.out -w '%{http_code}' "$@" "$URL$p"; }
assert_eq "$(code /loaders/snponly.efi)" 200 "GET of a loader"
cmp -s body.out root/snponly.efi || fail "GET /loaders/snponly.efi: not the file's bytes"
assert_eq "$(curl -s -o /dev/null -w '%{content_type}' "$URL/loaders/snponly.efi")" "application/efi" "an EFI loader's type"
assert_eq "$(curl -sI "$URL/loaders/snponly.efi" | tr -d '\r' | sed -n 's/^Content-Length: //Ip')" 300000 "HEAD: the length"
pass "a loader comes over HTTP as TFTP would send it (GET, HEAD, application/efi)"

for bad in /loaders/nope.efi /loaders/sub/x.efi /loaders/.hidden /loaders/ "/loaders/..%2Foutside.txt"; do
  assert_eq "$(code "$bad")" 404 "GET $bad"
done
code /loaders/nope.efi >/dev/null
grep -qF "loader 'nope.efi' in $WORK/root: file not found" body.out || fail "a missing loader's answer: $(cat body.out)"
assert_eq "$(code /loaders/snponly.efi -X POST)" 405 "POST of a loader"
# A symlink out of the root: followed only when nobody but root could have
# planted it (tftp/root.h); a root its group may write serves no such link.
ln -s "$WORK/outside.txt" root/out.txt
chmod 775 root
assert_eq "$(code /loaders/out.txt)" 404 "a symlink out of a group-writable root"
chmod 755 root
assert_eq "$(code /loaders/snponly.efi)" 200 "a loader after the refusals"
pass "refused like TFTP: missing, nested, dot files, '..', a symlink out of a root others may write; POST is 405"
kill -TERM $SERVER; wait $SERVER || fail "bootsrv exited $? on SIGTERM"; SERVER=

# No TFTP and no such directory: bootsrv starts, /loaders/ is just not there.
start_bootsrv "listening for HTTP" serve --listen 127.0.0.1:0 --http-listen 127.0.0.1:$HTTP_PORT --tftp-root "$WORK/none"
assert_eq "$(code /loaders/snponly.efi)" 404 "loaders without a TFTP root"
kill -TERM $SERVER; wait $SERVER || fail "bootsrv exited $? on SIGTERM"; SERVER=
pass "without TFTP a missing TFTP root is no error; /loaders/ answers 404"

# dhcp-config --http-boot: the site DHCP server's lines for HTTP boot.
expect_exit 0 "$BOOTSRV" dhcp-config --http-boot --server-ip 10.1.2.3 --http-port 8081 --efi-loader ipxe.efi
printf '%s\n' "$OUT" > http-boot.conf
grep -qx "dhcp-vendorclass=set:httpboot,HTTPClient" http-boot.conf || fail "no HTTPClient match: $OUT"
grep -qx "dhcp-option-force=tag:httpboot,tag:efi64http,60,HTTPClient" http-boot.conf || fail "no option 60 HTTPClient: $OUT"
grep -qx "dhcp-boot=tag:httpboot,tag:efi64http,http://10.1.2.3:8081/loaders/ipxe.efi" http-boot.conf || fail "no loader URL: $OUT"
grep -q "^dhcp-range" http-boot.conf && fail "--http-boot prints a dhcp-range (it goes into a configuration that has its own)"
expect_exit 2 "$BOOTSRV" dhcp-config --http-boot --server-ip 10.1.2.3 --interface br0
expect_contains "--interface is for the proxy configuration"
expect_exit 2 "$BOOTSRV" dhcp-config --http-boot --server-ip pc.example
expect_contains "is not an IPv4 address"
expect_exit 2 "$BOOTSRV" dhcp-config --http-boot --server-ip 10.1.2.3 --efi-loader grub.efi
expect_contains "use snponly.efi or ipxe.efi"
"$BOOTSRV" dhcp-config --server-ip 10.1.2.3 > proxy.conf
grep -qF "bootsrv dhcp-config --http-boot" proxy.conf || fail "the proxy configuration does not point to --http-boot"
if command -v dnsmasq >/dev/null; then
  for conf in http-boot.conf proxy.conf; do
    dnsmasq --test --conf-file="$WORK/$conf" > dnsmasq.out 2>&1 || fail "dnsmasq refuses $conf: $(cat dnsmasq.out)"
  done
  pass "dhcp-config --http-boot: HTTPClient gets option 60 and the loader's URL; dnsmasq --test accepts it and the proxy configuration"
else
  pass "dhcp-config --http-boot: HTTPClient gets option 60 and the loader's URL (no dnsmasq here to --test it)"
fi
