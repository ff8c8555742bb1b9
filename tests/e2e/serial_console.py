#!/usr/bin/env python3
"""A QEMU serial console for the boot tests: connects to QEMU's serial port
(a unix socket QEMU listens on), copies everything the guest prints to LOG,
and answers prompts: for each EXPECT SEND pair in turn, once EXPECT has been
printed, SEND is typed (\\r ends a line, \\x02 is Ctrl-B), each printable key
until the firmware echoes it. Exits when QEMU
closes the port; gives up connecting after 60 s. With --input FILE, it
also types whatever a test appends to FILE later, for a test that talks to a
running guest at moments of its own choosing.

    serial_console.py [--input FILE] SOCKET LOG [EXPECT SEND]...
"""
import select
import socket
import sys
import time


def main():
    args = sys.argv[1:]
    input_path = None
    if args[:1] == ["--input"]:
        input_path, args = args[1], args[2:]
    path, log_path = args[0], args[1]
    script = args[2:]
    typed = 0  # bytes of the input file typed so far
    if len(script) % 2:
        sys.exit("serial_console.py: EXPECT without SEND")
    steps = [(script[i].encode(), script[i + 1].encode().decode("unicode_escape").encode("latin-1"))
             for i in range(0, len(script), 2)]
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    deadline = time.monotonic() + 60
    while True:
        try:
            sock.connect(path)
            break
        except OSError:
            if time.monotonic() > deadline:
                sys.exit("serial_console.py: cannot connect to " + path)
            time.sleep(0.05)
    seen = b""  # output since the last answered prompt
    with open(log_path, "ab", buffering=0) as log:
        while True:
            if input_path:
                if not select.select([sock], [], [], 0.1)[0]:
                    typed = type_new(sock, input_path, typed)
                    continue
            data = sock.recv(65536)
            if not data:
                return
            log.write(data)
            if steps:
                seen += data
                expect, send = steps[0]
                if expect in seen:
                    steps.pop(0)
                    seen = seen[seen.index(expect) + len(expect):]
                    seen += type_echoed(sock, log, send)


def type_echoed(sock, log, text):
    """Types text at a firmware prompt, one key at a time, and returns what
    the firmware printed meanwhile (also logged). A printable key is typed
    again when its echo has not come back within 5 s: a ROM that polls its
    serial port seldom (a host whose CPUs are busy) loses keys, and one lost
    key turns ${filename} into another word. Other keys (Ctrl-B, Enter) are
    not echoed as themselves, so they are sent once, with a pause."""
    printed = b""
    for byte in text:
        key = bytes([byte])
        for _ in range(3):
            sock.sendall(key)
            if not 0x20 <= byte < 0x7F:
                time.sleep(0.1)
                break
            deadline = time.monotonic() + 5
            echoed = False
            while time.monotonic() < deadline:
                if not select.select([sock], [], [], 0.05)[0]:
                    continue
                data = sock.recv(65536)
                if not data:
                    return printed
                log.write(data)
                printed += data
                if key in data:
                    echoed = True
                    break
            if echoed:
                break
    return printed


def type_new(sock, input_path, typed):
    """Types what was appended to input_path since `typed` bytes; returns the new count."""
    try:
        with open(input_path, "rb") as f:
            f.seek(typed)
            new = f.read()
    except FileNotFoundError:
        return typed
    for byte in new:
        sock.sendall(bytes([byte]))
        time.sleep(0.02)
    return typed + len(new)


if __name__ == "__main__":
    main()
