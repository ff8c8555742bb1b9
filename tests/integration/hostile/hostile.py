#!/usr/bin/python3
"""Hostile LAN peers for tests/integration/hostile: each mode is one attack,
bounded in sockets and seconds, from loopback source addresses (127.0.0.2
and up stand for other PCs). Prints one JSON line of what it saw, or, for
attacks held open while the test looks at the server, writes READY_FILE when
the attack is in place and keeps it until killed or HOLD seconds pass.

  nbd-halfopen PORT SRC COUNT WAIT      COUNT sockets that never send a byte
  nbd-noread PORT SRC EXPORT READS HOLD READY_FILE
                                        handshake, pipeline READS 32 MiB reads, read nothing
  http-slowloris PORT SRCS PER_SRC SECONDS READY_FILE
                                        PER_SRC sockets from each of SRCS (a,b,c) sending
                                        one header byte a second
  http-deadline PORT SRC LIMIT          one socket sending a header byte every 0.5 s:
                                        seconds until the server closes it (LIMIT at most)
  tftp-flood PORT SRCS PER_SRC FILE     read requests with option timeout 255, never ACKed
"""
import json
import select
import socket
import struct
import sys
import time


def out(**kw):
    print(json.dumps(kw), flush=True)


def tcp(src, port, timeout=5):
    s = socket.socket()
    s.bind((src, 0))
    s.settimeout(timeout)
    s.connect(("127.0.0.1", port))
    return s


def closed_by_server(s, wait):
    """True when the server closed (or reset) s within `wait` seconds."""
    r, _, _ = select.select([s], [], [], wait)
    if not r:
        return False
    try:
        while True:
            data = s.recv(65536, socket.MSG_DONTWAIT)
            if not data:
                return True
    except BlockingIOError:
        return False
    except (ConnectionResetError, BrokenPipeError):
        return True


def nbd_halfopen(port, src, count, wait):
    socks, refused = [], 0
    for _ in range(count):
        try:
            socks.append(tcp(src, port))
        except OSError:
            refused += 1
    time.sleep(0.5)
    # Refused ones are closed at once, with no greeting; admitted ones got
    # the 18-byte greeting and stay open until the handshake deadline.
    greeted = closed_now = 0
    live = []
    for s in socks:
        try:
            data = s.recv(18, socket.MSG_DONTWAIT)
        except BlockingIOError:
            data = None
        except ConnectionResetError:
            data = b""
        if data:
            greeted += 1
            live.append(s)
        elif data == b"":
            closed_now += 1
    start = time.monotonic()
    closed_later = 0
    pending = list(live)
    while pending and time.monotonic() - start < wait:
        r, _, _ = select.select(pending, [], [], 0.2)
        for s in r:
            if closed_by_server(s, 0):
                closed_later += 1
                pending.remove(s)
    out(opened=len(socks), refused=refused, greeted=greeted, closed_at_once=closed_now,
        closed_later=closed_later, still_open=len(pending))


def recv_exact(s, n, what):
    data = b""
    while len(data) < n:
        chunk = s.recv(n - len(data))
        if not chunk:
            raise SystemExit(what)
        data += chunk
    return data


def nbd_handshake(s, export):
    hello = recv_exact(s, 18, "closed during the greeting")
    assert hello[:8] == b"NBDMAGIC", hello
    s.sendall(struct.pack(">I", 3))  # fixed newstyle, no zeroes
    name = export.encode()
    s.sendall(b"IHAVEOPT" + struct.pack(">II", 1, len(name)) + name)  # NBD_OPT_EXPORT_NAME
    reply = recv_exact(s, 10, "export refused")  # size and flags (no zeroes)
    return struct.unpack(">Q", reply[:8])[0]


def nbd_noread(port, src, export, reads, hold, ready):
    s = tcp(src, port, timeout=30)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # read nothing, buffer little
    size = nbd_handshake(s, export)
    length = 32 << 20
    sent = 0
    s.setblocking(False)
    for i in range(reads):
        req = struct.pack(">IHHQQI", 0x25609513, 0, 0, i, (i * 4096) % (size - length), length)
        try:
            s.send(req)
            sent += 1
        except BlockingIOError:
            break  # the server stopped reading our requests: that is the point
    open(ready, "w").write(json.dumps({"sent": sent}))
    time.sleep(hold)


def http_slowloris(port, srcs, per_src, seconds, ready):
    socks = []
    refused = 0
    for src in srcs.split(","):
        for _ in range(per_src):
            try:
                s = tcp(src, port)
                s.sendall(b"G")
                socks.append(s)
            except OSError:
                refused += 1
    open(ready, "w").write(json.dumps({"opened": len(socks), "refused": refused}))
    start = time.monotonic()
    while time.monotonic() - start < seconds:
        time.sleep(1)
        for s in list(socks):
            try:
                s.send(b"E")
            except OSError:
                socks.remove(s)


def http_deadline(port, src, limit):
    s = tcp(src, port)
    start = time.monotonic()
    head = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 1000
    i = 0
    while time.monotonic() - start < limit:
        try:
            s.send(head[i % len(head):i % len(head) + 1])
        except OSError:
            break
        i += 1
        if closed_by_server(s, 0.5):
            break
    out(seconds=round(time.monotonic() - start, 1))


def tftp_rrq(name, options):
    body = struct.pack(">H", 1) + name.encode() + b"\0octet\0"
    for k, v in options:
        body += k.encode() + b"\0" + v.encode() + b"\0"
    return body


def tftp_flood(port, srcs, per_src, name):
    socks = []
    for src in srcs.split(","):
        for _ in range(per_src):
            u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            u.bind((src, 0))
            u.sendto(tftp_rrq(name, [("timeout", "255"), ("tsize", "0")]), ("127.0.0.1", port))
            socks.append(u)
    time.sleep(1.0)
    # Per socket (a transfer retransmits its OACK): what it was answered.
    oack_timeouts, errors, data = [], [], 0
    for u in socks:
        got_oack = got_error = False
        try:
            while True:
                pkt = u.recv(2048, socket.MSG_DONTWAIT)
                op = struct.unpack(">H", pkt[:2])[0]
                if op == 6 and not got_oack:
                    got_oack = True
                    fields = pkt[2:].split(b"\0")
                    opts = dict(zip(fields[0::2], fields[1::2]))
                    oack_timeouts.append(opts.get(b"timeout", b"").decode())
                elif op == 5 and not got_error:
                    got_error = True
                    errors.append(pkt[4:-1].decode(errors="replace"))
                elif op == 3:
                    data += 1
        except BlockingIOError:
            pass
    out(sent=len(socks), oacks=len(oack_timeouts), oack_timeouts=sorted(set(oack_timeouts)),
        errors=sorted(set(errors)), error_count=len(errors), data=data)


def main(argv):
    mode, args = argv[1], argv[2:]
    if mode == "nbd-halfopen":
        nbd_halfopen(int(args[0]), args[1], int(args[2]), float(args[3]))
    elif mode == "nbd-noread":
        nbd_noread(int(args[0]), args[1], args[2], int(args[3]), float(args[4]), args[5])
    elif mode == "http-slowloris":
        http_slowloris(int(args[0]), args[1], int(args[2]), float(args[3]), args[4])
    elif mode == "http-deadline":
        http_deadline(int(args[0]), args[1], float(args[2]))
    elif mode == "tftp-flood":
        tftp_flood(int(args[0]), args[1], int(args[2]), args[3])
    else:
        raise SystemExit(f"unknown mode {mode}")


if __name__ == "__main__":
    main(sys.argv)
