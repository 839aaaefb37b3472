#!/usr/bin/env python3
"""Helpers of mount_rw.sh (tarmount -o readwrite), one subcommand a call:

    mount_rw.py fsync PATH...            fsync(2) each path (files and directories)
    mount_rw.py writer DIR LOG PREFIX N  write N small files DIR/PREFIX-NNNN, each followed
                                         by fsync; the name goes to LOG (flushed to disk) only
                                         once its fsync returned 0; stops at the first error
                                         (a PREFIX with xK in it: files K times as large)
    mount_rw.py crash-check DIR LOG      every file LOG names is in DIR with its contents
    mount_rw.py tarfile-check ARCHIVE REF
                                         Python's tarfile reads ARCHIVE without error; the
                                         names it lists (the last member of each) are REF's
                                         paths, with REF's types, and every regular member
                                         holds REF's bytes
    mount_rw.py tarkv-check TARKV ARCHIVE REF
                                         `tarkv ARCHIVE ls -R` lists REF's paths and
                                         `tarkv ARCHIVE digest` gives the sha256 of each of
                                         REF's regular files
    mount_rw.py used ARCHIVE             the bytes the members take, up to the end marker
    mount_rw.py avail PATH               statvfs: available bytes (f_bavail * f_frsize)
    mount_rw.py size-while-open PATH N   write N bytes to a new file and print its st_size
                                         from stat(2) by path while it is still open
    mount_rw.py enospc PATH SIZE         write SIZE bytes to a new file, fsync, close: exit
                                         0 when a step fails with ENOSPC (printed), 1 when
                                         all succeed or another error comes
Exit 0 when all is well; otherwise one "FAIL: ..." line per problem (at most 20) and exit 1.
"""
import errno
import hashlib
import os
import re
import stat
import subprocess
import sys
import tarfile

problems = []


def problem(msg):
    problems.append(msg)


def done():
    for m in problems[:20]:
        print("FAIL: " + m)
    if len(problems) > 20:
        print("FAIL: ... %d more" % (len(problems) - 20))
    sys.exit(1 if problems else 0)


def errname(e):
    return errno.errorcode.get(e.errno, str(e.errno))


def fsync_paths(paths):
    for p in paths:
        try:
            fd = os.open(p, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        except OSError as e:
            problem("fsync %s: %s (%s)" % (p, errname(e), e.strerror))


def crash_content(name):
    """What the writer puts in a file of that name: its name, a few hundred times at most
    (K times that for a name with xK in it)."""
    n = 1 + int(hashlib.sha256(name.encode()).hexdigest()[:4], 16) % 300
    scale = re.search(r"x(\d+)", name)
    return (name + "\n").encode() * n * (int(scale.group(1)) if scale else 1)


def writer(d, log, prefix, n):
    with open(log, "a") as lf:
        for i in range(n):
            name = "%s-%04d" % (prefix, i)
            try:
                fd = os.open(os.path.join(d, name), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
                os.write(fd, crash_content(name))
                os.fsync(fd)
                os.close(fd)
            except OSError as e:
                print("writer: %s: %s (stopped)" % (name, errname(e)))
                return
            lf.write(name + "\n")
            lf.flush()
            os.fsync(lf.fileno())


def crash_check(d, log):
    names = open(log).read().split()
    for name in names:
        p = os.path.join(d, name)
        try:
            with open(p, "rb") as f:
                got = f.read()
        except OSError as e:
            problem("%s: fsync had returned, not in the archive (%s)" % (name, e.strerror))
            continue
        if got != crash_content(name):
            problem("%s: fsync had returned, the archive holds %d other bytes" % (name, len(got)))
    print("%d acknowledged files checked" % len(names))


def rel_paths(ref):
    """{relative path: lstat} of every entry under ref (not ref itself)."""
    out = {}
    for dp, dns, fns in os.walk(ref):
        for n in dns + fns:
            full = os.path.join(dp, n)
            out[os.path.relpath(full, ref)] = os.lstat(full)
    return out


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for blk in iter(lambda: f.read(1 << 20), b""):
            h.update(blk)
    return h.hexdigest()


def kind(st):
    m = st.st_mode
    return ("dir" if stat.S_ISDIR(m) else "symlink" if stat.S_ISLNK(m) else
            "fifo" if stat.S_ISFIFO(m) else "file" if stat.S_ISREG(m) else "other")


def tarfile_check(archive, ref):
    want = rel_paths(ref)
    last = {}
    try:
        with tarfile.open(archive, "r:", errorlevel=2) as tf:
            for m in tf:
                name = m.name
                while name.startswith("./"):
                    name = name[2:]
                name = name.rstrip("/")
                if name in ("", "."):
                    continue
                if m.isreg():
                    h = hashlib.sha256()
                    f = tf.extractfile(m)
                    for blk in iter(lambda: f.read(1 << 20), b""):
                        h.update(blk)
                    last[name] = (m, h.hexdigest())
                else:
                    last[name] = (m, None)
    except (tarfile.TarError, OSError, EOFError) as e:
        problem("Python's tarfile: %s" % e)
        return
    for p in sorted(set(want) - set(last))[:5]:
        problem("Python's tarfile does not list %r" % p)
    for p in sorted(set(last) - set(want))[:5]:
        problem("Python's tarfile lists %r, which the reference does not have" % p)
    for p in sorted(set(want) & set(last)):
        m, h = last[p]
        k = kind(want[p])
        got = ("dir" if m.isdir() else "symlink" if m.issym() else "fifo" if m.isfifo() else
               "file" if m.isreg() or m.islnk() else "other")
        if k != got:
            problem("%r: tarfile says %s, the reference %s" % (p, got, k))
        elif m.issym() and m.linkname != os.readlink(os.path.join(ref, p)):
            problem("%r: tarfile's link target %r differs" % (p, m.linkname))
        elif m.isreg() and h != sha256_file(os.path.join(ref, p)):
            problem("%r: tarfile reads other bytes than the reference has" % p)
        elif m.islnk() and want[p].st_nlink < 2:
            problem("%r: a hard link member, the reference's file has one link" % p)
    print("tarfile: %d members agree" % len(last))


def tarkv_check(tarkv, archive, ref):
    env = dict(os.environ, LC_ALL="C.UTF-8")
    want = rel_paths(ref)
    r = subprocess.run([tarkv, "-q", archive, "ls", "-R"], capture_output=True, env=env)
    got = set(os.fsdecode(x) for x in r.stdout.split(b"\n") if x)
    if r.returncode != 0:
        problem("tarkv ls -R: exit %d: %s" % (r.returncode, r.stderr.decode(errors="replace")[:300]))
    for p in sorted(set(want) - got)[:5]:
        problem("tarkv ls -R does not list %r" % p)
    for p in sorted(got - set(want))[:5]:
        problem("tarkv ls -R lists %r, which the reference does not have" % p)
    files = sorted(p for p, st in want.items() if stat.S_ISREG(st.st_mode))
    if not files:
        return
    r = subprocess.run([tarkv, "-q", archive, "digest"] + files, capture_output=True, env=env)
    if r.returncode != 0:
        problem("tarkv digest: exit %d: %s" % (r.returncode, r.stderr.decode(errors="replace")[:300]))
    digests = {}
    for line in r.stdout.split(b"\n"):
        if line:
            h, _, p = line.partition(b"  ")
            digests[os.fsdecode(p)] = h.decode()
    for p in files:
        if digests.get(p) != sha256_file(os.path.join(ref, p)):
            problem("tarkv digest %r: %s, the reference's sha256 differs" % (p, digests.get(p)))
    print("tarkv: %d paths, %d digests agree" % (len(got), len(files)))


def used(archive):
    with tarfile.open(archive, "r:") as tf:
        tf.getmembers()
        print(tf.offset)


def size_while_open(path, n):
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    os.write(fd, b"w" * n)
    print(os.stat(path).st_size)
    os.close(fd)


def enospc(path, size):
    step = "open"
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        step = "write"
        chunk = b"\xa5" * (1 << 20)
        left = size
        while left > 0:
            left -= os.write(fd, chunk[:min(left, len(chunk))])
        step = "fsync"
        try:
            os.fsync(fd)
        except OSError:
            os.close(fd)
            raise
        step = "close"
        os.close(fd)
    except OSError as e:
        print("%s: %s" % (step, errname(e)))
        sys.exit(0 if e.errno == errno.ENOSPC else 1)
    print("every step succeeded")
    sys.exit(1)


def main():
    cmd, a = sys.argv[1], sys.argv[2:]
    if cmd == "fsync":
        fsync_paths(a)
    elif cmd == "writer":
        writer(a[0], a[1], a[2], int(a[3]))
    elif cmd == "crash-check":
        crash_check(a[0], a[1])
    elif cmd == "tarfile-check":
        tarfile_check(a[0], a[1])
    elif cmd == "tarkv-check":
        tarkv_check(a[0], a[1], a[2])
    elif cmd == "used":
        used(a[0])
    elif cmd == "avail":
        st = os.statvfs(a[0])
        print(st.f_bavail * st.f_frsize)
    elif cmd == "size-while-open":
        size_while_open(a[0], int(a[1]))
    elif cmd == "enospc":
        enospc(a[0], int(a[1]))
    else:
        print("mount_rw.py: unknown command %s" % cmd, file=sys.stderr)
        sys.exit(2)
    done()


main()
