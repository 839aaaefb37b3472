#!/usr/bin/env python3
"""The tar writer (src/tar_writer.c) against GNU tar, bsdtar, Python's tarfile and tarkv, for
tar_writer.sh.

    tar_writer.py MKMEMBER TARKV WORKDIR SEED

Generates member descriptions at random (the model), has tests/mkmember write them as
archives with the writer, then checks that every reader gives back the model:

  main.tar    some 330 members of every kind: deep and long paths (ustar splits and pax
              paths, every boundary of 100, 155 and 256 bytes), UTF-8 names, long and
              non-ASCII link targets and owner names, uids and gids past 2^21, negative,
              sub-second and past-2242 times, binary xattrs.  Listed by `tar -tvf` (names
              and numbers) and `bsdtar -tvf`, read by tarfile (every field, pax records,
              contents) and tarkv (ls -R --json, cat), extracted by GNU tar and bsdtar (the
              trees compared with the model: types, modes, owners, times to the nanosecond,
              contents, link targets, hard links, device numbers, xattrs) and compared by
              `tar --compare`.  No tool may write anything to stderr.
  binary.tar  names, link targets and owner names that are not UTF-8 (hdrcharset=BINARY):
              GNU tar's only words allowed are "Ignoring unknown extended header keyword
              'hdrcharset'" (it knows no hdrcharset, and extracts the raw bytes right).
  big.tar     members of 8 GiB - 1, 8 GiB and 8 GiB + 1 (holes in a sparse file) and a
              small one after them: listed by every tool, the last one's bytes read.

Known deviations of the oracles, left out of the comparison (the archive is right by POSIX,
and GNU tar's extraction and tarfile agree with it): GNU tar 1.34 lists a negative time
with a fraction one second late (-1.5 as 23:59:59.5), and bsdtar 3.6 extracts it one
second late (-1.5 as -0.5).

Prints "ok: WHAT" or "FAIL: WHAT" lines; exit status 0 when all passed, 1 otherwise.
"""
import datetime
import json
import os
import random
import re
import stat
import subprocess
import sys
import tarfile

ENV = dict(os.environ, LC_ALL="C", TZ="UTC")
ENV_UTF8 = dict(os.environ, LC_ALL="C.UTF-8", TZ="UTC")
MAX_DETAILS = 8

failures = 0


def ok(what):
    print("ok: " + what)


def fail(what):
    global failures
    failures += 1
    print("FAIL: " + what)


def report(what, problems):
    """ok when problems is empty, else one FAIL with the first few."""
    if not problems:
        ok(what)
        return
    fail("%s: %d problems" % (what, len(problems)))
    for p in problems[:MAX_DETAILS]:
        print("    " + p)


def run(cmd, env=ENV, **kw):
    return subprocess.run(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, **kw)


def b2s(b):
    return b.decode("utf-8", "surrogateescape")


def s2b(s):
    return s.encode("utf-8", "surrogateescape")


# ---- the model ------------------------------------------------------------------------

KINDS = ["reg", "hardlink", "symlink", "chr", "blk", "dir", "fifo"]
ASCII = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-+,=@~ "
NON_ASCII = ["é", "ü", "ß", "日本", "€", "😀", "ñ", "Ω", "ก"]
OCT11 = 8 ** 11 - 1


class Member:
    def __init__(self, kind, path, **kw):
        self.kind = kind
        self.path = path        # bytes, a directory's without its '/'
        self.link = kw.get("link", b"")
        self.mode = kw.get("mode", 0o755 if kind == "dir" else 0o644)
        self.uid = kw.get("uid", 0)
        self.gid = kw.get("gid", 0)
        self.uname = kw.get("uname", b"")
        self.gname = kw.get("gname", b"")
        self.mtime = kw.get("mtime", (1700000000, 0))
        self.atime = kw.get("atime")
        self.ctime = kw.get("ctime")
        self.size = kw.get("size", 0)
        self.major = kw.get("major", 0)
        self.minor = kw.get("minor", 0)
        self.xattrs = kw.get("xattrs", [])  # [(name bytes, value bytes)]
        self.data = kw.get("data")          # bytes, or None for zeros
        self.target = kw.get("target")      # a hard link's Member

    def stored(self):
        return self.path + b"/" if self.kind == "dir" else self.path

    def line(self, datafile):
        f = ["type=" + self.kind, "path=" + self.path.hex(), "mode=%o" % self.mode,
             "uid=%d" % self.uid, "gid=%d" % self.gid, "uname=" + self.uname.hex(),
             "gname=" + self.gname.hex(), "mtime=%d:%d" % self.mtime, "size=%d" % self.size]
        if self.kind in ("symlink", "hardlink"):
            f.append("link=" + self.link.hex())
        if self.kind in ("chr", "blk"):
            f += ["major=%d" % self.major, "minor=%d" % self.minor]
        if self.atime:
            f.append("atime=%d:%d" % self.atime)
        if self.ctime:
            f.append("ctime=%d:%d" % self.ctime)
        for n, v in self.xattrs:
            f.append("xattr=%s:%s" % (n.hex(), v.hex()))
        if self.size and self.data is not None:
            f.append("data=file:" + datafile.encode().hex())
        return " ".join(f)

    def content(self):
        m = self.target or self
        return m.data if m.data is not None else bytes(m.size)


def pax_time(t):
    """The pax form of (sec, nsec), as POSIX means it: -1.5 is 1.5 s before the epoch."""
    sec, nsec = t
    if sec < 0 and nsec:
        s, frac = "-%d" % -(sec + 1), 10 ** 9 - nsec
    else:
        s, frac = "%d" % sec, nsec
    if frac:
        s += ("." + "%09d" % frac).rstrip("0")
    return s


def needs_pax_mtime(m):
    return m.mtime[1] != 0 or not 0 <= m.mtime[0] <= OCT11


def segment(r, maxlen):
    while True:
        n = r.randint(1, maxlen)
        s = ""
        while len(s.encode()) < n:
            s += r.choice(NON_ASCII) if r.random() < 0.12 else r.choice(ASCII)
        b = s.encode()
        if len(b) > 250 or b in (b".", b"..") or b[:1] in (b"-", b" ") or b.endswith(b" "):
            continue
        return b


def attrs(r, kind):
    a = {}
    if kind == "symlink":
        a["mode"] = 0o777
    elif kind == "dir":
        a["mode"] = r.choice([0o755, 0o700, 0o1777, 0o2755, r.randrange(0o10000) | 0o700])
    else:
        a["mode"] = r.choice([0o644, 0o600, 0o755, 0o4755, r.randrange(0o10000)])
    a["uid"] = r.choice([0, 1000, r.randrange(70000), 2097151, 2097152,
                         r.randrange(2 ** 32 - 1)])
    a["gid"] = r.choice([0, 100, r.randrange(70000), 2097151, 2097152,
                         r.randrange(2 ** 32 - 1)])
    owner = lambda: r.choice([b"", b"root", b"user", b"u" * 31, b"g" * 32, b"o" * 40,
                              "jörg".encode(), segment(r, 20).replace(b" ", b"_")])
    a["uname"], a["gname"] = owner(), owner()
    sec = r.choice([0, 1700000000, r.randrange(-2 ** 31, 14 * 10 ** 9), OCT11, OCT11 + 1,
                    -1, r.randrange(-2 ** 31, 0)])
    a["mtime"] = (sec, r.choice([0, 0, r.randrange(10 ** 9), 5 * 10 ** 8]))
    if r.random() < 0.05:
        a["atime"] = (r.randrange(-2 ** 31, 2 ** 33), r.randrange(10 ** 9))
    if r.random() < 0.05:
        a["ctime"] = (r.randrange(0, 2 ** 33), 0)
    if kind in ("reg", "dir") and r.random() < 0.3:
        names = set()
        for _ in range(r.randint(1, 3)):
            names.add(b"user." + segment(r, 30).replace(b"=", b"_"))
        a["xattrs"] = [(n, r.randbytes(r.choice([0, 1, 5, r.randrange(300)])))
                       for n in sorted(names)]
    return a


def gen_main(r, datadir):
    members, dirs, used = [], [], set()

    def add(m):
        assert m.path not in used, m.path
        used.add(m.path)
        members.append(m)
        if m.kind == "dir":
            dirs.append(m.path)
        return m

    def add_dir(path):
        add(Member("dir", path, **attrs(r, "dir")))

    def data_for(size):
        return r.randbytes(size)

    add_dir(b"w")
    for _ in range(60):
        parent = r.choice([d for d in dirs if len(d) < 2500])
        while True:
            p = parent + b"/" + segment(r, r.choice([8, 30, 120]))
            if p not in used:
                break
        add_dir(p)
    # The boundaries: a name of 99/100/101 bytes; 155/156-byte prefixes; 255/256/257 in all.
    add_dir(b"w/bnd")
    add_dir(b"w/bnd/" + b"p" * 149)   # a 155-byte prefix
    add_dir(b"w/bnd/" + b"q" * 150)   # 156
    for total in (99, 100, 101, 104, 105, 155, 156, 157, 255, 256, 257):
        add(Member("reg", b"w/bnd/" + b"x" * (total - 6), size=1, data=b"x"))
        if total > 157:
            add(Member("reg", b"w/bnd/" + b"p" * 149 + b"/" + b"n" * (total - 156), size=2,
                       data=b"pn"))
            add(Member("reg", b"w/bnd/" + b"q" * 150 + b"/" + b"m" * (total - 157), size=2,
                       data=b"qm"))
    for total in (99, 100, 101):   # directories: their '/' counts
        add_dir(b"w/bnd/" + b"d" * (total - 7))
    kinds = ["reg"] * 55 + ["symlink"] * 12 + ["hardlink"] * 10 + ["fifo"] * 5 + \
        ["chr"] * 4 + ["blk"] * 4 + ["dir"] * 4
    for i in range(260):
        kind = r.choice(kinds)
        parent = r.choice(dirs)
        while True:
            p = parent + b"/" + segment(r, r.choice([10, 40, 200]))
            if p not in used:
                break
        a = attrs(r, kind)
        if kind == "reg":
            size = r.choice([0, 1, 511, 512, 513, r.randrange(3000), r.randrange(70000)])
            add(Member("reg", p, size=size, data=data_for(size), **a))
        elif kind == "dir":
            add_dir(p)
        elif kind == "symlink":
            t = r.choice([b"target", b"../" + segment(r, 40), b"/abs/" + segment(r, 30),
                          b"x" * 100, b"y" * 101, b"/".join(segment(r, 60) for _ in range(5))])
            add(Member("symlink", p, link=t, **a))
        elif kind == "hardlink":
            add(Member("hardlink", p))  # its target is chosen once the order is known
        elif kind in ("chr", "blk"):
            a["major"], a["minor"] = r.randrange(4096), r.choice([r.randrange(256),
                                                                  r.randrange(2 ** 20)])
            add(Member(kind, p, **a))
        else:
            add(Member("fifo", p, **a))
    return tree_order(r, members)


def tree_order(r, members):
    """The members as `tar -c` writes a tree: each directory followed by its entries, then
    its subdirectories' subtrees.  GNU tar's extraction counts on it: it sets a directory's
    times once it leaves the directory's subtree, and a later entry in it would move them.
    Hard links then get a target among the regular files before them."""
    children = {}
    for m in members:
        if m.path != b"w":
            children.setdefault(m.path.rsplit(b"/", 1)[0], []).append(m)
    out = []

    def walk(d):
        out.append(d)
        kids = children.get(d.path, [])
        for k in kids:
            if k.kind != "dir":
                out.append(k)
        for k in kids:
            if k.kind == "dir":
                walk(k)
    walk(members[0])
    assert len(out) == len(members)
    regs = []
    for i, m in enumerate(out):
        if m.kind == "hardlink":
            if not regs:
                out[i] = Member("reg", m.path, **attrs(r, "reg"))
                continue
            t = r.choice(regs)
            m.link, m.target = t.path, t
            m.mode, m.uid, m.gid, m.uname, m.gname, m.mtime = (t.mode, t.uid, t.gid,
                                                                t.uname, t.gname, t.mtime)
        elif m.kind == "reg":
            regs.append(m)
    return out


def gen_binary(r):
    ms = [Member("dir", b"bin\xe9", mode=0o755)]
    for i in range(12):
        name = b"bin\xe9/f\xff%d" % i + segment(r, 20).replace(b" ", b"_")
        if i % 3 == 0:
            ms.append(Member("symlink", name, link=b"t\xe9\xe8%d" % i, mode=0o777))
        else:
            ms.append(Member("reg", name, size=3, data=b"b%02d" % i, uname=b"j\xf6rg",
                             gname=b"gr\xfc" + b"p" * (i * 4)))
    ms.append(Member("reg", b"bin\xe9/" + b"\xe9" * 150, size=1, data=b"z"))
    return ms


def gen_big():
    return [Member("dir", b"big"),
            Member("reg", b"big/a", size=8 * 2 ** 30 - 1),
            Member("reg", b"big/b", size=8 * 2 ** 30),
            Member("reg", b"big/c", size=8 * 2 ** 30 + 1),
            Member("reg", b"big/after", size=5, data=b"after")]


def write(mkmember, work, name, members):
    ddir = os.path.join(work, name + ".data")
    os.makedirs(ddir, exist_ok=True)
    lines = []
    for i, m in enumerate(members):
        f = os.path.join(ddir, str(i))
        if m.size and m.data is not None:
            with open(f, "wb") as fh:
                fh.write(m.data)
        lines.append(m.line(f))
    archive = os.path.join(work, name + ".tar")
    p = run([mkmember, archive], input="\n".join(lines).encode() + b"\n")
    if p.returncode != 0:
        fail("mkmember %s: exit %d: %s" % (name, p.returncode, b2s(p.stderr)[:500]))
        return None
    ok("mkmember wrote %s (%d members)" % (name, len(members)))
    return archive


# ---- listings ---------------------------------------------------------------------------

ESC = {"\\": "\\", "a": "\a", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t",
       "v": "\v", " ": " ", "\"": "\"", "'": "'", "?": "?"}


def unescape(s):
    """A name as GNU tar's and bsdtar's listings escape it (\\ooo octal, C escapes)."""
    out, i = bytearray(), 0
    b = s2b(s)
    while i < len(b):
        c = b[i:i + 1]
        if c == b"\\" and i + 1 < len(b):
            n = b[i + 1:i + 4]
            if re.fullmatch(rb"[0-7]{3}", n):
                out.append(int(n, 8))
                i += 4
                continue
            out += ESC.get(chr(b[i + 1]), chr(b[i + 1])).encode()
            i += 2
            continue
        out += c
        i += 1
    return bytes(out)


TYPE_CHAR = {"reg": "-", "hardlink": "h", "symlink": "l", "chr": "c", "blk": "b",
             "dir": "d", "fifo": "p"}


def perms(mode):
    return stat.filemode(stat.S_IFREG | mode)[1:]


def split_link(m, name):
    """The name part of a listing line and its link target."""
    sep = {"symlink": " -> ", "hardlink": " link to "}.get(m.kind)
    if sep and sep in name:
        n, t = name.split(sep, 1)
        return unescape(n), unescape(t)
    return unescape(name), b""


def gnu_time(t):
    sec, nsec = t
    d = datetime.datetime(1970, 1, 1) + datetime.timedelta(seconds=sec)
    s = d.strftime("%Y-%m-%d %H:%M:%S")
    if nsec:
        s += ("." + "%09d" % nsec).rstrip("0")
    return s


GNU_LINE = re.compile(r"^(.)(.{9}) (\S+)/(\S+) +(\d+,\d+|\d+) "
                      r"(-?\d+-\d\d-\d\d \d\d:\d\d:\d\d(?:\.\d+)?) +(.*)$")


def check_gnu_list(archive, members, what, allowed_err=()):
    probs = []
    outs = {}
    for numeric in (True, False):
        cmd = ["tar", "--full-time", "--quoting-style=escape", "-tvf", archive]
        if numeric:
            cmd.insert(1, "--numeric-owner")
        p = run(cmd)
        err = [ln for ln in b2s(p.stderr).splitlines() if ln not in allowed_err]
        if p.returncode != 0 or err:
            probs.append("tar -tvf: exit %d, stderr %r" % (p.returncode, err[:3]))
        outs[numeric] = b2s(p.stdout).splitlines()
    for numeric, lines in outs.items():
        if len(lines) != len(members):
            probs.append("%d lines for %d members" % (len(lines), len(members)))
            continue
        for m, ln in zip(members, lines):
            g = GNU_LINE.match(ln)
            if not g:
                probs.append("unparsed line %r" % ln)
                continue
            tc, pm, own, grp, size, when, name = g.groups()
            name, target = split_link(m, name)
            if numeric:
                want_own = (str(m.uid), str(m.gid))
            else:
                want_own = (b2s(m.uname) if m.uname else str(m.uid),
                            b2s(m.gname) if m.gname else str(m.gid))
                own, grp = b2s(unescape(own)), b2s(unescape(grp))
            want_size = "%d,%d" % (m.major, m.minor) if m.kind in ("chr", "blk") else \
                str(m.size)
            got = (tc, pm, (own, grp), size, name, target)
            want = (TYPE_CHAR[m.kind], perms(m.mode), want_own, want_size, m.stored(), m.link)
            if got != want:
                probs.append("%r: tar lists %r, want %r" % (m.path, got, want))
            if numeric and not (m.mtime[0] < 0 and m.mtime[1]) and when != gnu_time(m.mtime):
                probs.append("%r: tar lists time %s, want %s" % (m.path, when,
                                                                 gnu_time(m.mtime)))
    report("%s: tar -tvf lists the model" % what, probs)


def check_bsd_list(archive, members, what):
    probs = []
    p = run(["bsdtar", "--numeric-owner", "-tvf", archive], env=ENV_UTF8)
    if p.returncode != 0 or p.stderr:
        probs.append("bsdtar -tvf: exit %d, stderr %r" % (p.returncode, p.stderr[:300]))
    lines = b2s(p.stdout).splitlines()
    if len(lines) != len(members):
        probs.append("%d lines for %d members" % (len(lines), len(members)))
    for m, ln in zip(members, lines):
        f = ln.split(None, 8)
        if len(f) != 9:
            probs.append("unparsed line %r" % ln)
            continue
        name, target = split_link(m, f[8])
        want_size = "%d,%d" % (m.major, m.minor) if m.kind in ("chr", "blk") else str(m.size)
        got = (f[0][0], f[0][1:10], f[2], f[3], f[4], name, target)
        want = (TYPE_CHAR[m.kind], perms(m.mode), str(m.uid), str(m.gid), want_size,
                m.stored(), m.link)
        if got != want:
            probs.append("%r: bsdtar lists %r, want %r" % (m.path, got, want))
    report("%s: bsdtar -tvf lists the model" % what, probs)


# ---- tarfile ----------------------------------------------------------------------------

TARFILE_TYPE = {"reg": tarfile.REGTYPE, "hardlink": tarfile.LNKTYPE,
                "symlink": tarfile.SYMTYPE, "chr": tarfile.CHRTYPE, "blk": tarfile.BLKTYPE,
                "dir": tarfile.DIRTYPE, "fifo": tarfile.FIFOTYPE}


def check_tarfile(archive, members, what, contents=True):
    probs = []
    with tarfile.open(archive) as tf:
        infos = tf.getmembers()
        if len(infos) != len(members):
            probs.append("%d members for %d" % (len(infos), len(members)))
        for m, ti in zip(members, infos):
            pax = ti.pax_headers
            got = (s2b(ti.name), ti.type, ti.mode, ti.uid, ti.gid, s2b(ti.uname),
                   s2b(ti.gname), ti.size, s2b(ti.linkname))
            want = (m.path, TARFILE_TYPE[m.kind], m.mode, m.uid, m.gid, m.uname, m.gname,
                    m.size, m.link)
            if got != want:
                probs.append("%r: tarfile reads %r, want %r" % (m.path, got, want))
            if needs_pax_mtime(m):
                if pax.get("mtime") != pax_time(m.mtime):
                    probs.append("%r: pax mtime %r, want %r" % (m.path, pax.get("mtime"),
                                                                pax_time(m.mtime)))
            elif ti.mtime != m.mtime[0] or "mtime" in pax:
                probs.append("%r: mtime %r, want %d in the header" % (m.path, ti.mtime,
                                                                      m.mtime[0]))
            for key, t in (("atime", m.atime), ("ctime", m.ctime)):
                if pax.get(key) != (pax_time(t) if t else None):
                    probs.append("%r: pax %s %r" % (m.path, key, pax.get(key)))
            if m.kind in ("chr", "blk") and (ti.devmajor, ti.devminor) != (m.major, m.minor):
                probs.append("%r: device %d,%d" % (m.path, ti.devmajor, ti.devminor))
            xa = [(s2b(k[len("SCHILY.xattr."):]), s2b(v)) for k, v in pax.items()
                  if k.startswith("SCHILY.xattr.")]
            if xa != m.xattrs:
                probs.append("%r: xattrs %r, want %r" % (m.path, xa, m.xattrs))
            if contents and m.kind == "reg" and tf.extractfile(ti).read() != m.content():
                probs.append("%r: tarfile reads other contents" % m.path)
    report("%s: tarfile reads the model" % what, probs)


# ---- tarkv ------------------------------------------------------------------------------

TARKV_TYPE = {"reg": "file", "hardlink": "file", "symlink": "symlink", "chr": "chr",
              "blk": "blk", "dir": "dir", "fifo": "fifo"}


def check_tarkv(tarkv, archive, members, what, cat=True):
    probs = []
    idx = archive + ".idx"
    p = run([tarkv, "--index", idx, "--json", archive, "ls", "-R"], env=ENV_UTF8)
    if p.returncode != 0 or p.stderr:
        report("%s: tarkv ls -R --json" % what,
               ["exit %d, stderr %r" % (p.returncode, p.stderr[:300])])
        return
    entries = {s2b(e["path"]): e for e in json.loads(p.stdout)["entries"]}
    if len(entries) != len(members):
        probs.append("%d entries for %d members" % (len(entries), len(members)))
    for m in members:
        e = entries.get(m.path)
        if not e:
            probs.append("%r: not listed" % m.path)
            continue
        src = m.target or m
        size = {"reg": m.size, "hardlink": src.size, "symlink": len(m.link)}.get(m.kind, 0)
        got = (e["type"], e["mode"], e["uid"], e["gid"], s2b(e["uname"]), s2b(e["gname"]),
               e["size"], (e["mtime"], e["mtime_nsec"]))
        want = (TARKV_TYPE[m.kind], m.mode, m.uid, m.gid, m.uname, m.gname, size, m.mtime)
        if got != want:
            probs.append("%r: tarkv lists %r, want %r" % (m.path, got, want))
        if m.kind == "symlink" and s2b(e.get("target", "")) != m.link:
            probs.append("%r: target %r" % (m.path, e.get("target")))
        if m.kind in ("chr", "blk") and (e.get("major"), e.get("minor")) != (m.major, m.minor):
            probs.append("%r: device %r,%r" % (m.path, e.get("major"), e.get("minor")))
        if m.kind == "hardlink" and e["ino"] != entries[m.link]["ino"]:
            probs.append("%r: not the inode of %r" % (m.path, m.link))
        xa = sorted((s2b(k), bytes.fromhex(v)) for k, v in e["xattrs"].items())
        if xa != sorted(src.xattrs):
            probs.append("%r: xattrs %r, want %r" % (m.path, xa, src.xattrs))
    report("%s: tarkv ls -R --json lists the model" % what, probs)
    if not cat:
        return
    files = [m for m in members if m.kind in ("reg", "hardlink")]
    p = run([tarkv, "--index", idx, archive, "cat", "--"] + [m.path for m in files],
            env=ENV_UTF8)
    want = b"".join(m.content() for m in files)
    report("%s: tarkv cat gives the contents of %d files" % (what, len(files)),
           [] if p.returncode == 0 and not p.stderr and p.stdout == want else
           ["exit %d, %d bytes for %d, stderr %r" % (p.returncode, len(p.stdout), len(want),
                                                     p.stderr[:300])])


# ---- extraction -------------------------------------------------------------------------

IFMT = {"reg": stat.S_IFREG, "hardlink": stat.S_IFREG, "symlink": stat.S_IFLNK,
        "chr": stat.S_IFCHR, "blk": stat.S_IFBLK, "dir": stat.S_IFDIR, "fifo": stat.S_IFIFO}


def check_tree(root, members, what, bsd=False):
    probs = []
    rootb = os.fsencode(root)
    found = set()
    for dp, dns, fns in os.walk(rootb):
        for n in dns + fns:
            found.add(os.path.relpath(os.path.join(dp, n), rootb))
    want_paths = {m.path for m in members}
    if found != want_paths:
        probs.append("extra %r, missing %r" % (sorted(found - want_paths)[:3],
                                               sorted(want_paths - found)[:3]))
    for m in members:
        p = os.path.join(rootb, m.path)
        try:
            st = os.lstat(p)
        except OSError as e:
            probs.append("%r: %s" % (m.path, e))
            continue
        src = m.target or m
        if stat.S_IFMT(st.st_mode) != IFMT[m.kind]:
            probs.append("%r: type %o" % (m.path, stat.S_IFMT(st.st_mode)))
            continue
        got = [st.st_uid, st.st_gid]
        want = [m.uid, m.gid]
        if m.kind != "symlink":
            got.append(stat.S_IMODE(st.st_mode))
            want.append(m.mode)
        # bsdtar 3.6 reads "-S.F" as -S + F (see the top)
        if not (bsd and src.mtime[0] < 0 and src.mtime[1]):
            got.append(st.st_mtime_ns)
            want.append(src.mtime[0] * 10 ** 9 + src.mtime[1])
        if got != want:
            probs.append("%r: uid, gid, mode, mtime %r, want %r" % (m.path, got, want))
        if m.kind in ("reg", "hardlink"):
            with open(p, "rb") as f:
                if f.read() != m.content():
                    probs.append("%r: other contents" % m.path)
        if m.kind == "hardlink" and not os.path.samestat(st, os.lstat(
                os.path.join(rootb, m.link))):
            probs.append("%r: not a hard link to %r" % (m.path, m.link))
        if m.kind == "symlink" and os.readlink(p) != m.link:
            probs.append("%r: link to %r" % (m.path, os.readlink(p)))
        if m.kind in ("chr", "blk") and (os.major(st.st_rdev), os.minor(st.st_rdev)) != \
                (m.major, m.minor):
            probs.append("%r: device %d,%d" % (m.path, os.major(st.st_rdev),
                                               os.minor(st.st_rdev)))
        if m.kind in ("reg", "hardlink", "dir"):
            xa = sorted((os.fsencode(n), os.getxattr(p, n, follow_symlinks=False))
                        for n in os.listxattr(p, follow_symlinks=False) if n.startswith("user."))
            if xa != sorted(src.xattrs):
                probs.append("%r: xattrs %r, want %r" % (m.path, xa, src.xattrs))
    report("%s: the extracted tree is the model" % what, probs)


def extract(cmd, what, env=ENV, allowed_err=()):
    p = run(cmd, env=env)
    err = [ln for ln in b2s(p.stderr).splitlines() if ln not in allowed_err]
    if p.returncode != 0 or err or p.stdout:
        fail("%s: exit %d, stderr %r" % (what, p.returncode, err[:3]))
        return False
    ok(what)
    return True


def check_extractions(work, archive, members, what, allowed_err=(), compare=True):
    gx = os.path.join(work, what + ".gnu")
    os.makedirs(gx)
    if extract(["tar", "-xf", archive, "-C", gx, "--xattrs", "--xattrs-include=*",
                "--numeric-owner", "--same-owner", "-p", "--warning=no-timestamp"],
               "%s: tar -x" % what, allowed_err=allowed_err):
        check_tree(gx, members, "%s: tar -x" % what)
        if compare:
            extract(["tar", "--compare", "--numeric-owner", "-f", archive, "-C", gx],
                    "%s: tar --compare finds no difference" % what, allowed_err=allowed_err)
    bx = os.path.join(work, what + ".bsd")
    os.makedirs(bx)
    if extract(["bsdtar", "-x", "-p", "--xattrs", "--numeric-owner", "-f", archive, "-C", bx],
               "%s: bsdtar -x" % what, env=ENV_UTF8):
        check_tree(bx, members, "%s: bsdtar -x" % what, bsd=True)


# ---- main -------------------------------------------------------------------------------

HDRCHARSET = "tar: Ignoring unknown extended header keyword 'hdrcharset'"


def main():
    mkmember, tarkv, work, seed = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    r = random.Random(seed)
    print("note: seed %d" % seed)

    members = gen_main(r, work)
    a = write(mkmember, work, "main", members)
    if a:
        kinds = {k: sum(m.kind == k for m in members) for k in KINDS}
        print("note: main.tar: %s" % ", ".join("%d %s" % (n, k) for k, n in kinds.items()))
        check_gnu_list(a, members, "main")
        check_bsd_list(a, members, "main")
        check_tarfile(a, members, "main")
        check_tarkv(tarkv, a, members, "main")
        check_extractions(work, a, members, "main")

    members = gen_binary(r)
    a = write(mkmember, work, "binary", members)
    if a:
        check_gnu_list(a, members, "binary", allowed_err=(HDRCHARSET,))
        check_bsd_list(a, members, "binary")
        check_tarfile(a, members, "binary")
        check_tarkv(tarkv, a, members, "binary")
        check_extractions(work, a, members, "binary", allowed_err=(HDRCHARSET,))

    members = gen_big()
    a = write(mkmember, work, "big", members)
    if a:
        used = os.stat(a).st_blocks * 512
        (ok if used < 1 << 20 else fail)("big.tar: %d bytes of disk for %d" % (
            used, os.path.getsize(a)))
        check_gnu_list(a, members, "big")
        check_bsd_list(a, members, "big")
        check_tarfile(a, members, "big", contents=False)
        check_tarkv(tarkv, a, members, "big", cat=False)
        p = run(["tar", "-xOf", a, "big/after"])
        report("big: tar -xO big/after", [] if p.stdout == b"after" and not p.stderr else
               ["%r %r" % (p.stdout[:20], p.stderr[:200])])
        p = run([tarkv, "--index", a + ".idx", a, "cat", "big/after"])
        report("big: tarkv cat big/after", [] if p.stdout == b"after" and not p.stderr else
               ["%r %r" % (p.stdout[:20], p.stderr[:200])])
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
