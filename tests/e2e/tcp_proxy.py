#!/usr/bin/env python3
"""A TCP proxy for the boot tests, standing between a QEMU client (user
networking reaches the host's 127.0.0.1) and bootsrv, so that a test can
break a client's connection from the server's side while the client runs.
SIGUSR1 is a network blip as a server lives it: the client's side of every
connection open at that moment is closed (the PC sees its connection end),
while bootsrv's side stays open and hears nothing more, as from a PC whose
packets stopped coming. Only the PC's next login tells bootsrv, which must
then take the session over from the dead connection (iSCSI session
reinstatement). New connections are proxied as before. An upstream that
refuses (bootsrv being restarted) closes the client's connection at once, as
the real server's port would; when bootsrv ends a connection, so does the
proxy.

    tcp_proxy.py LISTEN_HOST:PORT UPSTREAM_HOST:PORT

Logs one line per event on stdout ("proxy: ..."); SIGTERM ends it.
"""
import signal
import socket
import sys
import threading


def address(text):
    host, _, port = text.rpartition(":")
    return host, int(port)


def main():
    listen, upstream = address(sys.argv[1]), address(sys.argv[2])
    lock = threading.Lock()
    pairs = set()
    frozen = []  # bootsrv's ends of blipped connections, kept open and unread

    def log(line):
        print("proxy: " + line, flush=True)

    def pump(src, dst, pair):
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                dst.sendall(data)
        except OSError:
            pass
        with lock:
            blipped = any(pair[1] is f for f in frozen)
        # One side ended: end both, as a real server's close would; after a
        # blip only the client's (bootsrv's end stays open and silent).
        for s in pair[:1] if blipped else pair:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        with lock:
            if pair in pairs:
                pairs.discard(pair)
                pair[0].close()
                if not blipped:
                    pair[1].close()

    def drop(*_):
        with lock:
            victims = list(pairs)
            frozen.extend(pair[1] for pair in victims)
        for client, _ in victims:
            try:
                client.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        log("dropped %d connection(s) on the client's side; bootsrv's side left open" % len(victims))

    signal.signal(signal.SIGUSR1, drop)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    server = socket.create_server(listen)
    log("listening on %s:%d for %s:%d" % (listen + upstream))
    while True:
        client, peer = server.accept()
        try:
            up = socket.create_connection(upstream, timeout=5)
            up.settimeout(None)
        except OSError as e:
            log("%s:%d: upstream refused (%s), closed" % (peer + (e.strerror or e,)))
            client.close()
            continue
        # No Nagle: iSCSI writes a PDU's header and its data separately, and
        # each small write held back for the peer's delayed ACK costs 40 ms.
        for s in (client, up):
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        pair = (client, up)
        with lock:
            pairs.add(pair)
        log("%s:%d connected" % peer)
        threading.Thread(target=pump, args=(client, up, pair), daemon=True).start()
        threading.Thread(target=pump, args=(up, client, pair), daemon=True).start()


if __name__ == "__main__":
    main()
