#!/usr/bin/env bash
# Boot modes end to end without a guest: imgtool sets them (client and
# image, JSON), bootsrv's boot script for a sanboot client names its
# initiator and its named session's iSCSI target on bootsrv's iSCSI port,
# and an iSCSI login to that target (qemu-io through libiscsi, initiator name
# from the script) lands on the version the script pinned, not on one
# published afterwards; the client's next script moves it. The control API
# shows the modes. Versions are plain imported disks (no kernel needed for
# sanboot), so this runs in seconds.
source "$(dirname "$0")/../lib.sh"
BOOTSRV=${BOOTSRV:?set BOOTSRV to the bootsrv binary}
export BOOTFLEET_STORE=$WORK/store
"$IMGTOOL" init >/dev/null
"$IMGTOOL" import lab "$(pattern_disk 1)" --publish >/dev/null
"$IMGTOOL" import lab "$(pattern_disk 2)" >/dev/null

# imgtool: modes, their errors, their JSON.
assert_eq "$("$IMGTOOL" images --json | json 'j[0]["boot_mode"]')" linux "an image's default boot mode"
"$IMGTOOL" client add 52:54:00:00:00:01 --name PC_01 --image lab --boot-mode sanboot >/dev/null
"$IMGTOOL" client add 52:54:00:00:00:02 --name pc02 --image lab >/dev/null
"$IMGTOOL" client add 52:54:00:00:00:03 --name pc03 --image lab --boot-mode linux >/dev/null
"$IMGTOOL" client list --json > clients.json
assert_eq "$(json '[c["boot_mode"] for c in j]' < clients.json)" "['sanboot', None, 'linux']" "clients' own modes"
assert_eq "$(json '[c["effective_boot_mode"] for c in j]' < clients.json)" "['sanboot', 'linux', 'linux']" "effective modes"
expect_exit 0 "$IMGTOOL" image set lab --boot-mode sanboot --json
assert_eq "$(json 'j["boot_mode"]' <<<"$OUT")" sanboot "image set --json"
assert_eq "$("$IMGTOOL" client list --json | json '[c["effective_boot_mode"] for c in j]')" "['sanboot', 'sanboot', 'linux']" \
  "pc02 follows the image, pc03 keeps its own"
expect_output_contains "sanboot*" "$IMGTOOL" client list
expect_exit 2 "$IMGTOOL" image set lab --boot-mode pxe
expect_contains "'pxe' is not a boot mode"
expect_exit 2 "$IMGTOOL" image set nope --boot-mode linux
expect_contains "no image 'nope'"
expect_exit 2 "$IMGTOOL" client set pc03 --boot-mode windows
expect_contains "--boot-mode: 'windows' is not a boot mode"
expect_exit 0 "$IMGTOOL" client set pc03 --boot-mode image
expect_contains "boot mode image's"
"$IMGTOOL" client set pc03 --boot-mode linux >/dev/null
pass "imgtool: boot modes per image and per client, JSON, bad modes and images refused"

IQN=iqn.2026-11.org.bootfleet
ISCSI_PORT=$(free_port); NBD_PORT=$(free_port); HTTP_PORT=$(free_port)
TOKEN=ci-token-0123456789abcdef
printf 'ci %s\n' "$TOKEN" > tokens
printf 'store: %s\nlisten: 127.0.0.1:%s\nhttp:\n  listen: 127.0.0.1:%s\napi_tokens: %s\niscsi:\n  listen: 127.0.0.1:%s\n' \
  "$BOOTFLEET_STORE" "$NBD_PORT" "$HTTP_PORT" "$PWD/tokens" "$ISCSI_PORT" > bootsrv.yaml
start_bootsrv "listening for HTTP" serve --config bootsrv.yaml
trap 'kill -9 $SERVER 2>/dev/null || true; rm -rf "$WORK"' EXIT
BASE=http://127.0.0.1:$HTTP_PORT
curl -sf "$BASE/boot/52-54-00-00-00-01.ipxe" > pc01.ipxe || fail "pc01's script"
grep -qxF "set initiator-iqn $IQN:initiator:pc-01" pc01.ipxe || fail "pc01's initiator: $(cat pc01.ipxe)"
grep -qxF "sanboot iscsi:127.0.0.1::$ISCSI_PORT:0:$IQN:lab:pc-01 || goto failed" pc01.ipxe || fail "pc01's sanboot: $(cat pc01.ipxe)"
grep -q -- "--no-describe" pc01.ipxe && fail "the iBFT is turned off: $(cat pc01.ipxe)"
grep -qF "booting lab@1 as PC_01 by sanboot" pc01.ipxe || fail "pc01 not pinned to lab@1: $(cat pc01.ipxe)"
grep -q "session lab/PC_01 started on lab@1" server.log || fail "no session for pc01: $(tail server.log)"
curl -sf -H "Host: boot.example:$HTTP_PORT" "$BASE/boot/52-54-00-00-00-02.ipxe" > pc02.ipxe
grep -qF "sanboot iscsi:boot.example::$ISCSI_PORT:0:$IQN:lab:pc02 " pc02.ipxe || fail "the iSCSI host follows the Host header: $(cat pc02.ipxe)"
curl -sf "$BASE/boot/52-54-00-00-00-03.ipxe" > pc03.ipxe
grep -q "^kernel " pc03.ipxe && fail "pc03 (linux) on a version without a kernel got a kernel line"
grep -qF "has no artifact 'vmlinuz'" pc03.ipxe || fail "pc03's refusal: $(cat pc03.ipxe)"
pass "sanboot scripts: initiator, the session's target on the iSCSI port, iBFT kept, pinned; linux without a kernel refused"

# A publish after the script: the login still gets @1 (bytes 1), with the
# initiator name the script set.
"$IMGTOOL" publish lab@2 >/dev/null
read_byte() {  # read_byte TARGET BYTE: the first 64 KiB of TARGET are BYTE
  qemu-io -r --image-opts "driver=iscsi,transport=tcp,portal=127.0.0.1:$ISCSI_PORT,target=$1,lun=0,initiator-name=$IQN:initiator:pc-01" \
    -c "read -P $2 0 64k" > qemu-io.out 2>&1 || fail "qemu-io on $1: $(cat qemu-io.out)"
  grep -q "Pattern verification failed" qemu-io.out && return 1
  return 0
}
read_byte "$IQN:lab:pc-01" 1 || fail "pc01's login after the publish is not on lab@1: $(cat qemu-io.out)"
grep -q "initiator $IQN:initiator:pc-01" server.log || grep -q "$IQN:initiator:pc-01" server.log ||
  fail "the login's initiator is not logged: $(grep -i iscsi server.log | tail -5)"
curl -sf "$BASE/boot/52-54-00-00-00-01.ipxe" > pc01-next.ipxe
grep -qF "booting lab@2 as PC_01 by sanboot" pc01-next.ipxe || fail "the next boot is not on lab@2: $(cat pc01-next.ipxe)"
read_byte "$IQN:lab:pc-01" 2 || fail "pc01's login after its next script is not on lab@2: $(cat qemu-io.out)"
pass "the iSCSI login lands on the version the script pinned; the next script moves it"

curl -sf -H "Authorization: Bearer $TOKEN" "$BASE/api/v1/clients" > api-clients.json || fail "GET /api/v1/clients"
assert_eq "$(json '[(c["name"], c["boot_mode"], c["effective_boot_mode"]) for c in j["clients"]]' < api-clients.json)" \
  "[('PC_01', 'sanboot', 'sanboot'), ('pc02', None, 'sanboot'), ('pc03', 'linux', 'linux')]" "API clients"
curl -sf -H "Authorization: Bearer $TOKEN" "$BASE/api/v1/images" > api-images.json || fail "GET /api/v1/images"
assert_eq "$(json 'j["images"][0]["boot_mode"]' < api-images.json)" sanboot "API image boot mode"
# One shape per record whichever door it leaves by (store/records_json.h):
# the CLI's --json and the API's answer are the same objects.
"$IMGTOOL" client list --json > cli-clients.json
"$IMGTOOL" images --json > cli-images.json
python3 - api-clients.json cli-clients.json api-images.json cli-images.json <<'PY' || fail "the CLI's and the API's records differ"
import json, sys
api_clients, cli_clients, api_images, cli_images = (json.load(open(f)) for f in sys.argv[1:])
assert api_clients["clients"] == cli_clients, (api_clients["clients"], cli_clients)
assert api_images["images"] == cli_images, (api_images["images"], cli_images)
assert set(cli_clients[0]) >= {"mac", "cmdline", "cache_quota", "effective_boot_mode", "created", "created_at", "group", "pin", "boots"}
assert set(cli_images[0]) >= {"versions", "virtual_size", "size", "bytes_on_disk", "created", "created_at"}
PY
pass "the control API's client and image records carry the modes, and are the CLI's records, field for field"

# Without --iscsi-listen, a sanboot client is told why it cannot boot.
kill $SERVER; wait $SERVER || true
HTTP_PORT=$(free_port)
start_bootsrv "listening for HTTP" serve --listen 127.0.0.1:$NBD_PORT --http-listen 127.0.0.1:$HTTP_PORT
curl -sf "http://127.0.0.1:$HTTP_PORT/boot/52-54-00-00-00-01.ipxe" > no-iscsi.ipxe
grep -qF "bootsrv serves no iSCSI (start it with --iscsi-listen" no-iscsi.ipxe || fail "no-iSCSI refusal: $(cat no-iscsi.ipxe)"
grep -q "^sanboot" no-iscsi.ipxe && fail "sanboot without an iSCSI target"
pass "a sanboot client of a bootsrv without iSCSI waits, told why"
kill $SERVER; wait $SERVER || fail "bootsrv exited $? on SIGTERM"
