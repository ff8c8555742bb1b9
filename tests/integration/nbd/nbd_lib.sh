# For the NBD tests: a store with one image, and bootsrv on a free loopback
# port, stopped on exit.
source "$(dirname "$0")/../lib.sh"
BOOTSRV=${BOOTSRV:?set BOOTSRV to the bootsrv binary}
export BOOTFLEET_STORE=$WORK/store
"$IMGTOOL" init >/dev/null

# A 64 MiB disk: random data in its first 4 MiB and at 32 MiB, zeros elsewhere.
make_image() { # image file
  truncate -s 64M "$2"
  dd if=/dev/urandom of="$2" bs=1M count=4 conv=notrunc status=none
  dd if=/dev/urandom of="$2" bs=1M count=2 seek=32 conv=notrunc status=none
  "$IMGTOOL" import "$1" "$2" --publish >/dev/null
}


start_server() { # extra bootsrv args...
  PORT=$(free_port)
  start_bootsrv "listening for NBD" serve --listen 127.0.0.1:$PORT "$@"
}
stop_server() {
  kill -TERM $SERVER 2>/dev/null || return 0
  wait $SERVER || fail "bootsrv exited $? on SIGTERM"
}
trap 'kill -9 ${SERVER:-0} 2>/dev/null || true; rm -rf "$WORK"' EXIT
uri() { echo "nbd://127.0.0.1:$PORT/$1"; }
alive() { kill -0 $SERVER 2>/dev/null || fail "bootsrv died: $(tail -20 server.log)"; }
