#!/usr/bin/python3
"""Large READs in flight on bootsrv's iSCSI target, raced with task
management, logout, a vanished initiator and session reinstatement.

  iscsi_inflight.py PORT PREFIX EXPORT_RAW

READs of 128 KiB and more are answered by the connection's worker threads
(lib/iscsi/connection.h). A raw-socket initiator (iscsi_hostile.py's)
pipelines many of them and checks what the wire must show whatever the
threads do: every READ's data equals EXPORT_RAW's bytes, StatSN rises by one
per response in the order responses arrive (RFC 7143 §4.2.2.2), one task's
Data-In PDUs are never interleaved with another's PDUs, DataSN and buffer
offsets run in order, and:
  - ABORT TASK: the aborted READ either never answers (the TMF says
    "Function complete") or answers whole before the TMF response;
    "Task does not exist" only for one that had answered already;
  - LUN RESET: no response of an aborted READ after the TMF response;
  - Logout: every READ in flight answers before the Logout Response;
  - an initiator that resets the connection with 8 MiB READs in flight, or
    is replaced by a reinstating login of the same session, leaves the
    target serving (the next login reads right).
Prints "ok: CASE" per case; the first failed check raises with what was
expected and what came.
"""
import os
import random
import socket
import struct
import sys
import time

from iscsi_hostile import OP_DATA_IN, OP_RSP, PREFIX, Conn, bhs, check, read10, run_cases, well_behaved

EXPORT = open(sys.argv[3], "rb").read()
BLOCKS = len(EXPORT) // 512
OP_TMF, OP_TMF_RSP, OP_LOGOUT, OP_LOGOUT_RSP = 0x02, 0x22, 0x06, 0x26
ABORT_TASK, LUN_RESET = 1, 5
TMF_COMPLETE, TMF_NO_TASK = 0, 1
rng = random.Random(int(os.environ.get("SEED", "13")))


class Wire:
    """Collects the responses of pipelined commands, checking the wire as
    it comes."""

    def __init__(self, conn):
        self.c = conn
        self.stat_sn = None
        self.open_itt = None  # a task whose Data-In began and has not ended
        self.data, self.datasn = {}, {}
        self.status = {}        # ITT -> SCSI status
        self.order = []         # ITTs of status-bearing PDUs, as they came
        self.tmf = {}           # TMF ITT -> response

    def take(self, p):
        op = p.opcode
        if self.open_itt is not None:
            check(op in (OP_DATA_IN, OP_RSP) and p.itt == self.open_itt,
                  f"a PDU (opcode {op:#x}, ITT {p.itt}) in the middle of task {self.open_itt}'s Data-In")
        if op == OP_DATA_IN:
            d = self.data.setdefault(p.itt, bytearray())
            check(p.u32(40) == len(d), f"task {p.itt}: Data-In at offset {p.u32(40)}, expected {len(d)}")
            sn = self.datasn.get(p.itt, 0)
            check(p.u32(36) == sn, f"task {p.itt}: DataSN {p.u32(36)}, expected {sn}")
            self.datasn[p.itt] = sn + 1
            d += p.data
            self.open_itt = None if p.flags & 1 else p.itt
        elif op == OP_RSP:
            self.open_itt = None
        has_status = op in (OP_RSP, OP_TMF_RSP, OP_LOGOUT_RSP) or (op == OP_DATA_IN and p.flags & 1)
        if has_status:
            sn = p.u32(24)
            check(self.stat_sn is None or sn == (self.stat_sn + 1) & 0xFFFFFFFF,
                  f"StatSN {sn} after {self.stat_sn} (ITT {p.itt}): not in the order responses were sent")
            self.stat_sn = sn
            self.order.append(p.itt)
            if op == OP_TMF_RSP:
                self.tmf[p.itt] = p.bhs[2]
            elif op != OP_LOGOUT_RSP:
                check(p.itt not in self.status, f"task {p.itt} answered twice")
                self.status[p.itt] = p.bhs[3]

    def until(self, done, what, timeout=30.0):
        end = time.time() + timeout
        while not done():
            check(time.time() < end, f"{what}: not within {timeout} s")
            self.take(self.c.recv_pdu(timeout))

    def pos(self, itt):
        return self.order.index(itt) if itt in self.order else None


def send_reads(c, n, sizes):
    """n READs at random block-aligned places, sizes (bytes) drawn from
    `sizes`; returns {itt: (offset, length)}."""
    reads = {}
    for _ in range(n):
        length = rng.choice(sizes)
        lba = rng.randrange(0, BLOCKS - length // 512)
        itt = c.command(read10(lba, length // 512), read=length)
        reads[itt] = (lba * 512, length)
    return reads


def check_data(w, itt, where):
    off, length = where
    check(w.status.get(itt) == 0, f"READ {itt}: status {w.status.get(itt)}, expected GOOD")
    got = bytes(w.data.get(itt, b""))
    check(len(got) == length, f"READ {itt} of {length} bytes at {off}: {len(got)} bytes came")
    check(got == EXPORT[off:off + length], f"READ {itt} of {length} bytes at {off}: not the export's bytes")


def tmf(c, itt, function, ref=0xFFFFFFFF):
    rest = struct.pack(">IIII", ref, c.cmdsn, c.expstatsn, c.cmdsn)
    c.send_pdu(bhs(OP_TMF | 0x40, 0x80 | function, 0, itt, rest))


def tur(c, w, itt_hint):
    itt = c.command(b"\x00" * 6)
    w.until(lambda: itt in w.status, f"TEST UNIT READY after {itt_hint}")
    check(w.status[itt] == 0, f"TEST UNIT READY after {itt_hint}: status {w.status[itt]:#x}")


SIZES = [128 << 10, 256 << 10, 1 << 20, (3 << 20) + 512, 8 << 20]


def pipelined(digests=False):
    c = Conn(timeout=30)
    c.login(target=f"{PREFIX}:lab:version:1", isid=b"\x80\x13\x00\x00\x00\x01", digests=digests)
    total = 0
    # The digests are computed here in pure Python: fewer, smaller READs.
    rounds, count, sizes = (1, 6, [4096, 128 << 10]) if digests else (3, 30, SIZES + [4096, 64 << 10])
    for _ in range(rounds):
        w = Wire(c)
        reads = send_reads(c, count, sizes)  # small ones too: answered by the reading thread
        w.until(lambda: len(w.status) == len(reads), f"{count} pipelined READs", timeout=120)
        for itt, where in reads.items():
            check_data(w, itt, where)
            total += where[1]
        tur(c, w, "the pipelined READs")
    c.close()
    how = "with CRC32C digests" if digests else "zero-copy"
    well_behaved(f"{rounds * count} pipelined READs ({total >> 10} KiB, up to {max(sizes) >> 10} KiB each, {count} in "
                 f"flight, {how}): data, StatSN order, DataSN, no interleaving")


def abort_task():
    c = Conn(timeout=30)
    c.login(target=f"{PREFIX}:lab:version:1", isid=b"\x80\x13\x00\x00\x00\x02")
    outcomes = {"dropped": 0, "answered first": 0, "done already": 0}
    for _ in range(15):
        w = Wire(c)
        reads = send_reads(c, 16, [1 << 20, 8 << 20])
        victims = rng.sample(sorted(reads), 4)
        tmfs = {}
        for n, v in enumerate(victims):
            tmfs[9000 + n] = v
            tmf(c, 9000 + n, ABORT_TASK, v)
        w.until(lambda: all(t in w.tmf for t in tmfs), "four ABORT TASKs")
        # The others may still be on their way (the target answers in any
        # order); nothing of a victim may come after its TMF response.
        w.until(lambda: all(i in w.status for i in reads if i not in victims), "the READs not aborted")
        tur(c, w, "ABORT TASK")
        for t, v in tmfs.items():
            r = w.tmf[t]
            check(r in (TMF_COMPLETE, TMF_NO_TASK), f"ABORT TASK of {v}: response {r}")
            if v in w.status:
                check(w.pos(v) < w.pos(t), f"READ {v} answered after the TMF response that aborted it")
                check_data(w, v, reads[v])
                outcomes["done already" if r == TMF_NO_TASK else "answered first"] += 1
            else:
                check(r == TMF_COMPLETE, f"READ {v} never answered, yet ABORT TASK said 'no such task'")
                outcomes["dropped"] += 1
        for itt, where in reads.items():
            if itt not in victims:
                check_data(w, itt, where)
    c.close()
    well_behaved("ABORT TASK of READs in flight, 60 times: " + ", ".join(f"{k} {v}" for k, v in outcomes.items()))


def lun_reset():
    c = Conn(timeout=30)
    c.login(target=f"{PREFIX}:lab:version:1", isid=b"\x80\x13\x00\x00\x00\x03")
    answered = 0
    for _ in range(10):
        w = Wire(c)
        reads = send_reads(c, 16, [1 << 20, 8 << 20])
        tmf(c, 9100, LUN_RESET)
        w.until(lambda: 9100 in w.tmf, "LUN RESET")
        check(w.tmf[9100] == TMF_COMPLETE, f"LUN RESET: response {w.tmf[9100]}")
        before = set(w.status)
        tur(c, w, "LUN RESET")
        check(set(w.status) - before == set(w.order[-1:]),
              f"READs answered after the LUN RESET response: {sorted(set(w.status) - before)}")
        for itt in before:
            check_data(w, itt, reads[itt])
        answered += len(before)
    c.close()
    well_behaved(f"LUN RESET with 16 READs in flight, 10 times: {answered} answered before it, none after")


def logout():
    for n in range(5):
        c = Conn(timeout=30)
        c.login(target=f"{PREFIX}:lab:version:1", isid=b"\x80\x13\x00\x00\x01" + bytes([n]))
        w = Wire(c)
        reads = send_reads(c, 16, [1 << 20, 8 << 20])
        rest = struct.pack(">HHII", 0, 0, c.cmdsn, c.expstatsn)
        c.send_pdu(bhs(OP_LOGOUT | 0x40, 0x80, 0, 9200, rest))
        w.until(lambda: 9200 in w.order, "the Logout Response")
        check(len(w.status) == len(reads), f"Logout Response after {len(w.status)} of {len(reads)} READs")
        for itt, where in reads.items():
            check_data(w, itt, where)
        check(c.closed_within(5), "the connection stays open after the Logout Response")
        c.close()
    well_behaved("Logout with 16 READs in flight, 5 times: all answered first, then the Logout Response")


def vanished():
    for n in range(10):
        c = Conn(timeout=30)
        c.login(target=f"{PREFIX}:lab:version:1", isid=b"\x80\x13\x00\x00\x02" + bytes([n]))
        send_reads(c, 16, [8 << 20])
        if n % 2:
            c.recv_exact(rng.randrange(1, 4 << 20))  # part of the answers, then gone
        c.s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # RST
        c.close()
    well_behaved("10 initiators gone (by RST) with 16 READs of 8 MiB in flight")


def reinstated():
    isid = b"\x80\x13\x00\x00\x03\x01"
    target = f"{PREFIX}:lab:inflight-pc"
    a = Conn(timeout=30)
    a.login(target=target, isid=isid)
    send_reads(a, 16, [8 << 20])  # never read: the target is stuck sending to a
    b = Conn(timeout=30)
    b.login(target=target, isid=isid)
    check(a.closed_within(10), "the old connection, blocked mid-READs, was not closed by the reinstating login")
    a.close()
    w = Wire(b)
    reads = send_reads(b, 8, [1 << 20])
    w.until(lambda: len(w.status) == len(reads), "READs of the reinstated session")
    for itt, where in reads.items():
        check_data(w, itt, where)
    b.close()
    well_behaved("session reinstated while its old connection was blocked sending 8 MiB READs")


def pipelined_digests():
    pipelined(digests=True)


CASES = [pipelined, pipelined_digests, abort_task, lun_reset, logout, vanished, reinstated]

if __name__ == "__main__":
    run_cases(CASES)
