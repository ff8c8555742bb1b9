#!/usr/bin/env python3
"""A TCP proxy for the boot tests, standing between a QEMU client (user
networking reaches the host's 127.0.0.1) and bootsrv, so that a test can
break a client's connection from the server's side while the client runs:
SIGUSR1 closes every connection open at that moment (both halves, so the
client sees its peer end the connection and bootsrv sees the client go),
as a network blip or a restarted switch port does. New connections are
proxied as before. An upstream that refuses (bootsrv being restarted)
closes the client's connection at once, as the real server's port would.

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
        # One side ended: end both, as a real server's close would.
        for s in pair:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        with lock:
            if pair in pairs:
                pairs.discard(pair)
                for s in pair:
                    s.close()

    def drop(*_):
        with lock:
            victims = list(pairs)
        for pair in victims:
            for s in pair:
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
        log("dropped %d connection(s)" % len(victims))

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
        pair = (client, up)
        with lock:
            pairs.add(pair)
        log("%s:%d connected" % peer)
        threading.Thread(target=pump, args=(client, up, pair), daemon=True).start()
        threading.Thread(target=pump, args=(up, client, pair), daemon=True).start()


if __name__ == "__main__":
    main()
