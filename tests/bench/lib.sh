# Shared by the benchmark scripts (sourced): a free loopback port, ratios
# and medians, and the result row.
PY=/usr/bin/python3
port() { $PY -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
# ratio A B: A / B with two decimals.
ratio() { echo "$1 / $2" | bc -l | xargs printf '%.2f'; }
# median N...: the middle value (the lower middle for an even count).
median() { printf '%s\n' "$@" | sort -g | awk '{v[NR]=$1} END {print v[int((NR+1)/2)]}'; }
# CPU time (user + system) of process $1 so far, in clock ticks.
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
# row LABEL MIB_S IOPS
row() { printf '%-44s %10s MiB/s %9s IOPS\n' "$1" "$2" "$3"; }
# tiny_store SRC: $BOOTFLEET_STORE holds tiny-linux@1, published: a copy of
# $BOOTFLEET_TINY_STORE when set, else built from SRC/recipes (one
# appliance launch); the build's log in tiny-build.log.
tiny_store() {
  if [ -n "${BOOTFLEET_TINY_STORE:-}" ]; then
    cp -a "$BOOTFLEET_TINY_STORE" "$BOOTFLEET_STORE"
    return
  fi
  echo "building tiny-linux (one appliance launch)…"
  "$IMGTOOL" init >/dev/null
  timeout 1800 "$IMGTOOL" build "$1/recipes/tiny-linux.yaml" --publish > tiny-build.log 2>&1 || { tail -20 tiny-build.log; exit 1; }
}
# bench_netns SCRIPT ARGS...: runs SCRIPT again inside a network namespace
# of its own (loopback up, nothing else), with TCP's congestion control set
# to $BENCH_CC there (default cubic, Linux's default), so the figures do not
# depend on what the host chose. On loopback the choice moves them a lot:
# BBR paces every socket with a timer (no fq qdisc here), which costs each
# stream per message it carries. BENCH_CC=host keeps the host's loopback.
# Prints which control the figures were taken with.
bench_netns() {
  local script=$1; shift
  if [ -n "${BENCH_IN_NETNS:-}" ]; then
    echo "TCP congestion control: $(cat /proc/sys/net/ipv4/tcp_congestion_control) (this benchmark's own network namespace; BENCH_CC=host for the host's loopback)"
    return
  fi
  local cc=${BENCH_CC:-cubic}
  if [ "$cc" = host ]; then
    echo "TCP congestion control: $(cat /proc/sys/net/ipv4/tcp_congestion_control) (the host's loopback)"
    return
  fi
  if ! grep -qw -- "$cc" /proc/sys/net/ipv4/tcp_available_congestion_control; then
    echo "BENCH_CC=$cc: not one of this kernel's congestion controls ($(cat /proc/sys/net/ipv4/tcp_available_congestion_control))" >&2
    exit 2
  fi
  if ! unshare -n true 2>/dev/null; then
    echo "no network namespace for this user: on the host's loopback, congestion control $(cat /proc/sys/net/ipv4/tcp_congestion_control)"
    return
  fi
  exec unshare -n env BENCH_IN_NETNS=1 BENCH_CC="$cc" bash -c \
    'ip link set lo up && sysctl -qw net.ipv4.tcp_congestion_control="$BENCH_CC" && exec bash "$0" "$@"' "$script" "$@"
}
# bench_workdir NAME: cd into a fresh work directory holding the store
# (BOOTFLEET_STORE); on exit the servers whose PIDs are in `pids` are
# killed and the directory removed (`cleanup`, which a script's own trap
# may call last).
bench_workdir() {
  work=$(mktemp -d "${BENCH_DIR:-/var/tmp}/bootfleet-bench-$1-XXXXXX")
  pids=()
  trap cleanup EXIT
  cd "$work"
  export BOOTFLEET_STORE=$work/store
}
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"; }
# nbd_wait_port PORT EXPORT: until the NBD server on PORT answers for EXPORT.
nbd_wait_port() { for _ in $(seq 1 100); do nbdinfo --size "nbd://127.0.0.1:$1/$2" >/dev/null 2>&1 && return 0; sleep 0.1; done; echo "server on $1 did not start"; exit 1; }
