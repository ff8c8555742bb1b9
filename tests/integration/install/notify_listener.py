#!/usr/bin/python3
"""Plays systemd's side of sd_notify(3) for bootsrv_systemd.sh.

    notify_listener.py SOCKET OUT SERVER_LOG

Binds the AF_UNIX datagram socket SOCKET (what systemd names in
$NOTIFY_SOCKET) and appends each datagram it receives to OUT as one line
(newlines inside a datagram become '|'), prefixed with the seconds since it
started. When a datagram says READY=1 it also copies SERVER_LOG, as it is at
that moment, to OUT.ready-N (N = 1, 2, ...): the test checks that every
listener was announced before readiness. Runs until killed.
"""
import os
import shutil
import socket
import sys
import time

path, out, server_log = sys.argv[1:4]
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(path)
start = time.monotonic()
ready = 0
open(out + ".bound", "w").close()
while True:
    data = s.recv(4096).decode()
    fields = data.split("\n")
    if "READY=1" in fields:
        ready += 1
        shutil.copyfile(server_log, f"{out}.ready-{ready}")
    with open(out, "a") as f:
        f.write(f"{time.monotonic() - start:.3f} {'|'.join(fields)}\n")
        f.flush()
        os.fsync(f.fileno())
