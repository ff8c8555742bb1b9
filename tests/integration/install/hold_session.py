#!/usr/bin/python3
"""Holds one NBD connection to a bootsrv session open across a reload.

    hold_session.py PORT EXPORT GO DONE

Connects (libnbd), writes a pattern at offset 0, then waits until the file GO
exists (the test sends SIGHUP meanwhile) and reads the pattern back on the
same connection: the session and its write cache lived through the reload.
Writes "ok" to DONE and disconnects; any failure exits non-zero with why.
"""
import os
import sys
import time

import nbd

port, export, go, done = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]
h = nbd.NBD()
h.set_export_name(export)
h.connect_tcp("127.0.0.1", port)
pattern = b"reload-survivor!" * 256
h.pwrite(pattern, 0)
h.flush()
open(done + ".written", "w").close()
deadline = time.monotonic() + 60
while not os.path.exists(go):
    if time.monotonic() > deadline:
        sys.exit("hold_session.py: no go signal within 60 s")
    time.sleep(0.05)
got = h.pread(len(pattern), 0)
if got != pattern:
    sys.exit("hold_session.py: the session's data changed across the reload")
h.shutdown()
with open(done, "w") as f:
    f.write("ok\n")
