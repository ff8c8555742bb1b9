# shellcheck shell=bash
# For the iSCSI tests: a store with one image "lab" (64 MiB, published as
# version 1), and bootsrv serving it over iSCSI and NBD on free loopback
# ports, killed on exit. Target names are those of docs/iscsi.md.
HERE=$(cd "$(dirname "$0")" && pwd)
source "$HERE/../lib.sh"
BOOTSRV=${BOOTSRV:?set BOOTSRV to the bootsrv binary}
export BOOTFLEET_STORE=$WORK/store
"$IMGTOOL" init >/dev/null
PREFIX=iqn.2026-11.org.bootfleet

for tool in iscsi-ls iscsi-inq iscsi-readcapacity16 iscsi-test-cu; do
  command -v $tool >/dev/null || fail "$tool is missing (Debian libiscsi-bin, ci/install-deps)"
done

# A 64 MiB disk: random data in its first 4 MiB and at 32 MiB, zeros elsewhere.
make_image() { # image file
  truncate -s 64M "$2"
  dd if=/dev/urandom of="$2" bs=1M count=4 conv=notrunc status=none
  dd if=/dev/urandom of="$2" bs=1M count=2 seek=32 conv=notrunc status=none
  "$IMGTOOL" import "$1" "$2" --publish >/dev/null
}

# start_server [bootsrv args...]: iSCSI on ISCSI_PORT, NBD on PORT.
start_server() {
  PORT=$(free_port); ISCSI_PORT=$(free_port)
  start_bootsrv "listening for iSCSI" serve --listen 127.0.0.1:$PORT --iscsi-listen 127.0.0.1:$ISCSI_PORT "$@"
}
stop_server() {
  kill -TERM $SERVER 2>/dev/null || return 0
  wait $SERVER || fail "bootsrv exited $? on SIGTERM"
}
# iurl TARGET-SUFFIX [LUN]: the libiscsi/QEMU URL of PREFIX:SUFFIX.
iurl() { echo "iscsi://127.0.0.1:$ISCSI_PORT/$PREFIX:$1/${2-0}"; }
alive() { kill -0 $SERVER 2>/dev/null || fail "bootsrv died: $(tail -20 server.log)"; }
CU_REPORT="$PY $HERE/cu_report.py"

# master_sum / master_unchanged: the version files' digests before, and a
# check after the test wrote into sessions (imgtool verify, and sha256).
master_sum() { sha256sum "$BOOTFLEET_STORE"/images/lab/*.vhd > master.sum; }
master_unchanged() {
  sha256sum -c --quiet master.sum || fail "a version file changed under a session's writes"
  "$IMGTOOL" verify > verify.out 2>&1 || fail "imgtool verify: $(cat verify.out)"
}

# start_tgtd FILE: Debian's tgtd (the reference target) in the foreground,
# serving FILE as LUN 1 of iqn.2026-11.test:tgt (LUN 0 is tgt's controller)
# on 127.0.0.1:TGT_PORT; its control socket is /var/run/tgtd/socket.TGT_CONTROL,
# a number no other tgtd uses, removed on exit with tgtd.
TGTD=
start_tgtd() {
  command -v tgtd >/dev/null || fail "tgtd is missing (Debian tgt, ci/install-deps)"
  TGT_PORT=$(free_port)
  TGT_CONTROL=$(( 1000 + RANDOM % 30000 ))
  while [ -e /var/run/tgtd/socket.$TGT_CONTROL ]; do TGT_CONTROL=$(( TGT_CONTROL + 1 )); done
  tgtd -f -C $TGT_CONTROL --iscsi portal=127.0.0.1:$TGT_PORT > tgtd.log 2>&1 &
  TGTD=$!
  local up=
  for _ in $(seq 1 100); do
    kill -0 $TGTD 2>/dev/null || fail "tgtd died: $(cat tgtd.log)"
    if tgtadm -C $TGT_CONTROL --lld iscsi --mode target --op new --tid 1 --targetname iqn.2026-11.test:tgt 2>/dev/null; then
      up=1; break
    fi
    sleep 0.05
  done
  [ -n "$up" ] || fail "tgtd's control socket did not answer: $(cat tgtd.log)"
  tgtadm -C $TGT_CONTROL --lld iscsi --mode logicalunit --op new --tid 1 --lun 1 --backing-store "$1" ||
    fail "tgtadm could not add $1"
  tgtadm -C $TGT_CONTROL --lld iscsi --mode target --op bind --tid 1 --initiator-address 127.0.0.1 ||
    fail "tgtadm could not bind the target"
}
stop_tgtd() {
  [ -n "$TGTD" ] || return 0
  # tgtd -f does not stop on SIGTERM; its file is a throwaway copy.
  kill -9 $TGTD 2>/dev/null; wait $TGTD 2>/dev/null || true
  rm -f /var/run/tgtd/socket.$TGT_CONTROL /var/run/tgtd/socket.$TGT_CONTROL.lock
  TGTD=
}
# On exit: what the test started, then its directory. (Never "kill -9 0",
# which would take the whole process group, ctest included, when a test
# exits before its server started.)
EXTRA_PIDS=
cleanup() {
  local pid
  for pid in ${SERVER:-} $EXTRA_PIDS; do kill -9 "$pid" 2>/dev/null || true; done
  stop_tgtd
  rm -rf "$WORK"
}
trap cleanup EXIT
