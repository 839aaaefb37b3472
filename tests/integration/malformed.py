#!/usr/bin/env python3
"""Hostile tar archives for malformed.sh, and the checks that run tarkv (and walk tarmount
mounts) over them.

    malformed.py gen OUTDIR
        Write the hand-made archives and OUTDIR/cases.json (one object per archive: what
        must, may and must not be served, the exit statuses allowed, a time bound).
    malformed.py check TARKV CASES.json [NAME_REGEX]
        Run tarkv over every case; one "ok:"/"FAIL:" line per check.
    malformed.py walk MOUNT CASES.json NAME TARKV
        Compare a mount of case NAME with tarkv's view of the same archive and with the
        case's expectations (paths, types, contents, link counts).
    malformed.py mksrc DIR
        The source tree of the "real" archive: ~45 members with long names, a sparse file,
        hard links, symlinks and a FIFO (malformed.sh tars it with GNU tar).
    malformed.py truncations TARKV ARCHIVE SRC WORKDIR
        Cut ARCHIVE at every 512-byte boundary; tarkv must list a subset of what GNU tar
        lists for the same bytes and serve complete members only, byte for byte.
    malformed.py bitflips TARKV SEED COUNT OUTDIR ARCHIVE...
        COUNT copies of the archives with 1-8 random bit flips each (mostly in header
        blocks; every other copy with its header checksums fixed after the flips); tarkv
        ls -lR --json and extract must not crash or hang.  Keeps the copies in OUTDIR.
    malformed.py many OUT N
        N empty files in one directory, headers built by hand (fast).
    malformed.py jsoncheck FILE.json NAMES_FILE
        The JSON tarkv printed parses, and its paths decode (surrogateescape) to the bytes
        listed (hex, one a line) in NAMES_FILE.
    malformed.py devpair A.tar B.tar
        Two archives of one size with the same first and last 2 MiB, different members.
    malformed.py pyutf OUT.tar
        A pax archive by Python's tarfile with names that are not ASCII.
    malformed.py list CASES.json FIELD | readlink-errno PATH | statcheck FILE.json
        Helpers for malformed.sh: the names of the cases with FIELD set; readlink's result
        or its errno's name; the stat --json of names-not-utf8's pax member.

Every check of a tarkv run also requires: exit status allowed, no signal, no sanitizer
report, every stderr line of the form "tarkv: SOURCE: ...", and an end within the time bound.
"""
import hashlib
import json
import os
import random
import re
import shutil
import stat
import subprocess
import sys
import tempfile
import time

ENV = dict(os.environ, LC_ALL="C", TZ="UTC")
SAN_RE = re.compile(rb"(AddressSanitizer|LeakSanitizer|UndefinedBehaviorSanitizer|"
                    rb"runtime error:|Segmentation fault|core dumped|GLib-CRITICAL|"
                    rb"GLib-ERROR|\*\*\* )")
n_ok = 0
n_fail = 0


def ok(msg):
    global n_ok
    n_ok += 1
    print("ok: " + msg, flush=True)


def fail(msg):
    global n_fail
    n_fail += 1
    print("FAIL: " + msg, flush=True)


def sha(b):
    return hashlib.sha256(b).hexdigest()


# ---- building headers by hand ------------------------------------------------------------

def octal(n, width):
    """A NUL-terminated octal field of width bytes."""
    return b"%0*o\0" % (width - 1, n)


def b256(n, width):
    """GNU base-256: 0x80 then big-endian for n >= 0, two's complement with 0xff for n < 0."""
    if n >= 0:
        b = bytearray(n.to_bytes(width, "big"))
        if b[0] & 0x80:
            raise ValueError("too big")
        b[0] |= 0x80
        return bytes(b)
    return (n % (1 << (8 * width))).to_bytes(width, "big")


def header(name, typeflag=b"0", size=0, mode=None, mtime=1600000000, linkname=b"",
           fmt="ustar", uid=0, gid=0, fields=None, chksum=None, uname=b"root", gname=b"root",
           devmajor=0, devminor=0):
    """One 512-byte header.  Numeric arguments may be bytes (written raw into the field).
    fields: {offset: bytes} written last, before the checksum; chksum: bytes for the field
    (else computed)."""
    h = bytearray(512)
    if mode is None:
        mode = {b"2": 0o777, b"5": 0o755}.get(typeflag, 0o644)

    def put(off, width, v):
        if isinstance(v, int):
            v = octal(v, width)
        v = v[:width]
        h[off:off + len(v)] = v

    h[0:min(len(name), 100)] = name[:100]
    put(100, 8, mode)
    put(108, 8, uid)
    put(116, 8, gid)
    put(124, 12, size)
    put(136, 12, mtime)
    h[156:157] = typeflag
    h[157:157 + min(len(linkname), 100)] = linkname[:100]
    if fmt == "ustar":
        h[257:265] = b"ustar\x0000"
    elif fmt == "gnu":
        h[257:265] = b"ustar  \0"
    if fmt != "v7":
        h[265:265 + len(uname)] = uname
        h[297:297 + len(gname)] = gname
        if typeflag in (b"3", b"4"):
            put(329, 8, devmajor)
            put(337, 8, devminor)
    for off, val in (fields or {}).items():
        h[off:off + len(val)] = val
    assert len(h) == 512
    h[148:156] = b" " * 8
    if chksum is None:
        h[148:156] = b"%06o\0 " % sum(h)
    else:
        h[148:156] = chksum(h) if callable(chksum) else chksum
    return bytes(h)


def pad(d):
    return d + bytes(-len(d) % 512)


def member(name, data=b"", typeflag=b"0", **kw):
    return header(name, typeflag, size=len(data), **kw) + pad(data)


def pax_record(key, value):
    body = b" " + key + b"=" + value + b"\n"
    n = len(body) + 1
    while len(b"%d" % n) + len(body) != n:
        n = len(b"%d" % n) + len(body)
    return b"%d" % n + body


def pax_data(recs):
    return b"".join(pax_record(k, v) for k, v in recs)


def paxhdr(data, typeflag=b"x", name=b"PaxHeader/x", size=None):
    return header(name, typeflag, size=len(data) if size is None else size) + pad(data)


def pax(recs, typeflag=b"x"):
    return paxhdr(pax_data(recs), typeflag)


def longname(name, typeflag=b"L", nul=True):
    d = name + (b"\0" if nul else b"")
    return header(b"././@LongLink", typeflag, size=len(d), fmt="gnu") + pad(d)


END = bytes(1024)
BEFORE = b"before: a good member ahead of the damage\n"
AFTER = b"after: a good member behind the damage\n"


# ---- the cases -----------------------------------------------------------------------------

class Gen:
    def __init__(self, out):
        self.out = out
        self.cases = []

    def add(self, name, data, desc, rc=(0, 2), must=None, may=None, others=(), forbid=(),
            report=True, json_expect=None, time_limit=20, mount=True, tar_compare=False,
            nlink=None, err=None, cmd="ls", rss=None):
        """must/may: {path(str, surrogateescape): bytes content, or None for a non-file}."""
        path = os.path.join(self.out, name + ".tar")
        with open(path, "wb") as f:
            f.write(data)

        def enc(d):
            return {k: (None if v is None else {"sha": sha(v), "size": len(v)})
                    for k, v in (d or {}).items()}
        self.cases.append({
            "name": name, "file": path, "desc": desc, "rc": list(rc), "must": enc(must),
            "may": enc(may), "others": list(others), "forbid": list(forbid),
            "report": report, "json": json_expect or {}, "time": time_limit, "mount": mount,
            "tar_compare": tar_compare, "nlink": nlink or {}, "err": err, "cmd": cmd,
            "rss": rss})

    def write(self):
        with open(os.path.join(self.out, "cases.json"), "w") as f:
            json.dump(self.cases, f, indent=1)


def gen_numeric(g):
    B = member(b"before", BEFORE)
    A = member(b"after", AFTER)
    body = b"x" * 700
    big = {"before": BEFORE}

    def sized(name, size_field, **kw):
        return header(name, b"0", size=size_field, **kw) + pad(body)

    g.add("size-octal-past-end", B + sized(b"big", 0o77777777777) + A + END,
          "octal size (8 GiB) past the end of the archive", must=big)
    g.add("size-b256-past-end", B + sized(b"big", b256(1 << 40, 12)) + A + END,
          "base-256 size (1 TiB) past the end", must=big)
    g.add("size-b256-int64max", B + sized(b"big", b256((1 << 63) - 1, 12)) + A + END,
          "base-256 size INT64_MAX", must=big)
    g.add("size-b256-overflow", B + sized(b"big", b"\x80" + b"\xff" * 11) + A + END,
          "base-256 size that overflows 64 bits", must=big)
    g.add("size-b256-uint64max", B + sized(b"big", b"\x80\x00\x00\x00" + b"\xff" * 8) + A + END,
          "base-256 size 2^64-1", must=big)
    g.add("size-b256-negative", B + sized(b"neg", b256(-2, 12)) + A + END,
          "negative base-256 size", must=big)
    g.add("size-b256-negative-min", B + sized(b"neg", b"\xff" + b"\x80" + bytes(10)) + A + END,
          "most negative 12-byte base-256 size", must=big)
    g.add("size-all-7f", B + sized(b"big", b"\x7f" * 12) + A + END,
          "size field of 0x7f bytes (neither octal nor base-256)", must=big)
    g.add("size-all-ff", B + sized(b"big", b"\xff" * 12) + A + END,
          "size field of 0xff bytes (base-256 -1)", must=big)
    g.add("size-non-octal", B + sized(b"big", b"0000000009\0") + A + END,
          "size with a digit 9", must=big)
    g.add("size-b256-first", sized(b"big", b256(1 << 40, 12)) + B + END,
          "the first header's size is past the end", must={})
    g.add("size-negative-first", sized(b"neg", b256(-1, 12)) + B + END,
          "the first header's size is negative", must={})
    # sizes that are fine but unusual
    g.add("size-b256-exact", B + header(b"f", size=b256(5, 12)) + pad(b"12345") + A + END,
          "base-256 size that is right", rc=(0,), report=False,
          must={"before": BEFORE, "f": b"12345", "after": AFTER}, tar_compare=True)
    g.add("mtime-b256-negative", B + header(b"old", size=3, mtime=b256(-1000, 12)) + pad(b"old")
          + A + END, "negative base-256 mtime", rc=(0,), report=False,
          must={"before": BEFORE, "old": b"old", "after": AFTER},
          json_expect={"old": {"mtime": -1000}}, tar_compare=True)
    g.add("mtime-b256-int64max", B + header(b"future", size=3, mtime=b256((1 << 63) - 1, 12))
          + pad(b"fut") + A + END, "mtime INT64_MAX (base-256)", rc=(0, 2), report=False,
          must={"before": BEFORE, "after": AFTER}, may={"future": b"fut"})
    g.add("mtime-b256-int64min", B + header(b"past", size=3, mtime=b256(-(1 << 63), 12))
          + pad(b"pst") + A + END, "mtime INT64_MIN (base-256)", rc=(0, 2), report=False,
          must={"before": BEFORE, "after": AFTER}, may={"past": b"pst"})
    g.add("uid-b256-negative", B + header(b"u", size=1, uid=b256(-5, 8), gid=b256(-7, 8))
          + pad(b"u") + A + END, "negative base-256 uid and gid", rc=(0, 2),
          must={"before": BEFORE, "after": AFTER}, may={"u": b"u"})
    g.add("uid-b256-huge", B + header(b"u", size=1, uid=b256((1 << 56) - 1, 8)) + pad(b"u")
          + A + END, "uid 2^56-1 (base-256)", rc=(0, 2),
          must={"before": BEFORE, "after": AFTER}, may={"u": b"u"})
    g.add("mode-b256", B + header(b"m", size=1, mode=b256(0o755, 8)) + pad(b"m") + A + END,
          "mode in base-256", report=False, must={"before": BEFORE, "after": AFTER},
          may={"m": b"m"})
    g.add("mode-b256-negative", B + header(b"m", size=1, mode=b256(-1, 8)) + pad(b"m") + A + END,
          "mode -1 in base-256", report=False, must={"before": BEFORE}, may={"m": b"m",
                                                                             "after": AFTER})
    g.add("mode-garbage", B + header(b"m", size=1, mode=b"rwxrwxr\0") + pad(b"m") + A + END,
          "mode of letters", must={"before": BEFORE}, may={"m": b"m", "after": AFTER})

    def b256sum(h):
        return b256(sum(h), 8)

    g.add("chksum-b256", B + header(b"c", size=1, chksum=b256sum) + pad(b"c") + A + END,
          "checksum in base-256", report=False, must={"before": BEFORE},
          may={"c": b"c", "after": AFTER})
    g.add("chksum-b256-first", header(b"c", size=1, chksum=b256sum) + pad(b"c") + A + END,
          "checksum in base-256, first header", report=False, must={},
          may={"c": b"c", "after": AFTER})
    g.add("chksum-spaces", B + header(b"c", size=1, chksum=b" " * 8) + pad(b"c") + A + END,
          "checksum field of spaces", must={"before": BEFORE}, may={"c": b"c", "after": AFTER})
    g.add("chksum-huge-octal", B + header(b"c", size=1, chksum=b"77777777") + pad(b"c") + A + END,
          "checksum field 77777777 (no terminator)", must={"before": BEFORE},
          may={"c": b"c", "after": AFTER})
    g.add("devmajor-b256-huge", B + header(b"dev", b"3", devmajor=b256((1 << 56) - 1, 8),
                                           devminor=b256(-1, 8)) + A + END,
          "character device with huge and negative base-256 numbers", report=False,
          must={"before": BEFORE}, may={"after": AFTER}, others=["dev"])
    g.add("all-numbers-blank", B + header(b"blank", mode=b" " * 8, uid=b" " * 8, gid=b" " * 8,
                                          size=b" " * 12, mtime=b" " * 12) + A + END,
          "every numeric field blank", report=False, must={"before": BEFORE, "after": AFTER},
          may={"blank": b""})
    g.add("all-numbers-nul", B + header(b"nul", mode=bytes(8), uid=bytes(8), gid=bytes(8),
                                        size=bytes(12), mtime=bytes(12)) + A + END,
          "every numeric field NUL", report=False, must={"before": BEFORE, "after": AFTER},
          may={"nul": b""})
    # data on members that carry none: GNU tar -x, bsdtar and Python's tarfile all read the
    # next header right after them, so the "data" below is a member of its own.
    inner = member(b"inner", b"INNER\n")
    for tf, nm, desc, extra in ((b"5", b"d/", "directory", {"d": None}),
                                (b"1", b"h", "hard link", {"h": BEFORE}),
                                (b"2", b"s", "symbolic link", {"s": None}),
                                (b"6", b"p", "FIFO", {"p": None})):
        name = "data-on-" + {b"5": "dir", b"1": "hardlink", b"2": "symlink", b"6": "fifo"}[tf]
        g.add(name, B + header(nm, tf, size=len(inner), linkname=b"before" if tf in b"12" else b"")
              + inner + A + END,
              "a %s whose size field covers the next header (GNU tar -x, bsdtar and tarfile "
              "read that header)" % desc, rc=(0,), report=False,
              must=dict({"before": BEFORE, "after": AFTER, "inner": b"INNER\n"}, **extra),
              tar_compare=True)


def gen_pax(g):
    B = member(b"before", BEFORE)
    A = member(b"after", AFTER)
    M = member(b"m", b"member data\n")
    common = {"before": BEFORE}
    may_m = {"m": b"member data\n", "after": AFTER, "good-name": b"member data\n"}

    def bad(name, data, desc, size=None, rc=(0, 2), extra_may=None, report=True):
        may = dict(may_m, **(extra_may or {}))
        g.add(name, B + paxhdr(data, size=size) + M + A + END, desc, rc=rc, must=common, may=may,
              report=report)

    good = pax_record(b"path", b"good-name")
    bad("pax-len-short", good + b"10 mtime=12345\n", "a record shorter than its text")
    bad("pax-len-long", good + b"30 mtime=12345\n12 uid=1\n", "a record longer than its text")
    bad("pax-len-off-by-one", good + b"16 mtime=12345\n\n", "a length one past the newline")
    bad("pax-no-equals", good + b"12 mtime123\n", "a record without '='")
    bad("pax-empty-key", good + b"9 =12345\n", "a record with an empty key")
    bad("pax-no-newline", good + b"14 mtime=12345x", "a record whose last byte is not a newline")
    bad("pax-huge-len", good + b"99999999999 path=x\n", "length 99999999999")
    bad("pax-huge-len-20", good + b"99999999999999999999999 path=x\n", "a 23-digit length")
    bad("pax-nondigit-len", good + b"1x path=abc\n", "a length with a letter")
    bad("pax-no-len", good + b" path=abc\n", "a record starting with a space")
    bad("pax-len-no-space", good + b"13path=abcde\n", "no space after the length")
    bad("pax-empty-record", good + b"3 \n", "a record of length 3 ('3 \\n')")
    bad("pax-len-zero", good + b"0 \n", "a record of length 0")
    bad("pax-len-one", good + b"1 ", "a record of length 1")
    bad("pax-newline-only", good + b"\n\n\n", "newlines where a record should be")
    rec = b"50 path=spans-beyond-the-header-size-xxxxxxxxxx\n"
    bad("pax-spans-header", good + rec, "a record longer than the header's size",
        size=len(good) + 20)
    bad("pax-size-negative", pax_data([(b"size", b"-1")]), "pax size=-1")
    bad("pax-size-huge", pax_data([(b"size", b"99999999999999999999999")]), "pax size=10^23")
    bad("pax-size-int64max", pax_data([(b"size", b"9223372036854775807")]),
        "pax size=INT64_MAX (past the end)")
    bad("pax-size-garbage", pax_data([(b"size", b"12abc")]), "pax size=12abc")
    bad("pax-size-empty", pax_data([(b"size", b"")]), "pax size= (empty: header size used)",
        report=False)
    bad("pax-mtime-garbage", pax_data([(b"mtime", b"yesterday")]), "pax mtime=yesterday")
    bad("pax-mtime-huge", pax_data([(b"mtime", b"9" * 40 + b".5")]), "pax mtime=10^40")
    bad("pax-mtime-dots", pax_data([(b"mtime", b"1.2.3")]), "pax mtime=1.2.3")
    bad("pax-mtime-neg-frac", pax_data([(b"mtime", b"-0.000000001")]), "pax mtime=-1ns",
        rc=(0,), report=False)
    bad("pax-uid-huge", pax_data([(b"uid", b"99999999999"), (b"gid", b"-5")]),
        "pax uid=99999999999 gid=-5")
    bad("pax-path-empty", pax_data([(b"path", b"")]), "pax path= (deletes: header name)",
        report=False)
    bad("pax-path-nul", pax_data([(b"path", b"a\0b")]), "pax path with a NUL byte",
        extra_may={"a": b"member data\n", "a\udc00b": b"member data\n"}, report=False)
    bad("pax-xattr-nul-name", pax_data([(b"SCHILY.xattr.user.a\0b", b"v"),
                                        (b"LIBARCHIVE.xattr.user.%00", b"dg==")]),
        "xattr names with NUL bytes", report=False)
    bad("pax-libarchive-xattr-bad64", pax_data([(b"LIBARCHIVE.xattr.user.x", b"!!!")]),
        "LIBARCHIVE.xattr with a value that is not base64")
    bad("pax-devmajor-huge", pax_data([(b"SCHILY.devmajor", b"99999999999999")]),
        "SCHILY.devmajor past 32 bits on a regular file", report=False)
    # the header's own size field is wrong for a pax header
    g.add("pax-header-too-big", B + paxhdr(good, size=70 << 20) + M + A + END,
          "a pax header of 70 MiB (over the 64 MiB cap), archive shorter", must=common,
          may=may_m)
    g.add("pax-header-past-end", B + paxhdr(good, size=20000) + M + A + END,
          "a pax header whose size runs past the end", must=common, may=may_m)
    g.add("pax-header-b256-negative", B + paxhdr(good, size=b256(-1, 12)) + M + A + END,
          "a pax header of negative size", must=common, may=may_m)
    g.add("pax-global-bad", B + paxhdr(pax_record(b"mtime", b"1234") + b"9 mtime=1", typeflag=b"g")
          + M + A + END,
          "a malformed global header", must=common, may=may_m)
    g.add("pax-at-end", B + pax([(b"path", b"orphan")]) + END,
          "a pax header with no member before the end marker", must=common, rc=(0, 2))
    g.add("pax-chain-no-member", B + pax([(b"path", b"x1")]) * 200 + END,
          "200 pax headers and no member", must=common, rc=(0, 2))
    # quadratic traps: many records of the same kind (bounded time)
    many_x = b"".join(pax_record(b"SCHILY.xattr.user.a%d" % i, b"v") for i in range(150000))
    g.add("pax-150k-xattrs", B + paxhdr(many_x) + M + A + END,
          "150,000 xattr records in one pax header (4.4 MiB): must not take quadratic time",
          must=dict(common, m=b"member data\n", after=AFTER), rc=(0,), report=False,
          time_limit=15, mount=False)
    many_p = pax_record(b"comment", b"x") * 300000
    g.add("pax-300k-records", B + paxhdr(many_p + good) + M + A + END,
          "300,000 comment records in one pax header", rc=(0,), report=False,
          must=dict(common, after=AFTER, **{"good-name": b"member data\n"}), time_limit=15,
          mount=False)

    # ---- GNU sparse in pax headers ----------------------------------------------------------
    def sp01(name, mapstr, realsize, stored, extra=(), numblocks=None):
        # as GNU tar writes 0.1: size, numblocks, name, map
        if numblocks is None:
            numblocks = b"%d" % ((mapstr.count(b",") + 1) // 2)
        recs = [(b"GNU.sparse.size", b"%d" % realsize), (b"GNU.sparse.numblocks", numblocks),
                (b"GNU.sparse.name", name)]
        if mapstr is not None:
            recs.append((b"GNU.sparse.map", mapstr))
        recs += list(extra)
        return pax(recs) + member(b"GNUSparseFile.0/" + name, stored)

    data = b"A" * 100 + b"B" * 100
    # GNU tar reads each chunk from a block boundary (it writes chunks of whole blocks), so
    # the controls that GNU tar checks have chunks of 512 bytes
    # (and holes of 8 KiB, so that the extraction has real holes)
    d512 = b"A" * 4096 + b"B" * 4096
    f512 = b"A" * 4096 + bytes(8192) + b"B" * 4096
    g.add("sparse01-good", B + sp01(b"sp", b"0,4096,12288,4096,16384,0", 16384, d512) + A + END,
          "a valid sparse 0.1 map (control)", rc=(0,), report=False,
          must={"before": BEFORE, "after": AFTER, "sp": f512}, tar_compare=True)
    g.add("sparse01-unaligned", B + sp01(b"sp", b"0,100,1000,100", 2000, data) + A + END,
          "sparse 0.1 with chunks that are not whole blocks (stored back to back)", rc=(0,),
          report=False, must={"before": BEFORE, "after": AFTER,
                              "sp": b"A" * 100 + bytes(900) + b"B" * 100 + bytes(900)})
    for nm, mp, real, desc in (
            ("sparse01-out-of-order", b"1000,100,0,100", 2000, "chunks out of order"),
            ("sparse01-overlap", b"0,100,50,100", 2000, "overlapping chunks"),
            ("sparse01-past-size", b"0,100,1950,100", 2000, "a chunk past the real size"),
            ("sparse01-offset-overflow", b"0,100,18446744073709551600,100", 2000,
             "offset+length past 2^64"),
            ("sparse01-count-mismatch", b"0,100,1000,50", 2000,
             "chunks that add up to less than the stored data"),
            ("sparse01-odd", b"0,100,1000", 2000, "an odd count of numbers"),
            ("sparse01-garbage", b"0,100,x,100", 2000, "a letter in the map"),
            ("sparse01-empty-fields", b",,,", 2000, "empty fields"),
            ("sparse01-huge-number", b"0,100,1000,99999999999999999999999", 2000,
             "a number past 2^64")):
        g.add(nm, B + sp01(b"sp", mp, real, data) + A + END, "sparse 0.1: " + desc,
              must={"before": BEFORE}, may={"after": AFTER})
    g.add("sparse01-numblocks-mismatch",
          B + sp01(b"sp", b"0,100,1000,100", 2000, data, numblocks=b"3") + A + END, "sparse 0.1: numblocks=3 for a map of 2", must={"before": BEFORE}, report=False,
          may={"after": AFTER, "sp": b"A" * 100 + bytes(900) + b"B" * 100 + bytes(900)})
    g.add("sparse01-numblocks-huge",
          B + sp01(b"sp", b"0,100,1000,100", 2000, data, numblocks=b"99999999999999") + A + END,
          "sparse 0.1: numblocks=99999999999999", must={"before": BEFORE}, report=False,
          may={"after": AFTER, "sp": b"A" * 100 + bytes(900) + b"B" * 100 + bytes(900)})
    g.add("sparse01-no-realsize",
          B + pax([(b"GNU.sparse.major", b"0"), (b"GNU.sparse.minor", b"1"),
                   (b"GNU.sparse.name", b"sp"), (b"GNU.sparse.map", b"0,100,1000,100")])
          + member(b"GNUSparseFile.0/sp", data) + A + END, "sparse 0.1 without a real size",
          must={"before": BEFORE}, may={"after": AFTER})
    g.add("sparse01-realsize-huge", B + sp01(b"sp", b"0,100,1000,100", (1 << 63) - 1, data) + A
          + END, "sparse 0.1: realsize INT64_MAX", must={"before": BEFORE},
          may={"after": AFTER}, others=["sp"])
    g.add("sparse00-unpaired",
          B + pax([(b"GNU.sparse.size", b"2000"), (b"GNU.sparse.numblocks", b"2"),
                   (b"GNU.sparse.offset", b"0"), (b"GNU.sparse.offset", b"1000"),
                   (b"GNU.sparse.numbytes", b"100")]) + member(b"sp", data) + A + END,
          "sparse 0.0: two offsets in a row", must={"before": BEFORE},
          may={"after": AFTER, "sp": data})
    g.add("sparse00-numbytes-first",
          B + pax([(b"GNU.sparse.size", b"2000"), (b"GNU.sparse.numbytes", b"100"),
                   (b"GNU.sparse.offset", b"0")]) + member(b"sp", data) + A + END,
          "sparse 0.0: numbytes before offset", must={"before": BEFORE},
          may={"after": AFTER, "sp": data})
    g.add("sparse00-out-of-order",
          B + pax([(b"GNU.sparse.size", b"2000"), (b"GNU.sparse.offset", b"1000"),
                   (b"GNU.sparse.numbytes", b"100"), (b"GNU.sparse.offset", b"0"),
                   (b"GNU.sparse.numbytes", b"100")]) + member(b"sp", data) + A + END,
          "sparse 0.0: chunks out of order", must={"before": BEFORE}, may={"after": AFTER})

    # sparse 1.0: the map heads the data
    def sp10(name, mapbytes, realsize, chunkdata, stored_size=None):
        stored = pad(mapbytes) + chunkdata
        recs = [(b"GNU.sparse.major", b"1"), (b"GNU.sparse.minor", b"0"),
                (b"GNU.sparse.name", name), (b"GNU.sparse.realsize", b"%d" % realsize)]
        return pax(recs) + header(b"GNUSparseFile.0/" + name, size=len(stored)
                                  if stored_size is None else stored_size) + pad(stored)

    g.add("sparse10-good", B + sp10(b"sp", b"3\n0\n4096\n12288\n4096\n16384\n0\n", 16384, d512) + A
          + END, "a valid sparse 1.0 map (control)", rc=(0,), report=False,
          must={"before": BEFORE, "after": AFTER, "sp": f512}, tar_compare=True)
    g.add("sparse10-huge-count", B + sp10(b"sp", b"99999999999\n0\n100\n", 2000, data) + A + END,
          "sparse 1.0: count 99999999999", must={"before": BEFORE}, may={"after": AFTER})
    g.add("sparse10-count-16M-truncated",
          B + sp10(b"sp", b"16777215\n" + b"0\n1\n" * 300, 2000, data) + A + END,
          "sparse 1.0: count 16777215 and a map of 300 pairs (runs into the data)",
          must={"before": BEFORE}, may={"after": AFTER})
    g.add("sparse10-map-past-archive",
          B + sp10(b"sp", b"16777215\n" + b"0\n1\n" * 300, 2000, b"", stored_size=1 << 40),
          "sparse 1.0: count 16777215, stored size past the end of the archive",
          must={"before": BEFORE})
    g.add("sparse10-garbage", B + sp10(b"sp", b"2\n0\nxyz\n1000\n100\n", 2000, data) + A + END,
          "sparse 1.0: a letter in the map", must={"before": BEFORE}, may={"after": AFTER})
    g.add("sparse10-no-newline", B + sp10(b"sp", b"2\n0\n100\n1000\n100", 2000, data) + A + END,
          "sparse 1.0: no newline after the last number (padding NULs follow)",
          must={"before": BEFORE}, may={"after": AFTER})
    g.add("sparse10-overlap", B + sp10(b"sp", b"2\n0\n100\n50\n100\n", 2000, data) + A + END,
          "sparse 1.0: overlapping chunks", must={"before": BEFORE}, may={"after": AFTER})
    g.add("sparse10-stored-smaller-than-map",
          B + sp10(b"sp", b"2\n0\n100\n1000\n100\n", 2000, b"", stored_size=100) + A + END,
          "sparse 1.0: the member's size is smaller than its map", must={"before": BEFORE},
          may={"after": AFTER})
    # a long valid map: parsing it must take time linear in its length
    n = 400000
    mp = b"%d\n" % n + b"".join(b"%d\n1\n" % (2 * i) for i in range(n))
    g.add("sparse10-400k-chunks", B + sp10(b"sp", mp, 2 * n, b"x" * n) + A + END,
          "sparse 1.0 with a valid map of 400,000 chunks (5 MiB): GNU tar lists it in "
          "0.1 s; indexing must not be quadratic", rc=(0,), report=False,
          must={"before": BEFORE, "after": AFTER, "sp": b"x\0" * n}, time_limit=15,
          mount=False)

    # ---- old GNU 'S' ------------------------------------------------------------------------
    def gnu_s(name, chunks, realsize, stored, ext_blocks=(), isextended=None):
        f = {}
        for i, (o, l) in enumerate(chunks[:4]):
            f[386 + 24 * i] = octal(o, 12) if isinstance(o, int) else o
            f[386 + 24 * i + 12] = octal(l, 12) if isinstance(l, int) else l
        f[483] = octal(realsize, 12) if isinstance(realsize, int) else realsize
        if isextended is None:
            isextended = bool(ext_blocks)
        f[482] = b"\1" if isextended else b"\0"
        return header(name, b"S", size=len(stored), fmt="gnu", fields=f) + b"".join(
            ext_blocks) + pad(stored)

    def ext(chunks, more):
        b = bytearray(512)
        for i, (o, l) in enumerate(chunks):
            b[24 * i:24 * i + 12] = (octal(o, 12) if isinstance(o, int) else o).ljust(12, b"\0")
            b[24 * i + 12:24 * i + 24] = (octal(l, 12) if isinstance(l, int) else l).ljust(
                12, b"\0")
        b[504] = 1 if more else 0
        return bytes(b)

    GB = member(b"before", BEFORE, fmt="gnu")
    GA = member(b"after", AFTER, fmt="gnu")
    full = b"A" * 100 + bytes(900) + b"B" * 100 + bytes(900)
    g.add("gnuS-good", GB + gnu_s(b"sp", [(0, 4096), (12288, 4096), (16384, 0)], 16384, d512) + GA
          + END, "old GNU sparse (control)", rc=(0,), report=False,
          must={"before": BEFORE, "after": AFTER, "sp": f512}, tar_compare=True)
    many = [(i * 12288, 4096) for i in range(30)] + [(30 * 12288, 0)]
    g.add("gnuS-ext-good", GB + gnu_s(b"sp", many[:4], 30 * 12288, b"C" * 4096 * 30,
                                     [ext(many[4:25], True), ext(many[25:], False)]) + GA + END,
          "old GNU sparse with two extension blocks (control)", rc=(0,), report=False,
          must={"before": BEFORE, "after": AFTER, "sp": (b"C" * 4096 + bytes(8192)) * 30},
          tar_compare=True)
    g.add("gnuS-ext-garbage",
          GB + gnu_s(b"sp", [(0, 100)], 2000, data, [b"\xff" * 512]) + GA + END,
          "old GNU sparse with an extension block of 0xff bytes", must={"before": BEFORE},
          may={"after": AFTER})
    g.add("gnuS-ext-letters",
          GB + gnu_s(b"sp", [(0, 100)], 2000, data, [ext([(b"abc", b"def")], False)]) + GA + END,
          "old GNU sparse with letters in an extension block", must={"before": BEFORE},
          may={"after": AFTER})
    g.add("gnuS-ext-endless",
          GB + gnu_s(b"sp", [(0, 100)], 2000, b"", [ext([], True)] * 3000),
          "old GNU sparse whose extension blocks never end (3000, then the archive ends)",
          must={"before": BEFORE})
    g.add("gnuS-ext-out-of-order",
          GB + gnu_s(b"sp", [(1000, 100)], 2000, data, [ext([(0, 100)], False)]) + GA + END,
          "old GNU sparse: an extension chunk before the header's", must={"before": BEFORE},
          may={"after": AFTER})
    g.add("gnuS-realsize-negative",
          GB + gnu_s(b"sp", [(0, 100), (1000, 100)], b256(-5, 12), data) + GA + END,
          "old GNU sparse with a negative real size", must={"before": BEFORE},
          may={"after": AFTER})
    g.add("gnuS-realsize-garbage",
          GB + gnu_s(b"sp", [(0, 100), (1000, 100)], b"zzzzzzzzzzzz", data) + GA + END,
          "old GNU sparse with a real size of letters", must={"before": BEFORE},
          may={"after": AFTER})
    g.add("gnuS-chunk-negative",
          GB + gnu_s(b"sp", [(0, b256(-100, 12)), (1000, 100)], 2000, data) + GA + END,
          "old GNU sparse with a negative chunk length", must={"before": BEFORE},
          may={"after": AFTER})
    g.add("gnuS-overlap",
          GB + gnu_s(b"sp", [(0, 100), (50, 100)], 2000, data) + GA + END,
          "old GNU sparse with overlapping chunks", must={"before": BEFORE},
          may={"after": AFTER})
    g.add("gnuS-extended-no-block",
          GB + gnu_s(b"sp", [(0, 100), (1000, 100)], 2000, b"", isextended=True),
          "old GNU sparse: 'extended' set at the very end of the archive",
          must={"before": BEFORE})

    # ---- GNU long names and links -----------------------------------------------------------
    g.add("L-huge-size", GB + header(b"././@LongLink", b"L", size=b256(1 << 40, 12), fmt="gnu")
          + pad(b"name\0") + GA + END, "an 'L' header of 1 TiB", must={"before": BEFORE},
          may={"after": AFTER})
    g.add("L-70MiB", GB + header(b"././@LongLink", b"L", size=70 << 20, fmt="gnu")
          + pad(b"name\0") + GA + END, "an 'L' header of 70 MiB (over the cap)",
          must={"before": BEFORE}, may={"after": AFTER})
    g.add("L-no-nul", GB + longname(b"n" * 512, nul=False) + member(b"short", b"s\n", fmt="gnu")
          + GA + END, "an 'L' name of exactly 512 bytes, no NUL", rc=(0,), report=False,
          must={"before": BEFORE, "after": AFTER, "n" * 512: b"s\n"})
    g.add("L-empty", GB + longname(b"", nul=False) + member(b"short", b"s\n", fmt="gnu")
          + GA + END, "an empty 'L' name", must={"before": BEFORE, "after": AFTER},
          may={"short": b"s\n"})
    g.add("L-twice", GB + longname(b"first") + longname(b"second")
          + member(b"short", b"s\n", fmt="gnu") + GA + END, "two 'L' headers in a row",
          rc=(0,), report=False, must={"before": BEFORE, "after": AFTER, "second": b"s\n"},
          tar_compare=True)
    g.add("L-at-end", GB + longname(b"orphan") + END, "an 'L' header and then the end marker",
          must={"before": BEFORE})
    g.add("K-on-regular", GB + longname(b"target", b"K") + member(b"f", b"f\n", fmt="gnu")
          + GA + END, "a 'K' long link before a regular file (ignored)", report=False,
          must={"before": BEFORE, "after": AFTER, "f": b"f\n"})
    g.add("L-then-pax", GB + longname(b"from-L") + pax([(b"path", b"from-pax")])
          + member(b"short", b"s\n") + GA + END, "both an 'L' name and a pax path",
          report=False, must={"before": BEFORE, "after": AFTER},
          may={"from-L": b"s\n", "from-pax": b"s\n"})

    # ---- odd headers --------------------------------------------------------------------------
    g.add("typeflag-unknown", B + member(b"z", b"zz\n", typeflag=b"Z") + A + END,
          "an unknown type 'Z' (a regular file, as GNU tar says)", rc=(0,),
          must={"before": BEFORE, "after": AFTER, "z": b"zz\n"})
    g.add("typeflag-nul-byte", B + member(b"z", b"zz\n", typeflag=b"\x01") + A + END,
          "type byte 0x01", rc=(0,), must={"before": BEFORE, "after": AFTER, "z": b"zz\n"})
    g.add("volume-label", header(b"LABEL", b"V", fmt="gnu") + GB + GA + END,
          "a volume label first", rc=(0,), report=False,
          must={"before": BEFORE, "after": AFTER})
    g.add("multivolume", GB + header(b"cont", b"M", size=1000, fmt="gnu") + pad(b"c" * 1000)
          + GA + END, "a multi-volume continuation", must={"before": BEFORE},
          may={"after": AFTER})
    g.add("name-100-no-nul", B + member(b"n" * 100, b"n\n") + A + END,
          "a 100-byte name with no NUL", rc=(0,), report=False,
          must={"before": BEFORE, "after": AFTER, "n" * 100: b"n\n"}, tar_compare=True)
    g.add("prefix-155-no-nul", B + header(b"n" * 100, size=2, fields={345: b"p" * 155})
          + pad(b"p\n") + A + END, "a 155-byte prefix and a 100-byte name, no NULs", rc=(0,),
          report=False,
          must={"before": BEFORE, "after": AFTER, "p" * 155 + "/" + "n" * 100: b"p\n"},
          tar_compare=True)
    g.add("name-root-file", B + member(b"./", b"root?\n") + member(b"/", b"root!\n") + A + END,
          "'./' and '/' as type '0' (directories by their slash: the root)", rc=(0,),
          report=False, must={"before": BEFORE, "after": AFTER})
    g.add("name-empty", B + member(b"", b"nameless\n") + A + END, "a member with an empty name",
          rc=(0, 2), must={"before": BEFORE}, may={"after": AFTER})
    g.add("name-dots", B + member(b"./././", b"", typeflag=b"5") + member(b"a/./b/.//c", b"c\n")
          + member(b"..", b"up\n") + member(b"a/b/../../../x", b"x\n") + A + END,
          "'.' segments, '..' members", rc=(0,),
          must={"before": BEFORE, "after": AFTER, "a/b/c": b"c\n"}, tar_compare=True)
    g.add("v7-dir-slash", header(b"d/", b"\0", fmt="v7") + header(b"d/f", b"\0", size=2, fmt="v7")
          + pad(b"f\n") + END, "v7 headers: a directory by its trailing slash", rc=(0,),
          report=False, must={"d": None, "d/f": b"f\n"}, tar_compare=True)
    g.add("star-prefix", header(b"n", size=2, fields={345: b"pre", 508: b"tar\0"})
          + pad(b"s\n") + END, "a star header (prefix of 131 bytes, 'tar' at 508)", rc=(0,),
          report=False, must={"pre/n": b"s\n"})
    g.add("dumpdir", B + header(b"dd/", b"D", size=12, fmt="gnu") + pad(b"Yfile\0Nx\0\0\0\0")
          + A + END, "a GNU dumpdir with contents", rc=(0,), report=False,
          must={"before": BEFORE, "after": AFTER, "dd": None})
    g.add("zero-then-garbage", B + bytes(512) + b"\xff" * 512 + A + END,
          "one zero block, then a block of 0xff", must={"before": BEFORE})
    g.add("only-extensions", pax([(b"path", b"p")]) + longname(b"l") + END,
          "only extension headers, then the end", must={})


def gen_links(g):
    B = member(b"before", BEFORE)
    parts = [member(b"a0", b"chain\n")]
    for i in range(1, 1000):
        parts.append(header(b"a%d" % i, b"1", linkname=b"a%d" % (i - 1)))
    g.add("hardlink-chain-1000", B + b"".join(parts) + END,
          "1000 hard links, each to the one before", rc=(0,), report=False,
          must=dict({"before": BEFORE}, **{"a%d" % i: b"chain\n" for i in range(1000)}),
          nlink={"a0": 1000, "a999": 1000}, tar_compare=True)
    g.add("hardlink-loop", B + header(b"a", b"1", linkname=b"b") + header(b"b", b"1", linkname=b"a")
          + END, "a links to b, b links to a (neither exists)", rc=(0, 2),
          must={"before": BEFORE}, tar_compare=True)
    g.add("hardlink-missing", B + header(b"h", b"1", linkname=b"nowhere") + member(b"nowhere", b"late\n")
          + END, "a hard link to a member that comes later", rc=(0, 2),
          must={"before": BEFORE, "nowhere": b"late\n"}, tar_compare=True)
    g.add("hardlink-to-dir", B + header(b"d/", b"5") + header(b"h", b"1", linkname=b"d") + END,
          "a hard link to a directory", rc=(0, 2), must={"before": BEFORE, "d": None},
          tar_compare=True)
    g.add("hardlink-self", B + member(b"f", b"self\n") + header(b"f", b"1", linkname=b"f") + END,
          "a file, then a hard link from it to itself", rc=(0,), report=False,
          must={"before": BEFORE, "f": b"self\n"}, nlink={"f": 1}, tar_compare=True)
    g.add("hardlink-self-alone", B + header(b"g", b"1", linkname=b"g") + END,
          "a hard link to itself and nothing else by that name", rc=(0, 2),
          must={"before": BEFORE}, tar_compare=True)
    g.add("hardlink-to-symlink", B + header(b"s", b"2", linkname=b"before")
          + header(b"h", b"1", linkname=b"s") + END, "a hard link to a symlink", rc=(0,),
          report=False, must={"before": BEFORE, "s": None, "h": None}, nlink={"h": 2},
          tar_compare=True)
    g.add("hardlink-replaced-target", B + member(b"t", b"old\n") + header(b"h", b"1", linkname=b"t")
          + member(b"t", b"new\n") + END, "a hard link, then its target replaced", rc=(0,),
          report=False, must={"before": BEFORE, "t": b"new\n", "h": b"old\n"}, tar_compare=True)
    g.add("hardlink-through-dotdot", B + member(b"d/t", b"t\n") + header(b"h", b"1", linkname=b"d/../d/t")
          + END, "a hard link target with '..' inside", rc=(0, 2),
          must={"before": BEFORE, "d/t": b"t\n"}, may={"h": b"t\n"})
    # symlinks
    g.add("symlink-self", B + header(b"s", b"2", linkname=b"s") + END, "a symlink to itself",
          rc=(0,), report=False, must={"before": BEFORE, "s": None}, tar_compare=True)
    g.add("symlink-loops", B + header(b"a", b"2", linkname=b"b") + header(b"b", b"2", linkname=b"a")
          + header(b"d/", b"5") + header(b"d/up", b"2", linkname=b"..")
          + header(b"d/here", b"2", linkname=b".")
          + header(b"d/deep", b"2", linkname=b"../d/../d/deep") + END,
          "symlink loops: a<->b, d/up -> .., d/here -> ., d/deep -> itself through ..",
          rc=(0,), report=False,
          must={"before": BEFORE, "a": None, "b": None, "d": None, "d/up": None,
                "d/here": None, "d/deep": None}, tar_compare=True)
    g.add("symlink-absolute", B + header(b"root", b"2", linkname=b"/")
          + header(b"pw", b"2", linkname=b"/etc/passwd")
          + header(b"up", b"2", linkname=b"../../../../etc/passwd") + END,
          "symlinks out of the tree (served as symlinks, never followed by tarkv)", rc=(0,),
          report=False, must={"before": BEFORE, "root": None, "pw": None, "up": None},
          tar_compare=True)
    g.add("symlink-empty-target", B + header(b"e", b"2", linkname=b"") + END,
          "a symlink with an empty target", rc=(0, 2), must={"before": BEFORE}, report=False,
          others=["e"])


def gen_names(g):
    B = member(b"before", BEFORE)
    # 4000 directory levels through a pax path
    deep = b"d/" * 4000 + b"f"
    g.add("deep-4000-pax", B + pax([(b"path", deep)]) + member(b"placeholder", b"deep\n") + END,
          "a path 4000 directories deep (pax path)", rc=(0,), report=False,
          must={"before": BEFORE, deep.decode(): b"deep\n"}, mount=False)
    # deeper: 100,000 levels (a 200 KB pax path); listing it would print O(depth^2) bytes,
    # so only indexing is checked
    g.add("deep-100k-pax", B + pax([(b"path", b"d/" * 100000 + b"f")])
          + member(b"placeholder", b"deep\n") + END,
          "a path 100,000 directories deep (pax path): indexed or refused, never a crash",
          rc=(0, 2), report=False, cmd="info", mount=False, time_limit=20, rss=512)
    # 100 members, each at the bottom of its own 4000-deep branch (3.4 MB): memory must
    # follow the number of entries (400,000), not depth times path length
    g.add("deep-branches", b"".join(pax([(b"path", b"b%d/" % i + b"d/" * 4000 + b"f")])
                                    + member(b"placeholder", b"deep\n") for i in range(100))
          + END, "100 branches 4000 directories deep (400,000 entries): bounded memory and time",
          rc=(0,), report=False, cmd="info", mount=False, time_limit=20, rss=512)
    # 64 KiB long name made of 250-byte segments via GNU 'L'
    seg = b"s" * 250
    long_path = b"/".join([seg] * 262)[:65536 - 20] + b"/leaf"
    g.add("longname-64k-segments", member(b"before", BEFORE, fmt="gnu") + longname(long_path)
          + member(b"short", b"long\n", fmt="gnu") + END,
          "a 64 KiB path of 250-byte segments via GNU 'L'", rc=(0,), report=False,
          must={"before": BEFORE, long_path.decode(): b"long\n"}, mount=False)
    # one component of 64 KiB, with siblings before and after it in the same directory
    comp = b"c" * 65536
    g.add("longname-64k-component", member(b"dir/a-before", BEFORE, fmt="gnu")
          + longname(b"dir/b" + comp) + member(b"short", b"huge name\n", fmt="gnu")
          + member(b"dir/c-after", b"after\n", fmt="gnu")
          + longname(b"dir/d" + b"d" * 2000) + member(b"short", b"2000\n", fmt="gnu")
          + member(b"dir/e-last", b"last\n", fmt="gnu") + END,
          "a single name component of 64 KiB and one of 2 KiB (the kernel cannot take them)",
          rc=(0,), report=False,
          must={"dir/a-before": BEFORE, "dir/b" + comp.decode(): b"huge name\n",
                "dir/c-after": b"after\n", "dir/d" + "d" * 2000: b"2000\n",
                "dir/e-last": b"last\n"}, mount=False)
    g.add("longlink-64k", member(b"before", BEFORE, fmt="gnu") + longname(b"t" * 65536, b"K")
          + header(b"sym", b"2", fmt="gnu") + END, "a symlink with a 64 KiB target ('K')",
          rc=(0,), report=False, must={"before": BEFORE, "sym": None}, mount=False)
    # names that are not UTF-8 (and a few that need JSON escapes)
    names = [b"caf\xe9", b"\xff\xfe", b"\x80lone", b"over\xc0\xaflong", b"sur\xed\xa0\x80",
             b"trunc\xe2\x82", b"ok-\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80", b"ctl\x01\x1f\x7f",
             b"quote\"back\\slash", b"tab\there", b"nl\nname", b"d\xfe/in\xfd", b"\xf5\xf8\xfc",
             b"max\xf4\x90\x80\x80"]
    parts = [member(b"before", BEFORE)]
    must = {"before": BEFORE}
    for n in names:
        data = b"content of " + n + b"\n"
        parts.append(member(n, data))
        must[n.decode("utf-8", "surrogateescape")] = data
    parts.append(pax([(b"path", b"pax-\xff\xfe"), (b"SCHILY.xattr.user.\xfa\xfb", b"\xff\x00v")])
                 + member(b"x", b"pax name\n"))
    must["pax-\udcff\udcfe"] = b"pax name\n"
    g.add("names-not-utf8", b"".join(parts) + END, "names that are not UTF-8, control "
          "characters, quotes, a newline; an xattr name that is not UTF-8", rc=(0,),
          report=False, must=must, tar_compare=True)
    with open(os.path.join(g.out, "names-not-utf8.names"), "w") as f:
        for n in [b"before"] + names + [b"pax-\xff\xfe"]:
            f.write(n.hex() + "\n")


def gen_collisions(g):
    g.add("file-then-dir", member(b"x", b"file\n") + header(b"x/", b"5", mode=0o700) + END,
          "x as a file, then x/ as a directory", rc=(0,), report=False, must={"x": None},
          tar_compare=True)
    g.add("dir-then-file", header(b"x/", b"5", mode=0o700) + member(b"x", b"file\n") + END,
          "x/ as a directory, then x as a file", rc=(0,), report=False, must={"x": b"file\n"},
          tar_compare=True)
    g.add("dir-kids-then-file", header(b"x/", b"5") + member(b"x/a", b"a\n") + member(b"x", b"file\n")
          + member(b"x/b", b"b\n") + END,
          "x/ with a child, then x as a file, then x/b (GNU tar cannot replace a directory "
          "that is not empty: README says the last member wins)", rc=(0,),
          must={"x": b"file\n"}, err=r"x/b: .*not a directory")
    g.add("file-then-dir-kids", member(b"x", b"file\n") + member(b"x/a", b"a\n") + END,
          "x as a file, then x/a (skipped, as GNU tar fails to create it)", rc=(0,),
          must={"x": b"file\n"}, err=r"x/a: .*not a directory", tar_compare=True)
    g.add("symlink-then-dir", header(b"x", b"2", linkname=b"elsewhere") + member(b"x/a", b"a\n")
          + END, "x a symlink, then x/a (skipped: never through a symlink)", rc=(0,),
          must={"x": None}, err=r"x/a: .*not a directory", tar_compare=True)
    g.add("dir-replaced-twice", header(b"x/", b"5") + member(b"x/a", b"a\n") + member(b"x", b"f\n")
          + member(b"x/b", b"b\n") + header(b"x/", b"5") + member(b"x/c", b"c\n") + END,
          "dir, file over it, dir again: the old children stay gone", rc=(0,),
          must={"x": None, "x/c": b"c\n"}, forbid=["x/a"])


def cmd_gen(out):
    os.makedirs(out, exist_ok=True)
    g = Gen(out)
    gen_numeric(g)
    gen_pax(g)
    gen_links(g)
    gen_names(g)
    gen_collisions(g)
    g.write()
    print("%d cases written to %s" % (len(g.cases), out))


# ---- running tarkv -------------------------------------------------------------------------

def run(argv, timeout):
    """(rc, stdout, stderr, seconds, max RSS in KiB); rc is 'timeout' on a time-out and
    -SIGNAL for a signal."""
    t0 = time.monotonic()
    with tempfile.TemporaryFile() as fo, tempfile.TemporaryFile() as fe:
        p = subprocess.Popen(argv, stdout=fo, stderr=fe, env=ENV, stdin=subprocess.DEVNULL)
        delay = 0.001
        while True:
            pid, status, ru = os.wait4(p.pid, os.WNOHANG)
            if pid:
                rc = os.waitstatus_to_exitcode(status)
                break
            if time.monotonic() - t0 > timeout:
                p.kill()
                _, _, ru = os.wait4(p.pid, 0)
                rc = "timeout"
                break
            time.sleep(delay)
            delay = min(delay * 2, 0.05)
        p.returncode = -9 if rc == "timeout" else rc  # reaped here, not by Popen
        fo.seek(0)
        fe.seek(0)
        return rc, fo.read(), fe.read(), time.monotonic() - t0, ru.ru_maxrss


def sane(label, res, allowed, source, check_lines=True):
    """Common checks on one run; returns True when all hold (failures reported)."""
    rc, out, err, dt = res[:4]
    good = True
    if rc == "timeout":
        fail("%s: did not finish in time (hang?) after %.1f s" % (label, dt))
        return False
    if rc < 0:
        fail("%s: killed by signal %d; stderr: %r" % (label, -rc, err[-600:]))
        good = False
    elif rc not in allowed:
        fail("%s: exit %s (allowed %s); stderr: %r" % (label, rc, allowed, err[-600:]))
        good = False
    if SAN_RE.search(err):
        fail("%s: crash or sanitizer report on stderr: %r" % (label, err[-1500:]))
        good = False
    if check_lines:
        pre = b"tarkv: " + os.fsencode(source) + b": "
        bad = [l for l in err.splitlines() if not l.startswith(pre)]
        if bad:
            fail("%s: stderr lines not of the form 'tarkv: SOURCE: ...': %r" % (label, bad[:3]))
            good = False
    return good


def parents(p):
    out = []
    while "/" in p:
        p = p.rsplit("/", 1)[0]
        out.append(p)
    return out


def load_listing(out):
    j = json.loads(out.decode("utf-8"))
    return {e["path"]: e for e in j["entries"]}


def fsb(p):
    return p.encode("utf-8", "surrogateescape")


def cmd_check(tarkv, cases_file, only=None):
    cases = json.load(open(cases_file))
    for c in cases:
        if only and not re.search(only, c["name"]):
            continue
        check_case(tarkv, c)
    print("check: %d ok, %d failed" % (n_ok, n_fail))
    return 1 if n_fail else 0


def check_case(tarkv, c):
    name, src = c["name"], c["file"]
    label = "%s (%s)" % (name, c["desc"])
    cmd = c.get("cmd", "ls")
    argv = [tarkv, "--no-index", "--json", src, "ls", "-R"] if cmd == "ls" else \
        [tarkv, "--no-index", src, "info"]
    res = run(argv, c["time"] * 2)
    rc, out, err, dt, rss = res
    if not sane("%s: %s" % (name, "ls -R --json" if cmd == "ls" else "info"), res, c["rc"], src):
        return
    if dt > c["time"]:
        fail("%s: %s took %.1f s (bound %d s)" % (label, cmd, dt, c["time"]))
        return
    if c.get("rss") and rss > c["rss"] << 10:
        fail("%s: %s peaked at %d MiB of memory (bound %d MiB)" % (label, cmd, rss >> 10,
                                                                    c["rss"]))
        return
    if cmd == "info":
        if c["report"] and not err.strip():
            fail("%s: nothing reported on stderr (exit %s)" % (label, rc))
        else:
            ok("%s: info: exit %s in %.1f s, %d MiB; %s" % (
                label, rc, dt, rss >> 10, " ".join(l.decode() for l in out.splitlines()
                                                    if l.startswith((b"entries", b"errors")))))
        return
    if c["report"] and not err.strip():
        fail("%s: nothing reported on stderr (exit %s)" % (label, rc))
    if rc == 2 and not err.strip():
        fail("%s: exit 2 without a message" % label)
    if c.get("err") and not re.search(c["err"].encode(), err):
        fail("%s: stderr does not match /%s/: %r" % (label, c["err"], err[-400:]))
    try:
        listing = load_listing(out)
    except Exception as e:  # noqa: BLE001
        fail("%s: ls --json output is not JSON: %s: %r" % (label, e, out[:300]))
        return
    problems = verify_listing(label, c, listing)
    # contents: digest of every regular file listed (the sum of what cat serves)
    files = [p for p, e in listing.items() if e["type"] == "file"]
    if files:
        got = digests(tarkv, src, files, name)
        if got is None:
            return
        for p in files:
            want = c["must"].get(p) or c["may"].get(p)
            if want is None:
                continue
            if got.get(p) != want["sha"]:
                problems.append("%r: content differs (sha %s, want %s)" % (p, got.get(p),
                                                                           want["sha"]))
    # every listed symlink's target can be read by cat
    for p, e in listing.items():
        if e["type"] == "symlink" and e["size"] < 100000:
            r = run([tarkv, "--no-index", "-q", src, "cat", p], 30)
            if sane(name + ": cat symlink", r, (0, 2), src) and fsb(e["target"]) != r[1]:
                problems.append("%r: cat of the symlink gives %r, target %r" %
                                (p, r[1][:80], e["target"][:80]))
    for k, want in c["json"].items():
        e = listing.get(k)
        for f, v in want.items():
            if e is None or e.get(f) != v:
                problems.append("%r: %s is %r, want %r" % (k, f, e and e.get(f), v))
    if problems:
        fail("%s: %d problems: %s" % (label, len(problems), "; ".join(problems[:8])[:2000]))
    else:
        ok("%s: exit %s, %d entries, contents right%s" %
           (label, rc, len(listing), " (%.1f s)" % dt if dt > 1 else ""))


def verify_listing(label, c, listing):
    """What a listing ({path: entry}) may hold for case c; returns problem strings."""
    problems = []
    allowed = set(c["must"]) | set(c["may"]) | set(c["others"])
    for p in list(allowed):
        allowed.update(parents(p))
    for p in listing:
        if p not in allowed:
            problems.append("serves %r, which the archive does not hold" % p[:120])
    for p in c["must"]:
        if p not in listing:
            problems.append("does not serve %r" % p[:120])
    for p in c["forbid"]:
        if p in listing:
            problems.append("serves %r, which a later member replaced" % p)
    for p, want in list(c["must"].items()) + list(c["may"].items()):
        e = listing.get(p)
        if e is None:
            continue
        if want is not None and e["type"] != "file":
            problems.append("%r is a %s, want a file" % (p[:80], e["type"]))
        elif want is not None and e["size"] != want["size"]:
            problems.append("%r has size %d, want %d" % (p[:80], e["size"], want["size"]))
    for p, n in c["nlink"].items():
        e = listing.get(p)
        if e is not None and e["nlink"] != n:
            problems.append("%r has nlink %d, want %d" % (p, e["nlink"], n))
    return problems


def digests(tarkv, src, files, name):
    """{path: sha256} from tarkv digest (in batches)."""
    got = {}
    for i in range(0, len(files), 200):
        batch = files[i:i + 200]
        r = run([tarkv, "--no-index", "-q", src, "digest", "--"] + batch, 120)
        if not sane(name + ": digest", r, (0, 2), src):
            return None
        lines = r[1].split(b"\n")
        if len(batch) == 1:
            got[batch[0]] = lines[0].decode()
            continue
        # "HEX  KEY" per line; keys may hold newlines: consume by the known keys
        text = r[1]
        for p in batch:
            line = text[:64]
            rest = text[66:]
            key = fsb(p)
            if rest[:len(key)] == key and rest[len(key):len(key) + 1] == b"\n":
                got[p] = line.decode()
                text = rest[len(key) + 1:]
            else:
                break
    return got


# ---- walking a mount -------------------------------------------------------------------------

def cmd_walk(mount, cases_file, name, tarkv):
    c = next(x for x in json.load(open(cases_file)) if x["name"] == name)
    label = "%s: mount" % name
    r = run([tarkv, "--no-index", "--json", "-q", c["file"], "ls", "-R"], 120)
    try:
        want = load_listing(r[1])
    except Exception:  # noqa: BLE001
        fail("%s: no tarkv listing to compare with" % label)
        return 1
    m = os.fsencode(mount)
    seen = {}
    problems = []
    for dp, dns, fns in os.walk(m, onerror=lambda e: problems.append("walk: %s" % e)):
        for n in dns + fns:
            full = os.path.join(dp, n)
            rel = os.path.relpath(full, m).decode("utf-8", "surrogateescape")
            try:
                seen[rel] = os.lstat(full)
            except OSError as e:
                problems.append("lstat %r: %s" % (rel[:80], e))
    if set(seen) != set(want):
        extra = sorted(set(seen) - set(want))[:5]
        missing = sorted(set(want) - set(seen))[:5]
        problems.append("paths differ from tarkv's: extra %r missing %r" % (extra, missing))
    for p, st in seen.items():
        e = want.get(p)
        if e is None:
            continue
        t = {"file": stat.S_ISREG, "dir": stat.S_ISDIR, "symlink": stat.S_ISLNK,
             "chr": stat.S_ISCHR, "blk": stat.S_ISBLK, "fifo": stat.S_ISFIFO}[e["type"]]
        if not t(st.st_mode):
            problems.append("%r: type differs from tarkv's %s" % (p[:80], e["type"]))
            continue
        if e["type"] != "dir" and st.st_nlink != e["nlink"]:
            problems.append("%r: nlink %d, tarkv %d" % (p[:80], st.st_nlink, e["nlink"]))
        full = os.path.join(m, fsb(p))
        if e["type"] == "file":
            try:
                with open(full, "rb") as f:
                    data = f.read()
            except OSError as ex:
                problems.append("read %r: %s" % (p[:80], ex))
                continue
            exp = c["must"].get(p) or c["may"].get(p)
            if len(data) != e["size"] or (exp and sha(data) != exp["sha"]):
                problems.append("%r: content differs (%d bytes)" % (p[:80], len(data)))
        elif e["type"] == "symlink":
            try:
                tgt = os.readlink(full)
                if tgt != fsb(e["target"]):
                    problems.append("%r: readlink %r, tarkv %r" % (p[:80], tgt[:60],
                                                                   e["target"][:60]))
            except OSError as ex:
                problems.append("readlink %r: %s" % (p[:80], ex))
    problems += verify_listing(label, c, {p: want[p] for p in seen if p in want})
    if problems:
        fail("%s: %d problems: %s" % (label, len(problems), "; ".join(problems[:6])[:1500]))
        return 1
    ok("%s: %d entries, the same tree and contents as tarkv" % (label, len(seen)))
    return 0


# ---- the real archive's source tree ----------------------------------------------------------

def cmd_mksrc(d):
    rng = random.Random(7)
    os.makedirs(d)

    def w(rel, data):
        p = os.path.join(d, rel)
        os.makedirs(os.path.dirname(p), exist_ok=True)
        with open(p, "wb") as f:
            f.write(data)
        os.utime(p, (1600000000, 1600000000 + len(rel)))

    sizes = [0, 1, 100, 511, 512, 513, 1024, 1536, 3000, 5000, 10240, 20000]
    for i, s in enumerate(sizes):
        w("files/f%02d-%d" % (i, s), bytes(rng.getrandbits(8) for _ in range(s)))
    long1 = "L" * 120
    w("long/" + long1, b"a name over 100 bytes\n")
    long2 = "/".join(["seg%02d-" % i + "x" * 60 for i in range(6)]) + "/file"
    w("long/" + long2, b"a path over 255 bytes\n" * 30)
    w("long/" + "u\u00e9\u20ac" * 40, b"a long UTF-8 name\n")
    for i in range(8):
        w("many/m%d" % i, b"small %d\n" % i * (i + 1))
    # a sparse file: holes and data, 200 KiB
    sp = os.path.join(d, "sparse/holes")
    os.makedirs(os.path.dirname(sp))
    with open(sp, "wb") as f:
        f.truncate(200 * 1024)
        for off in (0, 64 * 1024, 150 * 1024):
            f.seek(off)
            f.write(bytes(rng.getrandbits(8) for _ in range(3000)))
    os.utime(sp, (1600000000, 1600000000))
    os.makedirs(os.path.join(d, "links"))
    os.link(os.path.join(d, "files/f06-1024"), os.path.join(d, "links/hard1"))
    os.link(os.path.join(d, "files/f06-1024"), os.path.join(d, "links/hard2"))
    os.link(os.path.join(d, "long", long2), os.path.join(d, "links/hard-long"))
    os.symlink("../files/f03-511", os.path.join(d, "links/sym"))
    os.symlink("/".join(["t" * 60] * 3), os.path.join(d, "links/sym-long-target"))
    os.symlink("dangling", os.path.join(d, "links/dangling"))
    os.makedirs(os.path.join(d, "empty/dir"))
    os.mkfifo(os.path.join(d, "links/fifo"))
    print("source tree in %s" % d)


# ---- truncations -------------------------------------------------------------------------------

def norm(p):
    return "/".join(s for s in p.split("/") if s not in ("", "."))


def closure(paths):
    out = set()
    for p in paths:
        if p:
            out.add(p)
            out.update(parents(p))
    return out


def cmd_truncations(tarkv, archive, srcdir, workdir):
    data = open(archive, "rb").read()
    src = os.fsencode(srcdir)
    original = {}
    for dp, dns, fns in os.walk(src):
        for n in fns:
            full = os.path.join(dp, n)
            if stat.S_ISREG(os.lstat(full).st_mode):
                original[os.path.relpath(full, src).decode("utf-8", "surrogateescape")] = \
                    open(full, "rb").read()
    cut = os.path.join(workdir, "cut.tar")
    nblocks = len(data) // 512
    counts = {"cuts": 0, "rc0": 0, "rc2": 0, "listed": 0, "files": 0}
    failures = 0
    t0 = time.monotonic()

    def fail(msg):
        if failures < 10:
            globals()["fail"](msg)
        elif failures == 10:
            globals()["fail"]("(more failures not shown)")

    for k in range(0, nblocks + 1):
        with open(cut, "wb") as f:
            f.write(data[:512 * k])
        counts["cuts"] += 1
        label = "cut at block %d (byte %d)" % (k, 512 * k)
        tr = run(["tar", "--quoting-style=literal", "-tf", cut], 60)
        gnu = closure(norm(l.decode("utf-8", "surrogateescape"))
                      for l in tr[1].split(b"\n") if l)
        res = run([tarkv, "--no-index", "--json", cut, "ls", "-R"], 60)
        if not sane(label + ": ls -R", res, (0, 2), cut):
            failures += 1
            continue
        counts["rc%d" % res[0]] += 1
        if k == 0:
            continue
        try:
            listing = load_listing(res[1]) if res[0] == 0 or res[1] else {}
        except Exception as e:  # noqa: BLE001
            fail("%s: not JSON: %s" % (label, e))
            failures += 1
            continue
        extra = sorted(set(listing) - gnu)
        if extra:
            fail("%s: tarkv serves %d names GNU tar does not list: %r" % (label, len(extra),
                                                                          extra[:5]))
            failures += 1
        counts["listed"] += len(listing)
        files = sorted(p for p, e in listing.items() if e["type"] == "file")
        wrong = [p for p in files if p not in original]
        if wrong:
            fail("%s: files not in the source tree: %r" % (label, wrong[:5]))
            failures += 1
            continue
        if files:
            r = run([tarkv, "--no-index", "-q", cut, "cat", "--"] + files, 60)
            want = b"".join(original[p] for p in files)
            if not sane(label + ": cat", r, (0, 2), cut):
                failures += 1
            elif r[1] != want:
                # find the first file that differs
                pos, bad = 0, None
                for p in files:
                    n = len(original[p])
                    if r[1][pos:pos + n] != original[p]:
                        bad = p
                        break
                    pos += n
                fail("%s: cat of the %d listed files differs from the originals (first: %r)"
                     % (label, len(files), bad))
                failures += 1
            counts["files"] += len(files)
    dt = time.monotonic() - t0
    if failures:
        globals()["fail"]("%s: %d of %d truncations failed" % (os.path.basename(archive), failures,
                                                              counts["cuts"]))
    else:
        ok("%s truncated at each of %d block boundaries: exit 0 %d times, 2 %d times; %d names "
           "listed, all listed by GNU tar; %d complete files served byte for byte (%.0f s)" %
           (os.path.basename(archive), counts["cuts"], counts["rc0"], counts["rc2"], counts["listed"], counts["files"], dt))
    return 1 if failures else 0


# ---- bit flips -------------------------------------------------------------------------------

def header_blocks(data):
    """Offsets of the blocks that tarfile says are headers (best effort)."""
    import io
    import tarfile
    offs = []
    try:
        with tarfile.open(fileobj=io.BytesIO(data)) as tf:
            for m in tf.getmembers():
                # extension headers come before m.offset_data - 512
                offs.extend(range(m.offset, m.offset_data, 512))
    except Exception:  # noqa: BLE001
        pass
    return offs or [0]


def cmd_bitflips(tarkv, seed, count, outdir, archives):
    rng = random.Random(seed)
    srcs = [(a, open(a, "rb").read()) for a in archives]
    heads = {a: header_blocks(d) for a, d in srcs}
    os.makedirs(outdir, exist_ok=True)
    stats = {0: 0, 1: 0, 2: 0}
    failures = 0
    slow = 0.0
    t0 = time.monotonic()
    for i in range(count):
        a, d = srcs[i % len(srcs)]
        b = bytearray(d)
        nflips = rng.randint(1, 8)
        flips = []
        for _ in range(nflips):
            if rng.random() < 0.85:
                blk = rng.choice(heads[a])
                pos = blk + rng.randrange(512)
            else:
                pos = rng.randrange(len(b))
            bit = rng.randrange(8)
            b[pos] ^= 1 << bit
            flips.append((pos, bit))
        if i % 2:
            # half of them get their checksums fixed: the flips reach the field decoders
            for blk in set(p // 512 * 512 for p, _ in flips):
                if blk in heads[a]:
                    h = b[blk:blk + 512]
                    h[148:156] = b" " * 8
                    b[blk + 148:blk + 156] = b"%06o\0 " % sum(h)
        path = os.path.join(outdir, "flip%03d.tar" % i)
        with open(path, "wb") as f:
            f.write(b)
        label = "bit flips #%d in %s %s" % (i, os.path.basename(a), flips)
        res = run([tarkv, "--no-index", "--json", path, "ls", "-lR"], 30)
        good = sane(label + ": ls -R --json", res, (0, 2), path)
        slow = max(slow, res[3])
        if good:
            stats[res[0]] += 1
            try:
                if res[1]:
                    load_listing(res[1])
            except Exception as e:  # noqa: BLE001
                fail("%s: ls --json output is not JSON: %s" % (label, e))
                good = False
        ex = os.path.join(outdir, "x%03d" % i)
        os.makedirs(ex)
        res = run([tarkv, "--no-index", "-q", path, "extract", "/", ex], 60)
        good = sane(label + ": extract", res, (0, 1, 2), path) and good
        slow = max(slow, res[3])
        shutil.rmtree(ex, ignore_errors=True)
        if not good:
            failures += 1
    dt = time.monotonic() - t0
    if failures == 0:
        ok("%d archives with 1-8 random bit flips (seed %s): tarkv ls -lR and extract never "
           "crashed or hung; ls exit 0 %d times, 2 %d times; slowest run %.2f s (%.0f s in all)"
           % (count, seed, stats[0], stats[2], slow, dt))
    return 1 if failures else 0


# ---- many entries --------------------------------------------------------------------------

def cmd_many(out, n):
    base = bytearray(header(b"", b"0", mode=0o644, mtime=1700000000))
    base[148:156] = b" " * 8
    base_sum = sum(base)
    with open(out, "wb") as f:
        f.write(header(b"big/", b"5", mode=0o755, mtime=1700000000))
        buf = []
        for i in range(n):
            name = b"big/e%07d" % i
            h = bytearray(base)
            h[0:len(name)] = name
            h[148:156] = b"%06o\0 " % (base_sum + sum(name))
            buf.append(bytes(h))
            if len(buf) >= 8192:
                f.write(b"".join(buf))
                buf = []
        buf.append(bytes(1024))
        f.write(b"".join(buf))


# ---- JSON of names that are not UTF-8 -----------------------------------------------------------

def cmd_jsoncheck(jfile, names_file):
    raw = open(jfile, "rb").read()
    try:
        doc = json.loads(raw.decode("utf-8"))
    except Exception as e:  # noqa: BLE001
        fail("--json output is not valid JSON: %s" % e)
        return 1
    # strict UTF-8 and no raw control characters: json.loads already refuses those
    want = set(bytes.fromhex(l.strip()) for l in open(names_file) if l.strip())
    paths = doc.get("entries") or doc.get("paths") or []
    got = set()
    for e in paths:
        p = e["path"] if isinstance(e, dict) else e
        try:
            got.add(p.encode("utf-8", "surrogateescape"))
        except UnicodeEncodeError as ex:
            fail("path %r does not round-trip through surrogateescape: %s" % (p, ex))
            return 1
        if isinstance(e, dict):
            for k in e.get("xattrs", {}):
                k.encode("utf-8", "surrogateescape")
    top = set(p.split(b"/")[0] for p in got)
    missing = [n for n in want if n.split(b"/")[0] not in top and n not in got]
    if missing:
        fail("names missing or changed after the round trip: %r" % missing)
        return 1
    ok("%s: valid JSON; all %d names round-trip to their bytes" % (os.path.basename(jfile),
                                                                   len(want)))
    return 0


def cmd_devpair(out_a, out_b):
    """Two archives of the same size whose first and last 2 MiB are the same bytes (what a
    device's identity hashes): 300 small members in the middle, named differently in B, with
    different contents of the same sizes."""
    start = member(b"pad-start", b"S" * (2 << 20))
    end = member(b"pad-end", b"E" * (2 << 20)) + END
    mid_a = b"".join(member(b"mid/a%03d" % i, b"A%03d\n" % i) for i in range(300))
    mid_b = b"".join(member(b"mid/b%03d" % i, b"B%03d\n" % i) for i in range(300))
    with open(out_a, "wb") as f:
        f.write(start + mid_a + end)
    with open(out_b, "wb") as f:
        f.write(start + mid_b + end)


def cmd_pyutf(out):
    """A pax archive by Python's tarfile whose names are mostly not ASCII: tarfile writes
    them in pax records and puts an ASCII stand-in ('caf?') in the header's name field."""
    import io
    import tarfile
    with tarfile.open(out, "w", format=tarfile.PAX_FORMAT) as tf:
        for n in ("caf\u00e9", "na\u00efve", "\u00fcber", "\u65e5\u672c", "plain"):
            t = tarfile.TarInfo(n)
            t.size, t.mtime = 3, 1600000000
            tf.addfile(t, io.BytesIO(b"abc"))


def cmd_list(cases_file, field):
    for c in json.load(open(cases_file)):
        if c.get(field):
            print(c["name"])


def cmd_readlink_errno(path):
    import errno
    try:
        print("read %d bytes" % len(os.readlink(path)))
    except OSError as e:
        print(errno.errorcode.get(e.errno, e.errno))


def cmd_statcheck(jfile):
    """stat --json of names-not-utf8's pax member: path and xattr name round-trip."""
    e = json.loads(open(jfile, "rb").read().decode("utf-8"))
    assert e["path"].encode("utf-8", "surrogateescape") == b"pax-\xff\xfe", e["path"]
    names = [k.encode("utf-8", "surrogateescape") for k in e["xattrs"]]
    assert names == [b"user.\xfa\xfb"], names
    assert bytes.fromhex(e["xattrs"]["user.\udcfa\udcfb"]) == b"\xff\x00v", e["xattrs"]
    return 0


def main():
    a = sys.argv[1:]
    if not a:
        sys.exit(__doc__)
    cmd = a[0]
    if cmd == "gen":
        cmd_gen(a[1])
        return 0
    if cmd == "check":
        return cmd_check(a[1], a[2], a[3] if len(a) > 3 else None)
    if cmd == "walk":
        return cmd_walk(a[1], a[2], a[3], a[4])
    if cmd == "mksrc":
        cmd_mksrc(a[1])
        return 0
    if cmd == "truncations":
        return cmd_truncations(a[1], a[2], a[3], a[4])
    if cmd == "bitflips":
        return cmd_bitflips(a[1], int(a[2]), int(a[3]), a[4], a[5:])
    if cmd == "many":
        cmd_many(a[1], int(a[2]))
        return 0
    if cmd == "jsoncheck":
        return cmd_jsoncheck(a[1], a[2])
    if cmd == "devpair":
        cmd_devpair(a[1], a[2])
        return 0
    if cmd == "pyutf":
        cmd_pyutf(a[1])
        return 0
    if cmd == "list":
        cmd_list(a[1], a[2])
        return 0
    if cmd == "readlink-errno":
        cmd_readlink_errno(a[1])
        return 0
    if cmd == "statcheck":
        return cmd_statcheck(a[1])
    sys.exit(__doc__)


if __name__ == "__main__":
    sys.exit(main())
