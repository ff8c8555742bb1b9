#!/usr/bin/env python3
"""Writes the seed corpus of fuzz_iscsi and fuzz_iscsi_keys: initiator byte
streams that log in and then send commands, so that mutations reach the
full feature phase, and key lists, CHAP values and CDBs for the keys target.
Run from anywhere; rewrites tests/fuzz/corpus/iscsi{,_keys}/."""
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))
MEM = "iqn.2026-11.org.bootfleet:mem"


def keys(*pairs):
    return b"".join(f"{k}={v}".encode() + b"\0" for k, v in pairs)


def pdu(opcode, flags, data=b"", itt=1, lun=0, f20=0, cmdsn=1, f28=0, rest=b""):
    bhs = bytearray(48)
    bhs[0] = opcode
    bhs[1] = flags
    n = len(data)
    bhs[5:8] = bytes([(n >> 16) & 0xFF, (n >> 8) & 0xFF, n & 0xFF])
    struct.pack_into(">QIIII", bhs, 8, lun, itt, f20, cmdsn, f28)
    bhs[32:32 + len(rest)] = rest
    return bytes(bhs) + data + b"\0" * ((4 - n % 4) % 4)


def login(target=MEM, session="Normal", extra=()):
    pairs = [("InitiatorName", "iqn.2026-11.fuzz:init"), ("SessionType", session), ("AuthMethod", "None"),
             ("HeaderDigest", "None"), ("DataDigest", "None"), ("MaxRecvDataSegmentLength", "8192")]
    if session == "Normal":
        pairs.insert(1, ("TargetName", target))
    flags = 0x80 | (0 << 2) | 3  # T, CSG security, NSG full feature
    bhs = bytearray(pdu(0x43, flags, keys(*pairs, *extra), itt=0, cmdsn=1))
    bhs[8:14] = bytes([0x80, 0, 0, 0, 0, 1])
    return bytes(bhs)


def cdb(*b):
    return bytes(b) + b"\0" * (16 - len(b))


def command(c, flags, edtl, data=b"", itt=2, cmdsn=1):
    return pdu(0x01, 0x80 | flags, data, itt=itt, f20=edtl, cmdsn=cmdsn, rest=c)


def write(path, content):
    with open(path, "wb") as f:
        f.write(content)


def main():
    d = os.path.join(HERE, "corpus", "iscsi")
    os.makedirs(d, exist_ok=True)
    read10 = cdb(0x28, 0, 0, 0, 0, 0, 0, 0, 8)
    write10 = cdb(0x2A, 0, 0, 0, 0, 8, 0, 0, 2)
    inquiry = cdb(0x12, 0, 0, 0, 255)
    write(os.path.join(d, "login-read"), login() + command(read10, 0x40, 4096))
    write(os.path.join(d, "login-inquiry-vpd"), login() + command(inquiry, 0x40, 255) +
          command(cdb(0x12, 1, 0x83, 0, 255), 0x40, 255, itt=3, cmdsn=2))
    write(os.path.join(d, "login-write-r2t"), login() + command(write10, 0x20, 1024, b"\xab" * 512) +
          pdu(0x05, 0x80, b"\xcd" * 512, itt=2, f20=1, rest=struct.pack(">III", 0, 0, 512)))
    write(os.path.join(d, "login-unmap"), login() + command(cdb(0x42, 0, 0, 0, 0, 0, 0, 0, 24), 0x20, 24,
                                                           struct.pack(">HH4xQI4x", 22, 16, 2, 4)))
    write(os.path.join(d, "discovery"), login("", "Discovery") + pdu(0x44, 0x80, keys(("SendTargets", "All")), itt=5,
                                                                     f20=0xFFFFFFFF))
    write(os.path.join(d, "chap-offer"), login("iqn.2026-11.org.bootfleet:chap")[:0] + pdu(
        0x43, 0x00, keys(("InitiatorName", "iqn.x"), ("TargetName", "iqn.2026-11.org.bootfleet:chap"),
                         ("AuthMethod", "CHAP")), itt=0) + pdu(0x43, 0x00, keys(("CHAP_A", "5")), itt=0))
    write(os.path.join(d, "tmf-nop-logout"), login() + pdu(0x02, 0x80 | 5, itt=9, cmdsn=1) +
          pdu(0x40, 0x80, b"ping", itt=10, f20=0xFFFFFFFF, cmdsn=2) + pdu(0x46, 0x80, itt=11, cmdsn=2))
    write(os.path.join(d, "readonly-write"), login("iqn.2026-11.org.bootfleet:ro") +
          command(write10, 0x20, 1024, b"\0" * 1024))

    k = os.path.join(HERE, "corpus", "iscsi_keys")
    os.makedirs(k, exist_ok=True)
    write(os.path.join(k, "keys"), b"\0" + keys(("HeaderDigest", "CRC32C,None"), ("MaxBurstLength", "262144"),
                                               ("InitialR2T", "No"), ("X-vendor", "1"), ("FirstBurstLength", "0x10000")))
    write(os.path.join(k, "chap-hex"), b"\x01" + b"0x00112233445566778899aabbccddeeff")
    write(os.path.join(k, "chap-base64"), b"\x01" + b"0bABEiM0RVZneImZqrvM3e7w==")
    write(os.path.join(k, "cdb-read16"), b"\x02" + cdb(0x88, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 8))
    write(os.path.join(k, "cdb-writesame"), b"\x02" + cdb(0x93, 0x08, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 4) + b"\0" * 512)
    write(os.path.join(k, "cdb-opcodes"), b"\x02" + cdb(0xA3, 0x0C, 0x80, 0, 0, 0, 0, 0, 2, 0))
    write(os.path.join(k, "cdb-modesense10"), b"\x02" + cdb(0x5A, 0, 0x3F, 0, 0, 0, 0, 1, 0))


if __name__ == "__main__":
    main()
