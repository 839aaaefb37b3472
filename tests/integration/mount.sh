#!/bin/bash
# tarmount against GNU tar, archive by archive.
#
# For every archive of the corpus (mkarchives.py: GNU tar v7/oldgnu/gnu/ustar/posix, sparse
# old GNU and pax 0.0/0.1/1.0, long names, hard links, symlinks, devices, FIFOs, xattrs,
# appended duplicates; bsdtar ustar/pax/gnutar; Python tarfile) and a few made here (members
# in git-archive order, xattrs outside user.*):
#   - extract it with GNU tar as root (the oracle), umask 022;
#   - mount it with tarmount: exit 0, mounted when it returns, root listable at once;
#   - treecmp.py --ns --archive: every path, type, mode, owner, size, mtime (ns), link,
#     device, xattr and content agree (see treecmp.py for the differences it allows);
#   - `find M -ls` and `ls -lR M` exit 0, say nothing on stderr and list as many lines as
#     the same commands on the extraction;
#   - fusermount3 -u: the mount is gone and the daemon exits within seconds;
# and a walk over directories of many entries sends listings with attributes, no lookups.
# CORPUS_ONLY=REGEX (by hand) restricts the archives by name.
. "$(dirname "$0")/lib.sh"

. "$(dirname "$0")/lib_mount.sh"

need_fuse
need_cmd tar bsdtar find ls "$PY"
setup_tmp
umask 022
make_corpus

# ---- extra archives: what the corpus does not have ----------------------------------------
EXTRA=$T/extra
mkdir -p "$EXTRA"
"$PY" - "$EXTRA" <<'EOF' || fail "building the extra archives"
import io, sys, tarfile
out = sys.argv[1]

def ti(name, typ=tarfile.REGTYPE, mtime=1500000000, mode=None, **kw):
    t = tarfile.TarInfo(name)
    t.type = typ
    t.mtime = mtime
    t.mode = mode if mode is not None else (0o755 if typ == tarfile.DIRTYPE else 0o644)
    for k, v in kw.items():
        setattr(t, k, v)
    return t

def write(name, members, fmt=tarfile.PAX_FORMAT):
    with tarfile.open(out + "/" + name, "w", format=fmt) as tf:
        for t, d in members:
            if d is None:
                tf.addfile(t)
            else:
                t.size = len(d)
                tf.addfile(t, io.BytesIO(d))

# git archive order: 'perf/' then 'perf-x.rst' then 'perf/a' ('-' sorts before '/'):
# GNU tar sets perf's time when it meets perf-x.rst, then extracting perf/a changes it.
git = [
    (ti("proj/", tarfile.DIRTYPE, mtime=1400000001), None),
    (ti("proj/perf/", tarfile.DIRTYPE, mtime=1400000002), None),
    (ti("proj/perf-x.rst", mtime=1400000003), b"perf-x\n"),
    (ti("proj/perf/a", mtime=1400000004), b"a\n"),
    (ti("proj/perf/sub/", tarfile.DIRTYPE, mtime=1400000005), None),
    (ti("proj/perf.c", mtime=1400000006), b"int x;\n"),
    (ti("proj/perf/sub/b", mtime=1400000007), b"b\n"),
    (ti("proj/zz", mtime=1400000008), b"zz\n"),
]
write("git-order-pax.tar", git, tarfile.PAX_FORMAT)
write("git-order-ustar.tar", git, tarfile.USTAR_FORMAT)

# xattrs in other namespaces than user.* (restored by GNU tar as root), on files and dirs
x = [
    (ti("xd/", tarfile.DIRTYPE, mtime=1400000000,
        pax_headers={"SCHILY.xattr.trusted.dir": "td", "SCHILY.xattr.user.d": "ud"}), None),
    (ti("xd/f", mtime=1400000001, pax_headers={"SCHILY.xattr.trusted.t1": "trusted value",
                                               "SCHILY.xattr.user.u1": "user value"}), b"f\n"),
    (ti("xd/g", mtime=1400000002.25), b"no xattrs\n"),
]
write("xattr-trusted.tar", x)
EOF
for a in "$EXTRA"/*.tar; do
	printf '%s\t%s\t%s\n' "extra/${a##*/}" "ns,xattrs" "made by mount.sh"
done >"$T/extra.tsv"

# ---- per archive ----------------------------------------------------------------------------
M=$T/m
mkdir -p "$M" "$T/x"
while IFS=$'\t' read -r name flags desc; do
	if [ -n "${CORPUS_ONLY:-}" ] && ! [[ $name =~ $CORPUS_ONLY ]]; then
		continue
	fi
	case $name in
	extra/*) a=$EXTRA/${name#extra/} ;;
	*) a=$CORPUS/$name ;;
	esac
	x=$T/x/${name//\//_}
	mkdir -p "$x"
	# --xattrs --xattrs-include='*' always: harmless where the archive has none
	if ! tar_extract "$a" "$x" 2>"$T/tar.err"; then
		fail "$name: GNU tar -x failed, no oracle: $(head -c 500 "$T/tar.err")"
		continue
	fi
	if ! tm_mount "$name" "$a" "$M"; then
		mount_cleanup
		chmod -R u+rwx "$x" 2>/dev/null
		rm -rf "$x"
		continue
	fi
	if ! timeout 10 ls "$M" >/dev/null 2>"$T/ls.err"; then
		fail "$name: ls of the root right after tarmount returned: $(head -c 300 "$T/ls.err")"
	fi

	if timeout 300 "$PY" "$HERE/treecmp.py" --ns --archive "$a" --label "$name" "$x" "$M" \
		>"$T/cmp.out" 2>&1; then
		ok "$name ($desc): the mount agrees with GNU tar's extraction"
	else
		sed 's/^/    /' "$T/cmp.out"
		fail "$name ($desc): the mount differs from GNU tar's extraction"
	fi

	# find -ls and ls -lR: run cleanly, as many lines as on the extraction
	want=$(cd "$x" && find . | wc -l)
	timeout 120 find "$M" -ls >"$T/find.out" 2>"$T/find.err"
	rc=$?
	got=$(wc -l <"$T/find.out")
	if [ "$rc" = 0 ] && [ ! -s "$T/find.err" ] && [ "$got" = "$want" ]; then
		ok "$name: find -ls lists $got entries"
	else
		fail "$name: find -ls: exit $rc, $got lines (want $want), stderr: $(head -c 300 "$T/find.err")"
	fi
	want=$(cd "$x" && ls -lR . | wc -l)
	(cd "$M" && timeout 120 ls -lR .) >"$T/ls.out" 2>"$T/ls.err"
	rc=$?
	got=$(wc -l <"$T/ls.out")
	if [ "$rc" = 0 ] && [ ! -s "$T/ls.err" ] && [ "$got" = "$want" ]; then
		ok "$name: ls -lR prints $got lines"
	else
		fail "$name: ls -lR: exit $rc, $got lines (want $want), stderr: $(head -c 300 "$T/ls.err")"
	fi

	tm_umount "$name" "$M" && ok "$name: unmounted, daemon gone"
	chmod -R u+rwx "$x" 2>/dev/null
	rm -rf "$x"
done < <(cat "$T/corpus/manifest.tsv" "$T/extra.tsv")

# ---- a walk costs listings, not lookups -------------------------------------------------------
# Listings carry attributes (READDIRPLUS every time, not the kernel's "auto" mode, which lists
# a big directory's later pages without them): find -ls over directories of many long names
# then needs no LOOKUP at all.  Counted in libfuse's -d trace.
W=$T/walk
mkdir -p "$W/src/d1" "$W/src/d2/d3"
for i in $(seq 400); do
	n=$(printf 'a-rather-long-file-name-so-that-a-listing-fills-several-pages-%04d' "$i")
	: >"$W/src/d1/$n"
	[ "$i" -le 150 ] && : >"$W/src/d2/d3/$n"
done
tar -C "$W/src" -cf "$W/walk.tar" . || fail "tar of the walk tree"
mkdir -p "$W/m"
MOUNTS+=("$W/m")
"$TARMOUNT" -d "$W/walk.tar" "$W/m" >"$T/trace.out" 2>"$T/trace" &
for _ in $(seq 100); do is_mounted "$W/m" && break; sleep 0.1; done
if is_mounted "$W/m"; then
	got=$(find "$W/m" -ls 2>&1 | wc -l)
	timeout 20 fusermount3 -u "$W/m"
	wait
	lookups=$(grep -c 'opcode: LOOKUP' "$T/trace")
	plus=$(grep -c 'opcode: READDIRPLUS' "$T/trace")
	plain=$(grep -c 'opcode: READDIR ' "$T/trace")
	if [ "$got" = 554 ] && [ "$lookups" = 0 ] && [ "$plain" = 0 ] && [ "$plus" -ge 4 ]; then
		ok "find -ls of 554 entries: $plus READDIRPLUS, no READDIR, no LOOKUP"
	else
		fail "find -ls: $got lines (want 554), $lookups LOOKUP (want 0), $plain READDIR (want 0), $plus READDIRPLUS"
	fi
else
	fail "tarmount -d walk.tar: not mounted: $(head -c 300 "$T/trace")"
fi

finish
