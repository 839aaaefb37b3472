#!/bin/bash
# `tarkv A extract PATH DEST` against `tar -xf A -C DEST2 [PATH]` (GNU tar as root, the
# oracle): `diff -r` of the two trees, then a per-file comparison of lstat (type, mode,
# owner, size, mtime with nanoseconds, nlink and hard-link groups, symlink targets, device
# numbers), xattrs, holes of sparse files and contents.
# Run by `sh script`: go on under bash.
if [ -z "${BASH_VERSION:-}" ]; then exec bash "$0" "$@"; fi
. "$(dirname "$0")/lib.sh"

need_root
need_cmd tar bsdtar diff timeout "$PY"
need_tarkv
make_tmp
umask 022
make_corpus

# treecmp.py ORACLE OTHER ARCHIVE PATH: compare the two trees; directories that are not among
# the members extracted (PATH and below; implicit parents) keep only their mtime out of the
# comparison: tar gives them the time of extraction.
cat >"$T/treecmp.py" <<'EOF'
import hashlib, os, stat, subprocess, sys
oracle, other, archive, path = [os.fsencode(a) for a in sys.argv[1:5]]
names = subprocess.run(["tar", "--quoting-style=literal", "-tf", archive], capture_output=True,
                       env=dict(os.environ, LC_ALL="C")).stdout.split(b"\n")[:-1]
norm = lambda n: b"/".join(c for c in n.split(b"/") if c not in (b"", b"."))
path = norm(path)
listed = {norm(n) for n in names}
if path:
    listed = {n for n in listed if n == path or n.startswith(path + b"/")}

def walk(root):
    out = {}
    for dp, dns, fns in os.walk(root):
        for n in dns + fns:
            full = os.path.join(dp, n)
            out[os.path.relpath(full, root)] = full
    return out

def xattrs(p):
    try:
        return {n: os.getxattr(p, n, follow_symlinks=False)
                for n in os.listxattr(p, follow_symlinks=False)}
    except OSError:
        return {}

def sha(p):
    with open(p, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()

a, b = walk(oracle), walk(other)
bad = []
for p in sorted(set(a) - set(b)):
    bad.append("%s: missing from tarkv's extraction" % p.decode(errors="replace"))
for p in sorted(set(b) - set(a)):
    bad.append("%s: extra in tarkv's extraction" % p.decode(errors="replace"))
ino_a, ino_b = {}, {}
for p in sorted(set(a) & set(b)):
    sa, sb = os.lstat(a[p]), os.lstat(b[p])
    name = p.decode(errors="replace")
    def diff(what, x, y):
        if x != y:
            bad.append("%s: %s: tar %s, tarkv %s" % (name, what, x, y))
    diff("type", stat.S_IFMT(sa.st_mode), stat.S_IFMT(sb.st_mode))
    if stat.S_IFMT(sa.st_mode) != stat.S_IFMT(sb.st_mode):
        continue
    diff("mode", oct(sa.st_mode & 0o7777), oct(sb.st_mode & 0o7777))
    diff("uid/gid", (sa.st_uid, sa.st_gid), (sb.st_uid, sb.st_gid))
    if not (stat.S_ISDIR(sa.st_mode) and p not in listed):
        diff("mtime_ns", sa.st_mtime_ns, sb.st_mtime_ns)
    if not stat.S_ISDIR(sa.st_mode):
        diff("nlink", sa.st_nlink, sb.st_nlink)
        # hard-link groups: the same partition of paths into inodes
        ga = ino_a.setdefault(sa.st_ino, p)
        gb = ino_b.setdefault(sb.st_ino, p)
        diff("hard-link group (first name)", ga, gb)
    if stat.S_ISREG(sa.st_mode):
        diff("size", sa.st_size, sb.st_size)
        diff("has holes", sa.st_blocks * 512 < sa.st_size, sb.st_blocks * 512 < sb.st_size)
        if sa.st_size == sb.st_size:
            diff("sha256", sha(a[p]), sha(b[p]))
    if stat.S_ISLNK(sa.st_mode):
        diff("target", os.readlink(a[p]), os.readlink(b[p]))
    if stat.S_ISCHR(sa.st_mode) or stat.S_ISBLK(sa.st_mode):
        diff("rdev", (os.major(sa.st_rdev), os.minor(sa.st_rdev)),
             (os.major(sb.st_rdev), os.minor(sb.st_rdev)))
    diff("xattrs", xattrs(a[p]), xattrs(b[p]))
for m in bad[:40]:
    print("    " + m)
if len(bad) > 40:
    print("    ... %d more" % (len(bad) - 40))
print("    %d paths compared, %d differences" % (len(set(a) | set(b)), len(bad)))
sys.exit(1 if bad else 0)
EOF

# check_extract ARCHIVE PATH: tarkv ARCHIVE extract PATH vs tar -xf ARCHIVE [PATH]
check_extract() {
	local a=$1 p=$2 name what
	name=$(basename "$a")
	what="$name: extract '$p'"
	rm -rf "$T/k" "$T/t"
	mkdir "$T/k" "$T/t"
	local member=()
	case $p in /) ;; *) member=("$p") ;; esac
	if ! tar_extract "$a" "$T/t" "${member[@]}" 2>"$T/tar.err"; then
		note "$what: GNU tar fails ($(head -c 200 "$T/tar.err" | tr '\n' ' ')): no oracle, skipped"
		return
	fi
	tk "$a" extract "$p" "$T/k"
	if [ "$RC" != 0 ]; then
		fail "$what: exit $RC $(last)"
		return
	fi
	ok "$what: exit 0"
	timeout 120 diff -r --no-dereference "$T/t" "$T/k" >"$T/diff" 2>&1
	# diff cannot compare fifos and devices: the stat comparison does
	grep -vE '^File .* is a (fifo|character special file|block special file) while file .* is a (fifo|character special file|block special file)$' "$T/diff" >"$T/diff2"
	if [ -s "$T/diff2" ]; then
		fail "$what: diff -r with tar's extraction"
		head -20 "$T/diff2" | sed 's/^/    /'
	else
		ok "$what: diff -r with tar's extraction"
	fi
	if "$PY" "$T/treecmp.py" "$T/t" "$T/k" "$a" "$p" >"$T/cmp"; then
		ok "$what: stat, xattrs, holes, contents ($(tail -1 "$T/cmp" | sed 's/^ *//'))"
	else
		fail "$what: stat comparison with tar's extraction"
		cat "$T/cmp"
	fi
	chmod -R u+rwx "$T/k" "$T/t" 2>/dev/null
}

for n in gnu.tar posix.tar v7.tar gnu-dotslash.tar gnu-implicit.tar gnu-append.tar \
	posix-append.tar gnu-sparse.tar posix-sparse-0.0.tar posix-sparse-0.1.tar \
	posix-sparse-1.0.tar posix-xattrs.tar bsdtar-pax-xattrs.tar bsdtar-pax.tar \
	bsdtar-pax-sparse.tar py-gnu.tar py-pax.tar py-pax-global.tar; do
	if [ -f "$CORPUS/$n" ]; then
		check_extract "$CORPUS/$n" /
	else
		note "$n: not in the corpus (see mkarchives.py's messages)"
	fi
done

# Subtrees and single members.
G=$CORPUS/gnu.tar
for p in links names/répertoire files/s513 links/sym_rel links/sym_dangling dirs/deep/a/b \
	special/fifo special/chr_null modes owners times/ns links/hard3a links/hard3b \
	modes/d700/inside owners/d1234/f modes/d555; do
	check_extract "$G" "$p"
done
check_extract "$CORPUS/posix-xattrs.tar" xdir
check_extract "$CORPUS/gnu-sparse.tar" sp_islands30
check_extract "$CORPUS/py-pax-global.tar" dir
check_extract "$CORPUS/gnu-append.tar" app/f

# The same member named in other ways: tarkv normalises the key.
for p in /links ./links links/ //links/./; do
	rm -rf "$T/k" "$T/k2" && mkdir "$T/k" "$T/k2"
	tk "$G" extract links "$T/k"
	tk "$G" extract "$p" "$T/k2"
	if [ "$RC" = 0 ] && timeout 60 diff -r --no-dereference "$T/k" "$T/k2" >/dev/null 2>&1; then
		ok "extract '$p' = extract links"
	else
		fail "extract '$p' differs from extract links $(last)"
	fi
done

# Errors.
rm -rf "$T/k" && mkdir "$T/k"
tk "$G" extract no/such "$T/k"
expect_rc 1 "extract no/such"
expect_err_match "^tarkv: $G: no/such: " "extract no/such"
[ -z "$(ls -A "$T/k")" ] && ok "extract no/such: DEST left empty" || fail "extract no/such: DEST not empty"
tk "$G" extract / "$T/no-such-dir"
if [ "$RC" != 0 ] && [ -s "$T/err" ]; then
	ok "extract into a missing DEST: exit $RC with a message"
else
	fail "extract into a missing DEST: want failure with a message $(last)"
fi
[ ! -e "$T/no-such-dir" ] && ok "extract into a missing DEST: DEST not created" || fail "extract into a missing DEST: DEST was created"
touch "$T/afile"
tk "$G" extract / "$T/afile"
if [ "$RC" != 0 ] && [ -s "$T/err" ]; then
	ok "extract into a file: exit $RC with a message"
else
	fail "extract into a file: want failure with a message $(last)"
fi

finish
