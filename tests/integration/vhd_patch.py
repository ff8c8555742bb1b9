#!/usr/bin/python3
"""Hand-damages VHD files for the bad-input tests: sets a big-endian field of
the footer (both copies) or the dynamic header and, unless told not to,
recomputes the checksum so that only the field itself is wrong.

  vhd_patch.py FILE footer|header OFFSET SIZE VALUE [--keep-checksum]
  vhd_patch.py FILE bat INDEX VALUE         (a BAT entry; header checksum n/a)
"""
import struct, sys

def checksum(block, at):
    total = sum(b for i, b in enumerate(block) if not at <= i < at + 4)
    return (~total) & 0xFFFFFFFF

def main():
    path, where = sys.argv[1], sys.argv[2]
    data = bytearray(open(path, "rb").read())
    fmt = {1: ">B", 2: ">H", 4: ">I", 8: ">Q"}
    if where == "bat":
        index, value = int(sys.argv[3]), int(sys.argv[4], 0)
        table = struct.unpack_from(">Q", data, 512 + 16)[0]
        struct.pack_into(">I", data, table + 4 * index, value)
    else:
        offset, size, value = int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5], 0)
        keep = "--keep-checksum" in sys.argv
        if where == "footer":
            starts = [len(data) - 512] + ([0] if data[0:8] == b"conectix" else [])
            for start in starts:
                block = data[start:start + 512]
                struct.pack_into(fmt[size], block, offset, value)
                if not keep:
                    struct.pack_into(">I", block, 64, checksum(block, 64))
                data[start:start + 512] = block
        else:
            block = data[512:1536]
            struct.pack_into(fmt[size], block, offset, value)
            if not keep:
                struct.pack_into(">I", block, 36, checksum(block, 36))
            data[512:1536] = block
    open(path, "wb").write(data)

main()
