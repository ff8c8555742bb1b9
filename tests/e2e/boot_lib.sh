# The boot helpers of the e2e tests (sourced after integration/lib.sh, with
# HTTP_PORT set to bootsrv's HTTP port): power on a diskless QEMU (TCG)
# client that network-boots from bootsrv and powers itself off at the end
# of tiny-linux's init, wait for it, and look at its console.
QEMU_PIDS=()
# On exit, whatever happened: the clients and the server (SERVER, set by
# start_bootsrv) are killed and the work directory removed.
SERVER=0
cleanup() {
  for p in "${QEMU_PIDS[@]}"; do kill -9 "$p" 2>/dev/null || true; done
  kill -9 $SERVER 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

# tiny_linux_store: BOOTFLEET_STORE holds tiny-linux@1, published: a copy of
# BOOTFLEET_TINY_STORE (saves the appliance launch when iterating) or built.
tiny_linux_store() {
  if [ -n "${BOOTFLEET_TINY_STORE:-}" ]; then
    cp -a "$BOOTFLEET_TINY_STORE" "$BOOTFLEET_STORE"
    return
  fi
  "$IMGTOOL" init >/dev/null
  timeout 600 "$IMGTOOL" build "$HERE_LIB/../../recipes/tiny-linux.yaml" --publish > build.log 2>&1 ||
    fail "build: $(tail -20 build.log)"
}

# start_boot MAC CONSOLE: powers on a diskless client in the background
# (QEMU_PID); it powers itself off at the end of tiny-linux's init.
start_boot() {
  : > "$2"
  timeout 240 qemu-system-x86_64 -accel tcg -nographic -no-reboot -m 1024 -boot n \
    -netdev "user,id=n0,bootfile=http://10.0.2.2:$HTTP_PORT/boot.ipxe" \
    -device "virtio-net-pci,netdev=n0,mac=$1" \
    -serial "file:$2" -monitor none -display none > "$2.qemu" 2>&1 &
  QEMU_PID=$!
  QEMU_PIDS+=("$QEMU_PID")
}
# finish_boot CONSOLE WHAT: waits for the client to power off; fails with the
# console's tail unless it printed a marker. BOOT_SECONDS: how long it took.
finish_boot() {
  local begin=$SECONDS rc=0
  wait "$QEMU_PID" || rc=$?
  BOOT_SECONDS=$(( SECONDS - ${BOOT_STARTED:-begin} ))
  if ! grep -qa "bootfleet-marker" "$1"; then
    echo "FAIL: $2: no boot marker (qemu exit $rc); console tail:" >&2
    tail -30 "$1" | tr -d '\r' >&2
    echo "--- qemu: $(cat "$1.qemu")" >&2
    echo "--- bootsrv log tail:" >&2
    tail -15 server.log >&2
    exit 1
  fi
}
# expect_console CONSOLE LINE WHAT: the console holds LINE as a whole line.
expect_console() {
  tr -d '\r' < "$1" | grep -qxF -- "$2" || {
    echo "FAIL: $3: expected '$2' on the console; console tail:" >&2
    tr -d '\r' < "$1" | grep -a "bootfleet" | tail -10 >&2
    tail -15 "$1" | tr -d '\r' >&2
    exit 1
  }
}
boot() { # MAC CONSOLE WHAT
  BOOT_STARTED=$SECONDS
  start_boot "$1" "$2"
  finish_boot "$2" "$3"
}
