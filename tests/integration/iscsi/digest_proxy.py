#!/usr/bin/python3
"""A TCP relay that makes libiscsi use header digests.

  digest_proxy.py LISTEN_PORT TARGET_PORT COUNTS_FILE

libiscsi's tools (iscsi-test-cu among them) always offer
"HeaderDigest=None,CRC32C" whatever their URL says, and a target takes the
first choice it supports, so a run of the conformance suite never sees a
digest. This relay swaps the offer for "HeaderDigest=CRC32C,None" (same
length, so no PDU length changes, and no digest covers a login PDU's own
header before the login ends). From then on the initiator and the target
both compute and check CRC32C on every header, which is what we want to
test. COUNTS_FILE gets "OFFERS ACCEPTED" after each connection: how many
offers were swapped and how many login responses answered CRC32C. Serves
on 127.0.0.1 until killed.
"""
import socket
import sys
import threading

OFFER, SWAPPED = b"HeaderDigest=None,CRC32C", b"HeaderDigest=CRC32C,None"
ACCEPTED = b"HeaderDigest=CRC32C\0"
counts = {"offers": 0, "accepted": 0}
lock = threading.Lock()


def pump(src, dst, rewrite):
    # A login PDU is small and sent with one write, so the key arrives in
    # one piece; a split one would only make the assertion in the test fail.
    try:
        while True:
            data = src.recv(1 << 16)
            if not data:
                break
            if rewrite and OFFER in data:
                data = data.replace(OFFER, SWAPPED)
                with lock:
                    counts["offers"] += 1
            if not rewrite and ACCEPTED in data:
                with lock:
                    counts["accepted"] += 1
            dst.sendall(data)
    except OSError:
        pass
    finally:
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


def relay(client, target_port, counts_file):
    try:
        server = socket.create_connection(("127.0.0.1", target_port))
    except OSError:
        client.close()
        return
    # Without NODELAY, Nagle and delayed ACKs hold each small PDU for up
    # to 40 ms and the suite takes minutes instead of seconds.
    for sock in (client, server):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    up = threading.Thread(target=pump, args=(client, server, True), daemon=True)
    up.start()
    pump(server, client, False)
    up.join()
    client.close()
    server.close()
    with lock:
        with open(counts_file, "w") as f:
            f.write(f"{counts['offers']} {counts['accepted']}\n")


def main():
    listen_port, target_port, counts_file = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", listen_port))
    s.listen(64)
    print("relaying", flush=True)
    while True:
        c, _ = s.accept()
        threading.Thread(target=relay, args=(c, target_port, counts_file), daemon=True).start()


if __name__ == "__main__":
    main()
