# For the TFTP tests: an empty store (bootsrv needs one), a served directory
# with a few files and the iPXE loader, and bootsrv with TFTP on a free
# loopback port, stopped on exit.
source "$(dirname "$0")/../lib.sh"
BOOTSRV=${BOOTSRV:?set BOOTSRV to the bootsrv binary}
IPXE_DIR=${IPXE_DIR:-/usr/lib/ipxe}
export BOOTFLEET_STORE=$WORK/store
"$IMGTOOL" init >/dev/null

mkdir -p root/sub
cp "$IPXE_DIR/undionly.kpxe" root/
head -c 1000 /dev/urandom > root/small.bin
: > root/empty.bin
head -c 1024 /dev/urandom > root/exact-two-blocks.bin
head -c 300000 /dev/urandom > root/sub/medium.bin
echo secret > outside.txt
ln -s ../outside.txt root/escape-link
ln -s sub/medium.bin root/inside-link
# A symlink out of the root is followed only when root alone could have made
# it (the link, the root and the directories between owned by root, not
# group/other-writable). escape-link stands for one planted by someone else:
# as root, it is given to nobody. trusted-link is root's own (refused unless
# the test runs as root).
chmod 755 root root/sub
head -c 5000 /dev/urandom > outside-loader.bin
ln -s "$WORK/outside-loader.bin" root/trusted-link
AS_ROOT=0
if [ "$(id -u)" -eq 0 ]; then AS_ROOT=1; chown -h 65534:65534 root/escape-link; fi

free_udp_port() { $PY -c 'import socket; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
free_tcp_port() { $PY -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# launch ARGS...: bootsrv serve ARGS, NBD on a free port; waits until TFTP listens.
launch() {
  rm -f server.log  # a previous server's lines must not look like this one's
  "$BOOTSRV" serve --listen 127.0.0.1:$(free_tcp_port) "$@" > server.log 2>&1 &
  SERVER=$!
  for _ in $(seq 1 100); do
    grep -q "listening for TFTP" server.log 2>/dev/null && return 0
    kill -0 $SERVER 2>/dev/null || fail "bootsrv died: $(cat server.log)"
    sleep 0.05
  done
  fail "bootsrv did not start: $(cat server.log)"
}
start_server() { # TFTP_HOST extra bootsrv args...: serves $WORK/root on a free port
  local host=$1; shift
  TPORT=$(free_udp_port)
  launch --tftp-listen "$host:$TPORT" --tftp-root "$WORK/root" "$@"
}
stop_server() {
  kill -TERM $SERVER 2>/dev/null || return 0
  wait $SERVER || fail "bootsrv exited $? on SIGTERM"
}
trap 'kill -9 ${SERVER:-0} 2>/dev/null || true; rm -rf "$WORK"' EXIT
alive() { kill -0 $SERVER 2>/dev/null || fail "bootsrv died: $(tail -20 server.log)"; }

# tftp_get [-6] HOST FILE OUT: tftp-hpa in binary mode, bounded in time.
tftp_get() {
  local v=(); [ "$1" = -6 ] && { v=(-6); shift; }
  timeout 60 tftp "${v[@]}" -m binary "$1" "$TPORT" -c get "$2" "$3"
}
