#!/usr/bin/env python3
"""Helpers for compressed.sh.

    compressed.py tree DIR SCALE
        A deterministic tree for the archives: big members of random and compressible data
        (SCALE x 10 MiB mixed in 96 KiB random / 160 KiB text runs, SCALE x 2 MiB random,
        SCALE x 3 MiB text), a 16 MiB file with holes (for tar --sparse), hard links, symlinks (to a
        file, a directory, nowhere, a 200-byte target), long names, 60 small files.

    compressed.py probes [--step N]... [--per-step K] TARKV ARCHIVE TAR EXTRACT_DIR
        `tarkv ARCHIVE get-partial` around the archive offsets k*N of every --step (seek
        points, 128 KiB chunk edges, frame and block sizes), mapped to the offsets of the
        members whose data holds them (TAR: the decompressed stream; tarfile gives the data
        offsets), K of them per step and member (first, last and at random); also the
        file offsets k*131072 of the sparse members.  The bytes must equal those of the
        extracted file.

    compressed.py bomb-tar SIZE OUT_HEADER OUT_TRAILER
        The 512-byte header of one member "zeros" of SIZE bytes and what follows its data
        (padding and the end marker): cat HEADER <SIZE zero bytes> TRAILER is the tar.

    compressed.py members TAR
        The names of the members whose header and data TAR holds whole, one a line.

    compressed.py verify [--complete TAR] [--mount DIR] TARKV ARCHIVE EXTRACT_DIR
        Every regular file of EXTRACT_DIR read through `tarkv ARCHIVE digest` (or, with
        --mount, read from DIR): each read either fails or gives the right bytes, never
        wrong bytes with success.  With --complete TAR (what the reference decompressor
        gave of a damaged stream, possibly cut): the members whose header and data TAR
        holds whole must be listed by `tarkv ls --json -R` (through the mount: exist) and
        read right; nothing may be listed that GNU tar's listing of TAR does not name (or a
        directory above such a name).  Prints "counts: right R failed F wrong W" and every
        problem; exit 1 on a problem.
"""
import argparse
import concurrent.futures
import hashlib
import json
import os
import random
import subprocess
import sys
import tarfile

ENV = dict(os.environ, LC_ALL="C", TZ="UTC")
TIMEOUT = 120
MTIME = 1700000000


def text_run(rng, n, salt):
    words = [b"alpha", b"bravo", b"charlie", b"delta", b"echo", b"foxtrot", b"golf",
             b"hotel", b"india", b"juliet", b"kilo", b"lima", b"mike", b"november"]
    out = []
    size = 0
    i = salt
    while size < n:
        line = b"%08d %s %s %s\n" % (i, words[i % 14], words[(i * 7) % 14], words[rng.randrange(14)])
        out.append(line)
        size += len(line)
        i += 1
    return b"".join(out)[:n]


def tree(d, scale):
    rng = random.Random(42)
    mib = 1 << 20

    def put(rel, data, mode=0o644, mtime=MTIME):
        p = os.path.join(d, rel)
        os.makedirs(os.path.dirname(p), exist_ok=True)
        with open(p, "wb") as f:
            f.write(data)
        os.chmod(p, mode)
        os.utime(p, (mtime, mtime))

    for i in range(60):
        n = (i * 397) % 3000 if i % 10 else 0
        put("a/small/f%03d" % i, text_run(rng, n, i), 0o644 if i % 3 else 0o600, MTIME + i)
    os.chown(os.path.join(d, "a/small/f007"), 1000, 1000)
    ln = "b/" + "L" * 90 + "/" + "n" * 180 + ".txt"
    put(ln, b"a long name\n" * 10)
    # big members
    mixed = []
    total = int(10 * mib * scale)
    size = 0
    k = 0
    while size < total:
        part = rng.randbytes(96 * 1024) if k % 2 == 0 else text_run(rng, 160 * 1024, k)
        mixed.append(part)
        size += len(part)
        k += 1
    put("d/mixed", b"".join(mixed)[:total])
    put("d/random", rng.randbytes(int(2 * mib * scale) + 12345))
    put("d/text", text_run(rng, int(3 * mib * scale) - 777, 99))
    # holes: data at 0, a run in the middle and at the very end
    sp = os.path.join(d, "c/sparse")
    os.makedirs(os.path.dirname(sp), exist_ok=True)
    apparent = int(16 * mib * scale)
    with open(sp, "wb") as f:
        f.truncate(apparent)
        f.write(rng.randbytes(65536))
        f.seek(int(3 * mib * scale) + 4096)
        f.write(text_run(rng, int(mib * scale), 5))
        f.seek(apparent // 2 + 131072 - 100)
        f.write(rng.randbytes(300000))
        f.seek(apparent - 4096)
        f.write(rng.randbytes(4096))
    os.utime(sp, (MTIME, MTIME))
    # links
    os.symlink("../a/small/f001", os.path.join(d, "b/to_file"))
    os.symlink("../a", os.path.join(d, "b/to_dir"))
    os.symlink("nowhere/at/all", os.path.join(d, "b/dangling"))
    os.symlink("t" * 200, os.path.join(d, "b/long_target"))
    os.link(os.path.join(d, "a/small/f010"), os.path.join(d, "b/hard_small"))
    os.link(os.path.join(d, "d/random"), os.path.join(d, "b/hard_random"))
    os.makedirs(os.path.join(d, "e/empty"))
    for dp, dns, fns in os.walk(d):
        os.utime(dp, (MTIME, MTIME))


def tarkv(t, a, *argv):
    try:
        r = subprocess.run([t, a] + list(argv), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           env=ENV, timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        return None, b"", b"timeout"
    return r.returncode, r.stdout, r.stderr


def members(tarpath, limit=None):
    """(TarInfo, end of its data in the stream) for the members tarfile can read."""
    out = []
    try:
        with tarfile.open(tarpath, "r:") as tf:
            while True:
                try:
                    m = tf.next()
                except (tarfile.TarError, OSError, EOFError):
                    break
                if m is None:
                    break
                stored = m.size if m.isreg() else 0
                if m.sparse is not None:
                    stored = sum(length for _, length in m.sparse)
                out.append((m, m.offset_data + stored))
    except (tarfile.TarError, OSError, EOFError):
        pass
    return out


def probes(a):
    rng = random.Random(7)
    jobs = []
    for m, _ in members(a.tar):
        if not m.isreg() or m.size < 65536:
            continue
        path = os.path.join(a.extract_dir, m.name)
        if m.sparse is not None:
            offs = [k * 131072 for k in range(1, m.size // 131072 + 1)]
            rng.shuffle(offs)
            for o in offs[:a.per_step]:
                jobs += [(m.name, path, o - 1, 2), (m.name, path, max(o - 70001, 0), 140003)]
            continue
        lo, hi = m.offset_data, m.offset_data + m.size
        for step in a.step:
            if step <= 0:
                continue
            ks = list(range(lo // step + 1, (hi - 1) // step + 1))
            if not ks:
                continue
            pick = {ks[0], ks[-1]}
            rng.shuffle(ks)
            pick.update(ks[:max(a.per_step - 2, 0)])
            for k in sorted(pick):
                o = k * step - lo
                jobs += [(m.name, path, o - 1, 2), (m.name, path, max(o - 70001, 0), 140003),
                         (m.name, path, o, 131072)]
    bad = []

    def run(job):
        name, path, off, ln = job
        with open(path, "rb") as f:
            f.seek(off)
            want = f.read(ln)
        rc, out, err = tarkv(a.tarkv, a.archive, "get-partial", name, str(off), str(ln))
        if rc != 0 or out != want:
            return "%s %d %d: exit %s, %d bytes (want %d)%s %s" % (
                name, off, ln, rc, len(out), len(want),
                ", different bytes" if len(out) == len(want) else "",
                err.decode(errors="replace").strip()[:200])
        return None

    with concurrent.futures.ThreadPoolExecutor(max_workers=2) as ex:
        for r in ex.map(run, jobs):
            if r:
                bad.append(r)
    print("probes: %d get-partial, %d wrong" % (len(jobs), len(bad)))
    for b in bad[:25]:
        print("    " + b)
    return 1 if bad or not jobs else 0


def bomb_tar(a):
    ti = tarfile.TarInfo("zeros")
    ti.size = a.size
    ti.mtime = MTIME
    ti.mode = 0o644
    with open(a.header, "wb") as f:
        f.write(ti.tobuf(tarfile.GNU_FORMAT))
    with open(a.trailer, "wb") as f:
        f.write(b"\0" * ((-a.size) % 512 + 1024))
    return 0


def sha_of(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while True:
            b = f.read(1 << 20)
            if not b:
                return h.hexdigest()
            h.update(b)


def verify(a):
    ext = {}
    root = a.extract_dir
    for dp, dns, fns in os.walk(root):
        for n in fns:
            full = os.path.join(dp, n)
            if os.path.isfile(full) and not os.path.islink(full):
                ext[os.path.relpath(full, root)] = full
    problems = []
    listed = None
    complete = set()
    tar_names = set()
    if a.complete:
        ms = members(a.complete)
        plen = os.path.getsize(a.complete)
        complete = {os.path.normpath(m.name) for m, end in ms if end <= plen} - {"."}
        r = subprocess.run(["tar", "-tf", a.complete], stdout=subprocess.PIPE,
                           stderr=subprocess.DEVNULL, env=ENV)
        tar_names = {os.path.normpath(n) for n in r.stdout.decode("utf-8", "surrogateescape")
                     .split("\n") if n}
        if a.mount:
            listed = set()
            for dp, dns, fns in os.walk(a.mount):
                for n in dns + fns:
                    listed.add(os.path.relpath(os.path.join(dp, n), a.mount))
        else:
            rc, out, err = tarkv(a.tarkv, a.archive, "ls", "--json", "-R")
            try:
                listed = {e["path"] for e in json.loads(out)["entries"]}
            except (ValueError, KeyError, TypeError):
                listed = set()
        for p in sorted(complete - listed):
            problems.append("complete member %s (in the reference's output) not listed" % p)
        above = {os.path.dirname(n) for n in tar_names}
        for n in list(above):
            while n:
                n = os.path.dirname(n)
                above.add(n)
        for p in sorted(listed - tar_names - above):
            problems.append("%s listed, but GNU tar does not list it" % p)
    counts = {"right": 0, "failed": 0, "wrong": 0}

    def read(rel):
        want = sha_of(ext[rel])
        if a.mount:
            try:
                got = sha_of(os.path.join(a.mount, rel))
            except OSError as e:
                return rel, "failed", str(e), want
            return rel, "right" if got == want else "wrong", got, want
        rc, out, err = tarkv(a.tarkv, a.archive, "digest", rel)
        if rc != 0:
            return rel, "failed", err.decode(errors="replace").strip()[:150], want
        got = out.decode().strip()
        return rel, "right" if got == want else "wrong", got, want

    names = sorted(ext)
    if a.complete:
        names = [n for n in names if n in tar_names or n in complete]
    with concurrent.futures.ThreadPoolExecutor(max_workers=2) as ex:
        for rel, what, got, want in ex.map(read, names):
            counts[what] += 1
            if what == "wrong":
                problems.append("%s: read succeeded with WRONG bytes (sha256 %s, want %s)"
                                % (rel, got[:16], want[:16]))
            elif what == "failed" and rel in complete:
                problems.append("%s: complete member, read failed: %s" % (rel, got))
    print("counts: right %d failed %d wrong %d" % (counts["right"], counts["failed"],
                                                     counts["wrong"]))
    for p in problems[:25]:
        print("    " + p)
    return 1 if problems else 0


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("tree")
    p.add_argument("dir")
    p.add_argument("scale", type=float)
    p = sub.add_parser("probes")
    p.add_argument("--step", type=int, action="append", default=[])
    p.add_argument("--per-step", type=int, default=4)
    for n in ("tarkv", "archive", "tar", "extract_dir"):
        p.add_argument(n)
    p = sub.add_parser("bomb-tar")
    p.add_argument("size", type=int)
    p.add_argument("header")
    p.add_argument("trailer")
    p = sub.add_parser("members")
    p.add_argument("tar")
    p = sub.add_parser("verify")
    p.add_argument("--complete")
    p.add_argument("--mount")
    for n in ("tarkv", "archive", "extract_dir"):
        p.add_argument(n)
    a = ap.parse_args()
    if a.cmd == "members":
        plen = os.path.getsize(a.tar)
        for m, end in members(a.tar):
            if end <= plen:
                print(m.name)
        return 0
    if a.cmd == "tree":
        tree(a.dir, a.scale)
        return 0
    return {"probes": probes, "bomb-tar": bomb_tar, "verify": verify}[a.cmd](a)


if __name__ == "__main__":
    sys.exit(main())
