#!/usr/bin/env python3
"""Build the tarkv integration-test corpus into OUTDIR (argv[1]).

    mkarchives.py OUTDIR

Creates
    OUTDIR/src/...            the source trees (varied types, modes, owners, times, names)
    OUTDIR/archives/*.tar     archives of them made by GNU tar, bsdtar and Python's tarfile
    OUTDIR/manifest.tsv       one line per archive: NAME <TAB> FLAGS <TAB> DESCRIPTION
                              FLAGS is a comma-separated list: ns (the format carries
                              sub-second mtimes), xattrs (the archive holds xattrs), sparse
                              (it holds sparse members); "-" when none.

Must run as root (chown, mknod).  Exits 77 when not root, 1 when an archiver fails (GNU tar
exit 2 / bsdtar non-zero; GNU tar exit 1 = warnings is accepted).  Every archiver's stderr is
shown.  The corpus is small (a few MB) and deterministic apart from the temp paths.
"""
import errno
import io
import os
import random
import stat
import subprocess
import sys
import tarfile

if len(sys.argv) != 2:
    sys.exit("usage: mkarchives.py OUTDIR")
if os.geteuid() != 0:
    print("mkarchives.py: needs root (chown, mknod)", file=sys.stderr)
    sys.exit(77)

OUT = os.path.abspath(sys.argv[1])
SRC = os.path.join(OUT, "src")
ARC = os.path.join(OUT, "archives")
os.makedirs(SRC, exist_ok=True)
os.makedirs(ARC, exist_ok=True)
os.umask(0o022)

rng = random.Random(0x7A2C0DE)
ENV_C = dict(os.environ, LC_ALL="C", TZ="UTC")
ENV_UTF8 = dict(os.environ, LC_ALL="C.UTF-8", TZ="UTC")

manifest = []  # (name, flags, description)
failures = []


def b(s):
    return s if isinstance(s, bytes) else s.encode("utf-8")


def data(n):
    return rng.randbytes(n)


# --------------------------------------------------------------------------------------
# Tree building: create everything first, then apply owners, modes and times (directories
# last and bottom-up, so that creating children does not change a directory's mtime; chown
# before chmod, since chown clears setuid/setgid).
# --------------------------------------------------------------------------------------


class Tree:
    def __init__(self, name):
        self.root = os.path.join(b(SRC), b(name))
        os.makedirs(self.root, exist_ok=True)
        self.meta = []  # (abs path, uid, gid, mode or None, mtime_ns)
        self.t = 1600000000 * 10**9 + 111111111  # default mtimes, advanced per entry

    def p(self, rel):
        return os.path.join(self.root, b(rel))

    def next_time(self):
        self.t += 86400 * 10**9 + 7654321
        return self.t

    def _meta(self, rel, uid, gid, mode, mtime_ns):
        self.meta.append((self.p(rel), uid, gid, mode,
                          self.next_time() if mtime_ns is None else mtime_ns))

    def _parent(self, rel):
        os.makedirs(os.path.dirname(self.p(rel)), exist_ok=True)

    def file(self, rel, content=b"", mode=0o644, uid=0, gid=0, mtime_ns=None):
        self._parent(rel)
        with open(self.p(rel), "wb") as f:
            f.write(content)
        self._meta(rel, uid, gid, mode, mtime_ns)

    def dir(self, rel, mode=0o755, uid=0, gid=0, mtime_ns=None):
        os.makedirs(self.p(rel), exist_ok=True)
        self._meta(rel, uid, gid, mode, mtime_ns)

    def symlink(self, rel, target, uid=0, gid=0, mtime_ns=None):
        self._parent(rel)
        os.symlink(b(target), self.p(rel))
        self._meta(rel, uid, gid, None, mtime_ns)

    def hardlink(self, rel, existing):
        self._parent(rel)
        os.link(self.p(existing), self.p(rel))

    def node(self, rel, kind, major=0, minor=0, mode=0o644, uid=0, gid=0, mtime_ns=None):
        self._parent(rel)
        os.mknod(self.p(rel), mode | kind, os.makedev(major, minor))
        self._meta(rel, uid, gid, mode, mtime_ns)

    def sparse(self, rel, size, islands, mode=0o644, mtime_ns=None):
        """islands: list of (offset, length) written with data; the rest are holes."""
        self._parent(rel)
        with open(self.p(rel), "wb") as f:
            f.truncate(size)
            for off, ln in islands:
                f.seek(off)
                f.write(data(ln))
        self._meta(rel, 0, 0, mode, mtime_ns)

    def finish(self):
        # Implicit parents made by _parent() get a time too.
        known = {m[0] for m in self.meta}
        for dp, dns, fns in os.walk(self.root):
            for d in dns:
                ap = os.path.join(dp, d)
                if ap not in known and not os.path.islink(ap):
                    self.meta.append((ap, 0, 0, None, self.next_time()))
        nondirs = [m for m in self.meta if not os.path.isdir(m[0]) or os.path.islink(m[0])]
        dirs = [m for m in self.meta if os.path.isdir(m[0]) and not os.path.islink(m[0])]
        dirs.sort(key=lambda m: -m[0].count(b"/"))
        dirs.append((self.root, 0, 0, 0o755, 1650000000 * 10**9))
        for path, uid, gid, mode, mtime_ns in nondirs + dirs:
            os.chown(path, uid, gid, follow_symlinks=False)
            if mode is not None and not os.path.islink(path):
                os.chmod(path, mode)
            os.utime(path, ns=(mtime_ns, mtime_ns), follow_symlinks=False)


def walk_list(root):
    """Relative paths (bytes) of everything under root, parents before children, sorted."""
    out = []
    for dp, dns, fns in os.walk(root):
        rel = os.path.relpath(dp, root)
        for n in dns + fns:
            out.append(n if rel == b"." else os.path.join(rel, n))
    return sorted(out, key=lambda p: p.split(b"/"))


# --------------------------------------------------------------------------------------
# The trees
# --------------------------------------------------------------------------------------

NS = 10**9


def build_full():
    t = Tree("full")
    # files/
    t.file("files/empty", b"")
    t.file("files/text.txt", b"hello world\n")
    for n in (1, 511, 512, 513, 1023, 1024, 1025, 10240):
        t.file("files/s%d" % n, data(n))
    t.file("files/s1m", data(1 << 20))
    t.file("files/zeros8k", b"\0" * 8192)  # written densely: not a sparse file
    # modes/
    for m in (0o000, 0o400, 0o600, 0o640, 0o644, 0o755, 0o777, 0o4755, 0o2755, 0o6755,
              0o1755, 0o2644, 0o4700):
        t.file("modes/m%04o" % m, b"mode %o\n" % m, mode=m)
    t.dir("modes/d700", mode=0o700)
    t.file("modes/d700/inside", b"in 700\n")
    t.dir("modes/d1777", mode=0o1777)
    t.dir("modes/d2775", mode=0o2775, gid=5678)
    t.file("modes/d2775/inside", b"in setgid dir\n", gid=5678)
    t.dir("modes/d555", mode=0o555)
    t.file("modes/d555/inside", b"in 555\n")
    t.dir("modes/d000", mode=0o000)
    t.file("modes/d000/inside", b"in 000\n")
    # owners/
    t.file("owners/u1234", b"1234:5678\n", uid=1234, gid=5678)
    t.file("owners/u0", b"root\n")
    t.file("owners/udaemon", b"daemon\n", uid=1, gid=1)
    t.file("owners/unobody", b"nobody\n", uid=65534, gid=65534)
    t.file("owners/umixed", b"0:5678\n", uid=0, gid=5678)
    t.file("owners/ubig", b"3000000:3000001\n", uid=3000000, gid=3000001)
    t.file("owners/u4321setuid", b"setuid 4321\n", mode=0o4750, uid=4321, gid=4321)
    t.dir("owners/d1234", uid=1234, gid=5678, mode=0o750)
    t.file("owners/d1234/f", b"f\n", uid=1234, gid=5678)
    t.symlink("owners/sym1234", "u1234", uid=1234, gid=5678)
    # times/
    t.file("times/ns", b"ns\n", mtime_ns=1600000000 * NS + 123456789)
    t.file("times/ns_max", b"ns\n", mtime_ns=1600000000 * NS + 999999999)
    t.file("times/ns_min", b"ns\n", mtime_ns=1600000000 * NS + 1)
    t.file("times/epoch", b"0\n", mtime_ns=0)
    t.file("times/y1980", b"1980\n", mtime_ns=315532800 * NS)
    t.file("times/y2100", b"2100\n", mtime_ns=4102444800 * NS + 5)
    t.file("times/neg", b"neg\n", mtime_ns=-100000 * NS)
    t.file("times/neg_ns", b"neg\n", mtime_ns=-100000 * NS + 500000000)
    t.file("times/big", b"big\n", mtime_ns=10**10 * NS)  # > 8^11-1: base-256 / pax
    t.dir("times/dir_ns", mtime_ns=1234567890 * NS + 987654321)
    t.file("times/dir_ns/f", b"f\n")
    t.symlink("times/sym_ns", "ns", mtime_ns=1500000000 * NS + 5)
    # names/
    t.file("names/" + "n" * 94, b"100\n")         # a path of exactly 100 bytes
    t.file("names/" + "m" * 93, b"99\n")          # 99
    t.file("names/" + "o" * 95, b"101\n")         # 101
    t.dir("names/" + "d" * 93)                     # dir of 99 (+ '/' = 100)
    t.file("names/" + "d" * 93 + "/x", b"x\n")
    t.file("names/split/" + "p" * 140 + "/" + "q" * 90, b"splittable\n")  # 243: ustar prefix
    t.file("names/long/" + "L" * 150 + "/" + "M" * 120 + "/file", b">255\n")  # 288
    comp = "c" * 200
    deep = "names/deep1000/" + "/".join([comp] * 4)
    t.file(deep + "/" + "z" * (1000 - len(deep) - 1), b"1000\n")
    t.file("names/" + "N" * 255, b"name_max\n")
    t.file("names/ünïcödé-日本語.txt", "ünïcödé\n".encode())
    t.file("names/emoji-😀", b"emoji\n")
    t.file("names/with space.txt", b"space\n")
    t.file("names/ leading space", b"lead\n")
    t.file("names/trailing space ", b"trail\n")
    t.file('names/quote"back\\slash', b"json\n")
    t.file("names/tab\there", b"tab\n")
    t.file("names/ctrl\x01\x1f\x7f", b"ctrl\n")
    t.file(b"names/latin1-caf\xe9", b"latin1\n")
    t.file(b"names/bad-\xff\xfe-utf8", b"bad\n")
    t.file("names/glob*?[x]", b"glob\n")
    t.file("names/colon:semi;%s", b"punct\n")
    t.dir("names/répertoire")
    t.file("names/répertoire/fichier", b"fichier\n")
    # links/
    t.file("links/target.txt", b"the target\n")
    t.file("links/hard2a", b"two names\n", uid=1234, gid=5678, mode=0o640)
    t.hardlink("links/hard2b", "links/hard2a")
    t.file("links/hard3a", data(3000))
    t.hardlink("links/hard3b", "links/hard3a")
    t.hardlink("links/sub/hard3c", "links/hard3a")
    t.file("links/hardempty_a", b"")
    t.hardlink("links/hardempty_b", "links/hardempty_a")
    t.file("links/a_short", b"long link\n")
    t.hardlink("links/hard_long_" + "h" * 140, "links/a_short")
    t.symlink("links/sym_rel", "target.txt")
    t.symlink("links/sym_up", "../files/text.txt")
    t.symlink("links/sym_abs", "/etc/passwd")
    t.symlink("links/sym_dangling", "does/not/exist")
    t.symlink("links/sym_long", "x" * 150 + "/y")
    t.symlink("links/sym_dir", "../modes")
    t.symlink("links/sym_utf8", "ünïcödé")
    t.symlink("links/sym_self", "sym_self")
    t.symlink("links/sym_dot", ".")
    # special/
    t.node("special/fifo", stat.S_IFIFO)
    t.node("special/fifo600", stat.S_IFIFO, mode=0o600, uid=1234, gid=5678)
    t.node("special/chr_null", stat.S_IFCHR, 1, 3, mode=0o666)
    t.node("special/chr_big", stat.S_IFCHR, 300, 70000, mode=0o600)
    t.node("special/blk_loop", stat.S_IFBLK, 7, 0, mode=0o660, gid=6)
    t.node("special/blk_sda1", stat.S_IFBLK, 8, 1, mode=0o640)
    # dirs/
    t.dir("dirs/empty")
    t.dir("dirs/empty700", mode=0o700)
    t.file("dirs/deep/a/b/c/d/e/f/g/h/i/j/leaf.txt", b"leaf\n")
    for i in range(40):
        t.file("dirs/many/f%02d" % i, b"%d\n" % i)
    for n in ("B", "a", "_", "A", "b", "Z", "aa", "a.b", "a-b", "é", "a b", "0", "~"):
        t.file("dirs/sortme/" + n, n.encode() + b"\n")
    t.finish()
    return t


SPARSE_FILES = {}


def build_sparse():
    t = Tree("sparse")
    K = 4096
    t.sparse("sp_mid", 1 << 20, [(512 * 1024, K), ((1 << 20) - 10, 10)])
    t.sparse("sp_hole_end", 2 << 20, [(0, K)])
    t.sparse("sp_hole_start", 1 << 20, [((1 << 20) - 3 * K, 3 * K)])
    t.sparse("sp_islands30", 30 * 16 * K, [(i * 16 * K + K, K) for i in range(30)])
    t.sparse("sp_allhole", 1 << 20, [])
    t.sparse("sp_unaligned", 1 << 20, [(100000, 5000), (700000, 1)])
    t.file("sp_dense", b"\0" * (64 * 1024))  # zeros written: not sparse
    t.file("sp_small", b"small\n")
    t.hardlink("sp_mid_link", "sp_mid")
    t.finish()
    return t


XATTRS = True


def build_xattr():
    global XATTRS
    t = Tree("xattr")
    probe = t.p("probe")
    open(probe, "wb").close()
    try:
        os.setxattr(probe, b"user.probe", b"1")
    except OSError as e:
        print("mkarchives: user xattrs unsupported here (%s): no xattr archives" % e,
              file=sys.stderr)
        XATTRS = False
    os.unlink(probe)
    if not XATTRS:
        return t
    t.file("x_text", b"text\n")
    t.file("x_bin", b"bin\n")
    t.file("x_empty_value", b"empty value\n")
    t.file("x_long", b"long\n")
    t.file("x_many", b"many\n")
    t.file("x_utf8", b"utf8\n")
    t.file("x_none", b"none\n")
    t.dir("xdir")
    t.file("xdir/inner", b"inner\n", uid=1234, gid=5678)
    t.finish()
    p = t.p
    os.setxattr(p("x_text"), b"user.comment", b"hello")
    os.setxattr(p("x_text"), b"user.mime_type", b"text/plain")
    os.setxattr(p("x_bin"), b"user.bin", bytes(range(256)))
    os.setxattr(p("x_empty_value"), b"user.empty", b"")
    os.setxattr(p("x_long"), b"user.long", data(2000))
    for i in range(20):
        os.setxattr(p("x_many"), b"user.k%02d" % i, b"v%d" % i)
    os.setxattr(p("x_utf8"), "user.ünï".encode(), "välue".encode())
    os.setxattr(p("xdir"), b"user.dir", b"dir attr")
    os.setxattr(p("xdir/inner"), b"user.inner", b"inner")
    t.hardlink("x_text_link", "x_text")
    # restore the directories' times that the link and setxattr did not touch... link() does
    # change the directory mtime: put it back.
    os.utime(t.root, ns=(1650000000 * NS, 1650000000 * NS))
    return t


def build_app():
    """For --append: the first version of the tree."""
    t = Tree("app")
    t.file("app/f", b"version 1\n")
    t.dir("app/thing")                      # replaced by a file later
    t.file("app/other", b"file first\n")    # replaced by a directory later
    t.file("app/keep", b"kept\n")
    t.file("app/hl_a", b"hard\n")
    t.hardlink("app/hl_b", "app/hl_a")
    t.finish()
    return t


def modify_app(t):
    os.rmdir(t.p("app/thing"))
    with open(t.p("app/thing"), "wb") as f:
        f.write(b"now a file\n")
    with open(t.p("app/f"), "wb") as f:
        f.write(b"version 2, longer\n")
    os.unlink(t.p("app/other"))
    os.mkdir(t.p("app/other"))
    with open(t.p("app/other/child"), "wb") as f:
        f.write(b"child\n")
    os.chown(t.p("app/f"), 1234, 5678)
    os.chmod(t.p("app/f"), 0o600)
    for rel, sec in (("app/thing", 1700000001), ("app/f", 1700000002),
                     ("app/other/child", 1700000003), ("app/other", 1700000004),
                     ("app", 1700000005)):
        os.utime(t.p(rel), ns=(sec * NS + 42, sec * NS + 42))


# --------------------------------------------------------------------------------------
# Member selection for the formats that cannot store everything
# --------------------------------------------------------------------------------------


def info(root, rel):
    st = os.lstat(os.path.join(root, rel))
    target = os.readlink(os.path.join(root, rel)) if stat.S_ISLNK(st.st_mode) else None
    return st, target


def ustar_name_ok(name):
    if len(name) <= 100:
        return True
    # split at a '/' with prefix <= 155 and name <= 100 (and non-empty)
    for i in range(len(name) - 1, -1, -1):
        if name[i:i + 1] == b"/" and i <= 155 and 0 < len(name) - i - 1 <= 100:
            return True
    return False


def select(root, members, fmt):
    """Members of the list that format fmt ('v7' or 'ustar') can store."""
    out = []
    first = {}  # (dev, ino) -> first name kept (hard links)
    for rel in members:
        st, target = info(root, rel)
        name = rel + (b"/" if stat.S_ISDIR(st.st_mode) else b"")
        if fmt == "v7":
            if stat.S_ISFIFO(st.st_mode) or stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode):
                continue
            if len(name) > 99 or (target is not None and len(target) > 99):
                continue
        else:
            if not ustar_name_ok(name) or (target is not None and len(target) > 100):
                continue
            if (stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode)) and (
                    os.major(st.st_rdev) >= 8**7 or os.minor(st.st_rdev) >= 8**7):
                continue
        if st.st_uid >= 8**7 or st.st_gid >= 8**7:
            continue
        if not 0 <= st.st_mtime_ns // NS < 8**11:
            continue
        if stat.S_ISREG(st.st_mode) and st.st_nlink > 1:
            key = (st.st_dev, st.st_ino)
            if key in first and len(first[key]) > (99 if fmt == "v7" else 100):
                continue
            first.setdefault(key, rel)
        out.append(rel)
    return out


# --------------------------------------------------------------------------------------
# Running the archivers
# --------------------------------------------------------------------------------------


def run(cmd, ok=(0,), env=ENV_C, what=None):
    r = subprocess.run(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    msg = (r.stdout + r.stderr).decode("utf-8", "replace").strip()
    if r.returncode not in ok:
        failures.append("%s: exit %d: %s" % (what or cmd[0], r.returncode, msg[:2000]))
        print("mkarchives: FAILED (exit %d): %s\n%s" % (r.returncode, " ".join(map(str, cmd)), msg),
              file=sys.stderr)
        return False
    if msg:
        print("mkarchives: %s: %s" % (what or cmd[0], msg[:600]), file=sys.stderr)
    return True


def write_list(name, members):
    path = os.path.join(OUT, name + ".list")
    with open(path, "wb") as f:
        for m in members:
            f.write(m + b"\0")
    return path


def gnutar(name, root, members, opts, flags, desc, recursive=False):
    out = os.path.join(ARC, name)
    if recursive:
        cmd = ["tar", "-cf", out] + opts + ["-C", root] + members
    else:
        lst = write_list(name, members)
        cmd = ["tar", "-cf", out] + opts + ["-C", root, "--no-recursion", "--null",
                                             "--verbatim-files-from", "-T", lst]
    if run(cmd, ok=(0, 1), what="GNU tar " + name):
        manifest.append((name, flags, desc))


def bsdtar(name, root, members, opts, flags, desc):
    out = os.path.join(ARC, name)
    lst = write_list(name, members)
    cmd = ["bsdtar", "-cf", out] + opts + ["-C", root, "-n", "--null", "-T", lst]
    if run(cmd, ok=(0,), env=ENV_UTF8, what="bsdtar " + name):
        manifest.append((name, flags, desc))


# --------------------------------------------------------------------------------------
# Python tarfile: crafted members (not from the file system)
# --------------------------------------------------------------------------------------


def ti(name, type=tarfile.REGTYPE, **kw):
    t = tarfile.TarInfo(name)
    t.type = type
    t.mtime = kw.pop("mtime", 1500000000)
    t.mode = kw.pop("mode", 0o777 if type == tarfile.SYMTYPE else
                    0o755 if type == tarfile.DIRTYPE else 0o644)
    t.uname = kw.pop("uname", "root")
    t.gname = kw.pop("gname", "root")
    for k, v in kw.items():
        setattr(t, k, v)
    return t


def crafted_members(fmt):
    """(TarInfo, data or None) pairs; fmt is tarfile.USTAR_FORMAT/GNU_FORMAT/PAX_FORMAT."""
    pax = fmt == tarfile.PAX_FORMAT
    m = []
    m.append((ti("plain.txt"), b"plain text\n"))
    m.append((ti("empty"), b""))
    m.append((ti("s513"), data(513)))
    m.append((ti("dir", tarfile.DIRTYPE, mtime=1400000000), None))
    m.append((ti("dir/file", mode=0o600, uid=1234, gid=5678, uname="", gname=""), b"in dir\n"))
    m.append((ti("dir/sub/deep.bin", uid=1234, gid=5678, uname="tk_alice", gname="tk_staff"),
              data(2000)))  # dir/sub is implicit
    m.append((ti("ünïcödé/файл.txt"), "файл\n".encode()))
    m.append((ti("ünïcödé", tarfile.DIRTYPE, mode=0o750), None))  # dir listed after child
    m.append((ti("long/" + "l" * 145), b"long name\n"))
    m.append((ti("longer/" + "/".join(["k" * 60] * 5)), b"path of 312\n"))
    m.append((ti("link", tarfile.SYMTYPE, linkname="plain.txt"), None))
    m.append((ti("longlink", tarfile.SYMTYPE, linkname="t" * 200), None))
    m.append((ti("hard", tarfile.LNKTYPE, linkname="plain.txt"), None))
    m.append((ti("hard_to_long", tarfile.LNKTYPE, linkname="long/" + "l" * 145), None))
    m.append((ti("setuid", mode=0o4755, uid=1234, gid=5678, uname="", gname=""), b"#!/bin/sh\n"))
    m.append((ti("sticky_dir", tarfile.DIRTYPE, mode=0o1777), None))
    m.append((ti("fifo", tarfile.FIFOTYPE, mode=0o600), None))
    m.append((ti("chr", tarfile.CHRTYPE, devmajor=1, devminor=3), None))
    m.append((ti("blk", tarfile.BLKTYPE, devmajor=7, devminor=1, mode=0o660), None))
    m.append((ti("big_uid", uid=3000000, gid=3000001, uname="", gname=""), b"big ids\n"))
    m.append((ti("big_mtime", mtime=10**10), b"year 2286\n"))
    m.append((ti("neg_mtime", mtime=-1234567), b"1969\n"))
    m.append((ti("slashreg/", size=0), b""))  # a regular file named x/: extracted as dir
    m.append((ti("slashreg/child"), b"child of slashreg\n"))
    m.append((ti("dup.txt"), b"first version\n"))
    m.append((ti("areg", tarfile.AREGTYPE), b"typeflag NUL\n"))
    m.append((ti("contig", tarfile.CONTTYPE), b"typeflag 7\n"))
    m.append((ti("./dotted/./x//y"), b"normalised\n"))
    m.append((ti("/abs/file"), b"leading slash\n"))
    m.append((ti("dup.txt", mtime=1500000999), b"second version, this one wins\n"))
    if pax:
        m.append((ti("pax_mtime", pax_headers={"mtime": "1234567890.987654321"}), b"frac\n"))
        m.append((ti("pax_mtime_short", pax_headers={"mtime": "1234567890.5"}), b"frac\n"))
        m.append((ti("pax_mtime_long", pax_headers={"mtime": "1234567890.1234567891234"}),
                  b"more than 9 digits: truncated\n"))
        m.append((ti("pax_xattr", pax_headers={"SCHILY.xattr.user.py": "from python",
                                               "SCHILY.xattr.user.two": "2"}), b"xattr\n"))
        m.append((ti("pax_path_override", pax_headers={"path": "overridden/name.txt"}),
                  b"pax path wins over the header name\n"))
        m.append((ti("pax_size", pax_headers={"size": "11"}), b"0123456789\n"))
        m.append((ti("pax_ids", uid=1, gid=2, pax_headers={"uid": "1234", "gid": "5678",
                                                          "uname": "", "gname": ""}),
                  b"pax ids\n"))
        m.append((ti("pax_uname", uname="ignored", pax_headers={"uname": "tk_paxuser"}),
                  b"pax uname\n"))
        m.append((ti("pax_linkpath", tarfile.SYMTYPE, linkname="short",
                     pax_headers={"linkpath": "from/pax/linkpath"}), None))
    return m


def tarfile_archive(name, fmt, members, flags, desc, **kw):
    out = os.path.join(ARC, name)
    skipped = []
    with tarfile.open(out, "w", format=fmt, encoding="utf-8", **kw) as tf:
        for t, d in members:
            try:
                if d is not None:
                    t.size = len(d)
                    tf.addfile(t, io.BytesIO(d))
                else:
                    tf.addfile(t)
            except ValueError as e:
                skipped.append("%s (%s)" % (t.name[:40], e))
    if skipped:
        print("mkarchives: tarfile %s: skipped %s" % (name, "; ".join(skipped)), file=sys.stderr)
    manifest.append((name, flags, desc))


def tarfile_from_fs(name, fmt, root, members, flags, desc):
    out = os.path.join(ARC, name)
    skipped = []
    with tarfile.open(out, "w", format=fmt, encoding="utf-8", errors="surrogateescape") as tf:
        for rel in members:
            try:
                tf.add(os.fsdecode(os.path.join(root, rel)), arcname=os.fsdecode(rel), recursive=False)
            except ValueError as e:
                skipped.append("%s (%s)" % (os.fsdecode(rel)[:40], e))
    if skipped:
        print("mkarchives: tarfile %s: skipped %s" % (name, "; ".join(skipped)), file=sys.stderr)
    manifest.append((name, flags, desc))


# --------------------------------------------------------------------------------------


def main():
    full = build_full()
    sp = build_sparse()
    xa = build_xattr()
    app = build_app()
    F = full.root
    allm = walk_list(F)
    spm = walk_list(sp.root)

    # GNU tar, the full tree
    gnutar("gnu.tar", F, allm, ["--format=gnu"], "ns", "GNU tar --format=gnu, full tree")
    gnutar("oldgnu.tar", F, allm, ["--format=oldgnu"], "ns", "GNU tar --format=oldgnu")
    gnutar("posix.tar", F, allm, ["--format=posix"], "ns", "GNU tar --format=posix (pax)")
    gnutar("ustar.tar", F, select(F, allm, "ustar"), ["--format=ustar"], "ns",
           "GNU tar --format=ustar, what ustar can store")
    gnutar("v7.tar", F, select(F, allm, "v7"), ["--format=v7"], "ns",
           "GNU tar --format=v7, what v7 can store")
    gnutar("gnu-dotslash.tar", F, [b"."], ["--format=gnu"], "ns",
           "GNU tar -C full . (./ prefixes, root member ./)", recursive=True)
    leaves = [m for m in allm if not stat.S_ISDIR(os.lstat(os.path.join(F, m)).st_mode)]
    gnutar("gnu-implicit.tar", F, leaves, ["--format=gnu"], "ns",
           "GNU tar, no directory members (implicit parents)")
    gnutar("posix-implicit.tar", F, [m for m in leaves if m.startswith(b"links/")],
           ["--format=posix"], "ns", "GNU tar posix, links/ without directory members")
    gnutar("gnu-subdirs.tar", F, [b"names", b"links"], ["--format=gnu"], "ns",
           "GNU tar, two subtrees, recursive", recursive=True)

    # sparse
    gnutar("gnu-sparse.tar", sp.root, spm, ["--format=gnu", "--sparse"], "ns,sparse",
           "GNU tar --format=gnu --sparse (old GNU 'S', extension headers)")
    gnutar("oldgnu-sparse.tar", sp.root, spm, ["--format=oldgnu", "--sparse"], "ns,sparse",
           "GNU tar --format=oldgnu --sparse")
    for v in ("0.0", "0.1", "1.0"):
        gnutar("posix-sparse-%s.tar" % v, sp.root, spm,
               ["--format=posix", "--sparse", "--sparse-version=" + v], "ns,sparse",
               "GNU tar --format=posix --sparse --sparse-version=" + v)
    gnutar("gnu-nosparse.tar", sp.root, spm, ["--format=gnu"], "ns",
           "GNU tar, the sparse tree without --sparse (holes stored as zeros)")

    # xattrs
    if XATTRS:
        xm = walk_list(xa.root)
        gnutar("posix-xattrs.tar", xa.root, xm, ["--format=posix", "--xattrs",
                                                 "--xattrs-include=*"], "ns,xattrs",
               "GNU tar --format=posix --xattrs")
        bsdtar("bsdtar-pax-xattrs.tar", xa.root, xm, ["--format", "pax", "--xattrs"],
               "ns,xattrs", "bsdtar --format pax, xattrs")

    # append: same name twice (last wins), a file replacing an empty dir, a dir replacing a file
    for fmt in ("gnu", "posix"):
        name = "%s-append.tar" % fmt
        appsrc = os.path.join(SRC, "app-" + fmt)
        subprocess.run(["rm", "-rf", appsrc])
        subprocess.run(["cp", "-a", app.root, appsrc], check=True)
        out = os.path.join(ARC, name)
        ok = run(["tar", "--format=" + fmt, "-cf", out, "-C", appsrc, "app"], ok=(0, 1),
                 what="GNU tar " + name)
        t2 = Tree.__new__(Tree)
        t2.root = os.fsencode(appsrc)
        modify_app(t2)
        ok = ok and run(["tar", "--format=" + fmt, "-rf", out, "-C", appsrc, "--no-recursion",
                         "app/f", "app/thing", "app/other", "app/other/child", "app"],
                        ok=(0, 1), what="GNU tar -r " + name)
        if ok:
            manifest.append((name, "ns", "GNU tar -c then -r (duplicates: last wins)"))

    # bsdtar
    bsdtar("bsdtar-ustar.tar", F, select(F, allm, "ustar"), ["--format", "ustar"], "ns",
           "bsdtar --format ustar")
    bsdtar("bsdtar-pax.tar", F, allm, ["--format", "pax"], "ns", "bsdtar --format pax")
    bsdtar("bsdtar-gnutar.tar", F, [m for m in allm if not m.startswith(b"owners/ubig")
                                    and not m.startswith(b"times/")] +
           [m for m in allm if m.startswith(b"times/") and m not in
            (b"times/neg", b"times/neg_ns", b"times/big")],
           ["--format", "gnutar"], "ns", "bsdtar --format gnutar")
    bsdtar("bsdtar-pax-sparse.tar", sp.root, spm, ["--format", "pax"], "ns,sparse",
           "bsdtar --format pax of the sparse tree")

    # Python tarfile
    tarfile_archive("py-ustar.tar", tarfile.USTAR_FORMAT, crafted_members(tarfile.USTAR_FORMAT),
                    "ns", "Python tarfile USTAR_FORMAT, crafted members")
    tarfile_archive("py-gnu.tar", tarfile.GNU_FORMAT, crafted_members(tarfile.GNU_FORMAT),
                    "ns", "Python tarfile GNU_FORMAT (LongLink, base-256)")
    tarfile_archive("py-pax.tar", tarfile.PAX_FORMAT, crafted_members(tarfile.PAX_FORMAT),
                    "ns,xattrs", "Python tarfile PAX_FORMAT (pax records)")
    tarfile_archive("py-pax-global.tar", tarfile.PAX_FORMAT,
                    crafted_members(tarfile.PAX_FORMAT), "ns,xattrs",
                    "Python tarfile PAX_FORMAT with a global header (uid/gid/uname/mtime)",
                    pax_headers={"comment": "a global header", "uid": "4321", "gid": "8765",
                                 "uname": "tk_global", "mtime": "1000000000.5"})
    tarfile_from_fs("py-gnu-fs.tar", tarfile.GNU_FORMAT, F, allm, "ns",
                    "Python tarfile GNU_FORMAT of the full tree")
    tarfile_from_fs("py-pax-fs.tar", tarfile.PAX_FORMAT, F, allm, "ns",
                    "Python tarfile PAX_FORMAT of the full tree (float mtimes)")

    with open(os.path.join(OUT, "manifest.tsv"), "w") as f:
        for name, flags, desc in manifest:
            f.write("%s\t%s\t%s\n" % (name, flags or "-", desc))
    total = sum(os.path.getsize(os.path.join(ARC, n)) for n, _, _ in manifest)
    print("mkarchives: %d archives, %.1f MB, in %s" % (len(manifest), total / 1e6, ARC),
          file=sys.stderr)
    if failures:
        print("mkarchives: %d archiver failure(s)" % len(failures), file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
