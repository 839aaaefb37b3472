#!/usr/bin/env python3
"""Concurrent readers: N threads read random ranges of the regular files under MOUNT and
check every byte against the same file under REF.

    readers.py [--threads N] [--seconds S] [--ops N] [--seed S] [--same RELPATH]
               [--min-size BYTES] MOUNT REF

Every thread loops until it has done --ops reads or --seconds have passed, whichever comes
first.  Each operation picks a file (--same: always that one, so all threads hit the same
file; otherwise at random, half of the picks among the files of at least 1 MiB) and one of:
  - pread of a random range (lengths from 1 byte to 4 MiB, offsets anywhere up to and past
    the end), on a descriptor of its own or on one descriptor shared by all threads;
  - a sequential read of the whole file in random-sized chunks, compared by sha256;
  - a read through mmap of a random range.
The expected bytes come from pread on REF.  A short read is an error unless it stops at the
end of the file; a read past the end must return nothing.

Prints one summary line and every mismatch or error (up to 30); exit 0 when all reads were
right, 1 otherwise, 2 on a usage problem.
"""
import argparse
import hashlib
import mmap
import os
import random
import stat
import sys
import threading
import time

ap = argparse.ArgumentParser()
ap.add_argument("--threads", type=int, default=8)
ap.add_argument("--seconds", type=float, default=10.0)
ap.add_argument("--ops", type=int, default=2000, help="per thread")
ap.add_argument("--seed", type=int, default=1)
ap.add_argument("--same", default=None, help="all threads read this file (relative path)")
ap.add_argument("--min-size", type=int, default=0, help="only files at least this big")
ap.add_argument("mount")
ap.add_argument("ref")
args = ap.parse_args()

MOUNT = os.fsencode(os.path.abspath(args.mount))
REF = os.fsencode(os.path.abspath(args.ref))
BIG = 1 << 20


def files_under(root):
    out = []
    for dp, dns, fns in os.walk(root):
        for n in fns:
            full = os.path.join(dp, n)
            st = os.lstat(full)
            if stat.S_ISREG(st.st_mode) and st.st_size >= args.min_size:
                out.append((os.path.relpath(full, root), st.st_size))
    out.sort()
    return out


if args.same is not None:
    rel = os.fsencode(args.same)
    try:
        files = [(rel, os.stat(os.path.join(REF, rel)).st_size)]
    except OSError as e:
        sys.exit("readers.py: %s" % e)
else:
    files = files_under(REF)
if not files:
    print("readers.py: no regular files under %s" % os.fsdecode(REF), file=sys.stderr)
    sys.exit(2)
big = [f for f in files if f[1] >= BIG] or files

# One REF descriptor per file (pread is safe from many threads); shared MOUNT descriptors,
# opened lazily, for the operations that use a descriptor shared by all threads.
ref_fd = {}
shared_fd = {}
shared_lock = threading.Lock()
errors = []
errors_lock = threading.Lock()
stats = {"ops": 0, "bytes": 0, "pread": 0, "shared": 0, "whole": 0, "mmap": 0}
stats_lock = threading.Lock()
deadline = time.monotonic() + args.seconds
stop = threading.Event()


def error(msg):
    with errors_lock:
        errors.append(msg)
        if len(errors) >= 200:
            stop.set()


def ref_read(rel, off, ln):
    fd = ref_fd.get(rel)
    if fd is None:
        with shared_lock:
            fd = ref_fd.get(rel)
            if fd is None:
                fd = ref_fd[rel] = os.open(os.path.join(REF, rel), os.O_RDONLY)
    out = []
    while ln > 0:
        b = os.pread(fd, ln, off)
        if not b:
            break
        out.append(b)
        off += len(b)
        ln -= len(b)
    return b"".join(out)


def mount_shared_fd(rel):
    with shared_lock:
        fd = shared_fd.get(rel)
        if fd is None:
            fd = shared_fd[rel] = os.open(os.path.join(MOUNT, rel), os.O_RDONLY)
        return fd


def pread_full(fd, ln, off):
    """pread until ln bytes or end of file (FUSE may return short reads only at EOF, but
    a loop is what every reader does)."""
    out = []
    while ln > 0:
        b = os.pread(fd, ln, off)
        if not b:
            break
        out.append(b)
        off += len(b)
        ln -= len(b)
    return b"".join(out)


def first_diff(a, b):
    for i in range(min(len(a), len(b))):
        if a[i] != b[i]:
            return i
    return min(len(a), len(b))


def pick_range(rng, size):
    ln = rng.choice([1, 2, 511, 512, 513, 4095, 4096, 4097, 65536, 131072 + 17, 1 << 20,
                     rng.randrange(1, 4 << 20)])
    r = rng.random()
    if r < 0.05:
        off = size + rng.randrange(0, 5000)          # at or past the end
    elif r < 0.15:
        off = max(0, size - rng.randrange(0, 9000))  # around the end
    elif r < 0.25:
        off = rng.randrange(0, 4) * 4096 if size else 0
    else:
        off = rng.randrange(0, size + 1)
    return off, ln


def op_pread(rng, rel, size, shared):
    off, ln = pick_range(rng, size)
    if shared:
        fd = mount_shared_fd(rel)
        got = pread_full(fd, ln, off)
    else:
        fd = os.open(os.path.join(MOUNT, rel), os.O_RDONLY)
        try:
            got = pread_full(fd, ln, off)
        finally:
            os.close(fd)
    want = ref_read(rel, off, ln)
    if got != want:
        error("%s: pread(%d, off %d)%s: got %d bytes, want %d; first difference at +%d"
              % (os.fsdecode(rel), ln, off, " on the shared fd" if shared else "",
                 len(got), len(want), first_diff(got, want)))
    return len(got)


def op_whole(rng, rel, size):
    h = hashlib.sha256()
    n = 0
    with open(os.path.join(MOUNT, rel), "rb", buffering=0) as f:
        while True:
            b = f.read(rng.choice([4096, 65536, 1 << 20, rng.randrange(1, 300000)]))
            if not b:
                break
            h.update(b)
            n += len(b)
    want = hashlib.sha256(ref_read(rel, 0, size)).hexdigest()
    if n != size or h.hexdigest() != want:
        error("%s: sequential read: %d bytes (want %d), sha256 %s, want %s"
              % (os.fsdecode(rel), n, size, h.hexdigest(), want))
    return n


def op_mmap(rng, rel, size):
    if size == 0:
        return 0
    off, ln = pick_range(rng, size)
    off = min(off, size - 1)
    with open(os.path.join(MOUNT, rel), "rb") as f:
        with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as m:
            got = m[off:off + ln]
    want = ref_read(rel, off, ln)
    if got != want:
        error("%s: mmap [%d:+%d]: got %d bytes, want %d; first difference at +%d"
              % (os.fsdecode(rel), off, ln, len(got), len(want), first_diff(got, want)))
    return len(got)


def worker(i):
    rng = random.Random(args.seed * 1000 + i)
    local = {"ops": 0, "bytes": 0, "pread": 0, "shared": 0, "whole": 0, "mmap": 0}
    for _ in range(args.ops):
        if stop.is_set() or time.monotonic() > deadline:
            break
        rel, size = rng.choice(big if rng.random() < 0.5 else files)
        r = rng.random()
        try:
            if r < 0.55:
                n, kind = op_pread(rng, rel, size, False), "pread"
            elif r < 0.80:
                n, kind = op_pread(rng, rel, size, True), "shared"
            elif r < 0.90 and size <= (32 << 20):
                n, kind = op_whole(rng, rel, size), "whole"
            else:
                n, kind = op_mmap(rng, rel, size), "mmap"
        except OSError as e:
            error("%s: %s" % (os.fsdecode(rel), e))
            continue
        local["ops"] += 1
        local["bytes"] += n
        local[kind] += 1
    with stats_lock:
        for k, v in local.items():
            stats[k] += v


def main():
    threads = [threading.Thread(target=worker, args=(i,)) for i in range(args.threads)]
    t0 = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    dt = time.monotonic() - t0
    for fd in list(ref_fd.values()) + list(shared_fd.values()):
        os.close(fd)
    what = ("all on %s" % args.same) if args.same is not None else "%d files" % len(files)
    print("readers.py: %d threads, %s: %d reads (%d pread, %d on shared fds, %d whole, "
          "%d mmap), %.1f MiB in %.1f s, %d error(s)"
          % (args.threads, what, stats["ops"], stats["pread"], stats["shared"],
             stats["whole"], stats["mmap"], stats["bytes"] / 1048576, dt, len(errors)))
    for e in errors[:30]:
        print("    %s" % e)
    if len(errors) > 30:
        print("    ... %d more" % (len(errors) - 30))
    if stats["ops"] == 0:
        print("readers.py: no read completed")
        return 1
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
