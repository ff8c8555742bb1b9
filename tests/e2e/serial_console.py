#!/usr/bin/env python3
"""A QEMU serial console for the boot tests: connects to QEMU's serial port
(a unix socket QEMU listens on), copies everything the guest prints to LOG,
and answers prompts: for each EXPECT SEND pair in turn, once EXPECT has been
printed, SEND is typed (\\r ends a line, \\x02 is Ctrl-B). Exits when QEMU
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
                    # Type slowly: the firmware polls its keyboard.
                    for byte in send:
                        sock.sendall(bytes([byte]))
                        time.sleep(0.02)
                    steps.pop(0)
                    seen = seen[seen.index(expect) + len(expect):]


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
