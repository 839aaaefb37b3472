#!/usr/bin/env python3
"""Regenerate the seeds of fuzz_seek_copy in tests/fuzz/corpus/fuzz_seek_copy/:

    tests/fuzz/mkseeds_copy.py

Made mode (control bit 0 set, see fuzz_seek_copy.c): streams of 1 KiB to 2.5 MiB (one to
three frames) from short seeds, with no patch and with a few patches (in the header, the seek
table, a frame).  Raw mode: copy files laid out as decomp_copy.c describes, their frames made
by the reference zstd (zstd -1 --check per frame), for streams of one byte, one frame and two
and a half frames; one with a wrong frame count, one cut short.  Existing seeds of the same
names are overwritten.
"""
import os
import struct
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "corpus", "fuzz_seek_copy")
FRAME = 1 << 20


def made(length, seed, patches=b"", level=0):
    return (bytes([1 | level << 1]) + length.to_bytes(3, "little") + bytes([len(seed)]) +
            seed + patches)


def zstd_frame(data):
    return subprocess.run(["zstd", "-q", "-1", "--check", "-c"], input=data,
                          stdout=subprocess.PIPE, check=True).stdout


def raw_copy(stream, fingerprint=0x0123456789ABCDEF, nframes_delta=0):
    frames, entries = b"", b""
    for at in range(0, len(stream), FRAME):
        part = stream[at:at + FRAME]
        z = zstd_frame(part)
        frames += z
        entries += struct.pack("<III", len(z), len(part), 0)
    n = len(entries) // 12
    header = struct.pack("<II", 0x184D2A51, 32) + b"TMCOPY1\n" + struct.pack(
        "<QQII", fingerprint, len(stream), FRAME, 0)
    footer = struct.pack("<IBI", n + nframes_delta, 0x80, 0x8F92EAB1)
    table = struct.pack("<II", 0x184D2A5E, len(entries) + 9) + entries + footer
    return header + frames + table


def main():
    os.makedirs(OUT, exist_ok=True)
    text = b"tarmount seekable copy "
    seeds = {
        "made-1k": made(1024, text),
        "made-1frame": made(FRAME, b"\x00\x01\x02\x03"),
        "made-3frames": made(FRAME * 5 // 2, text, level=2),
        "made-patched-header": made(200000, text, bytes([20, 0, 1, 0xFF])),
        "made-patched-table": made(FRAME * 2, text, bytes([0xF0, 0xFF, 3, 1, 0xF8, 0xFF, 0, 9])),
        "made-patched-frame": made(FRAME + 77, b"xyz", bytes([100, 0, 1, 0x40])),
    }
    try:
        s = bytes(range(256)) * 10000
        seeds["raw-1byte"] = b"\x00" + raw_copy(b"a")
        seeds["raw-1frame"] = b"\x00" + raw_copy(s[:FRAME])
        seeds["raw-3frames"] = b"\x00" + raw_copy(s[:FRAME * 5 // 2])
        seeds["raw-count"] = b"\x00" + raw_copy(s[:FRAME + 5], nframes_delta=1)
        seeds["raw-cut"] = (b"\x00" + raw_copy(s[:FRAME * 2]))[:-100]
    except (OSError, subprocess.CalledProcessError) as e:
        print("mkseeds_copy.py: note: no raw seeds (zstd: %s)" % e, file=sys.stderr)
    for name, data in seeds.items():
        with open(os.path.join(OUT, name), "wb") as f:
            f.write(data)


main()
