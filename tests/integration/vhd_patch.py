#!/usr/bin/python3
"""Reads and hand-damages VHD files for the integration tests (standard
library only). Integers are big-endian, as in the format. The footer is the
last 512 bytes (both copies for dynamic and differencing files unless
"footer-end" or "footer-copy" is named); the dynamic header is where the
footer's data offset points. Checksums (footer offset 64, header offset 36:
one's complement of the byte sum, the field itself counted as zero) are
recomputed after a change unless --keep-checksum is given, so that only the
field itself is wrong.

  vhd_patch.py FILE set WHERE OFFSET SIZE VALUE [--keep-checksum]
  vhd_patch.py FILE bytes WHERE OFFSET HEX [--keep-checksum]
  vhd_patch.py FILE get WHERE OFFSET SIZE          prints the field (hex)
  vhd_patch.py FILE bat INDEX VALUE                sets one BAT entry
  vhd_patch.py FILE bat-list                       prints allocated "index sector" pairs
  vhd_patch.py FILE reparent PARENT                records PARENT (its unique id
                                                   and file name) as FILE's parent
      WHERE: footer | footer-end | footer-copy | header
"""
import os
import struct
import sys

FOOTER, HEADER = 512, 1024


def checksum(block, at):
    return (~sum(b for i, b in enumerate(block) if not at <= i < at + 4)) & 0xFFFFFFFF


class Vhd:
    def __init__(self, path):
        self.path = path
        self.data = bytearray(open(path, "rb").read())
        end = len(self.data) - FOOTER
        if self.data[end:end + 8] != b"conectix" and self.data[end + 1:end + 9] == b"conectix":
            end += 1  # a 511-byte footer
        if self.data[end:end + 8] != b"conectix":
            sys.exit(f"vhd_patch: {path}: no footer at the end")
        self.footer_end = end

    def footer_starts(self, where):
        starts = []
        if where in ("footer", "footer-end"):
            starts.append(self.footer_end)
        if where in ("footer", "footer-copy") and self.data[0:8] == b"conectix" and self.footer_end != 0:
            starts.append(0)
        return starts

    def header_start(self):
        return struct.unpack_from(">Q", self.data, self.footer_end + 16)[0]

    def regions(self, where):
        """(start, length, checksum offset) of every copy of WHERE."""
        if where == "header":
            return [(self.header_start(), HEADER, 36)]
        return [(s, min(FOOTER, len(self.data) - s), 64) for s in self.footer_starts(where)]

    def write_field(self, where, offset, raw, keep):
        for start, length, at in self.regions(where):
            block = bytearray(self.data[start:start + length]) + bytearray(FOOTER - length if where != "header" else 0)
            block[offset:offset + len(raw)] = raw
            if not keep:
                struct.pack_into(">I", block, at, checksum(block, at))
            self.data[start:start + length] = block[:length]

    def read_field(self, where, offset, size):
        start = self.regions(where)[0][0]
        return bytes(self.data[start + offset:start + offset + size])

    def bat_offset(self):
        return struct.unpack_from(">Q", self.data, self.header_start() + 16)[0]

    def bat_entries(self):
        h = self.header_start()
        count = struct.unpack_from(">I", self.data, h + 28)[0]
        table = self.bat_offset()
        return [struct.unpack_from(">I", self.data, table + 4 * i)[0] for i in range(count)]

    def save(self):
        open(self.path, "wb").write(self.data)


def main():
    path, cmd, args = sys.argv[1], sys.argv[2], sys.argv[3:]
    keep = "--keep-checksum" in args
    args = [a for a in args if a != "--keep-checksum"]
    v = Vhd(path)
    if cmd == "set":
        where, offset, size, value = args[0], int(args[1], 0), int(args[2]), int(args[3], 0)
        v.write_field(where, offset, value.to_bytes(size, "big"), keep)
        v.save()
    elif cmd == "bytes":
        v.write_field(args[0], int(args[1], 0), bytes.fromhex(args[2]), keep)
        v.save()
    elif cmd == "get":
        print(v.read_field(args[0], int(args[1], 0), int(args[2])).hex())
    elif cmd == "bat":
        struct.pack_into(">I", v.data, v.bat_offset() + 4 * int(args[0]), int(args[1], 0))
        v.save()
    elif cmd == "bat-list":
        for i, e in enumerate(v.bat_entries()):
            if e != 0xFFFFFFFF:
                print(i, e)
    elif cmd == "reparent":
        parent = Vhd(args[0])
        uid = parent.read_field("footer-end", 68, 16)
        name = os.path.basename(args[0]).encode("utf-16-be")[:512]
        v.write_field("header", 40, uid, True)
        v.write_field("header", 64, name + bytes(512 - len(name)), False)
        v.save()
    else:
        sys.exit(f"vhd_patch: unknown command {cmd}")


main()
