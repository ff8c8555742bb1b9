#!/usr/bin/python3
"""Hostile and half-broken iSCSI initiators against bootsrv's target.

  iscsi_hostile.py PORT PREFIX

A small raw-socket initiator (login with key=value text, SCSI Command,
Data-Out, NOP-Out; RFC 7143 §11) that does what well-behaved initiators
never do, and checks the protocol's answer: random bytes, a login cut half
way, unknown and repeated keys, a 16 MiB data segment, CmdSN outside the
window, Data-Out for no task, a client gone mid-R2T, two logins with one
initiator name and ISID (session reinstatement), digests with a wrong CRC.
After every case a well-behaved initiator (iscsi-inq) must still be served.
Prints "ok: CASE" per case; the first failed check raises with what was
expected and what came.
"""
import os
import socket
import struct
import subprocess
import sys
import time

PORT, PREFIX = int(sys.argv[1]), sys.argv[2]
TARGET = f"{PREFIX}:lab"
INITIATOR = "iqn.2026-11.test:hostile"

OP_NOP_OUT, OP_CMD, OP_LOGIN, OP_DATA_OUT = 0x00, 0x01, 0x03, 0x05
OP_NOP_IN, OP_RSP, OP_LOGIN_RSP, OP_DATA_IN, OP_R2T, OP_REJECT = 0x20, 0x21, 0x23, 0x25, 0x31, 0x3F


class Failure(Exception):
    pass


def check(cond, what):
    if not cond:
        raise Failure(what)


def crc32c(data, crc=0xFFFFFFFF):
    # Bitwise CRC32C (Castagnoli, reflected 0x82F63B78); PDUs here are small.
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 & -(crc & 1))
    return crc ^ 0xFFFFFFFF


def pad4(b):
    return b + b"\0" * (-len(b) % 4)


def text(keys):
    return b"".join(f"{k}={v}".encode() + b"\0" for k, v in keys)


def parse_text(data):
    out = []
    for item in data.split(b"\0"):
        if item:
            k, _, v = item.decode(errors="replace").partition("=")
            out.append((k, v))
    return out


class Pdu:
    def __init__(self, bhs, data=b""):
        self.bhs, self.data = bhs, data

    opcode = property(lambda self: self.bhs[0] & 0x3F)
    flags = property(lambda self: self.bhs[1])
    itt = property(lambda self: struct.unpack(">I", self.bhs[16:20])[0])

    def u32(self, at):
        return struct.unpack(">I", self.bhs[at:at + 4])[0]


def bhs(op, flags, dsl, itt, rest=b"", lun=0, b23=b"\0\0"):
    # rest: bytes 20..47
    h = bytes([op, flags]) + b23 + bytes([0]) + dsl.to_bytes(3, "big") + struct.pack(">Q", lun) + struct.pack(">I", itt)
    h += rest
    return h + b"\0" * (48 - len(h))


class Conn:
    def __init__(self, timeout=5.0):
        self.s = socket.create_connection(("127.0.0.1", PORT), timeout=timeout)
        self.cmdsn = self.expstatsn = 0
        self.itt = 1
        self.hd = self.dd = False
        self.max_cmdsn = 0

    def close(self):
        self.s.close()

    def send_pdu(self, header, data=b"", bad_header_digest=False):
        out = header
        if self.hd:
            crc = crc32c(header) ^ (1 if bad_header_digest else 0)
            out += struct.pack("<I", crc)
        if data:
            out += pad4(data)
            if self.dd:
                out += struct.pack("<I", crc32c(pad4(data)))
        self.s.sendall(out)

    def recv_exact(self, n):
        buf = b""
        while len(buf) < n:
            chunk = self.s.recv(n - len(buf))
            if not chunk:
                raise EOFError(f"connection closed after {len(buf)} of {n} bytes")
            buf += chunk
        return buf

    def recv_pdu(self, timeout=5.0):
        self.s.settimeout(timeout)
        while True:
            h = self.recv_exact(48)
            ahs = h[4] * 4
            if ahs:
                self.recv_exact(ahs)
            if self.hd:
                got = struct.unpack("<I", self.recv_exact(4))[0]
                check(got == crc32c(h + b""), f"header digest of a {h[0] & 0x3f:#x} PDU is {got:#x}, expected {crc32c(h):#x}")
            dsl = int.from_bytes(h[5:8], "big")
            data = b""
            if dsl:
                data = self.recv_exact((dsl + 3) & ~3)
                if self.dd:
                    got = struct.unpack("<I", self.recv_exact(4))[0]
                    check(got == crc32c(data), f"data digest is {got:#x}, expected {crc32c(data):#x}")
                data = data[:dsl]
            p = Pdu(h, data)
            if p.opcode in (OP_RSP, OP_LOGIN_RSP, OP_NOP_IN, OP_R2T, OP_REJECT, 0x22, 0x24, 0x26) or (
                    p.opcode == OP_DATA_IN and p.flags & 1):
                if p.opcode != OP_R2T and p.opcode != OP_DATA_IN or p.flags & 1:
                    self.expstatsn = p.u32(24) + 1 if p.opcode != OP_R2T else self.expstatsn
            if p.opcode in (OP_RSP, OP_DATA_IN, OP_R2T, OP_NOP_IN, OP_LOGIN_RSP, 0x22, 0x24, 0x26, OP_REJECT):
                self.max_cmdsn = p.u32(32)
            if p.opcode == OP_NOP_IN and p.u32(20) == 0xFFFFFFFF:
                continue  # an unsolicited ping that wants no answer
            if p.opcode == 0x32:
                continue  # async message
            return p

    def closed_within(self, seconds):
        """True when the peer closes (or resets) the connection within seconds."""
        self.s.settimeout(0.2)
        end = time.time() + seconds
        while time.time() < end:
            try:
                if not self.s.recv(65536):
                    return True
            except socket.timeout:
                continue
            except OSError:
                return True
        return False

    def login_pdu(self, keys, isid, csg=1, nsg=3, transit=True, tsih=0, itt=0):
        flags = (0x80 if transit else 0) | (csg << 2) | nsg
        data = text(keys)
        rest = struct.pack(">HH", 0, 0) + struct.pack(">II", self.cmdsn, self.expstatsn)  # CID, rsvd, CmdSN, ExpStatSN
        h = bytes([0x40 | OP_LOGIN, flags, 0, 0, 0]) + len(data).to_bytes(3, "big") + isid + struct.pack(">H", tsih)
        h += struct.pack(">I", itt) + rest
        return h + b"\0" * (48 - len(h)), data

    def login(self, target=TARGET, isid=b"\x80\x12\x34\x56\x00\x01", initiator=INITIATOR, extra=(), digests=False):
        """One-PDU login straight to full feature phase; returns the response keys."""
        keys = [("InitiatorName", initiator), ("TargetName", target), ("SessionType", "Normal"),
                ("HeaderDigest", "CRC32C" if digests else "None"), ("DataDigest", "CRC32C" if digests else "None"),
                ("MaxRecvDataSegmentLength", "262144"), ("InitialR2T", "Yes"), ("ImmediateData", "Yes"),
                ("FirstBurstLength", "65536"), ("MaxBurstLength", "262144"), ("ErrorRecoveryLevel", "0")]
        keys += list(extra)
        h, d = self.login_pdu(keys, isid)
        self.send_pdu(h, d)
        r = self.recv_pdu()
        check(r.opcode == OP_LOGIN_RSP, f"a Login Response, got opcode {r.opcode:#x}")
        status = r.bhs[36] << 8 | r.bhs[37]
        got = parse_text(r.data)
        check(status == 0, f"login of {target} refused with status {status:#06x}: {got}")
        check(r.flags & 0x80 and r.flags & 3 == 3, f"login did not reach full feature phase: flags {r.flags:#x} {got}")
        self.cmdsn = r.u32(28)
        self.tsih = struct.unpack(">H", r.bhs[14:16])[0]
        self.hd = self.dd = digests
        return dict(got)

    def command(self, cdb, read=0, write=b"", immediate=True, cmdsn=None, edtl=None, solicited=False):
        """Sends a SCSI command (write data as immediate data; solicited: a
        write whose data waits for R2T); returns its ITT."""
        itt = self.itt
        self.itt += 1
        flags = 0x80 | (0x40 if read else 0) | (0x20 if write or solicited else 0) | 1
        edtl = edtl if edtl is not None else (read or len(write))
        sn = self.cmdsn if cmdsn is None else cmdsn
        imm = write if immediate else b""
        rest = struct.pack(">III", edtl, sn, self.expstatsn) + pad16(cdb)
        self.send_pdu(bhs(OP_CMD, flags, len(imm), itt, rest), imm)
        if cmdsn is None:
            self.cmdsn += 1
        return itt

    def response(self, itt, timeout=5.0):
        """Collects Data-In and the status of task itt: (status, data)."""
        data = b""
        while True:
            p = self.recv_pdu(timeout)
            check(p.opcode in (OP_DATA_IN, OP_RSP), f"Data-In or SCSI Response for task {itt}, got opcode {p.opcode:#x}")
            check(p.itt == itt, f"a reply for task {itt}, got one for {p.itt}")
            if p.opcode == OP_DATA_IN:
                data += p.data
                if p.flags & 1:
                    return p.bhs[3], data
            else:
                return p.bhs[3], data

    def tur_ok(self):
        status, _ = self.response(self.command(b"\x00" * 6))
        check(status == 0, f"TEST UNIT READY: status {status:#x}, expected GOOD")


def pad16(cdb):
    return cdb + b"\0" * (16 - len(cdb))


def read10(lba, blocks):
    return struct.pack(">BBIBHB", 0x28, 0, lba, 0, blocks, 0)


def write10(lba, blocks):
    return struct.pack(">BBIBHB", 0x2A, 0, lba, 0, blocks, 0)


def well_behaved(case):
    r = subprocess.run(["iscsi-inq", f"iscsi://127.0.0.1:{PORT}/{TARGET}/0"], capture_output=True, text=True, timeout=30)
    check(r.returncode == 0 and "DIRECT_ACCESS" in r.stdout,
          f"after '{case}', iscsi-inq is not served: rc {r.returncode}: {r.stdout} {r.stderr}")
    print(f"ok: {case}; iscsi-inq still served", flush=True)


def random_bytes():
    for seed in range(8):
        c = Conn()
        blob = os.urandom(4096 * (seed + 1))
        if seed % 2:
            blob = bytes([0x43]) + blob[1:]  # looks like a Login Request
        try:
            c.s.sendall(blob)
            c.s.shutdown(socket.SHUT_WR)
        except OSError:
            pass  # the target closed already
        check(c.closed_within(5), "random bytes: the target neither answered nor closed within 5 s")
        c.close()
    well_behaved("random bytes (8 connections): closed by the target")


def login_cut():
    for cut in (20, 48, 60):
        c = Conn()
        h, d = c.login_pdu([("InitiatorName", INITIATOR), ("TargetName", TARGET)], b"\x80\0\0\0\0\1")
        c.s.sendall((h + pad4(d))[:cut])
        c.s.shutdown(socket.SHUT_WR)
        check(c.closed_within(5), f"a login cut at byte {cut}: connection not closed")
        c.close()
    well_behaved("a login cut half way (in the header, after it, in its text)")


def unknown_and_repeated_keys():
    c = Conn()
    got = c.login(extra=[("X-com.example.Whatever", "1"), ("FooBarKey", "baz")])
    check(got.get("FooBarKey") == "NotUnderstood", f"an unknown key should be NotUnderstood, got {got}")
    c.tur_ok()
    c.close()
    c = Conn()
    keys = [("InitiatorName", INITIATOR), ("TargetName", TARGET), ("MaxBurstLength", "65536"),
            ("MaxBurstLength", "131072")]
    h, d = c.login_pdu(keys, b"\x80\0\0\0\0\2")
    c.send_pdu(h, d)
    r = c.recv_pdu()
    check(r.opcode == OP_LOGIN_RSP and r.bhs[36] == 2,
          f"a repeated key: login reject with status class 2 (initiator error), got opcode {r.opcode:#x} class {r.bhs[36]}")
    check(c.closed_within(5), "the target kept the connection after a login reject")
    c.close()
    well_behaved(f"unknown keys answered NotUnderstood; a repeated key refused with status {r.bhs[36]:#04x}{r.bhs[37]:02x}")


def huge_segment():
    # In full feature phase: a SCSI Command claiming 16 MiB - 1 of immediate data.
    c = Conn()
    c.login()
    h = bhs(OP_CMD, 0xA1, 0xFFFFFF, 77, struct.pack(">III", 0xFFFFFF, c.cmdsn, c.expstatsn) + pad16(write10(0, 32767)))
    c.s.sendall(h + os.urandom(4096))
    rejected = False
    try:
        p = c.recv_pdu(5)
        rejected = p.opcode == OP_REJECT
        check(rejected, f"a 16 MiB data segment: Reject or close, got opcode {p.opcode:#x}")
    except (EOFError, ConnectionError):
        pass
    c.close()
    # During login, before any key was negotiated.
    c = Conn()
    h, _ = c.login_pdu([], b"\x80\0\0\0\0\3")
    h = h[:5] + b"\xff\xff\xff" + h[8:]
    c.s.sendall(h + b"InitiatorName=" * 100)
    try:
        p = c.recv_pdu(5)
        check(p.opcode == OP_LOGIN_RSP and p.bhs[36] != 0, f"a 16 MiB login text: a reject, got opcode {p.opcode:#x} status {p.bhs[36]}")
    except (EOFError, ConnectionError):
        pass
    check(c.closed_within(5), "a 16 MiB login text: connection not closed")
    c.close()
    well_behaved(f"a 16 MiB DataSegmentLength ({'Reject' if rejected else 'closed'} in full feature phase, refused in login)")


def cmdsn_out_of_window():
    c = Conn()
    c.login()
    window = (c.max_cmdsn - c.cmdsn) & 0xFFFFFFFF
    check(window < 1 << 16, f"the CmdSN window is {window} wide")
    for sn in (c.cmdsn + window + 10, c.cmdsn - 5):
        c.command(b"\x00" * 6, cmdsn=sn & 0xFFFFFFFF)
        try:
            p = c.recv_pdu(1.0)
            raise Failure(f"CmdSN {sn} outside [{c.cmdsn}, {c.max_cmdsn}]: expected silence, got opcode {p.opcode:#x}")
        except socket.timeout:
            pass
    c.tur_ok()
    c.close()
    well_behaved("CmdSN outside the window: ignored (no reply in 1 s), the next in-window command answered")


def data_out_no_task():
    c = Conn()
    c.login()
    rest = struct.pack(">III", 0x5678, 0, c.expstatsn) + struct.pack(">III", 0, 0, 0)
    c.send_pdu(bhs(OP_DATA_OUT, 0x80, 512, 0x1234, rest), b"\xaa" * 512)
    p = c.recv_pdu()
    check(p.opcode == OP_REJECT, f"Data-Out for no task: a Reject, got opcode {p.opcode:#x}")
    check(p.data[:1] == bytes([OP_DATA_OUT]) or (p.data and p.data[0] & 0x3F == OP_DATA_OUT),
          "the Reject should carry the rejected header")
    reason = p.bhs[2]
    c.tur_ok()
    c.close()
    well_behaved(f"Data-Out for a task that does not exist: Reject (reason {reason:#04x}), connection still usable")


def gone_mid_r2t():
    for n in range(3):
        c = Conn()
        c.login(target=f"{PREFIX}:lab:hostile-r2t", extra=[])
        c.command(write10(2048, 2048), edtl=1 << 20, solicited=True)  # 1 MiB, all solicited
        p = c.recv_pdu()
        check(p.opcode == OP_R2T, f"a WRITE without immediate data: an R2T, got opcode {p.opcode:#x}")
        if n == 1:  # part of the burst, then gone
            rest = struct.pack(">III", p.u32(20), 0, c.expstatsn) + struct.pack(">III", 0, 0, 0)
            c.send_pdu(bhs(OP_DATA_OUT, 0, 8192, p.itt, rest), b"\x11" * 8192)
        if n == 2:
            c.s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # RST, not FIN
        c.close()
    c = Conn()
    c.login(target=f"{PREFIX}:lab:hostile-r2t")
    status, data = c.response(c.command(read10(2048, 16), read=8192))
    check(status == 0 and len(data) == 8192, f"a READ after the gone writers: status {status:#x}, {len(data)} bytes")
    c.close()
    well_behaved("a client gone mid-R2T (at once, in a burst, by RST): the session is served again")


def reinstatement():
    # RFC 7143 §6.3.5 and issue 13: a login with the InitiatorName and ISID
    # of a session, while its old connection is still open (the target has
    # not noticed the drop yet) or after the target saw it go (a TCP reset),
    # continues that session on the same write cache. A named session keeps
    # its cache anyway; an anonymous one (PREFIX:IMAGE) keeps it only if the
    # login is taken as a reinstatement: Windows after a network blip.
    failures = []
    for n, (target, drop_first) in enumerate(((f"{PREFIX}:lab:hostile-pc", False), (f"{PREFIX}:lab:hostile-pc", True),
                                              (TARGET, False), (TARGET, True))):
        try:
            reinstate(bytes([0x80, 0x65, 0x43, 0x21, 0x00, 0x10 + n]), target, drop_first)
        except (Failure, EOFError, OSError) as e:
            failures.append(str(e))
    check(not failures, "; ".join(failures))
    well_behaved("session reinstatement (named and anonymous targets, old connection open or reset): "
                 "the old connection closed by the target, its writes read through the new one")


def reinstate(isid, target, drop_first):
    a = Conn()
    a.login(target=target, isid=isid)
    pattern = os.urandom(4096)
    status, _ = a.response(a.command(write10(300, 8), write=pattern))
    check(status == 0, f"WRITE through the first connection: status {status:#x}")
    if drop_first:
        a.s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        a.close()
        time.sleep(0.2)  # the target sees the reset before the new login
    b = Conn()
    b.login(target=target, isid=isid)  # same InitiatorName and ISID, TSIH 0
    if not drop_first:
        check(a.closed_within(5), f"{target}: after a second login with the same initiator name and ISID, "
                                  "the first connection is still open")
        a.close()
    status, data = b.response(b.command(read10(300, 8), read=len(pattern)))
    check(status == 0, f"READ through the reinstated session: status {status:#x}")
    how = "reset before" if drop_first else "still open at"
    check(data == pattern, f"{target}, first connection {how} the second login: the reinstated session does not "
                           "read what the first connection wrote (its write cache was not kept)")
    b.close()


def digests():
    c = Conn()
    got = c.login(target=f"{PREFIX}:lab:hostile-digest", digests=True)
    check(got.get("HeaderDigest") == "CRC32C" and got.get("DataDigest") == "CRC32C", f"digests not accepted: {got}")
    pattern = os.urandom(4096)
    status, _ = c.response(c.command(write10(64, 8), write=pattern))
    check(status == 0, f"WRITE with digests: status {status:#x}")
    status, data = c.response(c.command(read10(64, 8), read=4096))  # recv_pdu checks every digest
    check(status == 0 and data == pattern, "READ with digests returns other data")
    c.send_pdu(bhs(OP_NOP_OUT | 0x40, 0x80, 0, 99, struct.pack(">III", 0xFFFFFFFF, c.cmdsn, c.expstatsn)),
               bad_header_digest=True)
    check(c.closed_within(5), "a header digest error: connection not dropped")
    c.close()
    well_behaved("CRC32C header and data digests on WRITE and READ; a wrong header digest drops the connection")


CASES = [random_bytes, login_cut, unknown_and_repeated_keys, huge_segment, cmdsn_out_of_window,
         data_out_no_task, gone_mid_r2t, reinstatement, digests]

def run_cases(cases):
    """Runs every case (a failed one does not stop the others); exits 1 if any failed."""
    failed = 0
    for case in cases:
        try:
            case()
        except (Failure, EOFError, OSError, socket.timeout) as e:
            failed += 1
            print(f"FAIL: {case.__name__}: {type(e).__name__}: {e}", flush=True)
            try:  # a failed case must not take the others down either
                well_behaved(f"the failed case {case.__name__}")
            except Failure as e2:
                print(f"FAIL: {e2}", flush=True)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    run_cases(CASES)
