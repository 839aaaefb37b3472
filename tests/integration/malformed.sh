#!/bin/bash
# shellcheck disable=SC2015,SC2317 # ok and fail return 0; functions run from traps
# Hostile archives: what damaged.sh does not cover.  Every case holds tarkv and tarmount to
# one rule: index what is valid and report what is not (tarkv: exit 0 with a warning, or 2
# for damage, the message naming the source), or refuse with a clear error (tarkv exit 2;
# tarmount exit non-zero, nothing mounted); never a crash (a signal, a sanitizer report, an
# exit status other than 0, 1 or 2), never a hang, and what is served is what the archive
# holds (the bytes at the member's data offset, or what GNU tar extracts where it can).
#
#  1. hand-made headers (malformed.py gen: ~150 archives): size fields past the end (octal,
#     base-256), negative and enormous base-256 size, mtime, uid; base-256 in mode and
#     checksum; data on directories, links and FIFOs; pax records with wrong lengths (short,
#     long, huge, not digits, zero), no '=', no newline, empty, spanning past the header;
#     pax size=-1/huge, mtime=garbage; GNU.sparse maps (0.0, 0.1, 1.0) out of order,
#     overlapping, past the real size, count mismatches, huge counts, truncated maps, and
#     long valid ones (time must stay linear); old GNU 'S' with bad extension blocks; long
#     names ('L', 'K') of odd sizes; 150,000 xattrs in one header; hard-link chains of 1000,
#     loops, missing targets, links to directories and to themselves; symlink loops; paths
#     4000 and 100,000 directories deep, 100 branches 4000 deep (bounded memory); 64 KiB
#     names; names that are not UTF-8; the same path as file and directory in every order.
#     For each: tarkv ls -R --json and digest (malformed.py check), GNU tar's extraction
#     where the case says so (compare.py), and a mount walked and read (malformed.py walk:
#     the same tree and bytes as tarkv; its saved index then loaded by tarkv: the same tree);
#  2. symlink loops on a mount: find -L and ls -lRL end with ELOOP, no hang; the deep path
#     and the long names on a mount: find works or fails with ENAMETOOLONG, siblings of a
#     name the kernel cannot take are still listed, readlink of a 64 KiB target fails with
#     ENAMETOOLONG;
#  3. --json with names that are not UTF-8: valid JSON, surrogateescape gives the bytes back;
#  4. a real archive (GNU tar, posix and gnu formats, long names, sparse, links) cut at every
#     512-byte boundary (malformed.py truncations);
#  5. 300 copies with 1-8 random bit flips (seeded; half with their checksums fixed so that
#     the flips reach the field decoders): tarkv never crashes or hangs; 20 of them mounted in
#     the foreground: the daemon serves them and exits 0 when unmounted;
#  6. 1,000,000 entries in one directory (MANY=N to change): tarkv find, a lookup, ls -f on
#     the mount;
#  7. an index file made for one archive given with --index for another (another file, the
#     same size and mtime, rewritten in place with its mtime put back, a loop device
#     rewritten with an archive of the same size and the same first and last MiB): rebuilt,
#     never used.
#
# Environment: TARKV, TARMOUNT, top_srcdir, CI (as automake sets them); the index cache is
# private ($T/cache).  By hand: MALFORMED_ONLY="1 4" runs only those sections.
# Run by `sh script`: go on under bash.
if [ -z "${BASH_VERSION:-}" ]; then exec bash "$0" "$@"; fi
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"
# shellcheck source=lib_mount.sh
. "$(dirname "$0")/lib_mount.sh"

: "${MANY:=1000000}"
MF=$HERE/malformed.py
# A sanitizer build must not hide its reports behind exit status 1.
export ASAN_OPTIONS=${ASAN_OPTIONS:-exitcode=99} UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:exitcode=99}
START=$(date +%s)

need_root
need_cmd tar timeout find "$PY"
need_tarkv
setup_tmp
LOOPS=()
loop_cleanup() {
	local l
	for l in "${LOOPS[@]}"; do losetup -d "$l" 2>/dev/null; done
}
trap 'loop_cleanup; mount_cleanup; cleanup' EXIT
umask 022
export XDG_CACHE_HOME=$T/cache

FUSE=
fuse_ok && FUSE=yes
M=$T/m
mkdir -p "$M"
MOUNTS+=("$M")

# section N: true when section N is to run (and says when it starts)
section() {
	[ -z "${MALFORMED_ONLY:-}" ] || [[ " $MALFORMED_ONLY " == *" $1 "* ]] || return 1
	note "section $1 starts at +$(($(date +%s) - START)) s"
}

# py_checks CMD...: run a malformed.py command; its ok:/FAIL: lines count here
py_checks() {
	local line
	while IFS= read -r line; do
		case $line in
		"ok: "*) ok "${line#ok: }" ;;
		"FAIL: "*) fail "${line#FAIL: }" ;;
		*) echo "$line" ;;
		esac
	done < <("$PY" "$MF" "$@" 2>&1)
}

# mount_rc ARCHIVE DIR [OPTS...]: mount (daemon); RC, and stderr in $T/mount.err
mount_rc() {
	local a=$1 m=$2
	shift 2
	timeout 60 "$TARMOUNT" "$@" "$a" "$m" >"$T/mount.out" 2>"$T/mount.err"
	RC=$?
}

# mount_sane WHAT: after mount_rc, the rule for tarmount: exit 0 and mounted, or exit
# non-zero with a message and nothing mounted; never a signal or a sanitizer report; every
# line it prints starts with "tarmount: ".  True when mounted.
mount_sane() {
	local what=$1
	if grep -Eq 'AddressSanitizer|runtime error:|LeakSanitizer' "$T/mount.err"; then
		fail "$what: tarmount: sanitizer report: $(head -c 600 "$T/mount.err")"
	elif grep -qv '^tarmount: ' "$T/mount.err"; then
		fail "$what: tarmount: a message not of the form 'tarmount: ...': $(grep -v '^tarmount: ' "$T/mount.err" | head -c 300)"
	fi
	if [ "$RC" = 0 ] && is_mounted "$M"; then
		return 0
	fi
	if [ "$RC" = 0 ]; then
		fail "$what: tarmount exit 0 but nothing mounted"
	elif [ "$RC" -gt 2 ]; then
		fail "$what: tarmount exit $RC (a signal, a hang or a sanitizer report)"
	elif is_mounted "$M"; then
		fail "$what: tarmount exit $RC but mounted"
	elif [ ! -s "$T/mount.err" ]; then
		fail "$what: tarmount exit $RC without a message"
	else
		ok "$what: tarmount refuses (exit $RC): $(head -n 1 "$T/mount.err" | head -c 200)"
	fi
	return 1
}

# ---- the archives -------------------------------------------------------------------------------
C=$T/cases
"$PY" "$MF" gen "$C" >/dev/null || { fail "malformed.py gen"; finish; }
ok "malformed.py gen: $("$PY" "$MF" list "$C/cases.json" name | wc -l) archives"
# the real archive (sections 4, 5 and 7)
"$PY" "$MF" mksrc "$T/src" >/dev/null || fail "malformed.py mksrc"
tar --format=posix --sparse --sparse-version=1.0 -cf "$T/real.tar" -C "$T/src" . 2>"$T/tar.err" ||
	fail "tar -c posix: $(head -c 300 "$T/tar.err")"
tar --format=gnu --sparse -cf "$T/real-gnu.tar" -C "$T/src" . 2>"$T/tar.err" ||
	fail "tar -c gnu: $(head -c 300 "$T/tar.err")"

# ==== 1. hand-made headers =======================================================================
if section 1; then
	py_checks check "$TARKV" "$C/cases.json"

	# GNU tar's extraction as the oracle, where the case says so
	"$PY" "$MF" list "$C/cases.json" tar_compare >"$T/compare.list"
	while read -r name; do
		x=$T/x-$name
		mkdir -p "$x"
		tar_extract "$C/$name.tar" "$x" 2>"$T/tar.err"
		trc=$?
		if timeout 300 "$PY" "$HERE/compare.py" --ns --samples 3 --label "$name" "$TARKV" \
			"$C/$name.tar" "$x" >"$T/cmp" 2>&1; then
			ok "$name: agrees with GNU tar's extraction (tar -x exit $trc)"
		else
			fail "$name: differs from GNU tar's extraction (tar -x exit $trc)"
			grep -v '^ok' "$T/cmp" | head -15 | sed 's/^/    /'
		fi
		chmod -R u+rwx "$x" 2>/dev/null
		rm -rf "$x"
	done <"$T/compare.list"

	# Where GNU tar cannot replace a directory that is not empty, the README says what happens.
	if tr '\n' ' ' <"$top_srcdir/README" | grep -q "a file *may replace a directory"; then
		ok "dir-kids-then-file: README documents that a file replaces a directory (GNU tar errors)"
	else
		fail "dir-kids-then-file: README no longer documents that a file replaces a directory"
	fi

	# Every case on a mount: the same tree and bytes as tarkv shows, a message when tarkv has
	# one, then a clean unmount.  The index the mount saved (-o index=), loaded by tarkv:
	# the same listing as --no-index.
	if [ -n "$FUSE" ]; then
		"$PY" "$MF" list "$C/cases.json" mount >"$T/mount.list"
		n_mounted=0 n_refused=0
		while read -r name; do
			a=$C/$name.tar
			mount_rc "$a" "$M" -o "index=$T/idx/$name.idx"
			if mount_sane "$name"; then
				n_mounted=$((n_mounted + 1))
				py_checks walk "$M" "$C/cases.json" "$name" "$TARKV"
				tm_umount "$name" "$M"
			else
				n_refused=$((n_refused + 1))
			fi
			timeout 60 "$TARKV" --json --no-index "$a" ls -R >"$T/l2" 2>"$T/l2.err"
			r2=$?
			if [ -s "$T/l2.err" ] && [ ! -s "$T/mount.err" ]; then
				fail "$name: tarkv reports a problem, tarmount says nothing: $(head -c 200 "$T/l2.err")"
			fi
			[ -f "$T/idx/$name.idx" ] || continue
			timeout 60 "$TARKV" -q --json --index "$T/idx/$name.idx" "$a" ls -R >"$T/l1" 2>/dev/null
			r1=$?
			timeout 60 "$TARKV" -q --index "$T/idx/$name.idx" "$a" info >"$T/info" 2>/dev/null
			if [ "$r1" != "$r2" ] || ! cmp -s "$T/l1" "$T/l2" || ! grep -q '^index: loaded' "$T/info"; then
				fail "$name: tarkv with the index the mount saved: exit $r1, $(grep '^index' "$T/info"); --no-index: exit $r2; listings $(cmp -s "$T/l1" "$T/l2" && echo equal || echo differ)"
			fi
		done <"$T/mount.list"
		ok "mounts: $n_mounted mounted and walked, $n_refused refused"
	fi
fi

# ==== 2. loops, deep paths and long names on a mount ============================================
if [ -n "$FUSE" ] && section 2; then
	# symlink loops: find -L and ls -lRL end, saying ELOOP
	mount_rc "$C/symlink-loops.tar" "$M" -o noindex
	if mount_sane "symlink loops"; then
		for cmd in "find -L ." "ls -lRL ." "ls -lR ."; do
			# shellcheck disable=SC2086
			(cd "$M" && timeout 30 $cmd) >"$T/loop.out" 2>"$T/loop.err"
			rc=$?
			if [ "$rc" = 124 ]; then
				fail "symlink loops: $cmd did not end in 30 s"
			elif [ "$cmd" != "ls -lR ." ] && ! grep -Eq 'Too many levels of symbolic links|File system loop' "$T/loop.err"; then
				fail "symlink loops: $cmd exit $rc without an ELOOP message: $(head -c 300 "$T/loop.err")"
			else
				ok "symlink loops: $cmd ends (exit $rc, $(wc -l <"$T/loop.out") lines$(grep -q 'Too many levels' "$T/loop.err" && echo ", ELOOP"))"
			fi
		done
		for p in a b d/deep; do
			if timeout 10 cat "$M/$p" >/dev/null 2>"$T/cat.err"; then
				fail "symlink loops: cat $p succeeded"
			elif grep -q 'Too many levels of symbolic links' "$T/cat.err"; then
				ok "symlink loops: cat $p: ELOOP"
			else
				fail "symlink loops: cat $p: $(head -c 200 "$T/cat.err")"
			fi
		done
		tm_umount "symlink loops" "$M"
	fi

	# 4000 directories deep: find lists everything; ls -lR may say ENAMETOOLONG, nothing else
	mount_rc "$C/deep-4000-pax.tar" "$M" -o noindex
	if mount_sane "4000 deep"; then
		(cd "$M" && timeout 60 find . >"$T/find.out" 2>"$T/find.err")
		rc=$?
		n=$(wc -l <"$T/find.out")
		if [ "$rc" = 0 ] && [ "$n" = 4003 ] && [ ! -s "$T/find.err" ]; then
			ok "4000 deep: find lists 4003 paths"
		elif [ "$rc" != 124 ] && ! grep -v 'File name too long' "$T/find.err" | grep -q .; then
			ok "4000 deep: find ends with ENAMETOOLONG only (exit $rc, $n paths)"
		else
			fail "4000 deep: find exit $rc, $n paths, stderr: $(head -c 300 "$T/find.err")"
		fi
		f=$(tail -n 1 "$T/find.out")
		if [ "$(cd "$M" && timeout 20 cat "$f" 2>/dev/null)" = deep ]; then
			ok "4000 deep: the file at the bottom reads right (a relative path of $(printf %s "$f" | wc -c) bytes)"
		elif (cd "$M" && timeout 20 cat "$f") 2>&1 | grep -q 'File name too long'; then
			ok "4000 deep: reading the bottom file by a path over PATH_MAX: ENAMETOOLONG"
		else
			fail "4000 deep: cannot read the bottom file"
		fi
		(cd "$M" && timeout 60 ls -lR . >/dev/null 2>"$T/ls.err")
		rc=$?
		if [ "$rc" != 124 ] && ! grep -v 'File name too long' "$T/ls.err" | grep -q .; then
			ok "4000 deep: ls -lR ends (exit $rc), errors only ENAMETOOLONG"
		else
			fail "4000 deep: ls -lR exit $rc: $(grep -v 'File name too long' "$T/ls.err" | head -c 300)"
		fi
		tm_umount "4000 deep" "$M"
	fi
	tk --no-index "$C/deep-4000-pax.tar" ls -R
	if [ "$RC" = 0 ] && [ "$(wc -l <"$T/out")" = 4002 ]; then
		ok "4000 deep: tarkv ls -R lists 4002 paths"
	else
		fail "4000 deep: tarkv ls -R exit $RC, $(wc -l <"$T/out") lines"
	fi

	# a 64 KiB path of 250-byte segments
	mount_rc "$C/longname-64k-segments.tar" "$M" -o noindex
	if mount_sane "64 KiB path"; then
		(cd "$M" && timeout 60 find . -type f) >"$T/find.out" 2>"$T/find.err"
		rc=$?
		if grep -q '/leaf$' "$T/find.out" && [ "$rc" = 0 ]; then
			ok "64 KiB path: find reaches the leaf"
		elif [ "$rc" != 124 ] && ! grep -v 'File name too long' "$T/find.err" | grep -q .; then
			ok "64 KiB path: find ends with ENAMETOOLONG only (exit $rc)"
		else
			fail "64 KiB path: find exit $rc: $(head -c 300 "$T/find.err")"
		fi
		tm_umount "64 KiB path" "$M"
	fi

	# one component of 64 KiB (and one of 2 KiB) among short siblings: the kernel cannot take
	# the long one, but every sibling is listed, whatever happens to it
	mount_rc "$C/longname-64k-component.tar" "$M" -o noindex
	if mount_sane "64 KiB component"; then
		timeout 20 ls -f "$M/dir" >"$T/ls.out" 2>"$T/ls.err"
		rc=$?
		missing=
		for s in a-before c-after e-last; do grep -qx "$s" "$T/ls.out" || missing="$missing $s"; done
		if [ -z "$missing" ] && [ "$rc" = 0 ]; then
			ok "64 KiB component: ls lists every short sibling ($(wc -l <"$T/ls.out") names)"
		else
			fail "64 KiB component: ls -f dir: exit $rc, siblings missing:${missing:- none}; stderr: $(head -c 200 "$T/ls.err")"
		fi
		for s in a-before c-after e-last; do
			timeout 10 cat "$M/dir/$s" >/dev/null 2>&1 || fail "64 KiB component: cat dir/$s"
		done
		long=$(head -c 65536 /dev/zero | tr '\0' c)
		if timeout 10 stat "$M/dir/b$long" >/dev/null 2>"$T/st.err"; then
			fail "64 KiB component: stat of a 64 KiB name succeeded?"
		elif grep -q 'File name too long' "$T/st.err"; then
			ok "64 KiB component: stat of the long name: ENAMETOOLONG"
		else
			fail "64 KiB component: stat of the long name: $(head -c 200 "$T/st.err")"
		fi
		tm_umount "64 KiB component" "$M"
	fi

	# a symlink whose target is 64 KiB: readlink fails with ENAMETOOLONG (not EIO); coreutils
	# readlink says nothing on failure, so Python gives the errno
	mount_rc "$C/longlink-64k.tar" "$M" -o noindex
	if mount_sane "64 KiB link target"; then
		e=$(timeout 10 "$PY" "$MF" readlink-errno "$M/sym" 2>&1)
		if [ "$e" = ENAMETOOLONG ]; then
			ok "64 KiB link target: readlink: ENAMETOOLONG"
		else
			fail "64 KiB link target: readlink: $e (want ENAMETOOLONG)"
		fi
		timeout 10 ls -l "$M" >/dev/null 2>&1
		[ $? != 124 ] && ok "64 KiB link target: ls -l ends" || fail "64 KiB link target: ls -l hangs"
		tm_umount "64 KiB link target" "$M"
	fi
fi

# ==== 3. JSON and names that are not UTF-8 ========================================================
if section 3; then
	N8=$C/names-not-utf8.tar
	for cmd in "ls -R" "find"; do
		# shellcheck disable=SC2086
		tk --no-index --json "$N8" $cmd
		if [ "$RC" = 0 ]; then
			cp "$T/out" "$T/names.json"
			py_checks jsoncheck "$T/names.json" "$C/names-not-utf8.names"
		else
			fail "names not UTF-8: tarkv --json $cmd: $(last)"
		fi
	done
	tk --no-index --json "$N8" stat "$(printf 'pax-\377\376')"
	if [ "$RC" = 0 ] && "$PY" "$MF" statcheck "$T/out" 2>"$T/py.err"; then
		ok "names not UTF-8: stat --json: path and xattr name round-trip, value hex-encoded"
	else
		fail "names not UTF-8: stat --json: $(last) $(tail -n 2 "$T/py.err")"
	fi
fi

# ==== 4. a real archive cut at every block ==========================================================
if section 4; then
	note "real archive: $(tar -tf "$T/real.tar" | wc -l) members, $(($(stat -c %s "$T/real.tar") / 512)) blocks"
	mkdir -p "$T/trunc"
	py_checks truncations "$TARKV" "$T/real.tar" "$T/src" "$T/trunc"
	py_checks truncations "$TARKV" "$T/real-gnu.tar" "$T/src" "$T/trunc"
fi

# ==== 5. random bit flips ===========================================================================
if section 5; then
	FL=$T/flips
	py_checks bitflips "$TARKV" 20261125 300 "$FL" "$T/real.tar" "$T/real-gnu.tar" \
		"$C/sparse01-good.tar" "$C/gnuS-good.tar"
	if [ -n "$FUSE" ]; then
		# 20 of them mounted in the foreground: the daemon's own exit status after unmounting
		bad=0 n=0
		for i in $(seq -w 0 15 285); do
			a=$FL/flip$i.tar
			[ -f "$a" ] || continue
			timeout 120 "$TARMOUNT" -f -o noindex "$a" "$M" >"$T/fg.out" 2>"$T/fg.err" &
			pid=$!
			for _ in $(seq 100); do
				is_mounted "$M" && break
				alive "$pid" || break
				sleep 0.1
			done
			if is_mounted "$M"; then
				n=$((n + 1))
				(cd "$M" && timeout 60 find . -type f -exec cat {} + 2>"$T/walk.err" &&
					timeout 60 ls -lR . 2>>"$T/walk.err") >/dev/null
				[ $? = 124 ] && { fail "bit flips #$i: reading the mount hangs"; bad=1; }
				timeout 20 fusermount3 -u "$M" || timeout 20 fusermount3 -u -z "$M"
			fi
			wait "$pid"
			rc=$?
			if [ "$rc" -gt 2 ] || grep -Eq 'AddressSanitizer|runtime error:|LeakSanitizer' "$T/fg.err"; then
				fail "bit flips #$i: tarmount -f exit $rc: $(tail -c 600 "$T/fg.err")"
				bad=1
			fi
		done
		[ "$bad" = 0 ] && ok "bit flips: 20 archives in the foreground ($n mounted, read and unmounted): the daemon never crashed"
	fi
fi

# ==== 6. a million entries in one directory ===========================================================
if section 6; then
	t0=$(date +%s)
	"$PY" "$MF" many "$T/many.tar" "$MANY" || fail "malformed.py many"
	t1=$(date +%s)
	timeout 120 "$TARKV" --no-index "$T/many.tar" find >"$T/find.out" 2>"$T/find.err"
	rc=$?
	n=$(wc -l <"$T/find.out")
	t2=$(date +%s)
	if [ "$rc" = 0 ] && [ "$n" = $((MANY + 1)) ]; then
		ok "$MANY entries in one directory: tarkv find lists $n paths (made in $((t1 - t0)) s, listed in $((t2 - t1)) s)"
	else
		fail "$MANY entries: tarkv find exit $rc, $n lines (want $((MANY + 1))): $(head -c 300 "$T/find.err")"
	fi
	name=$(printf 'big/e%07d' $((MANY * 7 / 10)))
	tk --index "$T/many.idx" "$T/many.tar" size "$name"
	[ "$RC" = 0 ] && [ "$(cat "$T/out")" = 0 ] && ok "$MANY entries: lookup of $name" || fail "$MANY entries: lookup $(last)"
	tk --index "$T/many.idx" "$T/many.tar" exists "big/e$MANY"
	[ "$RC" = 1 ] && ok "$MANY entries: a missing name is missing" || fail "$MANY entries: exists big/e$MANY $(last)"
	if [ -n "$FUSE" ]; then
		t0=$(date +%s)
		mount_rc "$T/many.tar" "$M" -o noindex
		if mount_sane "$MANY entries"; then
			n=$(cd "$M/big" && timeout 120 ls -f | wc -l)
			t1=$(date +%s)
			if [ "$n" = $((MANY + 2)) ]; then
				ok "$MANY entries: ls -f on the mount lists $n names ($((t1 - t0)) s with indexing)"
			else
				fail "$MANY entries: ls -f lists $n names, want $((MANY + 2))"
			fi
			[ "$(timeout 10 stat -c %s "$M/$name")" = 0 ] && ok "$MANY entries: stat of $name on the mount" ||
				fail "$MANY entries: stat $name on the mount"
			tm_umount "$MANY entries" "$M"
		fi
	fi
	rm -f "$T/many.tar" "$T/many.idx" "$T/find.out"
fi

# ==== 7. an index made for another archive ===========================================================
if section 7; then
	IX=$T/shared.idx
	A1=$T/real.tar A2=$T/real-gnu.tar
	tk --index "$IX" "$A1" ls -R
	cp "$T/out" "$T/a1.list"
	tk --index "$IX" "$A1" info
	grep -q '^index: loaded' "$T/out" && ok "--index: reused for the archive it was made for" || fail "--index: not reused $(last)"
	tk --index "$IX" "$A2" info
	grep -q '^index: built' "$T/out" && ok "--index: another archive's index is not used (built)" || fail "--index another archive: $(last)"
	tk --index "$IX" "$A1" ls -lR
	cp "$T/out" "$T/a1.lsl"
	tk --no-index "$A1" ls -lR
	cmp -s "$T/out" "$T/a1.lsl" && ok "--index: back to the first archive: its own tree" ||
		fail "--index: back to the first archive: listing differs"
	# the same size and mtime: one member renamed (same length, checksum fixed), another
	# file's bytes changed
	"$PY" - "$A1" "$T/same-size.tar" >"$T/renamed" <<'EOF'
import sys, tarfile
d = bytearray(open(sys.argv[1], "rb").read())
with tarfile.open(sys.argv[1]) as tf:
    ms = [m for m in tf.getmembers() if m.isfile() and m.size > 100 and not m.sparse
          and len(m.name) < 90 and "/" in m.name]
m = ms[len(ms) // 2]
d[m.offset_data:m.offset_data + 100] = b"Z" * 100
r = ms[0]
h = r.offset_data - 512                      # its own ustar header, after any pax header
name = bytes(d[h:h + 100]).rstrip(b"\0")
i = name.rindex(b"/") + 1
d[h + i:h + i + 1] = b"Q"
d[h + 148:h + 156] = b" " * 8
d[h + 148:h + 156] = b"%06o\0 " % sum(d[h:h + 512])
open(sys.argv[2], "wb").write(d)
print((name[:i] + b"Q" + name[i + 1:]).decode().lstrip("./"))
EOF
	touch -r "$A1" "$T/same-size.tar"
	tk --index "$IX" "$A1" info
	tk --index "$IX" "$T/same-size.tar" info
	grep -q '^index: built' "$T/out" && ok "--index: an archive of the same size and mtime gets its own index" ||
		fail "--index same size: $(last)"
	tk -q --index "$IX" "$T/same-size.tar" ls -R
	grep -qxF "$(cat "$T/renamed")" "$T/out" && ok "--index: the renamed member is listed under its new name" ||
		fail "--index: the renamed member $(cat "$T/renamed") is not listed"
	tk --no-index -q "$T/same-size.tar" ls -R
	cp "$T/out" "$T/ss.list"
	grep -vxF "$(cat "$T/renamed")" "$T/ss.list" | while read -r p; do
		[ -f "$T/src/$p" ] && [ ! -L "$T/src/$p" ] && printf '%s\n' "$p"
	done >"$T/ss.files"
	mapfile -t SSF <"$T/ss.files"
	tk -q --index "$IX" "$T/same-size.tar" digest -- "${SSF[@]}"
	cp "$T/out" "$T/ss.dig"
	tk -q --no-index "$T/same-size.tar" digest -- "${SSF[@]}"
	cmp -s "$T/out" "$T/ss.dig" && ok "--index: digests of the same-size archive are its own (${#SSF[@]} files)" ||
		fail "--index same size: digests differ"
	# rewritten in place, same size, mtime put back
	cp "$A1" "$T/inplace.tar"
	tk --index "$IX" "$T/inplace.tar" ls -R
	dd if="$T/same-size.tar" of="$T/inplace.tar" conv=notrunc status=none
	touch -r "$A1" "$T/inplace.tar"
	tk --index "$IX" "$T/inplace.tar" info
	grep -q '^index: built' "$T/out" && ok "--index: rewritten in place with its mtime put back: rebuilt" ||
		fail "--index in place: $(last)"
	# and an archive that has not changed gets its index back, whatever its names: Python's
	# tarfile puts an ASCII stand-in ('caf?') in the header of a name that is not ASCII
	"$PY" "$MF" pyutf "$T/pyutf.tar" || fail "malformed.py pyutf"
	tk --index "$T/pyutf.idx" "$T/pyutf.tar" ls -R
	tk --index "$T/pyutf.idx" "$T/pyutf.tar" info
	grep -q '^index: loaded' "$T/out" && ok "--index: reused for an unchanged archive whose pax names are not ASCII (tarfile)" ||
		fail "--index: an unchanged archive whose pax names are not ASCII (tarfile) is indexed again: $(head -n 1 "$T/out")"
	# a block device: its identity is its size and its first and last MiB, so an archive of
	# the same size with the same ends written over it must still not get the old index
	"$PY" "$MF" devpair "$T/devA.img" "$T/devB.img" || fail "malformed.py devpair"
	if command -v losetup >/dev/null && L=$(losetup -f --show "$T/devA.img" 2>/dev/null); then
		LOOPS+=("$L")
		tk --index "$T/dev.idx" "$L" ls mid
		head -n 1 "$T/out" >"$T/dev.first"
		dd if="$T/devB.img" of="$L" bs=1M conv=notrunc,fsync status=none
		blockdev --flushbufs "$L" 2>/dev/null
		tk --index "$T/dev.idx" "$L" ls mid
		if [ "$RC" = 0 ] && [ "$(head -n 1 "$T/out")" = b000 ]; then
			ok "--index on a device rewritten with another archive of the same size and ends: its own tree"
		else
			fail "--index on a device rewritten with another archive of the same size and ends: lists $(head -n 1 "$T/out") (the old archive's $(cat "$T/dev.first"); want b000), and cat of it gives $(timeout 10 "$TARKV" -q --index "$T/dev.idx" "$L" cat "mid/$(head -n 1 "$T/out")" | head -c 20)"
		fi
		losetup -d "$L" && LOOPS=()
	elif [ "${CI:-}" = true ]; then
		fail "--index on a device: no loop device (CI=true)"
	else
		note "--index on a device: no loop device here, left out"
	fi
	if [ -n "$FUSE" ]; then
		tk --index "$IX" "$A2" ls -R
		mount_rc "$A1" "$M" -o "index=$IX"
		if mount_sane "--index another archive, mounted"; then
			(cd "$M" && find . -mindepth 1 | sed 's|^\./||' | sort) >"$T/mnt.list"
			sort "$T/a1.list" >"$T/a1.sorted"
			cmp -s "$T/mnt.list" "$T/a1.sorted" && ok "-o index= with another archive's index: the mount shows its own tree" ||
				fail "-o index= with another archive's index: the mount's tree differs"
			tm_umount "--index another archive" "$M"
		fi
	fi
fi

note "malformed.sh took $(($(date +%s) - START)) s"
finish
