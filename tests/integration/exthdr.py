#!/usr/bin/env python3
"""Runs of extension headers before one member, for exthdr.sh: several pax 'x' headers,
several GNU 'L' or 'K' headers, 'x' mixed with 'L'/'K' in both orders, and pax global
headers ('g') that carry path, linkpath or size, with files, symlinks and hard links.

    exthdr.py gen OUTDIR
        Write OUTDIR/NAME.tar for every case and OUTDIR/cases.tsv: NAME, the oracle
        (agree: GNU tar and bsdtar list the same and tarkv must too; gnu or bsd: they
        differ and tarkv follows the one named, as README says), and a regular expression
        that tarkv's stderr must match ("-" for none).
    exthdr.py tool TOOL ARCHIVE
        The canonical listing (see canon) of `TOOL -tvf ARCHIVE`, TOOL tar or bsdtar.
    exthdr.py tarkv TARKV ARCHIVE
        The canonical listing of `tarkv --no-index --json ARCHIVE ls -R`.

A canonical listing has one line per path, sorted: "PATH TYPE DETAIL", TYPE file (DETAIL:
its size and the first path of its hard-link group), dir, or symlink (DETAIL: the target).
Paths are as extraction makes them ("./" and a trailing "/" stripped); the parents a tool
does not list are added as directories; of two members with one path the later wins; a
hard link to a path the archive does not hold before it is left out (tar -x cannot make it).

Headers are written by hand from the POSIX ustar and pax and the GNU tar manual's
descriptions, never by the code under test.
"""
import json
import re
import subprocess
import sys

ENV = {"LC_ALL": "C", "TZ": "UTC", "PATH": "/usr/local/bin:/usr/bin:/bin"}


# ---- building headers by hand ------------------------------------------------------------

def octal(n, width):
    return b"%0*o\0" % (width - 1, n)


def header(name, typeflag=b"0", size=0, linkname=b"", fmt="ustar"):
    h = bytearray(512)
    h[0:min(len(name), 100)] = name[:100]
    h[100:108] = octal({b"2": 0o777, b"5": 0o755}.get(typeflag, 0o644), 8)
    h[108:116] = octal(0, 8)
    h[116:124] = octal(0, 8)
    h[124:136] = octal(size, 12)
    h[136:148] = octal(1600000000, 12)
    h[156:157] = typeflag
    h[157:157 + min(len(linkname), 100)] = linkname[:100]
    h[257:265] = b"ustar\x0000" if fmt == "ustar" else b"ustar  \0"
    h[265:269] = b"root"
    h[297:301] = b"root"
    h[148:156] = b" " * 8
    h[148:156] = b"%06o\0 " % sum(h)
    return bytes(h)


def pad(d):
    return d + bytes(-len(d) % 512)


def rec(key, value):
    body = b" " + key + b"=" + value + b"\n"
    n = len(body) + 1
    while len(b"%d" % n) + len(body) != n:
        n = len(b"%d" % n) + len(body)
    return b"%d" % n + body


def pax(recs, typeflag=b"x"):
    data = b"".join(rec(k, v) for k, v in recs)
    name = b"pax_global_header" if typeflag == b"g" else b"PaxHeader/m"
    return header(name, typeflag, len(data)) + pad(data)


def glob(recs):
    return pax(recs, b"g")


def long_(name, typeflag=b"L"):
    d = name + b"\0"
    return header(b"././@LongLink", typeflag, len(d), fmt="gnu") + pad(d)


def K(name):
    return long_(name, b"K")


def f(name, data=b"", fmt="ustar"):
    return header(name, b"0", len(data), fmt=fmt) + pad(data)


def sym(name, target, fmt="ustar"):
    return header(name, b"2", 0, target, fmt)


def hard(name, target, fmt="ustar"):
    return header(name, b"1", 0, target, fmt)


END = bytes(1024)
LONG = b"d" * 60 + b"/" + b"e" * 60 + b"/long-file"  # 130 bytes: no header field holds it
REPLACED = "second pax extended header"
IGNORED = "pax global header: .*ignored"


def cases():
    # (name, oracle, stderr regex or None, bytes)
    c = []

    def add(name, oracle, warn, *parts):
        c.append((name, oracle, warn, b"".join(parts) + END))

    # -- rule 1: 'x' after 'x' replaces it wholly
    add("xx-path", "agree", REPLACED,
        pax([(b"path", b"x1name")]), pax([(b"path", b"x2name")]), f(b"hdr", b"data"))
    add("xxx-path", "agree", REPLACED,
        pax([(b"path", b"x1")]), pax([(b"path", b"x2")]), pax([(b"path", b"x3")]),
        f(b"hdr", b"3"))
    add("xx-path-dropped", "agree", REPLACED,
        pax([(b"path", b"x1name"), (b"uname", b"u1")]), pax([(b"mtime", b"1234567890")]),
        f(b"hdr", b"data"), f(b"after", b"a"))
    add("xx-size-dropped", "agree", REPLACED,
        pax([(b"size", b"1024")]), pax([(b"mtime", b"1")]), f(b"small", b"abc"),
        f(b"after", b"a"))
    add("xx-size-last", "agree", REPLACED,
        pax([(b"mtime", b"1")]), pax([(b"size", b"600")]), f(b"big", b"z" * 600),
        f(b"after", b"a"))
    add("xx-symlink", "agree", REPLACED,
        pax([(b"linkpath", b"x1target")]), pax([(b"mtime", b"1")]),
        sym(b"sym", b"hdrtarget"))
    add("xx-hardlink", "agree", REPLACED,
        f(b"f", b"1"), f(b"x1target", b"2"), pax([(b"linkpath", b"x1target")]),
        pax([(b"mtime", b"1")]), hard(b"hl", b"f"))
    add("xx-long-hardlink", "agree", REPLACED,
        pax([(b"path", LONG)]), f(b"short", b"long"),
        pax([(b"path", b"wrong")]), pax([(b"path", b"hl"), (b"linkpath", LONG)]),
        hard(b"hdrhl", b"short"))
    # -- rule 2: runs of 'L' / 'K', and 'x' with 'L' / 'K'
    add("LL", "agree", "second GNU long name",
        long_(b"L1name"), long_(b"L2name"), f(b"hdr", b"d", "gnu"))
    add("LL-long", "agree", "second GNU long name",
        long_(b"wrong/" + LONG), long_(LONG), f(LONG[:100], b"d", "gnu"))
    add("KK-symlink", "agree", "second GNU long link",
        K(b"K1target"), K(b"K2target"), sym(b"sym", b"hdrtarget", "gnu"))
    add("KK-hardlink", "agree", "second GNU long link",
        f(b"K1target", b"1"), f(b"K2target", b"2"), K(b"K1target"), K(b"K2target"),
        hard(b"hl", b"hdrtarget", "gnu"))
    add("LKL", "agree", "second GNU long name",
        long_(b"L1name"), K(b"Ktarget"), long_(b"L2name"), sym(b"sym", b"hdr", "gnu"))
    add("x-then-L", "agree", None,
        pax([(b"path", b"xname")]), long_(b"Lname"), f(b"hdr", b"d", "gnu"))
    add("L-then-x", "gnu", None,
        long_(b"Lname"), pax([(b"path", b"xname")]), f(b"hdr", b"d", "gnu"))
    add("L-x-L", "gnu", "second GNU long name",
        long_(b"L1name"), pax([(b"path", b"xname")]), long_(b"L2name"),
        f(b"hdr", b"d", "gnu"))
    add("x-L-x", "agree", REPLACED,
        pax([(b"path", b"x1name")]), long_(b"Lname"), pax([(b"mtime", b"1")]),
        f(b"hdr", b"d", "gnu"))
    add("L-then-x-nopath", "agree", None,
        long_(b"Lname"), pax([(b"mtime", b"1")]), f(b"hdr", b"d", "gnu"))
    add("x-nopath-then-L", "agree", None,
        pax([(b"mtime", b"1")]), long_(b"Lname"), f(b"hdr", b"d", "gnu"))
    add("x-then-K-symlink", "agree", None,
        pax([(b"linkpath", b"xtarget")]), K(b"Ktarget"), sym(b"sym", b"hdrtarget", "gnu"))
    add("K-then-x-symlink", "gnu", None,
        K(b"Ktarget"), pax([(b"linkpath", b"xtarget")]), sym(b"sym", b"hdrtarget", "gnu"))
    add("x-then-K-hardlink", "agree", None,
        f(b"f", b"1"), f(b"Ktarget", b"2"), f(b"xtarget", b"3"),
        pax([(b"linkpath", b"xtarget")]), K(b"Ktarget"), hard(b"hl", b"f", "gnu"))
    add("K-then-x-hardlink", "gnu", None,
        f(b"f", b"1"), f(b"Ktarget", b"2"), f(b"xtarget", b"3"),
        K(b"Ktarget"), pax([(b"linkpath", b"xtarget")]), hard(b"hl", b"f", "gnu"))
    add("L-K-x-x", "gnu", REPLACED,
        f(b"Ktarget", b"k"), f(b"xtarget", b"x"), long_(b"Lname"), K(b"Ktarget"),
        pax([(b"path", b"wrong"), (b"linkpath", b"wrong")]),
        pax([(b"path", b"xname"), (b"linkpath", b"xtarget")]), hard(b"hl", b"f", "gnu"))
    # -- rule 3: path, linkpath and size in global headers are ignored
    add("g-path", "bsd", IGNORED,
        glob([(b"path", b"gname"), (b"uname", b"guser")]), f(b"one", b"1"), f(b"two", b"2"))
    add("g-linkpath", "bsd", IGNORED,
        glob([(b"linkpath", b"gtarget")]), f(b"f", b"x"), f(b"gtarget", b"g"),
        sym(b"s1", b"f"), hard(b"h1", b"f"))
    add("g-size", "bsd", IGNORED,
        glob([(b"size", b"1024")]), f(b"one", b"1"), f(b"two", b"2"))
    add("g-all-then-x", "bsd", IGNORED,
        glob([(b"path", b"gname"), (b"linkpath", b"gtarget"), (b"size", b"700")]),
        pax([(b"path", b"xname")]), f(b"one", b"1"), f(b"two", b"22"),
        sym(b"sym", b"one"), hard(b"hl", b"two"))
    add("g-then-L", "bsd", IGNORED,
        glob([(b"path", b"gname")]), long_(b"Lname"), f(b"hdr", b"d", "gnu"),
        f(b"after", b"a"))
    add("g-uname-only", "agree", None,
        glob([(b"uname", b"guser")]), f(b"one", b"1"), f(b"two", b"2"))
    add("x-then-g", "agree", None,
        pax([(b"path", b"xname")]), glob([(b"uname", b"guser")]), f(b"hdr", b"d"),
        f(b"after", b"a"))
    return c


def cmd_gen(out):
    import os
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "cases.tsv"), "w") as tsv:
        for name, oracle, warn, data in cases():
            with open(os.path.join(out, name + ".tar"), "wb") as fo:
                fo.write(data)
            tsv.write("%s\t%s\t%s\n" % (name, oracle, warn or "-"))


# ---- canonical listings --------------------------------------------------------------------

def norm(p):
    while p.startswith("./"):
        p = p[2:]
    return p.rstrip("/")


def canon(members):
    """members: (path, type, size, target) in archive order, type file, dir, symlink or
    hardlink.  Returns the canonical listing (a string)."""
    ent = {}
    group = {}  # path -> its hard-link group (a shared list of paths)
    for path, typ, size, target in members:
        path = norm(path)
        if not path:
            continue
        if path in group:
            group[path].remove(path)
            del group[path]
        if typ == "hardlink":
            t = norm(target)
            if t not in ent or ent[t][0] != "file":
                continue
            ent[path] = ent[t]
            group[path] = group[t]
            group[path].append(path)
            continue
        ent[path] = (typ, size, target)
        if typ == "file":
            group[path] = [path]
    for path in list(ent):
        parts = path.split("/")
        for i in range(1, len(parts)):
            ent.setdefault("/".join(parts[:i]), ("dir", 0, ""))
    lines = []
    for path in sorted(ent):
        typ, size, target = ent[path]
        if typ == "file":
            lines.append("%s file %d %s" % (path, size, min(group[path])))
        elif typ == "symlink":
            lines.append("%s symlink %s" % (path, target))
        else:
            lines.append("%s %s" % (path, typ))
    return "".join(line + "\n" for line in lines)


TYPES = {"-": "file", "d": "dir", "l": "symlink", "h": "hardlink"}


def cmd_tool(tool, archive):
    """GNU tar: MODE OWNER/GROUP SIZE DATE TIME NAME; bsdtar: MODE NLINK OWNER GROUP SIZE
    MONTH DAY YEAR|TIME NAME.  NAME then ' -> TARGET' or ' link to TARGET'."""
    p = subprocess.run([tool, "-tvf", archive], capture_output=True, env=ENV)
    nfields = 5 if tool == "tar" else 8
    members = []
    for line in p.stdout.decode("utf-8", "surrogateescape").splitlines():
        fields = line.split(None, nfields)
        if len(fields) <= nfields or line[0] not in TYPES:
            continue
        typ = TYPES[line[0]]
        size = int(fields[nfields - 3 if tool == "tar" else 4])
        rest, target = fields[nfields], ""
        sep = {"symlink": " -> ", "hardlink": " link to "}.get(typ)
        if sep:
            rest, _, target = rest.partition(sep)
        members.append((rest, typ, size, target))
    sys.stdout.write(canon(members))


def cmd_tarkv(tarkv, archive):
    p = subprocess.run([tarkv, "--no-index", "--json", "-q", archive, "ls", "-R"],
                       capture_output=True, env=ENV)
    if p.returncode != 0:
        sys.stderr.write("tarkv exit %d: %s" % (p.returncode, p.stderr.decode()))
        sys.exit(1)
    doc = json.loads(p.stdout.decode("utf-8", "surrogateescape"))
    by_ino = {}
    for e in doc["entries"]:
        by_ino.setdefault(e["ino"], []).append(e["path"])
    lines = []
    for e in sorted(doc["entries"], key=lambda e: e["path"]):
        if e["type"] == "file":
            lines.append("%s file %d %s" % (e["path"], e["size"], min(by_ino[e["ino"]])))
        elif e["type"] == "symlink":
            lines.append("%s symlink %s" % (e["path"], e["target"]))
        else:
            lines.append("%s %s" % (e["path"], e["type"]))
    sys.stdout.write("".join(line + "\n" for line in lines))


def main():
    a = sys.argv[1:]
    if len(a) == 2 and a[0] == "gen":
        cmd_gen(a[1])
    elif len(a) == 3 and a[0] == "tool" and a[1] in ("tar", "bsdtar"):
        cmd_tool(a[1], a[2])
    elif len(a) == 3 and a[0] == "tarkv":
        cmd_tarkv(a[1], a[2])
    else:
        sys.stderr.write(__doc__)
        sys.exit(2)


if __name__ == "__main__":
    main()
