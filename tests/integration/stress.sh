#!/bin/bash
# shellcheck disable=SC2015 # ok and fail return 0
# Stress: one mount, 16 concurrent readers for ~45 s, zero errors, bounded memory.
#
# An archive of ~300 files (a few MiB-sized random ones, many small ones in nested
# directories, a sparse file with holes, hard links, symlinks; GNU tar, posix format) is
# mounted with tarmount (default options: the multi-threaded loop).  16 threads then run, for
# STRESS_SECONDS (45), a random mix of:
#   - pread of a random range of a random file (a fresh or a shared descriptor), the bytes
#     checked against the same range of the source file;
#   - a whole file read sequentially in random-sized chunks, its sha256 checked;
#   - a read through mmap of a random range;
#   - a walk of the whole mount (os.walk), the set of paths checked against the source tree;
#   - lstat of a random path: type, size, mode, link count and symlink target checked.
# No error of any kind is allowed.  The daemon's VmRSS (/proc/PID/status) is sampled once
# the mount answers and again after the load: both figures are printed, and the growth must
# stay under STRESS_RSS_MIB (64).  Then fusermount3 -u: the mount and the daemon are gone.
#
# Environment: TARMOUNT, top_srcdir, XDG_CACHE_HOME, CI (as in the other scripts).
# Run by `sh script`: go on under bash.
if [ -z "${BASH_VERSION:-}" ]; then exec bash "$0" "$@"; fi
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"
# shellcheck source=lib_mount.sh
. "$(dirname "$0")/lib_mount.sh"
: "${STRESS_SECONDS:=45}"
: "${STRESS_THREADS:=16}"
: "${STRESS_RSS_MIB:=64}"
START=$(date +%s)


need_fuse
need_cmd tar "$PY"
# A sanitizer build holds freed memory in AddressSanitizer's quarantine (and shadows what it
# touches): its RSS grows by that much more, bounded by the quarantine size set here.
if ldd "$TARMOUNT" 2>/dev/null | grep -q 'libasan'; then
	export ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}quarantine_size_mb=64
	STRESS_RSS_MIB=$((STRESS_RSS_MIB + 192))
	note "AddressSanitizer build: quarantine 64 MiB, RSS growth allowed: $STRESS_RSS_MIB MiB"
fi
setup_tmp
umask 022
export XDG_CACHE_HOME=$T/cache

# ---- the source tree and the archive -----------------------------------------------------------
S=$T/src
"$PY" - "$S" <<'EOF' || { fail "building the source tree"; finish; }
import os, random, sys
root = sys.argv[1]
rng = random.Random(42)
def w(rel, data):
    p = os.path.join(root, rel)
    os.makedirs(os.path.dirname(p), exist_ok=True)
    with open(p, "wb") as f:
        f.write(data)
n = 0
for i, mib in enumerate((1, 2, 3, 4, 1, 2)):        # MiB-sized random files
    w("big/b%d.bin" % i, os.urandom(mib << 20))
    n += 1
for i in range(280):                                 # many small ones, nested
    d = "small/d%02d/e%d" % (i % 23, i % 5)
    size = rng.choice((0, 1, 100, 511, 512, 513, 4095, 4096, 4097, 10000, 65536, 70001))
    w("%s/f%03d" % (d, i), os.urandom(size))
    n += 1
p = os.path.join(root, "sparse/holes.img")          # sparse: 32 MiB, 16 islands of 64 KiB
os.makedirs(os.path.dirname(p))
with open(p, "wb") as f:
    f.truncate(32 << 20)
    for k in range(16):
        f.seek(k * (2 << 20) + rng.randrange(1 << 20))
        f.write(os.urandom(64 << 10))
n += 1
os.makedirs(os.path.join(root, "links"))
for i in range(8):                                   # hard links and symlinks
    os.link(os.path.join(root, "small/d%02d/e%d/f%03d" % (i, i % 5, i)),
            os.path.join(root, "links/hard%d" % i))
    os.symlink("../small/d%02d/e%d/f%03d" % (i, i % 5, i), os.path.join(root, "links/sym%d" % i))
os.link(os.path.join(root, "big/b0.bin"), os.path.join(root, "links/big-hard"))
EOF
A=$T/stress.tar
tar --format=posix --sparse -cf "$A" -C "$S" . 2>"$T/tar.err" || { fail "tar -c: $(head -c 300 "$T/tar.err")"; finish; }
note "archive: $(tar -tf "$A" | wc -l) members, $(($(stat -c %s "$A") >> 20)) MiB"

# ---- mount ---------------------------------------------------------------------------------------
M=$T/m
mkdir -p "$M"
MOUNTS+=("$M")
timeout 60 "$TARMOUNT" "$A" "$M" >"$T/mount.out" 2>"$T/mount.err"
RC=$?
if [ "$RC" != 0 ] || ! is_mounted "$M"; then
	fail "tarmount exit $RC: $(head -c 500 "$T/mount.err")"
	finish
fi
ok "mounted"
PID=$(daemon_pids "$M")
[ "$(echo "$PID" | wc -w)" = 1 ] || { fail "want one daemon, found: $PID"; finish; }
timeout 10 ls -R "$M" >/dev/null 2>&1
rss() { awk '/^VmRSS:/ { print $2 }' "/proc/$PID/status"; }
rchar() { awk '/^rchar:/ { print $2 }' "/proc/$PID/io"; }
RSS0=$(rss)
IO0=$(rchar)
note "daemon $PID: VmRSS $RSS0 KiB after mounting"

# ---- the load ----------------------------------------------------------------------------------
cat >"$T/load.py" <<'EOF'
import hashlib, mmap, os, random, stat, sys, threading, time
mnt, src, seconds, nthreads = os.fsencode(sys.argv[1]), os.fsencode(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4])
entries = {}
for dp, dns, fns in os.walk(src):
    for n in dns + fns:
        full = os.path.join(dp, n)
        entries[os.path.relpath(full, src)] = os.lstat(full)
files = sorted(p for p, st in entries.items() if stat.S_ISREG(st.st_mode))
big = [p for p in files if entries[p].st_size >= 1 << 20]
digest = {}
for p in files:
    with open(os.path.join(src, p), "rb") as f:
        digest[p] = hashlib.sha256(f.read()).hexdigest()
ref_fd = {p: os.open(os.path.join(src, p), os.O_RDONLY) for p in files}
shared_fd, shared_lock = {}, threading.Lock()
errors, lock = [], threading.Lock()
counts = {"pread": 0, "shared": 0, "whole": 0, "mmap": 0, "walk": 0, "stat": 0, "bytes": 0}

def err(msg):
    with lock:
        errors.append(msg)

def count(k, n=1, b=0):
    with lock:
        counts[k] += n
        counts["bytes"] += b

def pick(rng):
    return rng.choice(big) if rng.random() < 0.4 else rng.choice(files)

def rand_range(rng, size):
    off = rng.randrange(size + 1) if size else 0
    if rng.random() < 0.1:
        off = size + rng.randrange(4096)         # past the end: nothing
    n = rng.choice((1, 511, 4096, 65536, 131072, 1 << 20, rng.randrange(1, 1 << 21)))
    return off, n

def check_read(p, off, n, got, how):
    want = os.pread(ref_fd[p], n, off)
    if got != want:
        err("%s %r at %d+%d: %d bytes, want %d%s" % (how, p, off, n, len(got), len(want),
            "" if len(got) != len(want) else " (different bytes)"))

def op_pread(rng):
    p = pick(rng)
    off, n = rand_range(rng, entries[p].st_size)
    if rng.random() < 0.5:
        fd = os.open(os.path.join(mnt, p), os.O_RDONLY)
        try:
            if rng.random() < 0.5:
                # drop the file's cached pages: the read goes to the daemon again
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            got = os.pread(fd, n, off)
        finally:
            os.close(fd)
        count("pread", b=len(got))
    else:
        with shared_lock:
            fd = shared_fd.get(p)
            if fd is None:
                fd = shared_fd[p] = os.open(os.path.join(mnt, p), os.O_RDONLY)
        got = os.pread(fd, n, off)
        count("shared", b=len(got))
    check_read(p, off, n, got, "pread")

def op_whole(rng):
    p = rng.choice(files)
    h, total = hashlib.sha256(), 0
    with open(os.path.join(mnt, p), "rb", buffering=0) as f:
        while True:
            b = f.read(rng.choice((1000, 4096, 65536, 1 << 20)))
            if not b:
                break
            h.update(b)
            total += len(b)
    if h.hexdigest() != digest[p]:
        err("whole read of %r: sha256 differs (%d bytes)" % (p, total))
    count("whole", b=total)

def op_mmap(rng):
    p = rng.choice([q for q in big] or files)
    size = entries[p].st_size
    off, n = rand_range(rng, size - 1)
    off = min(off, size - 1)
    with open(os.path.join(mnt, p), "rb") as f:
        with mmap.mmap(f.fileno(), 0, prot=mmap.PROT_READ) as m:
            got = m[off:off + n]
    check_read(p, off, n, got, "mmap")
    count("mmap", b=len(got))

def op_walk(rng):
    seen = set()
    top = mnt if rng.random() < 0.5 else os.path.join(mnt, b"small")
    for dp, dns, fns in os.walk(top):
        for n in dns + fns:
            seen.add(os.path.relpath(os.path.join(dp, n), mnt))
    want = set(p for p in entries if top == mnt or p.startswith(b"small/"))
    if seen != want:
        err("walk of %r: %d extra, %d missing" % (top, len(seen - want), len(want - seen)))
    count("walk")

def op_stat(rng):
    p = rng.choice(list(entries))
    st, ref = os.lstat(os.path.join(mnt, p)), entries[p]
    if stat.S_IFMT(st.st_mode) != stat.S_IFMT(ref.st_mode) or \
            stat.S_IMODE(st.st_mode) != stat.S_IMODE(ref.st_mode):
        err("lstat %r: mode %o, want %o" % (p, st.st_mode, ref.st_mode))
    elif not stat.S_ISDIR(ref.st_mode) and (st.st_size != ref.st_size or st.st_nlink != ref.st_nlink):
        err("lstat %r: size %d nlink %d, want %d %d" % (p, st.st_size, st.st_nlink, ref.st_size, ref.st_nlink))
    elif stat.S_ISLNK(ref.st_mode) and os.readlink(os.path.join(mnt, p)) != os.readlink(os.path.join(src, p)):
        err("readlink %r differs" % p)
    count("stat")

OPS = [(op_pread, 50), (op_whole, 10), (op_mmap, 10), (op_walk, 3), (op_stat, 27)]
def worker(i):
    rng = random.Random(1000 + i)
    end = time.monotonic() + seconds
    while time.monotonic() < end and len(errors) < 50:
        f = rng.choices([o for o, _ in OPS], [w for _, w in OPS])[0]
        try:
            f(rng)
        except Exception as e:
            err("%s: %r" % (f.__name__, e))

ts = [threading.Thread(target=worker, args=(i,)) for i in range(nthreads)]
t0 = time.monotonic()
for t in ts: t.start()
for t in ts: t.join()
dt = time.monotonic() - t0
ops = sum(v for k, v in counts.items() if k != "bytes")
print("%d threads, %.0f s: %d operations (%s), %d MiB read, %d errors" % (
    nthreads, dt, ops, ", ".join("%s %d" % (k, v) for k, v in counts.items() if k != "bytes"),
    counts["bytes"] >> 20, len(errors)))
for e in errors[:30]:
    print("  error:", e)
sys.exit(1 if errors or ops == 0 else 0)
EOF
timeout $((STRESS_SECONDS + 120)) "$PY" "$T/load.py" "$M" "$S" "$STRESS_SECONDS" "$STRESS_THREADS" >"$T/load.out" 2>&1
rc=$?
sed 's/^/    /' "$T/load.out"
if [ "$rc" = 0 ]; then
	ok "$STRESS_THREADS readers for $STRESS_SECONDS s: no errors"
else
	fail "$STRESS_THREADS readers: exit $rc"
fi
if alive "$PID"; then
	RSS1=$(rss)
	note "the daemon's rchar grew by $((($(rchar) - IO0) >> 20)) MiB during the load (reads it spliced are not counted)"
	growth=$(((RSS1 - RSS0) / 1024))
	if [ "$growth" -lt "$STRESS_RSS_MIB" ]; then
		ok "daemon VmRSS: $RSS0 KiB at the start, $RSS1 KiB at the end (grew $growth MiB, under $STRESS_RSS_MIB)"
	else
		fail "daemon VmRSS: $RSS0 KiB at the start, $RSS1 KiB at the end: grew $growth MiB (limit $STRESS_RSS_MIB)"
	fi
else
	fail "the daemon died under load"
fi
is_mounted "$M" && timeout 5 ls "$M" >/dev/null && ok "the mount still answers" || fail "the mount no longer answers"

# ---- unmount -------------------------------------------------------------------------------------
if timeout 20 fusermount3 -u "$M" 2>"$T/umount.err"; then
	if wait_gone "$M" "$PID"; then
		ok "unmounted; the daemon exited"
	else
		fail "after fusermount3 -u: $(is_mounted "$M" && echo "still mounted; ")daemon $PID $(alive "$PID" && echo "still running")"
	fi
else
	fail "fusermount3 -u: $(head -c 300 "$T/umount.err")"
fi
left=$(daemon_pids "$M")
[ -z "$left" ] && ok "no tarmount process left" || fail "tarmount processes left: $left"
note "stress.sh took $(($(date +%s) - START)) s"
finish
