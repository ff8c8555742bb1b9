#!/usr/bin/env bash
# Linux's own initiator (open-iscsi: iscsid, iscsiadm, module iscsi_tcp)
# against bootsrv: discovery, login, mkfs.ext4, fsck, a file, logout, login
# again, fsck, the file still there, in a client's named session.
#
# The initiator runs in a network namespace this test makes, joined to the
# host by a veth pair with a private 10.213.N.0/24 (host side .1, where
# bootsrv listens; namespace side .2): nothing else is reachable from it.
# iscsid and iscsiadm find each other by an abstract unix socket, which is
# per network namespace, so a host's own iscsid is never talked to; they run
# in a private mount namespace too, with /etc/iscsi bind-mounted from this
# test's directory and a tmpfs on /run/lock, so the host's node database,
# initiator name and lock are never read or written.
#
# Exit 77 (ctest SKIP) when iscsi_tcp cannot be loaded or the namespace
# cannot be made, saying why.
source "$(dirname "$0")/iscsi_lib.sh"
skip() { echo "SKIP: $*"; exit 77; }
for tool in iscsiadm iscsid mkfs.ext4 fsck.ext4 unshare ip; do
  command -v $tool >/dev/null || fail "$tool is missing (Debian open-iscsi, e2fsprogs, util-linux, iproute2: ci/install-deps)"
done
[ "$(id -u)" -eq 0 ] || skip "not root: network namespaces and the kernel initiator need root"
if [ ! -d /sys/module/iscsi_tcp ]; then
  modprobe iscsi_tcp > modprobe.log 2>&1 || skip "module iscsi_tcp cannot be loaded on kernel $(uname -r): $(head -c 300 modprobe.log)"
  [ -d /sys/module/iscsi_tcp ] || skip "modprobe iscsi_tcp succeeded but /sys/module/iscsi_tcp is absent"
fi

NS=bf-iscsi-$$ VH=bfi$$h VN=bfi$$n
NET=
for _ in $(seq 1 20); do
  n=$(( RANDOM % 250 + 1 ))
  ip -4 addr show | grep -q "inet 10\.213\.$n\." || { NET=10.213.$n; break; }
done
[ -n "$NET" ] || skip "no free 10.213.N.0/24 for the veth pair"
cleanup_net() {
  ip netns pids $NS 2>/dev/null | xargs -r kill -9 2>/dev/null || true
  ip netns del $NS 2>/dev/null || true
  ip link del $VH 2>/dev/null || true
}
trap 'cleanup_net; cleanup' EXIT
ip netns add $NS 2> netns.log || skip "cannot make a network namespace: $(cat netns.log)"
ip link add $VH type veth peer name $VN 2> netns.log || skip "cannot make a veth pair: $(cat netns.log)"
ip link set $VN netns $NS
ip addr add $NET.1/24 dev $VH
ip link set $VH up
ip netns exec $NS ip addr add $NET.2/24 dev $VN
ip netns exec $NS ip link set $VN up
ip netns exec $NS ip link set lo up

make_image lab v1.raw
master_sum
PORT=$(free_port); ISCSI_PORT=$(free_port)
start_bootsrv "listening for iSCSI" serve --listen 127.0.0.1:$PORT --iscsi-listen $NET.1:$ISCSI_PORT
TARGET=$PREFIX:lab:kernel
ip netns exec $NS timeout 5 bash -c "exec 3<>/dev/tcp/$NET.1/$ISCSI_PORT" 2> reach.log ||
  fail "the namespace cannot reach bootsrv on $NET.1:$ISCSI_PORT: $(cat reach.log)"

mkdir -p etc-iscsi/nodes etc-iscsi/send_targets etc-iscsi/ifaces mnt
echo "InitiatorName=iqn.2026-11.test:kernel-initiator" > etc-iscsi/initiatorname.iscsi
cat > etc-iscsi/iscsid.conf <<CONF
node.startup = manual
node.session.timeo.replacement_timeout = 15
node.conn[0].timeo.login_timeout = 15
node.conn[0].timeo.logout_timeout = 15
node.session.initial_login_retry_max = 2
CONF
cat > inner.sh <<INNER
set -euo pipefail
cd "$WORK"
mount --bind etc-iscsi /etc/iscsi
mount -t tmpfs -o mode=1777 bootfleet-test /run/lock  # iscsiadm's lock, private to this mount namespace
fail() { echo "FAIL: \$*" >&2; exit 1; }
iscsid -f -c /etc/iscsi/iscsid.conf -i /etc/iscsi/initiatorname.iscsi > iscsid.log 2>&1 &
ISCSID=\$!
trap 'iscsiadm -m node -T $TARGET -p $NET.1:$ISCSI_PORT --logout >/dev/null 2>&1 || true; kill \$ISCSID 2>/dev/null || true; sleep 0.5; kill -9 \$ISCSID 2>/dev/null || true' EXIT
for _ in \$(seq 1 50); do iscsiadm -m session > /dev/null 2>&1 && break; [ \$? -eq 21 ] && break; sleep 0.1; done

if ! iscsiadm -m discovery -t sendtargets -p $NET.1:$ISCSI_PORT > discovery.txt 2>&1; then
  # Kernels before iSCSI's netlink knew network namespaces (4.15) refuse it here.
  grep -q "can not create NETLINK_ISCSI" iscsid.log &&
    { echo "SKIP: iscsid cannot talk to the kernel from a network namespace: \$(cat iscsid.log)"; exit 77; }
  fail "discovery: \$(cat discovery.txt) \$(cat iscsid.log)"
fi
grep -q "$NET.1:$ISCSI_PORT,1 $PREFIX:lab\$" discovery.txt || fail "discovery does not list $PREFIX:lab: \$(cat discovery.txt)"
echo "ok: iscsiadm discovery lists $PREFIX:lab"
# A named session's target is not in discovery unless the client is registered: add its node.
iscsiadm -m node -o new -T $TARGET -p $NET.1:$ISCSI_PORT > /dev/null

disk() {
  local dev
  for _ in \$(seq 1 100); do
    dev=\$(iscsiadm -m session -P 3 2>/dev/null | awk '/Attached scsi disk/ {print \$4}' | head -1)
    [ -n "\$dev" ] && [ -b /dev/\$dev ] && { echo /dev/\$dev; return 0; }
    sleep 0.1
  done
  fail "no disk attached after login: \$(iscsiadm -m session -P 3 2>&1 | tail -20)"
}
login() { iscsiadm -m node -T $TARGET -p $NET.1:$ISCSI_PORT --login > login.txt 2>&1 || fail "login: \$(cat login.txt) \$(tail -5 iscsid.log)"; }
logout() { iscsiadm -m node -T $TARGET -p $NET.1:$ISCSI_PORT --logout > logout.txt 2>&1 || fail "logout: \$(cat logout.txt)"; }

login
DEV=\$(disk)
[ "\$(blockdev --getsize64 \$DEV)" = "\$(stat -c %s export.raw)" ] || fail "\$DEV has \$(blockdev --getsize64 \$DEV) bytes, the version \$(stat -c %s export.raw)"
mkfs.ext4 -q -F -L bootfleet \$DEV || fail "mkfs.ext4 on \$DEV"
fsck.ext4 -f -n \$DEV > fsck1.txt 2>&1 || fail "fsck after mkfs: \$(cat fsck1.txt)"
mount \$DEV mnt
head -c 3M /dev/urandom > mnt/data
sha256sum < mnt/data > data.sum
umount mnt
blockdev --flushbufs \$DEV
echo "ok: login, mkfs.ext4, fsck, a 3 MiB file on \$DEV"
logout
iscsiadm -m session > sessions.txt 2>&1 && fail "a session is left after logout: \$(cat sessions.txt)"

login
DEV=\$(disk)
fsck.ext4 -f -n \$DEV > fsck2.txt 2>&1 || fail "fsck after logging in again: \$(cat fsck2.txt)"
mount -o ro \$DEV mnt
sha256sum < mnt/data | cmp -s - data.sum || fail "the file differs after logging in again"
umount mnt
logout
echo "ok: logout, login again: fsck clean, the file is still there"
INNER
"$IMGTOOL" export lab@1 export.raw --to raw >/dev/null
set +e
ip netns exec $NS unshare -m --propagation private bash inner.sh
rc=$?
set -e
[ $rc -ne 77 ] || exit 77
[ $rc -eq 0 ] || fail "kernel initiator (above); bootsrv: $(tail -10 server.log)"
alive
grep -q "iqn.2026-11.test:kernel-initiator target $TARGET: logged in" server.log || fail "no kernel login in the log"
grep -q "iqn.2026-11.test:kernel-initiator target $TARGET: logged out" server.log || fail "no kernel logout in the log"
master_unchanged
pass "the kernel's writes stayed in the session; the version file is unchanged"
stop_server
