#!/bin/bash
# tarmount's failures and its edges:
#   - every error found before mounting (missing source, a directory, random bytes, an empty
#     file, a missing mount point, a mount point that is a file): exit non-zero (not a
#     timeout), exactly one line on stderr naming the problem and the path, nothing mounted,
#     no daemon left;
#   - every write operation on the mount fails with EROFS (system calls from Python, and
#     touch, mkdir, rm, rmdir, mv, chmod, chown, ln, setfattr, echo >, truncate) and
#     changes nothing;
#   - -o uid=N,gid=N and -o umask=M change what stat shows, and only that;
#   - the mount table: type fuse.tarmount, the source's path as fsname, ro,nosuid,nodev;
#   - -o readahead=KIB sets the mount's read-ahead window; by default and with 0 a file's
#     mount keeps the kernel's, -o cache makes it 1024; bad values are refused;
#   - -o spin= out of range is refused;
#   - SIGTERM to the daemon unmounts cleanly, also while a reader keeps it polling (-o spin);
#     SIGINT to tarmount -f too, with exit 0;
#   - --version, -V, --help, -h exit 0;
#   - the archive rewritten in place while mounted (truncated, then another tar written to
#     the same path): reading a file not read before fails with EIO or returns the old
#     bytes, never other bytes, and the daemon stays up; replaced by mv: the old bytes.
. "$(dirname "$0")/lib.sh"

. "$(dirname "$0")/lib_mount.sh"


need_fuse
need_cmd tar "$PY" setfattr truncate
setup_tmp
umask 022

# ---- archives ---------------------------------------------------------------------------------
# small.tar: owners, modes, a symlink, a FIFO, a device, an xattr, a dir with a file
# old.tar / new.tar: the same 20 names and sizes with different random contents
"$PY" - "$T" <<'PYEOF' || { fail "building the archives"; finish; }
import io, os, random, sys, tarfile
T = sys.argv[1]
rng = random.Random(77)

def ti(name, typ=tarfile.REGTYPE, mode=0o644, uid=0, gid=0, mtime=1500000000, **kw):
    t = tarfile.TarInfo(name)
    t.type, t.mode, t.uid, t.gid, t.mtime = typ, mode, uid, gid, mtime
    t.uname = t.gname = ""
    for k, v in kw.items():
        setattr(t, k, v)
    return t

def write(path, members, fmt=tarfile.PAX_FORMAT):
    with tarfile.open(path, "w", format=fmt) as tf:
        for t, d in members:
            if d is None:
                tf.addfile(t)
            else:
                t.size = len(d)
                tf.addfile(t, io.BytesIO(d))

write(T + "/small.tar", [
    (ti("f", mode=0o644, uid=1000, gid=100,
        pax_headers={"SCHILY.xattr.user.keep": "v"}), b"original contents\n"),
    (ti("exec", mode=0o755, uid=42, gid=43), b"#!/bin/sh\n"),
    (ti("all", mode=0o777), b"all\n"),
    (ti("suid", mode=0o4755), b"suid\n"),
    (ti("none", mode=0o000, uid=7, gid=8), b"none\n"),
    (ti("d", tarfile.DIRTYPE, mode=0o750, uid=1000, gid=100), None),
    (ti("d/inner", mode=0o600, uid=1000, gid=100), b"inner\n"),
    (ti("sticky", tarfile.DIRTYPE, mode=0o1777), None),
    (ti("l", tarfile.SYMTYPE, mode=0o777, linkname="f", uid=5, gid=6), None),
    (ti("fifo", tarfile.FIFOTYPE, mode=0o640), None),
    (ti("null", tarfile.CHRTYPE, mode=0o666, devmajor=1, devminor=3), None),
])
old = [(ti("f%02d" % i), rng.randbytes(300000 + i)) for i in range(20)]
new = [(ti("f%02d" % i), rng.randbytes(300000 + i)) for i in range(20)]
write(T + "/old.tar", old, tarfile.GNU_FORMAT)
write(T + "/new.tar", new, tarfile.GNU_FORMAT)
os.makedirs(T + "/old", exist_ok=True)
for t, d in old:
    with open(T + "/old/" + t.name, "wb") as f:
        f.write(d)
PYEOF
[ "$(stat -c %s "$T/old.tar")" = "$(stat -c %s "$T/new.tar")" ] ||
	fail "old.tar and new.tar should have the same size"
A=$T/small.tar
M=$T/m
mkdir -p "$M"

# ---- errors before mounting ----------------------------------------------------------------
# expect_mount_error WHAT REGEX PATH ARCHIVE MOUNTPOINT
expect_mount_error() {
	local what=$1 re=$2 path=$3 src=$4 mnt=$5 n
	MOUNTS+=("$mnt")
	timeout 30 "$TARMOUNT" "$src" "$mnt" >"$T/out" 2>"$T/err"
	RC=$?
	n=$(wc -l <"$T/err")
	if [ "$RC" = 0 ] || [ "$RC" = 124 ] || [ "$RC" -ge 128 ]; then
		fail "$what: want a non-zero exit (not a timeout or a signal) $(last)"
	else
		ok "$what: exit $RC"
	fi
	if [ "$n" = 1 ] && grep -Eq -- "$re" "$T/err" && grep -Fq -- "$path" "$T/err"; then
		ok "$what: one line on stderr naming $path and the problem: $(cat "$T/err")"
	else
		fail "$what: want exactly one line on stderr matching /$re/ and naming $path; got $n: $(head -c 400 "$T/err" | tr '\n' '|')"
	fi
	if is_mounted "$mnt" || awk -v s="$src" '$1 == s { f = 1 } END { exit !f }' /proc/mounts; then
		fail "$what: something is mounted afterwards: $(mount_line "$mnt")"
	else
		ok "$what: nothing mounted"
	fi
	local left
	left=$(daemon_pids "$mnt")
	[ -z "$left" ] || fail "$what: tarmount processes left: $left"
}

head -c 20000 /dev/urandom >"$T/random.bin"
: >"$T/empty.tar"
echo "a file" >"$T/notadir"
expect_mount_error "missing source" 'No such file|does not exist|cannot open|not found' \
	"$T/nonexistent.tar" "$T/nonexistent.tar" "$M"
expect_mount_error "source is a directory" '[Dd]irectory' "$T/old" "$T/old" "$M"
expect_mount_error "source is random bytes" 'not a tar' "$T/random.bin" "$T/random.bin" "$M"
expect_mount_error "source is an empty file" 'not a tar|empty|short' "$T/empty.tar" \
	"$T/empty.tar" "$M"
expect_mount_error "mount point missing" 'No such file|does not exist|mount ?point' \
	"$T/nomnt" "$A" "$T/nomnt"
expect_mount_error "mount point is a file" '[Nn]ot a directory' "$T/notadir" "$A" "$T/notadir"

# ---- --version, --help ------------------------------------------------------------------------
for opt in --version -V --help -h; do
	timeout 10 "$TARMOUNT" $opt >"$T/out" 2>"$T/err"
	RC=$?
	if [ "$RC" = 0 ] && grep -qi tarmount "$T/out" "$T/err"; then
		ok "tarmount $opt: exit 0"
	else
		fail "tarmount $opt: want exit 0 and a text naming tarmount $(last)"
	fi
done

# ---- the mount table ------------------------------------------------------------------------
if tm_mount "small.tar" "$A" "$M"; then
	line=$(mount_line "$M")
	read -r fsname _ fstype opts _ <<<"$line"
	if [ "$fstype" = fuse.tarmount ]; then ok "mount table: type fuse.tarmount"; else
		fail "mount table: type '$fstype', want fuse.tarmount: $line"; fi
	if [ "$fsname" = "$A" ]; then ok "mount table: fsname is the source's path"; else
		fail "mount table: fsname '$fsname', want $A: $line"; fi
	for o in ro nosuid nodev; do
		if [[ ,$opts, == *,$o,* ]]; then ok "mount table: option $o"; else
			fail "mount table: no $o in '$opts'"; fi
	done

	# ---- writes fail with EROFS ----------------------------------------------------------------
	(cd "$M" && find . -printf '%p %y %m %U %G %s %T@\n' | sort) >"$T/before.lst"
	sha_before=$(sha256sum <"$M/f")
	"$PY" - "$M" <<'PYEOF' >"$T/erofs.out" 2>&1
import errno, os, sys
M = sys.argv[1]
f, d = M + "/f", M + "/d"
ops = [
    ("open O_CREAT (touch new)", lambda: os.open(M + "/new", os.O_CREAT | os.O_WRONLY, 0o644)),
    ("open O_WRONLY|O_TRUNC (echo >)", lambda: os.open(f, os.O_WRONLY | os.O_TRUNC)),
    ("open O_WRONLY|O_APPEND", lambda: os.open(f, os.O_WRONLY | os.O_APPEND)),
    ("open O_RDWR", lambda: os.open(f, os.O_RDWR)),
    ("utime (touch existing)", lambda: os.utime(f, (0, 0))),
    ("mkdir", lambda: os.mkdir(M + "/newdir")),
    ("mkdir in a subdirectory", lambda: os.mkdir(d + "/newdir")),
    ("unlink (rm)", lambda: os.unlink(f)),
    ("unlink a symlink", lambda: os.unlink(M + "/l")),
    ("rmdir", lambda: os.rmdir(M + "/sticky")),
    ("rename (mv)", lambda: os.rename(f, M + "/g")),
    ("rename into a subdirectory", lambda: os.rename(f, d + "/g")),
    ("chmod", lambda: os.chmod(f, 0o600)),
    ("chown", lambda: os.chown(f, 1, 1)),
    ("lchown a symlink", lambda: os.chown(M + "/l", 1, 1, follow_symlinks=False)),
    ("setxattr", lambda: os.setxattr(f, "user.new", b"x")),
    ("setxattr replace", lambda: os.setxattr(f, "user.keep", b"y")),
    ("removexattr", lambda: os.removexattr(f, "user.keep")),
    ("truncate", lambda: os.truncate(f, 0)),
    ("symlink", lambda: os.symlink("f", M + "/newlink")),
    ("link", lambda: os.link(f, M + "/newhard")),
    ("mknod fifo", lambda: os.mkfifo(M + "/newfifo")),
]
bad = 0
for what, fn in ops:
    try:
        r = fn()
        if isinstance(r, int):
            os.close(r)
        print("FAIL: write op %s: succeeded" % what)
        bad += 1
    except OSError as e:
        if e.errno == errno.EROFS:
            print("ok: write op %s: EROFS" % what)
        else:
            print("FAIL: write op %s: %s, want EROFS" % (what, errno.errorcode.get(e.errno, e.errno)))
            bad += 1
sys.exit(1 if bad else 0)
PYEOF
	while IFS= read -r l; do
		case $l in
		ok:*) ok "${l#ok: }" ;;
		FAIL:*) fail "${l#FAIL: }" ;;
		*) fail "write ops: $l" ;;
		esac
	done <"$T/erofs.out"
	# the tools, as a user would run them
	# shellcheck disable=SC2016
	while IFS='|' read -r what cmd; do
		(cd "$M" && timeout 10 bash -c "$cmd") >"$T/out" 2>"$T/err"
		RC=$?
		if [ "$RC" != 0 ] && grep -q 'Read-only file system' "$T/err"; then
			ok "$what: fails with 'Read-only file system'"
		else
			fail "$what: want failure with 'Read-only file system' $(last)"
		fi
	done <<'CMDS'
touch (new file)|touch new
touch (existing file)|touch f
mkdir|mkdir newdir
rm|rm -f f
rm -r|rm -rf d
rmdir|rmdir sticky
mv|mv f g
chmod|chmod 600 f
chown|chown 1:1 f
ln -s|ln -s f newlink
ln|ln f newhard
setfattr|setfattr -n user.x -v 1 f
setfattr -x|setfattr -x user.keep f
echo > existing file|echo hi > f
echo >> existing file|echo hi >> f
truncate|truncate -s 0 f
CMDS
	(cd "$M" && find . -printf '%p %y %m %U %G %s %T@\n' | sort) >"$T/after.lst"
	if cmp -s "$T/before.lst" "$T/after.lst" && [ "$(sha256sum <"$M/f")" = "$sha_before" ] &&
		[ "$(getfattr --only-values -n user.keep "$M/f" 2>/dev/null)" = v ]; then
		ok "after the write attempts: the tree, f's contents and xattr are unchanged"
	else
		fail "after the write attempts: the tree changed"
		diff "$T/before.lst" "$T/after.lst" | head -10 | sed 's/^/    /'
	fi
	tm_umount "small.tar" "$M"
fi

# ---- -o uid=,gid=, -o umask= ----------------------------------------------------------------
# stat of every path (the root too), as PATH TYPE MODE UID GID
stat_tree() { "$PY" - "$1" <<'PYEOF'
import os, stat, sys
root = os.fsencode(sys.argv[1])
paths = [b"."]
for dp, dns, fns in os.walk(root):
    for n in dns + fns:
        paths.append(os.path.relpath(os.path.join(dp, n), root))
for p in sorted(paths):
    st = os.lstat(os.path.join(root, p))
    print("%s %o %o %d %d" % (os.fsdecode(p), stat.S_IFMT(st.st_mode), stat.S_IMODE(st.st_mode),
                              st.st_uid, st.st_gid))
PYEOF
}
if tm_mount "small.tar (defaults)" "$A" "$M"; then
	stat_tree "$M" >"$T/plain.st"
	tm_umount "small.tar (defaults)" "$M"
fi
if tm_mount "small.tar -o uid=1234,gid=5678" "$A" "$M" -o uid=1234,gid=5678; then
	stat_tree "$M" >"$T/uid.st"
	tm_umount "small.tar -o uid=1234,gid=5678" "$M"
	want=$(awk '{ print $1, $2, $3, 1234, 5678 }' "$T/plain.st")
	if [ -s "$T/uid.st" ] && [ "$want" = "$(cat "$T/uid.st")" ]; then
		ok "-o uid=1234,gid=5678: every path (root included) owned by 1234:5678, modes unchanged"
	else
		fail "-o uid=1234,gid=5678: want every path 1234:5678 and nothing else changed"
		diff <(echo "$want") "$T/uid.st" | head -10 | sed 's/^/    /'
	fi
fi
for um in 077 022 7777; do
	if tm_mount "small.tar -o umask=$um" "$A" "$M" -o umask=$um; then
		stat_tree "$M" >"$T/umask.st"
		tm_umount "small.tar -o umask=$um" "$M"
		want=$(awk -v um=$um 'function oct(s,  i, n) { n = 0; for (i = 1; i <= length(s); i++) n = n * 8 + substr(s, i, 1); return n }
			function band(a, b,  r, p) { r = 0; for (p = 1; a > 0 && b > 0; p *= 2) { if (a % 2 && b % 2) r += p; a = int(a / 2); b = int(b / 2) } return r }
			{ printf "%s %s %o %s %s\n", $1, $2, band(oct($3), 4095 - oct(um)), $4, $5 }' "$T/plain.st")
		if [ -s "$T/umask.st" ] && [ "$want" = "$(cat "$T/umask.st")" ]; then
			ok "-o umask=$um: every mode (root included) loses the bits $um, nothing else changes"
		else
			fail "-o umask=$um: modes are not the defaults minus $um"
			diff <(echo "$want") "$T/umask.st" | head -10 | sed 's/^/    /'
		fi
	fi
done

# ---- -o readahead= -------------------------------------------------------------------------
# The kernel's read-ahead window for the mount (/sys/class/bdi/MAJ:MIN/read_ahead_kb, set by
# a thread of the daemon once the mount answers): as told; left to the kernel for a file
# (spliced reads; -o cache makes them copied: 1024) and with readahead=0.  (NBD: nbd.sh.)
# ra_of DIR WANT: the window, polled for up to 5 s until it is WANT
ra_of() {
	local dev f i v=
	dev=$(mountpoint -d "$1") || return
	f=/sys/class/bdi/$dev/read_ahead_kb
	for i in $(seq 50); do
		v=$(cat "$f" 2>/dev/null)
		[ "$v" = "$2" ] && break
		sleep 0.1
	done
	echo "$v"
}
if [ -d /sys/class/bdi ]; then
	for c in "readahead=256 256" "readahead=4096 4096" "cache 1024"; do
		set -- $c
		if tm_mount "small.tar, $1" "$A" "$M" -o "$1"; then
			got=$(ra_of "$M" "$2")
			[ "$got" = "$2" ] && ok "-o $1: the mount reads ahead $got KiB" ||
				fail "-o $1: read_ahead_kb is '$got', want $2"
			tar -xOf "$A" f | cmp -s - "$M/f" && ok "-o $1: f reads right" || fail "-o $1: f differs from tar -xO"
			tm_umount "small.tar, $1" "$M"
		fi
	done
	# the kernel's own window stays (whatever it is, not one of ours)
	for c in "" "-o readahead=0"; do
		if tm_mount "small.tar ${c:-(default)}" "$A" "$M" $c; then
			sleep 0.5
			got=$(ra_of "$M" none)
			[ -n "$got" ] && [ "$got" != 1024 ] && ok "${c:-default}: the kernel's window stays ($got KiB)" ||
				fail "${c:-default}: read_ahead_kb is '$got'"
			tm_umount "small.tar ${c:-(default)}" "$M"
		fi
	done
else
	fail "no /sys/class/bdi: read-ahead not tested"
fi
# Out of range or not a number: refused, with the option named, and nothing mounted.
for bad in readahead=-1 readahead=1048577 readahead=x spin=1000001 spin=-1 spin=x; do
	timeout 30 "$TARMOUNT" -o "$bad" "$A" "$M" >"$T/out" 2>"$T/err"
	RC=$?
	if [ "$RC" != 0 ] && [ "$RC" -lt 124 ] && grep -q "${bad%%=*}" "$T/err" && ! is_mounted "$M"; then
		ok "-o $bad: refused: $(head -n 1 "$T/err")"
	else
		fail "-o $bad: want a refusal naming the option $(last)"
		is_mounted "$M" && tm_umount "$bad" "$M"
	fi
done

# ---- signals ------------------------------------------------------------------------------------
if tm_mount "SIGTERM" "$A" "$M"; then
	pids=$(daemon_pids "$M")
	if [ -z "$pids" ]; then
		fail "SIGTERM: no tarmount process found for $M"
	else
		kill -TERM $pids
		# shellcheck disable=SC2086
		if wait_gone "$M" $pids; then
			ok "SIGTERM to the daemon ($pids): unmounted, process gone"
		else
			fail "SIGTERM to the daemon ($pids): $(is_mounted "$M" && echo "still mounted, ")process $(for p in $pids; do alive "$p" && echo "$p alive"; done) after 10 s"
		fi
	fi
fi

# SIGTERM while the one thread polls the device after the last request (-s -o spin: a whole
# second of it): the signal must end the polling, or the thread would go on to sleep in
# read(2) with nothing left to wake it.
if tm_mount "SIGTERM, spinning" "$A" "$M" -s -o spin=1000000; then
	pids=$(daemon_pids "$M")
	(while stat "$M" >/dev/null 2>&1 && cat "$M"/* >/dev/null 2>&1; do :; done) &
	reader=$!
	sleep 0.5
	kill "$reader" 2>/dev/null
	wait "$reader" 2>/dev/null
	kill -TERM $pids
	# shellcheck disable=SC2086
	if [ -n "$pids" ] && wait_gone "$M" $pids; then
		ok "SIGTERM to a polling daemon ($pids): unmounted, process gone"
	else
		fail "SIGTERM to a polling daemon ($pids): still there after 10 s"
	fi
fi

# SIGINT to tarmount -f.  libfuse leaves a signal alone that was ignored when it started, as
# a background job of a script has SIGINT (and so has everything under a test run started in
# the background): the daemon is started with SIGINT at its default.
env --default-signal=INT "$TARMOUNT" -f "$A" "$M" >"$T/fg.out" 2>"$T/fg.err" &
fgpid=$!
MOUNTS+=("$M")
for _ in $(seq 100); do is_mounted "$M" && break; alive "$fgpid" || break; sleep 0.1; done
if ! is_mounted "$M"; then
	fail "tarmount -f: not mounted after 10 s: $(head -c 300 "$T/fg.err")"
	kill "$fgpid" 2>/dev/null
else
	ls "$M" >/dev/null 2>&1 || fail "tarmount -f: the mount does not answer"
	kill -INT "$fgpid"
	if wait_gone "$M" "$fgpid"; then
		wait "$fgpid"
		RC=$?
		if [ "$RC" = 0 ]; then
			ok "SIGINT to tarmount -f: unmounted, exit 0"
		else
			fail "SIGINT to tarmount -f: unmounted but exit $RC (want 0 after a clean unmount): $(head -c 300 "$T/fg.err")"
		fi
	else
		fail "SIGINT to tarmount -f: $(is_mounted "$M" && echo "still mounted, ")process $(alive "$fgpid" && echo "$fgpid alive") after 10 s"
		kill -9 "$fgpid" 2>/dev/null
		# not to stack the next mounts on a dead one
		is_mounted "$M" && timeout 10 umount -l "$M"
	fi
fi

# ---- the archive changes under the mount ------------------------------------------------------
# check_read FILE... : every file reads as the old bytes or fails with EIO; prints a report
check_read() { "$PY" - "$T/old" "$@" <<'PYEOF'
import errno, os, sys
old = sys.argv[1]
bad = 0
for p in sys.argv[2:]:
    want = open(os.path.join(old, os.path.basename(p)), "rb").read()
    try:
        with open(p, "rb") as f:
            got = f.read()
    except OSError as e:
        if e.errno == errno.EIO:
            print("ok: %s: EIO" % os.path.basename(p))
        else:
            print("FAIL: %s: %s, want EIO or the old bytes" % (os.path.basename(p), e))
            bad += 1
        continue
    if got == want:
        print("ok: %s: the old bytes" % os.path.basename(p))
    else:
        i = next((i for i in range(min(len(got), len(want))) if got[i] != want[i]),
                 min(len(got), len(want)))
        print("FAIL: %s: %d bytes that are not the old ones (want %d; first difference at %d)"
              % (os.path.basename(p), len(got), len(want), i))
        bad += 1
sys.exit(bad and 1)
PYEOF
}
# report_reads WHAT: the check_read report in $T/cr.out as checks
report_reads() {
	while IFS= read -r l; do
		case $l in
		ok:*) ok "$1: ${l#ok: }" ;;
		FAIL:*) fail "$1: ${l#FAIL: }" ;;
		*) fail "$1: $l" ;;
		esac
	done <"$T/cr.out"
}
# daemon_up WHAT PIDS: still mounted, root listable, daemon alive
daemon_up() {
	local what=$1 p
	shift
	if is_mounted "$M" && timeout 10 ls "$M" >/dev/null 2>"$T/ls.err"; then
		ok "$what: still mounted, ls of the root works"
	else
		fail "$what: $(is_mounted "$M" || echo "not mounted; ")ls: $(head -c 200 "$T/ls.err")"
	fi
	for p in "$@"; do alive "$p" || fail "$what: the daemon $p is gone"; done
}

LIVE=$T/live.tar
cp "$T/old.tar" "$LIVE"
if tm_mount "live.tar" "$LIVE" "$M"; then
	pids=$(daemon_pids "$M")
	check_read "$M/f00" >"$T/cr.out"
	if cmp -s "$M/f00" "$T/old/f00"; then ok "before the change: f00 reads right"; else
		fail "before the change: f00 does not read as the archive's f00"; fi
	stat "$M/f01" "$M/f02" "$M/f03" >/dev/null # attributes cached, contents not read

	truncate -s 0 "$LIVE"
	check_read "$M/f01" "$M/f00" >"$T/cr.out" 2>&1
	report_reads "archive truncated to 0"
	# shellcheck disable=SC2086
	daemon_up "archive truncated to 0" $pids

	cat "$T/new.tar" >"$LIVE" # same path, same inode, same size, other contents
	check_read "$M/f02" "$M/f03" "$M/f01" "$M/f00" >"$T/cr.out" 2>&1
	report_reads "archive rewritten in place"
	# shellcheck disable=SC2086
	daemon_up "archive rewritten in place" $pids
	tm_umount "live.tar" "$M"
fi

# replaced by mv: the mount keeps the file it opened, so the old bytes, no error
cp "$T/old.tar" "$LIVE"
if tm_mount "live.tar (mv)" "$LIVE" "$M"; then
	pids=$(daemon_pids "$M")
	cp "$T/new.tar" "$LIVE.new"
	mv -f "$LIVE.new" "$LIVE"
	"$PY" - "$M" "$T/old" <<'PYEOF' >"$T/cr.out" 2>&1
import os, sys
m, old = sys.argv[1:]
for n in ("f04", "f05", "f19"):
    try:
        got = open(os.path.join(m, n), "rb").read()
    except OSError as e:
        print("FAIL: %s: %s, want the old bytes" % (n, e))
        continue
    want = open(os.path.join(old, n), "rb").read()
    print("ok: %s: the old bytes" % n if got == want else "FAIL: %s: not the old bytes" % n)
PYEOF
	report_reads "archive replaced by mv"
	# shellcheck disable=SC2086
	daemon_up "archive replaced by mv" $pids
	tm_umount "live.tar (mv)" "$M"
fi

finish
