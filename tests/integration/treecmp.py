#!/usr/bin/env python3
"""Compare two directory trees field by field: ORACLE (what GNU tar extracted, as root) and
MOUNT (what tarmount shows).

    treecmp.py [--ns] [--archive ARCHIVE] [--label L] [--no-contents]
               [--recent-slack SINCE:SECONDS] ORACLE MOUNT

Per relative path (the two trees must hold the same set of paths):
  - file type;
  - permission bits (st_mode & 0o7777), uid, gid;
  - size of regular files and symlinks;
  - mtime seconds, and nanoseconds with --ns (GNU tar sets the nanoseconds the format
    carries and 0 otherwise, so --ns is right for every format; it matters for pax);
  - symlink targets;
  - hard links: paths that share an inode in ORACLE share st_ino in MOUNT and the reverse,
    and st_nlink is equal for every non-directory;
  - directories: st_nlink is 2 + the number of subdirectories (what find(1) relies on),
    computed from ORACLE's tree rather than read from it (btrfs, for one, says 1);
  - device major/minor of character and block devices;
  - xattrs (listxattr/getxattr without following symlinks): the user.* sets are equal, and
    everything else ORACLE holds is in MOUNT with the same value;
  - contents of regular files (sha256), unless --no-contents.

Known legitimate differences, allowed:
  - st_size of directories: filesystem dependent (tarmount says 0, ext4 4096, tmpfs counts
    entries), never compared.
  - The root and the directories the archive does not list (implicit parents): GNU tar
    gives them the time of extraction, tarmount the archive's newest mtime, so their mtime
    is not compared.  Their mode and owner are (GNU tar as root with umask 022 makes them
    0755 root:root, as tarmount does), except the root's, which is whatever made the
    extraction directory (unless the archive lists the root itself, './').  Without
    --archive every directory's mtime is skipped except what --archive would give.
  - Directory mtimes that GNU tar itself disturbed: it sets a directory's time when it
    leaves the directory in archive order, so a member of that directory that comes later
    (git-archive order: 'perf/', 'perf-x.rst', 'perf/a') changes the directory's mtime
    after the fact.  So the mtime of every directory the archive lists is compared with the
    archive's own value for it (Python's tarfile, the last member of that path; pax 'mtime'
    records read at full precision), never with the extraction's.
  - With --recent-slack SINCE:SECONDS, the mtime of a non-directory whose ORACLE mtime is
    SINCE (seconds since the epoch) or later may differ by up to SECONDS: a file written
    "now" in the oracle and on the mount (mount_rw.sh) gets two nearby times.  Older mtimes
    are still compared exactly.
  When Python's tarfile cannot read the archive, `tar -tf` gives the listed set and the
  directories' mtimes are not compared (a note says so).

Prints every difference ("FAIL: LABEL: CATEGORY: PATH: detail") and one summary line per
category; exit 0 when equal, 1 on any difference, 2 on a usage problem.
"""
import argparse
import decimal
import hashlib
import os
import stat
import subprocess
import sys
import tarfile

ap = argparse.ArgumentParser()
ap.add_argument("--ns", action="store_true", help="compare mtime nanoseconds too")
ap.add_argument("--archive", help="the archive both trees come from (listed dirs, dir mtimes)")
ap.add_argument("--label", default=None)
ap.add_argument("--no-contents", action="store_true", help="skip sha256 of file contents")
ap.add_argument("--recent-slack", default=None, metavar="SINCE:SECONDS",
                help="mtimes at or after SINCE may differ by up to SECONDS (non-directories)")
ap.add_argument("--max-report", type=int, default=40, help="differences shown per category")
ap.add_argument("oracle")
ap.add_argument("mount")
args = ap.parse_args()

RECENT_SINCE, RECENT_SLACK = (map(int, args.recent_slack.split(":")) if args.recent_slack
                              else (None, 0))
LABEL = args.label or (os.path.basename(args.archive) if args.archive else args.mount)
NS = 10**9
failures = {}  # category -> [messages]
checked = {}   # category -> count


def note(cat, n=1):
    checked[cat] = checked.get(cat, 0) + n


def fail(cat, path, msg):
    failures.setdefault(cat, []).append("%s: %s" % (show(path), msg))


def show(p):
    if p == b"":
        return "(root)"
    return repr(p.decode("utf-8", "surrogateescape"))[1:-1]


def kind(mode):
    for test, name in ((stat.S_ISREG, "file"), (stat.S_ISDIR, "dir"), (stat.S_ISLNK, "symlink"),
                       (stat.S_ISCHR, "chr"), (stat.S_ISBLK, "blk"), (stat.S_ISFIFO, "fifo"),
                       (stat.S_ISSOCK, "socket")):
        if test(mode):
            return name
    return "other"


def fmt_ns(t):
    s, n = divmod(t, NS)
    return "%d.%09d" % (s, n)


# ------------------------------------------------------------------------------------------
# What the archive lists (for implicit directories and directory mtimes)
# ------------------------------------------------------------------------------------------


def normalize(name):
    """A member name as GNU tar extracts it: leading '/', '.' and empty segments dropped.
    None for names with a '..' segment (GNU tar skips them)."""
    parts = [c for c in name.split(b"/") if c not in (b"", b".")]
    if b".." in parts:
        return None
    return b"/".join(parts)


def pax_time_ns(s):
    """A pax time record ('1234567890.987654321', '-5.5') in ns, truncated to 9 digits."""
    d = decimal.Decimal(s)
    return int((d * NS).to_integral_value(rounding=decimal.ROUND_FLOOR))


def archive_listing(path):
    """(listed set of normalized paths, {path: mtime_ns of the last member of that path}),
    or (listed, None) when only `tar -tf` could read it."""
    listed = set()
    mtimes = {}
    try:
        with tarfile.open(path, "r:", encoding="utf-8", errors="surrogateescape") as tf:
            for m in tf:
                p = normalize(m.name.encode("utf-8", "surrogateescape"))
                if p is None:
                    continue
                listed.add(p)
                raw = m.pax_headers.get("mtime") if m.pax_headers else None
                try:
                    t = pax_time_ns(raw) if raw is not None else int(m.mtime) * NS
                except (decimal.InvalidOperation, ValueError, TypeError):
                    t = int(m.mtime * NS)
                mtimes[p] = t
        return listed, mtimes
    except (tarfile.TarError, OSError, EOFError) as e:
        print("note: %s: Python's tarfile cannot read the archive (%s): `tar -tf` gives the "
              "listed set, directory mtimes are not compared" % (LABEL, e))
    r = subprocess.run(["tar", "--quoting-style=literal", "-tf", path], stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, env=dict(os.environ, LC_ALL="C"))
    for n in r.stdout.split(b"\n")[:-1]:
        p = normalize(n)
        if p is not None:
            listed.add(p)
    return listed, None


# ------------------------------------------------------------------------------------------


def walk(root):
    """{relative path (bytes, root is b''): absolute path}."""
    out = {b"": root}
    for dp, dns, fns in os.walk(root):
        for n in dns + fns:
            full = os.path.join(dp, n)
            out[os.path.relpath(full, root)] = full
    return out


def xattrs_of(path):
    try:
        names = os.listxattr(path, follow_symlinks=False)
    except OSError as e:
        return {"<listxattr error>": str(e).encode()}
    res = {}
    for n in names:
        try:
            res[n] = os.getxattr(path, n, follow_symlinks=False)
        except OSError as e:
            res[n] = ("<getxattr error %s>" % e).encode()
    return res


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while True:
            blk = f.read(1 << 20)
            if not blk:
                break
            h.update(blk)
    return h.hexdigest()


def main():
    oracle = os.fsencode(os.path.abspath(args.oracle))
    mount = os.fsencode(os.path.abspath(args.mount))
    for d in (oracle, mount):
        if not os.path.isdir(d):
            print("treecmp.py: %s is not a directory" % show(d), file=sys.stderr)
            return 2
    listed, dir_mtimes = (archive_listing(args.archive) if args.archive else (None, None))

    ora = walk(oracle)
    mnt = walk(mount)
    note("paths", len(ora))
    for p in sorted(set(ora) - set(mnt)):
        fail("paths", p, "missing from the mount (%s in the oracle)"
             % kind(os.lstat(ora[p]).st_mode))
    for p in sorted(set(mnt) - set(ora)):
        fail("paths", p, "extra in the mount (a %s tar did not extract)"
             % kind(os.lstat(mnt[p]).st_mode))

    common = sorted(set(ora) & set(mnt), key=lambda p: p.split(b"/"))
    subdirs = {}  # dir path -> number of subdirectories in the oracle
    for p in ora:
        if p and stat.S_ISDIR(os.lstat(ora[p]).st_mode):
            parent = p.rsplit(b"/", 1)[0] if b"/" in p else b""
            subdirs[parent] = subdirs.get(parent, 0) + 1

    ino_o2m = {}  # oracle st_ino -> (mount st_ino, first path)
    ino_m2o = {}  # mount st_ino -> (oracle st_ino, first path)
    for p in common:
        so = os.lstat(ora[p])
        try:
            sm = os.lstat(mnt[p])
        except OSError as e:
            fail("stat", p, "lstat on the mount: %s" % e)
            continue
        ko, km = kind(so.st_mode), kind(sm.st_mode)
        note("type")
        if ko != km:
            fail("type", p, "oracle %s, mount %s" % (ko, km))
            continue
        is_dir = ko == "dir"
        is_root = p == b""
        if listed is None:
            implicit = is_dir  # unknown without the archive: treat every directory so
        else:
            implicit = is_dir and p not in listed

        # mode and owner (not for the root unless the archive lists it)
        if not (is_root and implicit):
            note("mode")
            if so.st_mode & 0o7777 != sm.st_mode & 0o7777:
                fail("mode", p, "oracle %04o, mount %04o%s" % (
                    so.st_mode & 0o7777, sm.st_mode & 0o7777,
                    " (implicit directory)" if implicit else ""))
            note("owner")
            if (so.st_uid, so.st_gid) != (sm.st_uid, sm.st_gid):
                fail("owner", p, "oracle %d:%d, mount %d:%d%s" % (
                    so.st_uid, so.st_gid, sm.st_uid, sm.st_gid,
                    " (implicit directory)" if implicit else ""))

        # mtime
        if is_dir:
            if not implicit and dir_mtimes is not None and p in dir_mtimes:
                want = dir_mtimes[p]
                src = "archive"
            else:
                want = None  # extraction time or unknown: legitimately different
                note("mtime-skipped")
        else:
            want = so.st_mtime_ns
            src = "oracle"
        if want is not None:
            note("mtime")
            got = sm.st_mtime_ns
            if not is_dir and RECENT_SINCE is not None and want >= RECENT_SINCE * NS:
                bad = abs(got - want) > RECENT_SLACK * NS
            elif args.ns:
                bad = got != want
            else:
                bad = got // NS != want // NS
            if bad:
                fail("mtime", p, "%s %s, mount %s" % (src, fmt_ns(want), fmt_ns(got)))

        # size
        if ko in ("file", "symlink"):
            note("size")
            if so.st_size != sm.st_size:
                fail("size", p, "oracle %d, mount %d" % (so.st_size, sm.st_size))

        # links
        if is_dir:
            note("nlink")
            want_n = 2 + subdirs.get(p, 0)
            if sm.st_nlink != want_n:
                fail("nlink", p, "directory with %d subdirectories: want nlink %d, mount %d"
                     % (subdirs.get(p, 0), want_n, sm.st_nlink))
        else:
            note("nlink")
            if so.st_nlink != sm.st_nlink:
                fail("nlink", p, "oracle %d, mount %d" % (so.st_nlink, sm.st_nlink))
        note("ino")
        if so.st_ino in ino_o2m and ino_o2m[so.st_ino][0] != sm.st_ino:
            fail("ino", p, "a hard link of %s in the oracle, but mount st_ino %d != %d"
                 % (show(ino_o2m[so.st_ino][1]), sm.st_ino, ino_o2m[so.st_ino][0]))
        elif sm.st_ino in ino_m2o and ino_m2o[sm.st_ino][0] != so.st_ino:
            fail("ino", p, "shares mount st_ino %d with %s, which is another file in the "
                 "oracle" % (sm.st_ino, show(ino_m2o[sm.st_ino][1])))
        ino_o2m.setdefault(so.st_ino, (sm.st_ino, p))
        ino_m2o.setdefault(sm.st_ino, (so.st_ino, p))

        if ko == "symlink":
            note("target")
            to, tm = os.readlink(ora[p]), None
            try:
                tm = os.readlink(mnt[p])
            except OSError as e:
                fail("target", p, "readlink on the mount: %s" % e)
            if tm is not None and to != tm:
                fail("target", p, "oracle %s, mount %s" % (show(to), show(tm)))
        if ko in ("chr", "blk"):
            note("device")
            do = (os.major(so.st_rdev), os.minor(so.st_rdev))
            dm = (os.major(sm.st_rdev), os.minor(sm.st_rdev))
            if do != dm:
                fail("device", p, "oracle %d,%d, mount %d,%d" % (do + dm))

        # xattrs
        note("xattrs")
        xo, xm = xattrs_of(ora[p]), xattrs_of(mnt[p])
        uo = {k: v for k, v in xo.items() if k.startswith("user.")}
        um = {k: v for k, v in xm.items() if k.startswith("user.")}
        if uo != um:
            fail("xattrs", p, "user.*: oracle %r, mount %r" % (uo, um))
        for k, v in xo.items():
            if not k.startswith("user.") and xm.get(k) != v:
                fail("xattrs", p, "%s: oracle %r, mount %r" % (k, v, xm.get(k)))

        # contents
        if ko == "file" and not args.no_contents:
            note("contents")
            want_h = sha256_file(ora[p])
            try:
                got_h = sha256_file(mnt[p])
            except OSError as e:
                got_h = "read error: %s" % e
            if want_h != got_h:
                fail("contents", p, "sha256 oracle %s, mount %s" % (want_h, got_h))

    status = 0
    for cat in list(checked) + [c for c in failures if c not in checked]:
        if cat in failures:
            status = 1
            msgs = failures[cat]
            print("FAIL: %s: %s: %d difference(s) in %d check(s)"
                  % (LABEL, cat, len(msgs), checked.get(cat, 0)))
            for m in msgs[:args.max_report]:
                print("    %s" % m)
            if len(msgs) > args.max_report:
                print("    ... %d more" % (len(msgs) - args.max_report))
        else:
            print("ok: %s: %s (%d)" % (LABEL, cat, checked[cat]))
    return status


if __name__ == "__main__":
    sys.exit(main())
