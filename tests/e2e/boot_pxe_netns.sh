#!/usr/bin/env bash
# PXE boot end to end on a private network, as a PC on a site network does it:
# the NIC's PXE firmware gets an address from the site's DHCP server and the
# boot information from dnsmasq in proxy mode (configured by `bootsrv
# dhcp-config`), loads undionly.kpxe over TFTP from bootsrv, and that iPXE
# asks DHCP again, gets http://SERVER/boot.ipxe, loads the kernel and initrd
# over HTTP and the root over NBD, to tiny-linux's marker.
#
# Everything runs in a network namespace made here: a bridge 10.77.0.1/24 with
# a veth pair (so the bridge has carrier before QEMU starts) and a tap for
# QEMU. Nothing listens outside it. Where a namespace or a tap cannot be made
# (no CAP_NET_ADMIN, no /dev/net/tun), the test says "SKIP: why" and exits 77,
# which ctest counts as skipped (SKIP_RETURN_CODE).
#
# Two dnsmasq instances, as a real site has them: one plain DHCP server with
# an address range (the site's; the namespace has no other), and one that
# runs exactly what `bootsrv dhcp-config --interface br0` prints, in proxy
# mode, handing out no addresses. That tests the printed configuration
# unmodified, as an administrator installs it, beside a DHCP server it must
# not disturb. (dnsmasq 2.90 does start with a proxy range and an address
# range for one subnet in one instance, but which of them answers is then
# dnsmasq's internal choice, and no site runs it that way.) Both bind UDP 67
# on the bridge: with bind-interfaces dnsmasq binds it to the interface and
# lets other instances share the port, and broadcasts reach both.
#
# QEMU's NIC ROM is itself iPXE and says so (DHCP user class "iPXE"), so
# the proxy would rightly send it straight to the HTTP script, skipping the
# TFTP step this test is about. Nothing else in its requests tells it apart
# from the undionly.kpxe it would load (same build, features and bus ID), so
# instead of bending the configuration, the test makes the ROM do what a
# PC's plain PXE firmware does, typed at its Ctrl-B prompt over the serial
# console (serial_console.py): DHCP with a user class that is not iPXE
# ("plain-pxe"), the PXE boot-server request for the proxy's menu entry
# (pxebs, type 128: the first pxe-service), then TFTP of the file it names
# from the server it names. The user class is cleared before the load, since
# the ROM's PXE stack hands its settings to the loaded iPXE as cached DHCP
# packets (left set, undionly.kpxe would be offered itself once more). From
# there on everything is what a real PC does with the configuration `bootsrv
# dhcp-config` prints, unchanged: the proxy offers undionly.kpxe, bootsrv
# sends it over TFTP, and that iPXE (user class "iPXE") gets
# http://SERVER:8080/boot.ipxe.
#
# undionly.kpxe drives the NIC through the ROM's UNDI API, in real mode,
# which is slow under TCG: the kernel and initrd take about 100 s over HTTP
# here (a few seconds with the ROM's own driver in boot_http.sh).
#
# Two UEFI PCs (OVMF) boot while the BIOS one downloads, on taps of their
# own, with the firmware's own network stack (the NIC's iPXE option ROM is
# left out, romfile=, so only OVMF's PXE and HTTP boot talk DHCP):
# - efi01 by PXE: OVMF asks with client architecture 7, the proxy offers
#   snponly.efi (option 93, as `bootsrv dhcp-config` prints it), bootsrv sends
#   it over TFTP, and that iPXE (on the firmware's SNP driver) chains to the
#   HTTP script;
# - http01 by UEFI HTTP boot (OVMF's PXE turned off with its fw_cfg switches
#   opt/org.tianocore/IPv4PXESupport and IPv6PXESupport, so HTTP boot is
#   what it tries): it asks with vendor class HTTPClient, the site's DHCP
#   server answers with the lines `bootsrv dhcp-config --http-boot` prints
#   (they belong there: proxy DHCP does not answer HTTPClient), and OVMF
#   downloads snponly.efi from bootsrv's /loaders/ over HTTP.
# A UEFI PC counts as booted once bootsrv served its boot script and attached
# its root over NBD; it is powered off then (the rest is what the BIOS PC and
# boot_http.sh check), which keeps the added time small.
source "$(dirname "$0")/../integration/lib.sh"
BOOTSRV=${BOOTSRV:?set BOOTSRV to the bootsrv binary}
export BOOTFLEET_STORE=$WORK/store
started=$SECONDS

skip() { echo "SKIP: $*"; exit 77; }

NS=bootfleet-pxe-$$-$RANDOM
SERVER_IP=10.77.0.1
MAC=52:54:00:00:e7:01
NS_MADE=0
PIDS=()
cleanup() {
  local p
  for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true  # reap them quietly (no "Killed" lines)
  if [ "$NS_MADE" = 1 ]; then
    # Anything still running in our namespace was started by this test.
    for p in $(ip netns pids "$NS" 2>/dev/null); do kill -9 "$p" 2>/dev/null || true; done
    ip netns del "$NS" 2>/dev/null || true
  fi
  # BOOTFLEET_KEEP_LOGS=DIR: keep the console and the servers' logs there.
  if [ -n "${BOOTFLEET_KEEP_LOGS:-}" ]; then mkdir -p "$BOOTFLEET_KEEP_LOGS" && cp "$WORK"/*.log "$WORK"/*.conf "$BOOTFLEET_KEEP_LOGS"/ 2>/dev/null || true; fi
  rm -rf "$WORK"
}
trap cleanup EXIT

for tool in ip dnsmasq qemu-system-x86_64; do
  command -v "$tool" >/dev/null || fail "$tool is missing (ci/install-deps installs it)"
done
[ -f /usr/lib/ipxe/undionly.kpxe ] || fail "/usr/lib/ipxe/undionly.kpxe is missing (Debian's ipxe package)"

# Background processes below are started as plain commands (not through a
# shell function, which would fork a subshell), so that $! is the process.

# --- the network ------------------------------------------------------------
ip netns add "$NS" 2> netns.err || skip "cannot create a network namespace: $(cat netns.err)"
NS_MADE=1
ip -n "$NS" link set lo up 2> netns.err || skip "cannot configure the namespace: $(cat netns.err)"
ip -n "$NS" link add br0 type bridge 2> netns.err || skip "cannot create a bridge: $(cat netns.err)"
ip -n "$NS" link add veth0 type veth peer name veth1 2> netns.err || skip "cannot create a veth pair: $(cat netns.err)"
[ -c /dev/net/tun ] || skip "no /dev/net/tun"
for tap in tap0 tap1 tap2; do
  ip -n "$NS" tuntap add dev $tap mode tap 2> netns.err || skip "cannot create a tap device: $(cat netns.err)"
done
{
  ip -n "$NS" link set veth0 master br0 &&
  ip -n "$NS" link set tap0 master br0 && ip -n "$NS" link set tap1 master br0 && ip -n "$NS" link set tap2 master br0 &&
  ip -n "$NS" addr add "$SERVER_IP/24" dev br0 &&
  ip -n "$NS" link set veth0 up && ip -n "$NS" link set veth1 up &&
  ip -n "$NS" link set tap0 up && ip -n "$NS" link set tap1 up && ip -n "$NS" link set tap2 up &&
  ip -n "$NS" link set br0 up
} 2> netns.err || skip "cannot set up the bridge: $(cat netns.err)"
pass "namespace $NS: br0 $SERVER_IP/24 with veth0 and tap0-2"

# --- the store and bootsrv --------------------------------------------------
if [ -n "${BOOTFLEET_TINY_STORE:-}" ]; then
  cp -a "$BOOTFLEET_TINY_STORE" "$BOOTFLEET_STORE"
else
  RECIPES=$(cd "$HERE_LIB/../../recipes" && pwd)
  "$IMGTOOL" init >/dev/null
  BOOTFLEET_GUEST_ACCEL=${BOOTFLEET_GUEST_ACCEL:-tcg} timeout 600 "$IMGTOOL" build "$RECIPES/tiny-linux.yaml" --publish \
    > build.log 2>&1 || fail "build: $(tail -20 build.log)"
fi
"$IMGTOOL" client add "$MAC" --name pxe01 --image tiny-linux >/dev/null
EFI_MAC=52:54:00:00:e7:02 HTTP_MAC=52:54:00:00:e7:03
"$IMGTOOL" client add "$EFI_MAC" --name efi01 --image tiny-linux >/dev/null
"$IMGTOOL" client add "$HTTP_MAC" --name http01 --image tiny-linux >/dev/null
V1_FILE=$BOOTFLEET_STORE/$("$IMGTOOL" versions tiny-linux --json | json 'j[0]["file"]')
sha256sum "$V1_FILE" > v1.sum

# TFTP from the default root, /usr/lib/ipxe: Debian's loaders as installed.
ip netns exec "$NS" "$BOOTSRV" serve --listen $SERVER_IP:10809 --http-listen $SERVER_IP:8080 --tftp-listen $SERVER_IP:69 \
  > server.log 2>&1 &
PIDS+=($!); SERVER=$!
for _ in $(seq 1 100); do
  grep -qs "listening for TFTP" server.log && grep -qs "listening for HTTP" server.log && break
  kill -0 $SERVER 2>/dev/null || fail "bootsrv died: $(cat server.log)"
  sleep 0.05
done
grep -q "listening for TFTP" server.log || fail "bootsrv did not start: $(cat server.log)"

# --- DHCP: the site's server and bootfleet's proxy ---------------------------
# Only our files (--conf-file), DNS off (port=0), no /etc/hosts or
# resolv.conf, leases, pid and log in the work directory; -k keeps each in
# the foreground so the trap can end it. --user=root: the work directory is
# root's alone, and the namespace is private anyway.
cat > site.conf <<EOF
# The site's DHCP server: addresses only, knows nothing of PXE.
port=0
interface=br0
bind-interfaces
dhcp-range=10.77.0.100,10.77.0.199,255.255.255.0,1h
log-dhcp
EOF
# ... and what UEFI HTTP boot needs from it, as docs/network-boot.md says to add.
"$BOOTSRV" dhcp-config --http-boot --server-ip $SERVER_IP >> site.conf || fail "bootsrv dhcp-config --http-boot failed"
"$BOOTSRV" dhcp-config --server-ip $SERVER_IP --interface br0 > proxy.conf ||
  fail "bootsrv dhcp-config failed"
grep -qx "dhcp-range=$SERVER_IP,proxy" proxy.conf || fail "dhcp-config is not in proxy mode: $(cat proxy.conf)"
run_dnsmasq() { # NAME: NAME.conf, logging to NAME.log
  ip netns exec "$NS" dnsmasq -k --conf-file="$WORK/$1.conf" --pid-file="$WORK/$1.pid" --dhcp-leasefile="$WORK/$1.leases" \
    --no-hosts --no-resolv --user=root --group=root --log-facility=- > "$1.log" 2>&1 &
  PIDS+=($!)
  local pid=$!
  for _ in $(seq 1 100); do
    grep -qs "DHCP, \(IP range\|proxy\)" "$1.log" && return 0
    kill -0 $pid 2>/dev/null || fail "dnsmasq ($1) died: $(cat "$1.log")"
    sleep 0.05
  done
  fail "dnsmasq ($1) did not start: $(cat "$1.log")"
}
run_dnsmasq site
run_dnsmasq proxy
pass "bootsrv (NBD, HTTP, TFTP) and two dnsmasq (site DHCP, bootfleet proxy) listen on $SERVER_IP"

# --- the UEFI PCs, in the background ------------------------------------------
[ -f /usr/share/OVMF/OVMF_CODE_4M.fd ] || fail "/usr/share/OVMF/OVMF_CODE_4M.fd is missing (Debian's ovmf package)"
# start_uefi NAME TAP MAC [QEMU ARGS...]: powers on an OVMF PC that boots
# from its NIC (UEFI_PIDS), and a watcher that powers it off once bootsrv has
# attached its root (NAME.done then holds the seconds it took).
UEFI_PIDS=()
start_uefi() {
  local name=$1 tap=$2 mac=$3; shift 3
  cp /usr/share/OVMF/OVMF_VARS_4M.fd "$name.vars"
  : > "$name.log"
  ip netns exec "$NS" timeout 480 qemu-system-x86_64 -accel tcg -nographic -no-reboot -m 1024 \
    -drive if=pflash,format=raw,readonly=on,file=/usr/share/OVMF/OVMF_CODE_4M.fd \
    -drive "if=pflash,format=raw,file=$WORK/$name.vars" "$@" \
    -netdev tap,id=n0,ifname=$tap,script=no,downscript=no \
    -device virtio-net-pci,netdev=n0,mac=$mac,romfile=,bootindex=1 \
    -serial "file:$WORK/$name.log" -monitor none -display none > "$name.qemu" 2>&1 &
  local pid=$!
  PIDS+=($pid); UEFI_PIDS+=($pid)
  (
    begin=$SECONDS
    while kill -0 $pid 2>/dev/null; do
      if grep -q "export 'tiny-linux/$name': connected" server.log; then
        echo $(( SECONDS - begin )) > "$name.done"
        kill -TERM $pid
        break
      fi
      sleep 1
    done
  ) &
  PIDS+=($!)
}
# --- the PC -------------------------------------------------------------------
CONSOLE=console.log
: > $CONSOLE
BOOT_STARTED=$SECONDS
# The serial port is a socket QEMU waits on; serial_console.py copies the
# console to $CONSOLE and types at the ROM's prompt (see the top).
ip netns exec "$NS" timeout 480 qemu-system-x86_64 -accel tcg -nographic -no-reboot -m 1024 -boot n \
  -netdev tap,id=n0,ifname=tap0,script=no,downscript=no \
  -device virtio-net-pci,netdev=n0,mac=$MAC \
  -chardev "socket,id=s0,path=$WORK/serial.sock,server=on,wait=on" -serial chardev:s0 \
  -monitor none -display none > qemu.log 2>&1 &
QEMU_PID=$!
PIDS+=($QEMU_PID)
$PY "$HERE_LIB/../e2e/serial_console.py" "$WORK/serial.sock" $CONSOLE \
  "Press Ctrl-B for the iPXE command line" '\x02' \
  "iPXE>" 'set user-class plain-pxe\r' \
  "iPXE>" 'dhcp net0\r' \
  "iPXE>" 'pxebs net0 128\r' \
  "iPXE>" 'clear user-class\r' \
  "iPXE>" 'chain tftp://${next-server}/${filename}\r' > console.err 2>&1 &
PIDS+=($!)
# The UEFI PCs start once the typing is over: keys typed at a ROM whose CPU
# two other PCs share get lost. undionly.kpxe's slow download is still ahead.
for _ in $(seq 1 300); do
  grep -qa "using undionly on" $CONSOLE && break
  kill -0 $QEMU_PID 2>/dev/null || break
  sleep 1
done
start_uefi efi01 tap1 $EFI_MAC
start_uefi http01 tap2 $HTTP_MAC \
  -fw_cfg name=opt/org.tianocore/IPv4PXESupport,string=n -fw_cfg name=opt/org.tianocore/IPv6PXESupport,string=n
rc=0
wait $QEMU_PID || rc=$?
BOOT_SECONDS=$(( SECONDS - BOOT_STARTED ))
echo "QEMU ended after ${BOOT_SECONDS} s (exit $rc)"
if ! grep -qa "bootfleet-marker" $CONSOLE; then
  echo "FAIL: no boot marker (qemu/timeout exit $rc after ${BOOT_SECONDS} s); console tail:" >&2
  tail -30 $CONSOLE | tr -d '\r' >&2
  echo "--- qemu: $(cat qemu.log)" >&2
  for f in server site proxy; do echo "--- $f.log tail:" >&2; tail -25 $f.log >&2; done
  exit 1
fi

# The console without carriage returns and the backspaces iPXE erases its
# prompt with, as a file: grep -q on a pipe would kill its writer with
# SIGPIPE, which pipefail counts as a failure.
tr -d '\r' < $CONSOLE | sed 's/\x08 \x08//g' > console.txt
# expect_console LINE WHAT: the console holds LINE as a whole line.
expect_console() {
  grep -qaxF -- "$1" console.txt || fail "$2: expected '$1' on the console: $(tail -15 console.txt)"
}
# expect_console_has TEXT WHAT: ... or TEXT anywhere.
expect_console_has() {
  grep -qaF -- "$1" console.txt || fail "$2: no '$1' on the console: $(grep -a -i 'ipxe\|tftp\|undi' console.txt | head -30)"
}
# expect_log FILE PATTERN WHAT: FILE has a line matching the extended regex.
expect_log() { grep -qE -- "$2" "$1" || fail "$3: no line matching '$2' in $1: $(tail -20 "$1")"; }

# The first stage: the ROM, doing what plain PXE firmware does, loaded
# undionly.kpxe by TFTP; the second: that iPXE, on the UNDI driver.
expect_console_has "iPXE> chain tftp://" \
  "the ROM's Ctrl-B prompt was missed, so it booted as iPXE without the TFTP step ($(cat console.err))"
expect_console_has "tftp://$SERVER_IP/undionly.kpxe... ok" "the firmware's TFTP load"
expect_console_has "using undionly on" "the chained iPXE (undionly.kpxe) drives the NIC"
expect_console_has "http://$SERVER_IP:8080/boot.ipxe" "the chained iPXE's boot script"
expect_console "bootfleet-marker image=tiny-linux version=1 client=pxe01" "pxe01's boot"
expect_console "bootfleet-write-test ok" "pxe01's boot"
expect_log site.log "DHCPACK\(br0\) 10\.77\.0\.1[0-9][0-9] $MAC" "the site's DHCP server gave the address"
expect_log proxy.log "PXE\(br0\) .*$MAC proxy" "the proxy answered the PXE firmware"
# Each request's lines share its transaction ID: the plain firmware's got
# the loader, iPXE's the script.
xid_lines() { # USER_CLASS BOOTFILE: the proxy's answers to that user class with that file
  awk -v uc="$1" -v bf="$2" '
    $3 == "user" && $4 == "class:" { cls[$2] = $5 }
    $3 == "bootfile" && $4 == "name:" && cls[$2] == uc && $5 == bf { n++ }
    END { print n + 0 }' proxy.log
}
[ "$(xid_lines plain-pxe undionly.kpxe)" -gt 0 ] || fail "the proxy did not offer undionly.kpxe to the plain PXE firmware: $(tail -30 proxy.log)"
[ "$(xid_lines iPXE "http://$SERVER_IP:8080/boot.ipxe")" -gt 0 ] || fail "the proxy did not offer the boot script to iPXE: $(tail -30 proxy.log)"
expect_log server.log "tftp 10\.77\.0\.1[0-9][0-9]:[0-9]+ 'undionly.kpxe': sent 74213 bytes" "undionly.kpxe went over TFTP"
assert_eq "$(grep -c "'undionly.kpxe': sent" server.log)" 1 "TFTP transfers of undionly.kpxe (the loaded iPXE must not be offered it again)"
expect_log server.log "GET /boot.ipxe" "the chained iPXE fetched the boot script"
expect_log server.log "boot $MAC as pxe01: tiny-linux@1" "bootsrv started pxe01's session"
expect_log server.log "export 'tiny-linux/pxe01': connected, tiny-linux@1" "pxe01's root over NBD"
sha256sum -c --quiet v1.sum || fail "the version file changed while pxe01 wrote to its disk"
pass "PXE → TFTP undionly.kpxe → iPXE → HTTP → NBD: pxe01 booted tiny-linux@1 in ${BOOT_SECONDS} s; the version file is unchanged"

# --- the UEFI PCs' checks -------------------------------------------------------
for pid in "${UEFI_PIDS[@]}"; do wait $pid || true; done
for name in efi01 http01; do
  [ -s "$name.done" ] || {
    echo "FAIL: $name: bootsrv never attached its root; its console:" >&2
    tr -d '\r' < "$name.log" | tail -25 >&2
    echo "--- qemu: $(cat "$name.qemu")" >&2
    for f in server site proxy; do echo "--- $f.log, its lines:" >&2; grep -a "$name\|e7:0[23]\|loaders\|snponly\|HTTPClient" $f.log | tail -15 >&2; done
    exit 1
  }
done
expect_log proxy.log "PXE\(br0\) .*$EFI_MAC proxy" "the proxy answered efi01's firmware"
expect_log proxy.log "bootfile name: snponly.efi" "the proxy offered snponly.efi to efi01's UEFI firmware (option 93)"
expect_log server.log "tftp 10\.77\.0\.1[0-9][0-9]:[0-9]+ 'snponly.efi': sent $(stat -L -c %s /usr/lib/ipxe/snponly.efi) bytes" "snponly.efi went over TFTP to efi01"
expect_log server.log "boot $EFI_MAC as efi01: tiny-linux@1" "bootsrv served efi01's boot script"
expect_log server.log "export 'tiny-linux/efi01': connected, tiny-linux@1" "efi01's root over NBD"
pass "UEFI PXE: efi01 (OVMF) got snponly.efi by TFTP (option 93 picked it), chained to the HTTP script and attached its root in $(cat efi01.done) s"
expect_log site.log "vendor class: HTTPClient:Arch:00016" "http01's firmware asked for HTTP boot (x86-64 UEFI HTTP)"
expect_log site.log "option: 67 bootfile-name +http://$SERVER_IP:8080/loaders/snponly.efi" "the site's DHCP server named the loader's URL"
# Option 60 "HTTPClient" (dnsmasq logs it in hex), without which the firmware takes no offer.
expect_log site.log "option: 60 vendor-class +48:54:54:50:43:6c:69:65:6e:74" "the site's DHCP server said HTTPClient back"
expect_log server.log '"GET /loaders/snponly.efi" 200' "OVMF downloaded snponly.efi over HTTP"
expect_log server.log "boot $HTTP_MAC as http01: tiny-linux@1" "bootsrv served http01's boot script"
expect_log server.log "export 'tiny-linux/http01': connected, tiny-linux@1" "http01's root over NBD"
pass "UEFI HTTP boot: http01 (OVMF, PXE off) got http://$SERVER_IP:8080/loaders/snponly.efi from the site's DHCP server (dhcp-config --http-boot), chained to the HTTP script and attached its root in $(cat http01.done) s"

kill -TERM $SERVER
wait $SERVER || fail "bootsrv exited $? on SIGTERM"
pass "network-namespace PXE boot (BIOS, UEFI PXE, UEFI HTTP) in $(( SECONDS - started )) s"
