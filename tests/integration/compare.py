#!/usr/bin/env python3
"""Compare tarkv's view of an archive with what GNU tar extracted from it (the oracle).

    compare.py [--ns] [--no-sparse] [--samples N] [--tar-archive TAR] TARKV ARCHIVE EXTRACT_DIR

EXTRACT_DIR must hold `tar -xf ARCHIVE --xattrs --xattrs-include='*'` run as root (owners,
modes, mtimes preserved).  The script runs `TARKV ARCHIVE ls --json -R` and checks, for every
path, against os.lstat of the extraction:
  - the set of paths (missing / extra), the ls -R order (depth first, children bytewise);
  - the JSON shape (keys and value types), "path" and "name";
  - type, mode & 07777, uid, gid, size (files: st_size; symlinks: target length; else 0),
    mtime seconds (and nanoseconds with --ns), nlink (non-directories), hard links
    ("ino" equal exactly where st_ino is), symlink targets, device numbers, xattrs,
    "sparse" (true exactly where the extracted file has holes: st_blocks*512 < st_size;
    --no-sparse turns that off);
  - uname/gname against the owner column of `tar -tvf` (GNU tar prints the names, or the
    numbers when a name is empty), for members the archive lists (not hard links);
  - contents: `tarkv digest` of every regular file against sha256 of the extracted file, and
    for a sample of files `cat`, `get-partial` (offsets around the ends and at random),
    `size`, `exists`, `last-modified`; `cat` of every symlink against os.readlink.
--tar-archive TAR: GNU tar lists TAR instead of ARCHIVE (a compressed ARCHIVE's stream
decompressed by the reference tool; GNU tar 1.34 does not recognize every compressor).
Directories that tar created implicitly (not listed by `tar -tf`) get only their type
compared: their mode, owner and mtime come from the extraction, not the archive.

Prints one line per check category (ok: / FAIL:) and every difference found (up to 25 per
category).  Exit 0 when equal, 1 on differences, 2 on a usage or oracle problem.
"""
import argparse
import concurrent.futures
import hashlib
import json
import os
import random
import stat
import subprocess
import sys

TIMEOUT = 120
MAX_REPORT = 25

ap = argparse.ArgumentParser()
ap.add_argument("--ns", action="store_true", help="compare mtime nanoseconds too")
ap.add_argument("--no-sparse", action="store_true", help="do not check the sparse flag")
ap.add_argument("--samples", type=int, default=6, help="files for cat/get-partial checks")
ap.add_argument("--seed", type=int, default=1)
ap.add_argument("--label", default=None, help="prefix of the report lines")
ap.add_argument("--tar-archive", default=None, help="what GNU tar lists (default: ARCHIVE)")
ap.add_argument("tarkv")
ap.add_argument("archive")
ap.add_argument("extract_dir")
args = ap.parse_args()

LABEL = args.label or os.path.basename(args.archive)
ENV = dict(os.environ, LC_ALL="C", TZ="UTC")
rng = random.Random(args.seed)
failures = {}   # category -> [messages]
checked = {}    # category -> count


def note(cat, n=1):
    checked[cat] = checked.get(cat, 0) + n


def fail(cat, msg):
    failures.setdefault(cat, []).append(msg)


def show(p):
    """A bytes path for messages."""
    return repr(p.decode("utf-8", "surrogateescape"))[1:-1] if isinstance(p, bytes) else p


def tarkv(*argv, check_rc=True):
    cmd = [args.tarkv, args.archive] + list(argv)
    try:
        r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=ENV,
                           timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        return None, b"", b"timeout after %ds" % TIMEOUT
    return r.returncode, r.stdout, r.stderr


def cmdline(*argv):
    return "tarkv ARCHIVE " + " ".join(show(a) if isinstance(a, bytes) else a for a in argv)


# ---------------------------------------------------------------------------------------
# Oracle: GNU tar's listing (which members the archive names, their owner column)
# ---------------------------------------------------------------------------------------


def normalize(name):
    """An archive name as GNU tar extracts it: leading '/' gone, '.' segments dropped."""
    parts = [c for c in name.split(b"/") if c not in (b"", b".")]
    return b"/".join(parts)


def tar_listing():
    base = ["tar", "--quoting-style=literal", "--warning=no-timestamp"]
    listed_archive = args.tar_archive or args.archive
    r1 = subprocess.run(base + ["-tf", listed_archive], stdout=subprocess.PIPE,
                        stderr=subprocess.PIPE, env=ENV)
    r2 = subprocess.run(base + ["-tvf", listed_archive], stdout=subprocess.PIPE,
                        stderr=subprocess.PIPE, env=ENV)
    names = r1.stdout.split(b"\n")[:-1]
    lines = r2.stdout.split(b"\n")[:-1]
    if r1.returncode != 0:
        print("note: %s: tar -tf exit %d: %s" % (LABEL, r1.returncode,
                                                 r1.stderr.decode(errors="replace").strip()))
    listed = set()
    owners = {}
    aligned = len(names) == len(lines)
    if not aligned:
        print("note: %s: tar -tf and -tvf disagree in line count (%d vs %d): no owner-name "
              "checks" % (LABEL, len(names), len(lines)))
    for i, n in enumerate(names):
        p = normalize(n)
        listed.add(p)
        if aligned:
            fields = lines[i].split(None, 2)
            if len(fields) >= 2:
                owners[p] = (lines[i][:1], fields[1].decode("utf-8", "surrogateescape"))
    return listed, owners


# ---------------------------------------------------------------------------------------
# Oracle: the extraction
# ---------------------------------------------------------------------------------------


def kind(mode):
    if stat.S_ISREG(mode):
        return "file"
    if stat.S_ISDIR(mode):
        return "dir"
    if stat.S_ISLNK(mode):
        return "symlink"
    if stat.S_ISCHR(mode):
        return "chr"
    if stat.S_ISBLK(mode):
        return "blk"
    if stat.S_ISFIFO(mode):
        return "fifo"
    return "other"


def walk(root):
    out = {}
    rootb = os.fsencode(root)
    for dp, dns, fns in os.walk(rootb):
        for n in dns + fns:
            full = os.path.join(dp, n)
            out[os.path.relpath(full, rootb)] = full
    return out


def xattrs_of(path):
    try:
        names = os.listxattr(path, follow_symlinks=False)
    except OSError:
        return {}
    res = {}
    for n in names:
        try:
            res[n] = os.getxattr(path, n, follow_symlinks=False).hex()
        except OSError as e:
            res[n] = "<error %s>" % e
    return res


def boundaries(path, size):
    """Offsets where data and holes meet in a file, by SEEK_DATA/SEEK_HOLE ([] if none)."""
    out = []
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return out
    try:
        off = 0
        while off < size and len(out) < 64:
            try:
                d = os.lseek(fd, off, os.SEEK_DATA)
            except OSError:
                break
            h = os.lseek(fd, d, os.SEEK_HOLE)
            out += [d, h]
            off = h
    finally:
        os.close(fd)
    return sorted({b for b in out if 0 < b < size})


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while True:
            blk = f.read(1 << 20)
            if not blk:
                break
            h.update(blk)
    return h.hexdigest()


# ---------------------------------------------------------------------------------------


ENTRY_KEYS = {"path": str, "name": str, "type": str, "mode": int, "uid": int, "gid": int,
              "uname": str, "gname": str, "size": int, "mtime": int, "mtime_nsec": int,
              "nlink": int, "ino": int, "xattrs": dict, "sparse": bool}


def check_shape(e):
    msgs = []
    for k, t in ENTRY_KEYS.items():
        if k not in e:
            msgs.append("missing key %r" % k)
        elif not isinstance(e[k], t) or (t is int and isinstance(e[k], bool)):
            msgs.append("key %r is %s, want %s" % (k, type(e[k]).__name__, t.__name__))
    typ = e.get("type")
    if typ not in ("file", "dir", "symlink", "chr", "blk", "fifo"):
        msgs.append("bad type %r" % typ)
    if typ == "symlink" and not isinstance(e.get("target"), str):
        msgs.append("symlink without a string 'target'")
    if typ != "symlink" and "target" in e:
        msgs.append("'target' on a %s" % typ)
    if typ in ("chr", "blk"):
        for k in ("major", "minor"):
            if not isinstance(e.get(k), int):
                msgs.append("device without integer %r" % k)
    if isinstance(e.get("mtime_nsec"), int) and not 0 <= e["mtime_nsec"] < 10**9:
        msgs.append("mtime_nsec out of range: %r" % e["mtime_nsec"])
    if isinstance(e.get("mode"), int) and e["mode"] & ~0o7777:
        msgs.append("mode has bits outside 07777: %o" % e["mode"])
    if isinstance(e.get("xattrs"), dict):
        for k, v in e["xattrs"].items():
            if not isinstance(v, str) or any(c not in "0123456789abcdef" for c in v) \
                    or len(v) % 2:
                msgs.append("xattr %r value not lowercase hex: %r" % (k, v))
    return msgs


def enc(s):
    return s.encode("utf-8", "surrogateescape")


def main():
    listed, owners = tar_listing()
    ext = walk(args.extract_dir)

    rc, out, err = tarkv("ls", "--json", "-R")
    if rc != 0:
        print("FAIL: %s: `tarkv ARCHIVE ls --json -R` exit %s: %s"
              % (LABEL, rc, err.decode(errors="replace").strip()[:500]))
        return 1
    if err.strip():
        print("note: %s: ls -R --json stderr: %s" % (LABEL, err.decode(errors="replace")
                                                       .strip()[:300]))
    try:
        doc = json.loads(out.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as e:
        print("FAIL: %s: ls -R --json output is not valid UTF-8 JSON: %s" % (LABEL, e))
        print("      output starts: %r" % out[:300])
        return 1
    note("json")
    if not isinstance(doc, dict) or not isinstance(doc.get("entries"), list):
        print("FAIL: %s: ls --json: want an object with an 'entries' list, got %r"
              % (LABEL, str(doc)[:200]))
        return 1
    if doc.get("source") != args.archive:
        fail("json", "source is %r, want %r" % (doc.get("source"), args.archive))

    entries = {}
    order = []
    for e in doc["entries"]:
        if not isinstance(e, dict) or not isinstance(e.get("path"), str):
            fail("json", "entry without a string path: %r" % (str(e)[:200],))
            continue
        p = enc(e["path"])
        msgs = check_shape(e)
        note("json")
        for m in msgs:
            fail("json", "%s: %s" % (show(p), m))
        if msgs:
            continue
        if p in entries:
            fail("json", "%s: listed twice" % show(p))
        entries[p] = e
        order.append(p)
        note("names")
        if p.startswith(b"/") or p.endswith(b"/") or b"//" in p or p in (b"", b".") \
                or b"/./" in b"/" + p + b"/":
            fail("names", "%s: path not normalised" % show(p))
        if enc(e["name"]) != p.rsplit(b"/", 1)[-1]:
            fail("names", "%s: name is %r" % (show(p), e["name"]))

    # order: depth first, a directory before its contents, children bytewise
    want_order = sorted(order, key=lambda p: p.split(b"/"))
    note("order")
    if order != want_order:
        for i, (a, b) in enumerate(zip(order, want_order)):
            if a != b:
                fail("order", "position %d: %s, want %s" % (i, show(a), show(b)))
                break

    # path sets
    note("paths", len(ext))
    for p in sorted(set(ext) - set(entries)):
        fail("paths", "missing from tarkv: %s (%s)" % (show(p), kind(os.lstat(ext[p]).st_mode)))
    for p in sorted(set(entries) - set(ext)):
        fail("paths", "extra in tarkv (tar did not extract it): %s (%s)"
             % (show(p), entries[p]["type"]))

    common = sorted(set(ext) & set(entries), key=lambda p: p.split(b"/"))
    ino_map = {}    # extraction st_ino -> tarkv ino
    rev_map = {}    # tarkv ino -> extraction st_ino
    files = []
    for p in common:
        e = entries[p]
        st = os.lstat(ext[p])
        k = kind(st.st_mode)
        note("type")
        if e["type"] != k:
            fail("type", "%s: tar extracted a %s, tarkv says %s" % (show(p), k, e["type"]))
            continue
        implicit = k == "dir" and p not in listed
        if implicit:
            note("implicit-dirs")
        else:
            note("mode")
            if e["mode"] != st.st_mode & 0o7777:
                fail("mode", "%s: %04o, tarkv %04o" % (show(p), st.st_mode & 0o7777, e["mode"]))
            note("owner")
            if (e["uid"], e["gid"]) != (st.st_uid, st.st_gid):
                fail("owner", "%s: uid/gid %d/%d, tarkv %d/%d"
                     % (show(p), st.st_uid, st.st_gid, e["uid"], e["gid"]))
            sec, nsec = divmod(st.st_mtime_ns, 10**9)
            note("mtime")
            if e["mtime"] != sec or (args.ns and e["mtime_nsec"] != nsec):
                fail("mtime", "%s: %d.%09d, tarkv %d.%09d"
                     % (show(p), sec, nsec, e["mtime"], e["mtime_nsec"]))
            if p in owners and owners[p][0] != b"h":
                want = owners[p][1]
                got = "%s/%s" % (e["uname"] or str(e["uid"]), e["gname"] or str(e["gid"]))
                note("owner-names")
                if got != want:
                    fail("owner-names", "%s: tar -tv says %s, tarkv %s" % (show(p), want, got))
        # size
        if k == "file":
            want_size = st.st_size
        elif k == "symlink":
            want_size = len(os.readlink(ext[p]))
        else:
            want_size = 0
        note("size")
        if e["size"] != want_size:
            fail("size", "%s: %d, tarkv %d" % (show(p), want_size, e["size"]))
        # links
        if k != "dir":
            note("nlink")
            if e["nlink"] != st.st_nlink:
                fail("nlink", "%s: %d, tarkv %d" % (show(p), st.st_nlink, e["nlink"]))
        note("ino")
        if st.st_ino in ino_map and ino_map[st.st_ino] != e["ino"]:
            fail("ino", "%s: hard link of an earlier path but tarkv ino %d != %d"
                 % (show(p), e["ino"], ino_map[st.st_ino]))
        elif e["ino"] in rev_map and rev_map[e["ino"]] != st.st_ino:
            fail("ino", "%s: tarkv ino %d shared with a path that is not the same file"
                 % (show(p), e["ino"]))
        ino_map.setdefault(st.st_ino, e["ino"])
        rev_map.setdefault(e["ino"], st.st_ino)
        if k == "symlink":
            note("target")
            t = os.readlink(ext[p])
            if enc(e["target"]) != t:
                fail("target", "%s: %s, tarkv %s" % (show(p), show(t), show(enc(e["target"]))))
        if k in ("chr", "blk"):
            note("device")
            want = (os.major(st.st_rdev), os.minor(st.st_rdev))
            if (e["major"], e["minor"]) != want:
                fail("device", "%s: %d,%d, tarkv %d,%d" % (show(p), want[0], want[1],
                                                          e["major"], e["minor"]))
        if not implicit:
            note("xattrs")
            xa = xattrs_of(ext[p])
            if xa != e["xattrs"]:
                fail("xattrs", "%s: %s, tarkv %s" % (show(p), xa, e["xattrs"]))
        if k == "file":
            files.append(p)
            if not args.no_sparse:
                note("sparse")
                holes = st.st_blocks * 512 < st.st_size
                if e["sparse"] != holes:
                    fail("sparse", "%s: extracted file %s holes (blocks %d, size %d), tarkv "
                         "sparse=%s" % (show(p), "has" if holes else "has no", st.st_blocks,
                                        st.st_size, e["sparse"]))
        elif e["sparse"]:
            fail("sparse", "%s: a %s marked sparse" % (show(p), k))

    # contents: digest of every regular file
    def digest_one(p):
        rc, out, err = tarkv("digest", p)
        return p, rc, out, err

    with concurrent.futures.ThreadPoolExecutor(max_workers=4) as ex:
        for p, rc, out, err in ex.map(digest_one, files):
            note("digest")
            want = sha256_file(ext[p])
            got = out.decode(errors="replace").strip()
            if rc != 0 or got != want:
                fail("digest", "%s: %s, tarkv exit %s: %s %s"
                     % (show(p), want, rc, got[:70], err.decode(errors="replace").strip()[:200]))

    # symlink values
    for p in common:
        if entries[p]["type"] == "symlink":
            rc, out, err = tarkv("cat", p)
            note("cat-symlink")
            t = os.readlink(ext[p])
            if rc != 0 or out != t:
                fail("cat-symlink", "%s: want %s, tarkv exit %s, %s %s"
                     % (show(p), show(t), rc, show(out[:200]), err.decode(errors="replace")
                        .strip()[:200]))

    # sample: cat, get-partial, size, exists, last-modified
    sample = []
    by_size = sorted(files, key=lambda p: -os.lstat(ext[p]).st_size)
    sample += by_size[:2]
    sample += [p for p in files if entries[p]["sparse"] or os.lstat(ext[p]).st_nlink > 1][:4]
    rest = [p for p in files if p not in sample]
    rng.shuffle(rest)
    sample += rest[:max(0, args.samples - len(sample))]
    for p in sample:
        with open(ext[p], "rb") as f:
            content = f.read()
        n = len(content)
        rc, out, err = tarkv("cat", p)
        note("cat")
        if rc != 0 or out != content:
            fail("cat", "%s: exit %s, %d bytes (want %d) %s" % (show(p), rc, len(out), n,
                                                                 err.decode(errors="replace")
                                                                 .strip()[:200]))
        probes = [(0, 0), (0, min(n, 100)), (0, n + 10), (max(n - 1, 0), 5), (n, 10),
                  (n + 1000, 10), (n // 2, 777)]
        # around the data/hole boundaries of a file with holes (SEEK_DATA/SEEK_HOLE)
        for b in boundaries(ext[p], n)[:12]:
            probes += [(max(b - 3, 0), 6), (max(b - 1, 0), 1), (b, 1), (max(b - 700, 0), 1400)]
        for _ in range(4):
            off = rng.randrange(0, n + 1)
            probes.append((off, rng.choice([1, 511, 512, 513, 4096, 70000, 1 << 20])))
        for off, ln in probes:
            rc, out, err = tarkv("get-partial", p, str(off), str(ln))
            note("get-partial")
            want = content[off:off + ln]
            if rc != 0 or out != want:
                fail("get-partial", "%s %d %d: exit %s, got %d bytes (want %d)%s %s"
                     % (show(p), off, ln, rc, len(out), len(want),
                        "" if len(out) != len(want) else ", different bytes",
                        err.decode(errors="replace").strip()[:200]))
        rc, out, err = tarkv("size", p)
        note("size-cmd")
        if rc != 0 or out.strip() != str(n).encode():
            fail("size-cmd", "%s: want %d, exit %s: %r" % (show(p), n, rc, out[:50]))
        rc, out, err = tarkv("exists", p)
        note("exists")
        if rc != 0 or out.strip() != b"value":
            fail("exists", "%s: want 'value' exit 0, exit %s: %r" % (show(p), rc, out[:50]))
        sec, nsec = divmod(os.lstat(ext[p]).st_mtime_ns, 10**9)
        rc, out, err = tarkv("last-modified", p)
        note("last-modified")
        if not args.ns:
            got = out.strip().split(b".")[0]
            ok = got == str(sec).encode()
        else:
            ok = out.strip() == ("%d.%09d" % (sec, nsec)).encode()
        if rc != 0 or not ok:
            fail("last-modified", "%s: want %d.%09d, exit %s: %r" % (show(p), sec, nsec, rc,
                                                                     out[:50]))
    if len(sample) >= 2:
        a, b = sample[0], sample[-1]
        with open(ext[a], "rb") as f1, open(ext[b], "rb") as f2:
            want = f1.read() + f2.read()
        rc, out, err = tarkv("cat", a, b)
        note("cat")
        if rc != 0 or out != want:
            fail("cat", "cat of two files %s %s: exit %s, %d bytes (want %d)"
                 % (show(a), show(b), rc, len(out), len(want)))
    # directories
    dirs = [p for p in common if entries[p]["type"] == "dir"][:5]
    for p in dirs + [b""]:
        rc, out, err = tarkv("exists", p)
        note("exists")
        if rc != 0 or out.strip() != b"dictionary":
            fail("exists", "%s: want 'dictionary' exit 0, exit %s: %r"
                 % (show(p) or '""', rc, out[:50]))

    # report
    status = 0
    for cat in list(checked) + [c for c in failures if c not in checked]:
        if cat in failures:
            status = 1
            msgs = failures[cat]
            print("FAIL: %s: %s: %d difference(s) in %d check(s)"
                  % (LABEL, cat, len(msgs), checked.get(cat, 0)))
            for m in msgs[:MAX_REPORT]:
                print("    %s" % m)
            if len(msgs) > MAX_REPORT:
                print("    ... %d more" % (len(msgs) - MAX_REPORT))
        else:
            print("ok: %s: %s (%d)" % (LABEL, cat, checked[cat]))
    return status


if __name__ == "__main__":
    try:
        sys.exit(main())
    except FileNotFoundError as e:
        print("FAIL: %s: %s" % (LABEL, e))
        sys.exit(2)
