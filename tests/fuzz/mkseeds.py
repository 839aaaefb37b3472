#!/usr/bin/env python3
"""Regenerate the fuzzers' seed corpora in tests/fuzz/corpus/<target>/.

    tests/fuzz/mkseeds.py [TARKV]

Archives are made by GNU tar, bsdtar and Python's tarfile from a small tree (directories,
files, symlinks, hard links, a fifo, long names and link targets, xattrs, sparse files in
every GNU format); the pax and sparse seeds are the records and maps inside them plus
hand-written ones; the header seeds are the header blocks; the index-file seeds are index
files that TARKV (default: ./tarkv of the tree) saves for some of the archives.

Needs GNU tar, bsdtar, setfattr (xattrs are left out without it), and a built tarkv for
the index-file seeds.  Archives keep only two zero blocks after the last member (no record
padding) to stay small.  Existing seeds of the same names are overwritten; others are left.
"""
import hashlib
import os
import shutil
import struct
import subprocess
import sys
import tarfile
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
TOP = os.path.dirname(os.path.dirname(HERE))
CORPUS = os.path.join(HERE, "corpus")
TARKV = sys.argv[1] if len(sys.argv) > 1 else os.path.join(TOP, "tarkv")
ENV = dict(os.environ, LC_ALL="C", TZ="UTC")
T = 1600000000


def out(target, name, data):
    d = os.path.join(CORPUS, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def trim(data):
    """Drop record padding: keep the members and two zero blocks."""
    pos = 0
    while pos + 512 <= len(data):
        blk = data[pos:pos + 512]
        if blk == bytes(512):
            break
        size = parse_size(blk)
        if size is None:
            return data
        pos += 512
        if blk[156:157] == b"S" and blk[257:265] == b"ustar  \0" and blk[482]:
            while pos + 512 <= len(data):
                more = data[pos + 504]
                pos += 512
                if not more:
                    break
        pos += (size + 511) // 512 * 512
    return data[:pos] + bytes(1024)


def parse_size(blk):
    f = blk[124:136]
    if f[0] & 0x80:
        return int.from_bytes(f[1:], "big")
    s = f.strip(b" \0")
    try:
        return int(s, 8) if s else 0
    except ValueError:
        return None


def headers(data):
    """(header block, typeflag, member data) for every header the reader meets."""
    pos = 0
    res = []
    while pos + 512 <= len(data):
        blk = data[pos:pos + 512]
        if blk == bytes(512):
            break
        size = parse_size(blk) or 0
        typ = blk[156:157]
        pos += 512
        ext = []
        if typ == b"S" and blk[482]:
            while pos + 512 <= len(data):
                ext.append(data[pos:pos + 512])
                more = data[pos + 504]
                pos += 512
                if not more:
                    break
        res.append((blk, typ, data[pos:pos + size], ext))
        pos += (size + 511) // 512 * 512
    return res


def make_tree(root, xattrs):
    os.makedirs(os.path.join(root, "dir/sub"))
    os.makedirs(os.path.join(root, "empty"))
    w = lambda p, d: open(os.path.join(root, p), "wb").write(d)
    w("plain.txt", b"plain text\n")
    w("dir/file", b"in dir\n")
    w("dir/sub/deep.bin", bytes(range(256)) * 3)
    w("x" * 120, b"long name\n")
    os.makedirs(os.path.join(root, "long" + "d" * 60 + "/" + "e" * 60))
    w("long" + "d" * 60 + "/" + "e" * 60 + "/f", b"prefix\n")
    os.symlink("plain.txt", os.path.join(root, "link"))
    os.symlink("t" * 150, os.path.join(root, "longlink"))
    os.link(os.path.join(root, "plain.txt"), os.path.join(root, "hard"))
    os.mkfifo(os.path.join(root, "fifo"))
    with open(os.path.join(root, "sparse"), "wb") as f:
        f.truncate(40960)
        f.seek(4096)
        f.write(b"S" * 100)
        f.seek(32768)
        f.write(b"T" * 50)
    if xattrs:
        for p, k, v in (("plain.txt", "user.mime", "text/plain"), ("dir", "user.d", "1"),
                        ("dir/file", "user.\u00fcn\u00ef", "bin\x01\x02")):
            subprocess.run(["setfattr", "-n", k, "-v", v, os.path.join(root, p)], check=True)
    for dp, dns, fns in os.walk(root, topdown=False):
        for n in fns + dns:
            os.utime(os.path.join(dp, n), (T, T), follow_symlinks=False)
    os.utime(root, (T, T))


def run(cmd, cwd):
    r = subprocess.run(cmd, cwd=cwd, env=ENV, stderr=subprocess.PIPE)
    if r.returncode not in (0, 1):
        sys.exit("%s: %s" % (" ".join(cmd), r.stderr.decode(errors="replace")))


def main():
    tmp = tempfile.mkdtemp(prefix="tarmount-seeds-")
    try:
        build(tmp)
    finally:
        shutil.rmtree(tmp)


def build(tmp):
    src = os.path.join(tmp, "src")
    xattrs = shutil.which("setfattr") is not None
    make_tree(src, xattrs)
    members = sorted(os.listdir(src))
    archives = {}

    # The sparse file only where a format stores it sparse (elsewhere it is 40 KiB of zeros).
    plain = [m for m in members if m != "sparse"]

    def gnutar(name, *opts):
        path = os.path.join(tmp, name)
        mem = members if "--sparse" in opts else plain
        run(["tar", "-b", "1", "--numeric-owner", "--owner=0", "--group=0",
             "-cf", path] + list(opts) + mem, src)
        archives[name] = trim(open(path, "rb").read())

    gnutar("gnu.tar", "--format=gnu")
    gnutar("oldgnu.tar", "--format=oldgnu")
    gnutar("posix.tar", "--format=posix", "--pax-option=delete=atime,delete=ctime")
    gnutar("gnu_sparse.tar", "--format=gnu", "--sparse")
    for v in ("0.0", "0.1", "1.0"):
        gnutar("pax_sparse_%s.tar" % v, "--format=posix", "--sparse", "--sparse-version=" + v,
               "--pax-option=delete=atime,delete=ctime")
    if xattrs:
        gnutar("posix_xattrs.tar", "--format=posix", "--xattrs", "--xattrs-include=*",
               "--pax-option=delete=atime,delete=ctime")

    def bsd(name, *opts):
        path = os.path.join(tmp, name)
        mem = members if name == "bsdtar_pax.tar" else plain
        run(["bsdtar", "-b", "1", "--numeric-owner", "-cf", path] + list(opts) + mem, src)
        archives[name] = trim(open(path, "rb").read())

    bsd("bsdtar_pax.tar", "--format=pax")
    bsd("bsdtar_ustar.tar", "--format=ustar")
    bsd("bsdtar_gnutar.tar", "--format=gnutar")
    bsd("bsdtar_v7.tar", "--format=v7")
    if xattrs:
        bsd("bsdtar_xattrs.tar", "--format=pax", "--xattrs")

    # Python's tarfile: formats, a global header, and crafted members no tool writes.
    def ti(name, typ=tarfile.REGTYPE, **kw):
        t = tarfile.TarInfo(name)
        t.type = typ
        t.mtime = T
        for k, v in kw.items():
            setattr(t, k, v)
        return t

    def pyarc(name, fmt, items, **kw):
        import io
        bio = io.BytesIO()
        with tarfile.open(fileobj=bio, mode="w", format=fmt, **kw) as tf:
            for t, d in items:
                if d is not None:
                    t.size = len(d)
                tf.addfile(t, io.BytesIO(d) if d is not None else None)
        archives[name] = trim(bio.getvalue())

    items = [
        (ti("d", tarfile.DIRTYPE, mode=0o755), None),
        (ti("d/f", mode=0o644, uname="alice", gname="staff", uid=1000, gid=100), b"data\n"),
        (ti("d/l", tarfile.SYMTYPE, linkname="f"), None),
        (ti("d/h", tarfile.LNKTYPE, linkname="d/f"), None),
        (ti("chr", tarfile.CHRTYPE, devmajor=1, devminor=3), None),
        (ti("blk", tarfile.BLKTYPE, devmajor=8, devminor=1), None),
        (ti("fifo", tarfile.FIFOTYPE), None),
        (ti("n" * 130 + "/" + "m" * 30, mode=0o600), b"long\n"),
        (ti("big_uid", uid=3000000, gid=3000001), b"ids\n"),
    ]
    pyarc("py_gnu.tar", tarfile.GNU_FORMAT, items)
    pyarc("py_ustar.tar", tarfile.USTAR_FORMAT, [i for i in items if i[0].name != "big_uid"])
    pax_items = items + [
        (ti("pax_time", pax_headers={"mtime": "-1.5", "atime": "1.25"}), b"t\n"),
        (ti("pax_x", pax_headers={"SCHILY.xattr.user.a": "1",
                                  "LIBARCHIVE.xattr.user.%C3%BC": "dmFsdWU",
                                  "SCHILY.xattr.security.selinux": "x\0y"}), b"x\n"),
        (ti("pax_uname", uname="ignored", pax_headers={"uname": "paxuser", "gname": ""}),
         b"u\n"),
        (ti("pax_path", pax_headers={"path": "renamed/by/pax", "size": "3"}), b"abc"),
        (ti("pax_link", tarfile.SYMTYPE, linkname="short",
            pax_headers={"linkpath": "l" * 300}), None),
        (ti("pax_dev", tarfile.CHRTYPE, pax_headers={"SCHILY.devmajor": "4000",
                                                    "SCHILY.devminor": "70000"}), None),
    ]
    pyarc("py_pax_global.tar", tarfile.PAX_FORMAT, pax_items,
          pax_headers={"comment": "global", "uname": "globaluser", "mtime": "1700000000.5"})
    # Replays: a directory replaced by a file and back, '..', absolute names, hard links to
    # missing targets and to directories, a member naming the root.
    pyarc("py_replay.tar", tarfile.PAX_FORMAT, [
        (ti("a", tarfile.DIRTYPE), None),
        (ti("a/x"), b"1"),
        (ti("a"), b"now a file"),
        (ti("a/y"), b"lost"),
        (ti("a", tarfile.DIRTYPE), None),
        (ti("a/z"), b"2"),
        (ti("./", tarfile.DIRTYPE, mode=0o700), None),
        (ti("../evil"), b"no"),
        (ti("/abs//./path/"), b"abs"),
        (ti("hl", tarfile.LNKTYPE, linkname="missing"), None),
        (ti("hd", tarfile.LNKTYPE, linkname="a"), None),
        (ti("hz", tarfile.LNKTYPE, linkname="../../a/z"), None),
        (ti("dup"), b"first"),
        (ti("dup"), b"second"),
    ])

    for name, data in sorted(archives.items()):
        base = name[:-4]
        out("fuzz_archive", base, data + b"\0")
    # The same archives on the other paths (sector size, checksum fix-up, cache, window).
    for name, ctl in (("gnu.tar", 1), ("posix.tar", 2), ("gnu_sparse.tar", 5),
                      ("pax_sparse_1.0.tar", 9), ("py_pax_global.tar", 15)):
        out("fuzz_archive", "%s_ctl%d" % (name[:-4], ctl), archives[name] + bytes([ctl]))

    # Headers, pax records and sparse maps from inside them.
    seen = set()
    for name, data in sorted(archives.items()):
        for i, (blk, typ, body, ext) in enumerate(headers(data)):
            h = hashlib.sha1(blk[100:]).hexdigest()[:8]
            if (typ, blk[257:265]) not in seen or typ in (b"S", b"x", b"g"):
                seen.add((typ, blk[257:265]))
                out("fuzz_header", "%s_%d" % (name[:-4], i), blk)
            for k, e in enumerate(ext):
                out("fuzz_header", "%s_%d_ext%d" % (name[:-4], i, k), e)
            if typ in (b"x", b"g"):
                out("fuzz_pax", "%s_%d" % (name[:-4], i), body)
    for name in ("pax_sparse_1.0.tar",):
        for blk, typ, body, ext in headers(archives[name]):
            if typ == b"0" and body[:1].isdigit():
                out("fuzz_sparse", "v1_gnutar", sizes(40960, 8192) + body[:512])

    # Hand-written pax records.
    def recs(*kv):
        res = b""
        for k, v in kv:
            body = k.encode() + b"=" + (v if isinstance(v, bytes) else v.encode()) + b"\n"
            n = len(body) + 2
            while len(str(n)) + 1 + len(body) != n:
                n = len(str(n)) + 1 + len(body)
            res += str(n).encode() + b" " + body
        return res

    out("fuzz_pax", "basic", recs(("path", "a/b"), ("linkpath", "c"), ("size", "12"),
                                  ("uid", "5"), ("gid", "6"), ("uname", "u"), ("gname", "g"),
                                  ("mtime", "1.000000001"), ("atime", "-3"), ("ctime", "4.5")))
    out("fuzz_pax", "deletes", recs(("path", ""), ("uname", ""), ("size", ""), ("mtime", ""),
                                    ("SCHILY.devmajor", ""), ("hdrcharset", "BINARY")))
    out("fuzz_pax", "sparse00", recs(("GNU.sparse.size", "100000"),
                                     ("GNU.sparse.numblocks", "2"),
                                     ("GNU.sparse.offset", "0"), ("GNU.sparse.numbytes", "10"),
                                     ("GNU.sparse.offset", "5000"),
                                     ("GNU.sparse.numbytes", "20")))
    out("fuzz_pax", "sparse01", recs(("GNU.sparse.size", "100000"), ("GNU.sparse.name", "f"),
                                     ("GNU.sparse.map", "0,10,5000,20,100000,0")))
    out("fuzz_pax", "sparse10", recs(("GNU.sparse.major", "1"), ("GNU.sparse.minor", "0"),
                                     ("GNU.sparse.name", "dir/f"),
                                     ("GNU.sparse.realsize", "100000")))
    out("fuzz_pax", "xattrs", recs(("SCHILY.xattr.user.a", "1"),
                                   ("LIBARCHIVE.xattr.user.%C3%BCn", "AAEC"),
                                   ("LIBARCHIVE.xattr.user.b", "dmFsdWU="),
                                   ("SCHILY.xattr.user.a", b"replaced\0bin")))
    out("fuzz_pax", "devices", recs(("SCHILY.devmajor", "8"), ("SCHILY.devminor", "1")))

    # Sparse maps: 17 bytes of sizes (logical, stored, shift), then the map.
    out("fuzz_sparse", "list", sizes(100000, 30) + b"0,10,5000,20,100000,0")
    out("fuzz_sparse", "list_bad_order", sizes(100, 30) + b"50,10,0,20")
    out("fuzz_sparse", "v1", sizes(100000, 30) + b"3\n0\n10\n5000\n20\n100000\n0\n")
    out("fuzz_sparse", "v1_partial", sizes(100, 10) + b"2\n0\n10\n")

    # Index files saved by tarkv: mode 1 (fixed up) so that they are accepted, mode 0 as is.
    if os.access(TARKV, os.X_OK):
        for name in ("gnu.tar", "py_pax_global.tar", "pax_sparse_1.0.tar", "py_replay.tar",
                     "posix_xattrs.tar", "bsdtar_xattrs.tar"):
            if name not in archives:
                continue
            a = os.path.join(tmp, "idx_" + name)
            open(a, "wb").write(archives[name])
            idx = os.path.join(tmp, name + ".idx")
            subprocess.run([TARKV, "-q", "--index", idx, a, "info"], env=ENV,
                           stdout=subprocess.DEVNULL, check=False)
            if os.path.exists(idx):
                data = open(idx, "rb").read()
                out("fuzz_index_file", "fixed_" + name[:-4], b"\x01" + data)
                if name == "gnu.tar":
                    out("fuzz_index_file", "raw_" + name[:-4], b"\x00" + data)
                    # Mode 3: a byte of each page flipped once the checksums are right.
                    for at in range(4096 + 30, len(data), 4096):
                        out("fuzz_index_file", "damaged_%s_page%d" % (name[:-4], at // 4096),
                            b"\x03" + struct.pack("<I", at) + data)
    else:
        print("mkseeds.py: %s not built: no index-file seeds from tarkv" % TARKV,
              file=sys.stderr)
    # Patches of the built-in bases: header counts, a dentry, an inode's mode.
    out("fuzz_index_file", "patch_counts", b"\x02\x00" + struct.pack("<I", 100) + b"\x07")
    out("fuzz_index_file", "patch_inode", b"\x02\x01" + struct.pack("<I", 4096 + 64 + 28) +
        struct.pack("<I", 0o40755))
    out("fuzz_index_file", "patch_tail", b"\x02\x00" + struct.pack("<I", 0xFFFFFFF0) + b"zz")
    writer_seeds()


def sizes(logical, stored, shift=0):
    return struct.pack("<QQB", logical, stored, shift)


# fuzz_tar_writer's input (see its header comment): type, flags, 12 numbers, 4 strings,
# xattrs.
WRITER_TYPES = {"reg": 0, "hardlink": 1, "symlink": 2, "chr": 3, "blk": 4, "dir": 5,
                "fifo": 6, "bad": 7}
WRITER_NUMS = ("mode", "uid", "gid", "mtime", "mtime_nsec", "atime", "atime_nsec", "ctime",
               "ctime_nsec", "size", "major", "minor")


def writer_desc(kind, path, link=b"", uname=b"", gname=b"", xattrs=(), flags=0, **nums):
    d = bytes([WRITER_TYPES[kind], flags | (0 if link else 128)])
    for k in WRITER_NUMS:
        d += b"\x02" + struct.pack("<q", nums.get(k, 0o644 if k == "mode" else 0))
    for v in (path, link, uname, gname):
        d += struct.pack("<H", len(v)) + v
    d += bytes([len(xattrs)])
    for n, v in xattrs:
        d += bytes([len(n)]) + n + struct.pack("<H", len(v)) + v
    return d


def writer_seeds():
    """Seeds for fuzz_tar_writer, written by hand (no tool needed)."""
    seeds = {
        "file": writer_desc("reg", b"dir/file", uname=b"user", gname=b"group", uid=1000,
                            gid=1000, mtime=1700000000, size=5),
        "dir100": writer_desc("dir", b"d" * 99, mode=0o755),
        "split256": writer_desc("reg", b"p" * 155 + b"/" + b"n" * 100),
        "path300": writer_desc("reg", b"a/" * 150 + b"z"),
        "symlink": writer_desc("symlink", b"l", link=b"../t\xc3\xa4rget/" + b"x" * 120,
                               mode=0o777),
        "hardlink": writer_desc("hardlink", b"h", link=b"dir/file"),
        "device": writer_desc("chr", b"dev/x", major=2097152, minor=5, mode=0o600),
        "numbers": writer_desc("reg", b"big", size=8 << 30, uid=2097152, gid=4294967294,
                               mtime=-2, mtime_nsec=500000000, atime=-1, atime_nsec=1,
                               ctime=8 ** 11, flags=12),
        "xattrs": writer_desc("reg", b"x", xattrs=[(b"user.bin", b"\0\n=\xff"),
                                                  (b"user.e", b""),
                                                  (b"user.\xc3\xbc", b"v" * 76)]),
        "binary": writer_desc("reg", b"caf\xe9", uname=b"j\xf6rg", gname=b"g" * 40),
        "dotdot": writer_desc("reg", b"a/../b"),
        "mapped": writer_desc("reg", bytes(range(40)), flags=1 | 2 | 16),
    }
    for name, data in seeds.items():
        out("fuzz_tar_writer", name, data)


if __name__ == "__main__":
    main()
