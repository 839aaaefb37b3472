#!/usr/bin/env python3
"""Write a ustar archive of N empty files (N/1000 directories of 1000 files) to stdout or a
file, fast: headers are built by hand, so a million entries take seconds, not minutes.

usage: mkmany.py OUT.tar [N]"""
import sys


def header(name: bytes, typeflag: bytes, mode: int, size: int = 0) -> bytes:
    h = bytearray(512)
    h[0:len(name)] = name
    h[100:108] = b"%07o\0" % mode
    h[108:116] = b"%07o\0" % 1000
    h[116:124] = b"%07o\0" % 1000
    h[124:136] = b"%011o\0" % size
    h[136:148] = b"%011o\0" % 1700000000
    h[148:156] = b" " * 8
    h[156:157] = typeflag
    h[257:265] = b"ustar\x0000"
    h[265:269] = b"user"
    h[297:302] = b"group"
    h[148:156] = b"%06o\0 " % sum(h)
    return bytes(h)


def main() -> None:
    out, n = sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 1000000
    per_dir = 1000
    with open(out, "wb") as f:
        buf = []
        for i in range(n):
            d, k = divmod(i, per_dir)
            if k == 0:
                buf.append(header(b"dir%05d/" % d, b"5", 0o755))
            buf.append(header(b"dir%05d/file-%06d.txt" % (d, k), b"0", 0o644))
            if len(buf) >= 4096:
                f.write(b"".join(buf))
                buf = []
        buf.append(bytes(1024))
        f.write(b"".join(buf))


if __name__ == "__main__":
    main()
