#!/usr/bin/python3
"""bootsrv restarts under writing clients: the pause they see, and what they lose.

S clients (libnbd), each on its own named session IMAGE/cN, write 4 KiB blocks
of a pattern naming (client, sequence) into their own 1 MiB region, each
write followed by a FLUSH or sent with FUA; a write counts as acknowledged
when that returns. Meanwhile bootsrv is stopped K times with SIGKILL at a
random moment and G times with SIGTERM, and started again at once (as
systemd's Restart=always would). A client whose request fails reconnects to
the same export every 5 ms; once back it writes one block (the *pause* is
from the stop to that write's acknowledgement), then reads back every block
it ever wrote: each must hold its last acknowledged content, or the one
write that was in flight at the stop (not acknowledged: either is right).
Anything else is a *loss*. Also counted: client errors that are not the
connection going away (bad replies, EIO, ENOSPC), and the server's start
time (exec to listening, with every session reopened).

Prints one JSON object. Exit status 1 if a loss or an error was seen.
   restart_campaign.py --bootsrv B --store DIR --image lab [--sessions 20]
                       [--kills 10] [--graceful 3] [--seconds-between 1.5]
"""
import argparse, json, os, random, signal, socket, statistics, subprocess, sys, threading, time

import nbd

BLOCK = 4096
REGION = 1 << 20


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class Server:
    def __init__(self, args, port, log):
        self.args, self.port, self.log = args, port, log
        self.proc = None
        self.starts = []

    def start(self):
        t0 = time.monotonic()
        out = open(self.log, "ab")
        mark = os.path.getsize(self.log) if os.path.exists(self.log) else 0
        self.proc = subprocess.Popen([self.args.bootsrv, "serve", "--store", self.args.store,
                                      "--listen", f"127.0.0.1:{self.port}", "--idle-timeout", "1h"],
                                     stdout=out, stderr=out)
        while True:
            with open(self.log, "rb") as f:
                f.seek(mark)
                if b"listening for NBD" in f.read():
                    break
            if self.proc.poll() is not None:
                sys.exit(f"bootsrv exited {self.proc.returncode}; see {self.log}")
            time.sleep(0.001)
        self.starts.append(time.monotonic() - t0)

    def stop(self, sig):
        self.proc.send_signal(sig)
        self.proc.wait()


class Client(threading.Thread):
    def __init__(self, i, uri, stats):
        super().__init__(daemon=True)
        self.i, self.uri, self.stats = i, uri, stats
        self.acked = {}        # block -> bytes
        self.in_flight = None  # (block, bytes) sent, not acknowledged
        self.seq = 0
        self.stop_flag = False
        self.handle = None
        self.rng = random.Random(i)
        self.back = threading.Event()  # reconnected and verified after the last stop
        self.ready = threading.Event()  # connected, the image's content of its region read

    def data(self, block):
        self.seq += 1
        head = f"client {self.i} seq {self.seq} block {block} ".encode()
        return (head * (BLOCK // len(head) + 1))[:BLOCK]

    def connect(self):
        while not self.stop_flag:
            try:
                h = nbd.NBD()
                h.connect_uri(self.uri)
                return h
            except nbd.Error as e:
                if "refused" not in str(e).lower() and "connect" not in str(e).lower():
                    self.stats["errors"].append(f"client {self.i}: connect: {e}")
                time.sleep(0.005)
        return None

    def write_one(self, avoid=None):
        block = self.rng.randrange(REGION // BLOCK)
        while block == avoid:
            block = self.rng.randrange(REGION // BLOCK)
        d = self.data(block)
        self.in_flight = (block, d)
        off = self.i * REGION + block * BLOCK
        if self.seq % 2:
            self.handle.pwrite(d, off, nbd.CMD_FLAG_FUA)
        else:
            self.handle.pwrite(d, off)
            self.handle.flush()
        self.acked[block] = d
        self.in_flight = None

    def verify(self, pending=None):
        """Every acknowledged block; `pending` was in flight at the stop."""
        if pending and pending[0] not in self.acked:
            b = pending[0]
            self.acked[b] = self.base[b * BLOCK:(b + 1) * BLOCK]  # never written: the image's
        for block, want in self.acked.items():
            got = self.handle.pread(BLOCK, self.i * REGION + block * BLOCK)
            if got == want:
                continue
            if pending and pending[0] == block and got == pending[1]:
                self.acked[block] = bytes(got)  # the write in flight made it
                continue
            self.stats["losses"].append(f"client {self.i} block {block}: {got[:40]!r}, acknowledged {want[:40]!r}")

    def run(self):
        self.handle = self.connect()
        self.base = bytes(self.handle.pread(REGION, self.i * REGION))  # before the first stop
        self.ready.set()
        while not self.stop_flag:
            try:
                self.write_one()
            except nbd.Error as e:
                if not any(w in str(e).lower() for w in ("disconnect", "connection", "eof", "closed", "shut", "broken", "reset", "transport")):
                    self.stats["errors"].append(f"client {self.i}: {e}")
                pending, self.in_flight = self.in_flight, None
                self.handle = self.connect()
                if self.handle is None:
                    return
                try:
                    # The first write goes elsewhere, so `pending` stays checkable.
                    self.write_one(avoid=pending[0] if pending else None)
                    self.stats["back"].append((self.i, time.monotonic()))
                    self.verify(pending)
                except nbd.Error as e2:
                    self.stats["errors"].append(f"client {self.i} after reconnecting: {e2}")
                    continue
                self.back.set()


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--bootsrv", required=True)
    p.add_argument("--store", required=True)
    p.add_argument("--image", default="lab")
    p.add_argument("--sessions", type=int, default=20)
    p.add_argument("--kills", type=int, default=10)
    p.add_argument("--graceful", type=int, default=3)
    p.add_argument("--seconds-between", type=float, default=1.5)
    p.add_argument("--log", default="bootsrv-campaign.log")
    p.add_argument("--seed", type=int, default=1)
    a = p.parse_args()
    rnd = random.Random(a.seed)
    port = free_port()
    server = Server(a, port, a.log)
    server.start()
    stats = {"errors": [], "losses": [], "back": []}
    clients = [Client(i, f"nbd://127.0.0.1:{port}/{a.image}/c{i}", stats) for i in range(a.sessions)]
    for c in clients:
        c.start()
    for c in clients:
        if not c.ready.wait(30):
            sys.exit(f"client {c.i} could not start")
    pauses = {"SIGKILL": [], "SIGTERM": []}
    plan = ["SIGKILL"] * a.kills + ["SIGTERM"] * a.graceful
    rnd.shuffle(plan)
    acked_total = 0
    for kind in plan:
        time.sleep(rnd.uniform(0.2, a.seconds_between))  # a random moment in the writing
        for c in clients:
            c.back.clear()
        stats["back"].clear()
        t_stop = time.monotonic()
        server.stop(signal.SIGKILL if kind == "SIGKILL" else signal.SIGTERM)
        server.start()
        deadline = time.monotonic() + 60
        for c in clients:
            if not c.back.wait(max(0, deadline - time.monotonic())):
                stats["errors"].append(f"client {c.i} did not come back within 60 s after a {kind}")
        pauses[kind] += [t - t_stop for _, t in list(stats["back"])]
    for c in clients:
        c.stop_flag = True
    for c in clients:
        c.join(10)
    # A last check of everything acknowledged, over fresh connections.
    for c in clients:
        c.handle = c.connect() if c.handle is None else c.handle
        try:
            c.verify()
        except nbd.Error as e:
            stats["errors"].append(f"client {c.i} final check: {e}")
        acked_total += len(c.acked)
    server.stop(signal.SIGTERM)

    def summary(xs):
        if not xs:
            return None
        xs = sorted(xs)
        return {"n": len(xs), "p50_ms": round(1000 * statistics.median(xs), 1),
                "p99_ms": round(1000 * xs[min(len(xs) - 1, int(len(xs) * 0.99))], 1), "max_ms": round(1000 * xs[-1], 1)}

    out = {"sessions": a.sessions, "sigkill": a.kills, "sigterm": a.graceful,
           "writes_acknowledged": sum(c.seq for c in clients), "blocks_checked": acked_total,
           "losses": len(stats["losses"]), "errors": len(stats["errors"]),
           "pause_after_sigkill": summary(pauses["SIGKILL"]), "pause_after_sigterm": summary(pauses["SIGTERM"]),
           "server_start": summary(server.starts[1:]),
           "examples": (stats["losses"] + stats["errors"])[:5]}
    print(json.dumps(out, indent=1))
    return 1 if stats["losses"] or stats["errors"] else 0


if __name__ == "__main__":
    sys.exit(main())
