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
#   - fusermount3 -u: the mount is gone and the daemon exits within seconds.
# CORPUS_ONLY=REGEX (by hand) restricts the archives by name.
. "$(dirname "$0")/lib.sh"

: "${TARMOUNT:=$top_builddir/tarmount}"
case $TARMOUNT in /*) ;; *) TARMOUNT=$(pwd)/$TARMOUNT ;; esac

# ---- mount helpers (the same block is in every mount*.sh) ---------------------------------
need_fuse() {
	need_root
	[ -c /dev/fuse ] || skip_or_fail "needs /dev/fuse"
	need_cmd fusermount3 timeout
	[ -x "$TARMOUNT" ] || skip_or_fail "TARMOUNT=$TARMOUNT is not an executable (build it first)"
}
MOUNTS=()
# is_mounted DIR: DIR is a mount point in /proc/mounts (our temp paths need no unescaping)
is_mounted() { awk -v m="$1" '$2 == m { f = 1 } END { exit !f }' /proc/mounts; }
mount_line() { awk -v m="$1" '$2 == m' /proc/mounts; }
# daemon_pids DIR: live tarmount processes with DIR as an argument (zombies have no cmdline)
daemon_pids() {
	local d
	for d in /proc/[0-9]*; do
		[ "${d#/proc/}" = $$ ] && continue
		{ tr '\0' '\n' <"$d/cmdline"; } 2>/dev/null | {
			read -r a0 || exit 1
			[ "${a0##*/}" = tarmount ] || exit 1
			grep -Fxq -- "$1"
		} && echo "${d#/proc/}"
	done
}
alive() { [ -r "/proc/$1/stat" ] && [ "$(awk '{ print $3 }' "/proc/$1/stat" 2>/dev/null)" != Z ]; }
# wait_gone DIR PIDS...: up to 10 s for DIR to leave /proc/mounts and PIDS to exit
wait_gone() {
	local m=$1 i p busy
	shift
	for i in $(seq 100); do
		busy=
		is_mounted "$m" && busy=1
		for p in "$@"; do alive "$p" && busy=1; done
		[ -z "$busy" ] && return 0
		sleep 0.1
	done
	return 1
}
# tm_mount WHAT ARCHIVE DIR [ARGS...]: mount, remember DIR; true when mounted
tm_mount() {
	local what=$1 a=$2 m=$3
	shift 3
	[[ " ${MOUNTS[*]} " == *" $m "* ]] || MOUNTS+=("$m")
	timeout 60 "$TARMOUNT" "$@" "$a" "$m" >"$T/mount.out" 2>"$T/mount.err"
	RC=$?
	if [ "$RC" != 0 ] || ! is_mounted "$m"; then
		fail "$what: tarmount exit $RC, $(is_mounted "$m" || echo not) mounted: $(head -c 600 "$T/mount.err")"
		return 1
	fi
	return 0
}
# tm_umount WHAT DIR: fusermount3 -u, then the mount and the daemon must go
tm_umount() {
	local what=$1 m=$2 pids
	pids=$(daemon_pids "$m")
	if ! timeout 20 fusermount3 -u "$m" 2>"$T/umount.err"; then
		fail "$what: fusermount3 -u: $(head -c 300 "$T/umount.err")"
		timeout 20 fusermount3 -u -z "$m" 2>/dev/null
	fi
	# shellcheck disable=SC2086
	if wait_gone "$m" $pids; then
		return 0
	fi
	fail "$what: after unmounting: $(is_mounted "$m" && echo "still mounted; ")daemon $(for p in $pids; do alive "$p" && echo "$p"; done) still running after 10 s"
	return 1
}
mount_cleanup() {
	local m p pids=
	for m in "${MOUNTS[@]}"; do
		pids="$pids $(daemon_pids "$m")"
		is_mounted "$m" && { timeout 10 fusermount3 -u -z "$m" || timeout 10 umount -l "$m"; } 2>/dev/null
	done
	for p in $pids; do alive "$p" && kill "$p" 2>/dev/null; done
	for p in $pids; do
		for _ in $(seq 30); do alive "$p" || break; sleep 0.1; done
		alive "$p" && kill -9 "$p" 2>/dev/null
	done
}
setup_tmp() {
	make_tmp
	trap 'mount_cleanup; cleanup' EXIT
}
# --------------------------------------------------------------------------------------------

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

finish
