#!/usr/bin/python3
"""Merges the three logs of one recorded boot (record_boot.sh) into a boot
trace (format: README.md in this folder) on stdout.

    make_trace.py --image IMAGE --root-mark RE --done-mark RE SERVER_LOG NBDKIT_LOG CONSOLE_LOG

SERVER_LOG: bootsrv's log; its "http PEER "GET PATH" STATUS BYTES" lines are
written when a transfer ends, so an HTTP fetch's recorded start is the end
of the fetch before it (iPXE fetches one file at a time) and its end is
the log line's time. NBDKIT_LOG: nbdkit's log filter, one line when a
request arrives and one when it is answered. CONSOLE_LOG: "EPOCH LINE" per
console line. Time zero is the end of the boot script's fetch; everything
before it (firmware, iPXE's DHCP) is not bootsrv's work.
"""
import argparse
import calendar
import re
import sys
import time

OPS = {"Read": "R", "Write": "W", "Flush": "F", "Trim": "T", "Zero": "Z", "Cache": "C", "Extents": "X"}


def wall(text):
    """'2026-11-26 21:01:59.738944' (UTC) -> epoch seconds."""
    day, frac = text.split(".") if "." in text else (text, "0")
    return calendar.timegm(time.strptime(day, "%Y-%m-%d %H:%M:%S")) + float("0." + frac)


def fail(message):
    sys.exit("make_trace.py: " + message)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--image", required=True)
    ap.add_argument("--root-mark", required=True)
    ap.add_argument("--done-mark", required=True)
    ap.add_argument("server_log")
    ap.add_argument("nbd_log")
    ap.add_argument("console_log")
    a = ap.parse_args()

    # bootsrv: "2026-11-26T21:01:59.738Z bootsrv[123]: http 127.0.0.1:4567 "GET /boot/…" 200 1234"
    http = []
    line_re = re.compile(r'^(\S+) \S+: http \S+ "GET (\S+)" (\d+) (\d+)')
    for line in open(a.server_log, errors="replace"):
        m = line_re.match(line)
        if not m:
            continue
        stamp, path, status, size = m.groups()
        stamp = stamp.rstrip("Z").replace("T", " ")
        if path.endswith("/boot.ipxe"):
            continue  # the chain-loader script every PC gets before its own
        kind = "script" if path.startswith("/boot/") else path.rsplit("/", 1)[-1]
        if kind not in ("script", "vmlinuz", "initrd.img"):
            continue
        if status != "200":
            fail(f"{a.server_log}: GET {path} answered {status}; a trace needs a clean boot")
        http.append((wall(stamp), kind, int(size)))
    if not http or http[0][1] != "script":
        fail(f"{a.server_log}: no boot script fetch (GET /boot/MAC.ipxe) found first")
    t0 = http[0][0]

    # nbdkit: "DATE TIME connection=N Read id=I offset=0x… count=0x… [fua=1] ..."
    #         "DATE TIME connection=N ...Read id=I return=0"
    start_re = re.compile(r"^(\S+ \S+) connection=(\d+) (\w+) id=(\d+)(.*?) \.\.\.$")
    end_re = re.compile(r"^(\S+ \S+) connection=(\d+) \.\.\.(\w+) id=(\d+) return=(-?\d+)")
    pending = {}
    nbd = []
    connections = set()
    for line in open(a.nbd_log, errors="replace"):
        line = line.rstrip("\n")
        m = start_re.match(line)
        if m:
            stamp, conn, op, rid, rest = m.groups()
            if op not in OPS:
                continue
            fields = dict(kv.split("=", 1) for kv in rest.split() if "=" in kv)
            off = int(fields.get("offset", "0"), 16)
            count = int(fields.get("count", "0"), 16)
            flag = "fua" if fields.get("fua") == "1" else "-"
            pending[(conn, rid)] = [wall(stamp), None, OPS[op], off, count, flag, int(conn)]
            connections.add(conn)
            continue
        m = end_re.match(line)
        if m:
            stamp, conn, op, rid, ret = m.groups()
            req = pending.pop((conn, rid), None)
            if req is None:
                continue
            if ret != "0":
                fail(f"{a.nbd_log}: {op} id={rid} failed ({ret}); a trace needs a clean boot")
            req[1] = wall(stamp)
            nbd.append(req)
    if pending:
        # The guest powered off with requests unanswered: not a clean trace.
        fail(f"{a.nbd_log}: {len(pending)} requests never answered")
    if not nbd:
        fail(f"{a.nbd_log}: no NBD requests logged")

    marks = {}
    said = []  # what the image's init printed (its "bootfleet-" lines), kept as comments
    root_re, done_re = re.compile(a.root_mark), re.compile(a.done_mark)
    for line in open(a.console_log, errors="replace"):
        stamp, _, text = line.rstrip("\n").partition(" ")
        if "bootfleet-" in text:
            said.append(text.strip())
        if "root" not in marks and root_re.search(text):
            marks["root"] = float(stamp)
        if "done" not in marks and done_re.search(text):
            marks["done"] = float(stamp)
    for name, pattern in (("root", a.root_mark), ("done", a.done_mark)):
        if name not in marks:
            fail(f"{a.console_log}: no console line matches {pattern!r} ({name} mark)")

    def ms(t):
        return (t - t0) * 1000.0

    events = []
    prev_end = t0
    for end, kind, size in http:
        start = t0 if kind == "script" else prev_end
        events.append((ms(start), ms(end), f"H {kind} {size}"))
        prev_end = end
    for start, end, op, off, count, flag, conn in nbd:
        events.append((ms(start), ms(end), f"{op} {off} {count} {flag} {conn}"))
    events.sort(key=lambda e: (e[0], e[1]))
    reads = [e for e in nbd if e[2] == "R"]
    writes = [e for e in nbd if e[2] == "W"]
    print("# bootfleet boot trace v1")
    print(f"# image {a.image}; recorded {time.strftime('%Y-%m-%d', time.gmtime(t0))} from a QEMU (TCG) network boot")
    print(f"# {len(http)} HTTP fetches, {sum(s for _, _, s in http)} bytes; {len(nbd)} NBD requests on "
          f"{len(connections)} connection(s): {len(reads)} reads ({sum(e[4] for e in reads)} bytes), "
          f"{len(writes)} writes ({sum(e[4] for e in writes)} bytes)")
    print(f"# root mounted at {ms(marks['root']):.0f} ms, boot done at {ms(marks['done']):.0f} ms")
    for text in said:
        print(f"# console: {text}")
    print("# START_MS END_MS H KIND BYTES | START_MS END_MS OP OFFSET LENGTH FLAGS CONNECTION | MARK_MS M NAME")
    for start, end, text in events:
        print(f"{start:.3f} {end:.3f} {text}")
    print(f"{ms(marks['root']):.3f} M root")
    print(f"{ms(marks['done']):.3f} M done")


if __name__ == "__main__":
    main()
