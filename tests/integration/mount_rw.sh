#!/bin/bash
# shellcheck disable=SC2015,SC2016,SC2317 # ok/fail return 0; commands run in both trees; traps
# tarmount -o readwrite (issue 11), each change made on the mount and on a reference directory on
# local disk, the archive then read by GNU tar, bsdtar, Python's tarfile, tarkv and a
# read-only remount (with and without -o noindex), each compared with the reference
# (treecmp.py: names, types, modes, owners, sizes, contents, symlink targets, hard links as
# one inode, mtimes; a file written "now" may differ by 3 s in its mtime):
#   1. without -o readwrite every change answers EROFS; -o readwrite on a .tar.gz is refused with one line
#      (read-only, compressed), nothing mounted; the mount table says rw,nosuid,nodev;
#   2. on a file: cp, cp -a of a tree (files, directories, symlinks, hard links, a FIFO,
#      modes, owners, mtimes, empty files, names over 100 and 255 bytes, non-ASCII names),
#      tar -x, rsync -a, mkdir -p, ln -s, ln, mkfifo, echo >, overwriting members of the
#      archive (echo >, cp), an editor's save (a temporary file, with and without fsync,
#      moved over a member), truncate, chmod/chown/touch -d on new files and on members, ids
#      past ustar's octal fields, ln of members and to long names, >> onto a member, dd
#      conv=notrunc, a 50 MiB file, four writers at once; the mount equals the reference
#      before unmounting, and statfs and df show free space; then tarkv put, and a second
#      session changes what the first one wrote;
#      (2b, a note: tar -x slower than the commit interval, whose symlink placeholders get
#      committed before tar replaces them);
#   3. a member hard-linked in the archive overwritten through one name: both names change
#      (-o noindex); archives GNU tar (posix, v7), bsdtar and Python's tarfile (ustar, pax)
#      made, and an empty one, changed;
#   4. -o commit=3600: new files are seen at once with their current size, not in the
#      archive before fsync, there once fsync of the file (or a directory) returned, and
#      pending ones are appended at unmount; with the default commit=1 a change reaches the
#      archive within seconds; SIGTERM appends what is pending before the daemon exits;
#   5. what append-only cannot do answers EPERM with one line of the daemon's (-f) naming
#      the operation and the path: rm, rmdir, mv of members from before the mount, mv of a
#      committed directory; rm, rmdir, mv of what is not committed yet work (hard links
#      among them), and rm and mv of the last member appended (a note when mv to a long name
#      is refused);
#   6. a loop device, a window at an odd 512-multiple offset (the bytes around it unchanged)
#      and an NBD export (nbdkit): a few changes each; statfs of the device and the window
#      shows about their size less the archive's bytes;
#   7. no space: in a window a little larger than the archive a file larger than the room
#      fails with ENOSPC, the archive stays whole with what came before;
#   8. two processes: while the archive is mounted -o readwrite, tarkv put and a second -o readwrite
#      mount are refused (locked), a read-only mount and tarkv ls work;
#   9. kill -9 of the daemon at random points while files are written and fsynced, six
#      times (small files, then files of about 1 MiB): GNU tar reads the archive (exit 0)
#      with every file whose fsync had returned; each remount after a kill works, and at the
#      end a read-only mount equals GNU tar's extraction.
if [ -z "${BASH_VERSION:-}" ]; then exec bash "$0" "$@"; fi
. "$(dirname "$0")/lib.sh"

. "$(dirname "$0")/lib_mount.sh"

. "$(dirname "$0")/lib_nbd.sh"

need_fuse
need_cmd tar bsdtar gzip losetup truncate dd mkfifo cmp stat sha256sum "$PY"
need_tarkv
setup_tmp
LOOPS=()
trap 'mount_cleanup; servers_cleanup; for d in "${LOOPS[@]}"; do [ -n "$d" ] && losetup -d "$d" 2>/dev/null; done; cleanup' EXIT
umask 022
private_cache
START=$(date +%s)
export S=$T/src HERE PY

# without WHY: a part of this test cannot run here: a failure under CI=true, a note otherwise
without() {
	if [ "${CI:-}" = true ]; then fail "$* (a skip is a failure under CI=true)"; else note "skipped: $*"; fi
}
# helper WHAT ARGS...: mount_rw.py ARGS as one check (its last line says what it saw)
helper() {
	local what=$1
	shift
	if timeout 300 "$PY" "$HERE/mount_rw.py" "$@" >"$T/helper.out" 2>&1; then
		ok "$what$(tail -n 1 "$T/helper.out" | sed 's/^./: &/')"
	else
		fail "$what: $(head -n 6 "$T/helper.out" | tr '\n' ' ')"
	fi
}
# same WHAT REF DIR: treecmp.py finds DIR equal to REF
same() {
	if timeout 300 "$PY" "$HERE/treecmp.py" --label "$1" --recent-slack "$START:3" "$2" "$3" \
		>"$T/cmp.out" 2>&1; then
		ok "$1: equals the reference (paths, types, modes, owners, sizes, mtimes, links, contents)"
	else
		grep -v '^ok:' "$T/cmp.out" | head -n 40 | sed 's/^/    /'
		fail "$1: differs from the reference"
	fi
}
# both WHAT CMD: bash -c CMD in the mount ($M) and then in the reference ($R), each as the
# current directory and as $D: it must succeed on both and print nothing on the mount
both() {
	local rc_m rc_r
	(cd "$M" && D=$M timeout 120 bash -c "$2") >"$T/both.m" 2>&1
	rc_m=$?
	(cd "$R" && D=$R timeout 120 bash -c "$2") >"$T/both.r" 2>&1
	rc_r=$?
	if [ "$rc_r" != 0 ]; then
		fail "$1: fails on the reference directory too (exit $rc_r): $(head -c 300 "$T/both.r")"
	elif [ "$rc_m" = 0 ] && [ ! -s "$T/both.m" ]; then
		ok "$1"
	else
		fail "$1: on the mount: exit $rc_m: $(head -c 400 "$T/both.m" | tr '\n' '|')"
	fi
}
# reader_ok WHAT: the last run exited 0 and printed nothing on stderr
reader_ok() {
	[ "$RC" = 0 ] && [ ! -s "$T/err" ] && ok "$1: exit 0, no warning" || fail "$1 $(last)"
}
# start NAME ARCHIVE: a reference directory $R (ARCHIVE extracted by GNU tar) and a mount
# point $M for scenario NAME
start() {
	R=$T/ref.$1 M=$T/m.$1
	mkdir -p "$R" "$M"
	tar -xf "$2" -C "$R" || fail "$1: GNU tar cannot extract the reference"
}
# verify WHAT ARCHIVE: ARCHIVE, no longer mounted, read by every reader, equals $R
NX=0
verify() {
	local what=$1 a=$2 x o
	NX=$((NX + 1))
	x=$T/x.$NX
	mkdir -p "$x/gnu" "$x/bsd"
	run tar -tvf "$a"
	reader_ok "$what: GNU tar -tvf"
	run tar -xf "$a" -C "$x/gnu"
	reader_ok "$what: GNU tar -x"
	same "$what: GNU tar's extraction" "$R" "$x/gnu"
	# (bsdtar converts pax paths, which are UTF-8, to the locale's charset)
	LC_ALL=C.UTF-8 run bsdtar -tvf "$a"
	reader_ok "$what: bsdtar -tvf"
	LC_ALL=C.UTF-8 run bsdtar -xpf "$a" -C "$x/bsd"
	reader_ok "$what: bsdtar -x"
	same "$what: bsdtar's extraction" "$R" "$x/bsd"
	helper "$what: Python's tarfile reads it" tarfile-check "$a" "$R"
	helper "$what: tarkv ls -R and digest" tarkv-check "$TARKV" "$a" "$R"
	for o in "" noindex; do
		if tm_mount "$what: read-only remount${o:+ -o $o}" "$a" "$T/ro" ${o:+-o "$o"}; then
			same "$what: read-only remount${o:+ -o $o}" "$R" "$T/ro"
			tm_umount "$what: read-only remount" "$T/ro"
		fi
	done
	chmod -R u+rwx "$x" 2>/dev/null
	rm -rf "$x"
}
# fsync_m WHAT PATH...: fsync(2) of paths relative to the mount returns 0
fsync_m() {
	local what=$1
	shift
	(cd "$M" && "$PY" "$HERE/mount_rw.py" fsync "$@") >"$T/fsync.out" 2>&1 &&
		ok "$what: fsync returned 0" || fail "$what: $(head -c 300 "$T/fsync.out")"
}
# listed ARCHIVE NAME: GNU tar lists NAME in ARCHIVE now ('./' and a trailing '/' aside)
listed() { tar -tf "$1" 2>/dev/null | sed 's,^\./,,; s,/$,,' | grep -qxF -- "$2"; }
# avail_about WHAT DIR WANT SLACK: statfs of DIR says WANT +- SLACK bytes are available
avail_about() {
	local got
	got=$("$PY" "$HERE/mount_rw.py" avail "$2" 2>&1)
	if [ "$got" -ge $(($3 - $4)) ] 2>/dev/null && [ "$got" -le $(($3 + $4)) ]; then
		ok "$1: statfs: $got bytes available (about $3)"
	else
		fail "$1: statfs: $got bytes available, want $3 +- $4"
	fi
}
used() { "$PY" "$HERE/mount_rw.py" used "$1"; }
# loop FILE: a loop device in $dev, detached on exit
loop() {
	dev=$(timeout 30 losetup -f --show "$1" 2>"$T/losetup.err") || {
		without "loop devices: losetup: $(head -c 200 "$T/losetup.err")"
		return 1
	}
	LOOPS+=("$dev")
}
unloop() { timeout 30 losetup -d "$1"; LOOPS=("${LOOPS[@]/$1/}"); }

# ---- the trees and archives --------------------------------------------------------------
# base: what the archive holds before each mount; tree: copied in by cp -a (and rsync, and
# tar -x of x.tar); a cp'd file; a 50 MiB file.
export LONGD LONGF
LONGD=$(printf 'd%.0s' $(seq 120))
LONGF=$(printf 'f%.0s' $(seq 140))
mk_tree() {
	local d=$1
	mkdir -p "$d/sub/deep" "$d/priv" "$d/$LONGD" "$d/ünïcødé" "$d/日本語" "$d/with space"
	printf 'hello\n' >"$d/hello.txt"
	: >"$d/empty"
	head -c 512 /dev/urandom >"$d/b512"
	head -c 513 /dev/urandom >"$d/sub/b513"
	head -c 10241 /dev/urandom >"$d/sub/deep/b10241"
	seq 1 30000 >"$d/sub/numbers"
	echo secret >"$d/priv/secret"
	printf '#!/bin/sh\n' >"$d/suid-bin"
	echo long >"$d/$LONGD/$LONGF"
	echo n101 >"$d/$(printf 'n%.0s' $(seq 101))"
	echo ü >"$d/ünïcødé/ärger.txt"
	echo 日本 >"$d/日本語/ファイル"
	echo space >"$d/with space/a file"
	ln "$d/hello.txt" "$d/sub/hardlink"
	ln "$d/sub/numbers" "$d/$LONGD/numbers-link"
	ln -s hello.txt "$d/rel-link"
	ln -s /nonexistent/target "$d/dangling"
	ln -s ../sub/deep "$d/priv/dirlink"
	ln -s "$(printf 't%.0s' $(seq 150))" "$d/long-target"
	mkfifo "$d/fifo"
	chmod 600 "$d/priv/secret"
	chmod 700 "$d/priv"
	chmod 4755 "$d/suid-bin"
	chmod 640 "$d/sub/numbers"
	chown 1000:100 "$d/hello.txt"
	chown 65534:65534 "$d/sub/numbers"
	chown -h 123:456 "$d/priv" "$d/priv/secret" "$d/rel-link"
	find "$d" -exec touch -h -d @1234567890 {} +
	touch -d @1300000000.123456789 "$d/hello.txt"
}
mkdir -p "$S/base/keep/emptydir" "$S/base/sub"
(
	cd "$S/base" || exit 1
	echo 'old from the archive' >old
	echo 'old2 from the archive' >old2
	echo 'ed from the archive' >'ed'
	echo 'ed2 from the archive' >ed2
	echo 'app from the archive' >app
	head -c 65536 /dev/urandom >dd.bin
	head -c 1000 /dev/urandom >tr-grow
	head -c 10000 /dev/urandom >tr-shrink
	echo 'original file' >keep/orig
	echo x >sub/x
	echo 'hard-linked' >hl-a
	ln hl-a hl-b
	ln -s old sym
	chown 1000:100 old
	chmod 600 old2
	find . -exec touch -h -d @1200000000 {} +
)
tar -C "$S/base" -cf "$T/base.tar" . || { fail "GNU tar of the base tree"; finish; }
mk_tree "$S/tree"
mkdir -p "$S/xt/a"
echo from-x >"$S/xt/a/f" && ln "$S/xt/a/f" "$S/xt/a/g" && ln -s /abs/dangling "$S/xt/abs" &&
	ln -s ../a "$S/xt/a/up" && chown 42:43 "$S/xt/a/f" && touch -h -d @1111111111 "$S/xt/a/f"
tar -C "$S" -cf "$S/x.tar" xt || fail "GNU tar of x.tar"
head -c 100000 /dev/urandom >"$S/file1"
echo 'other contents, longer than the old ones' >"$S/other"
head -c 50M /dev/urandom >"$S/big"

# ---- 1. read-only by default, compressed refused, the mount table ----------------------
cp "$T/base.tar" "$T/ro.tar"
if tm_mount "1. without -o readwrite" "$T/ro.tar" "$T/m1"; then
	(cd "$T/m1" && timeout 10 touch x) >"$T/out" 2>"$T/err"
	RC=$?
	[ "$RC" != 0 ] && grep -q 'Read-only file system' "$T/err" &&
		ok "1. without -o readwrite: touch fails with 'Read-only file system'" ||
		fail "1. without -o readwrite: touch: want 'Read-only file system' $(last)"
	(cd "$T/m1" && timeout 10 bash -c 'echo x >> old') >"$T/out" 2>"$T/err"
	RC=$?
	[ "$RC" != 0 ] && grep -q 'Read-only file system' "$T/err" &&
		ok "1. without -o readwrite: >> fails with 'Read-only file system'" ||
		fail "1. without -o readwrite: >>: want 'Read-only file system' $(last)"
	tm_umount "1. without -o readwrite" "$T/m1"
	cmp -s "$T/ro.tar" "$T/base.tar" && ok "1. without -o readwrite: the archive is unchanged" ||
		fail "1. without -o readwrite: the archive changed"
fi
# -o rw alone is what mount(8) passes to every mount (rw,dev,suid): it must not write
if tm_mount "1. -o rw,dev,suid (as mount(8) passes)" "$T/ro.tar" "$T/m1" -o rw,dev,suid; then
	(cd "$T/m1" && timeout 10 touch x) >"$T/out" 2>"$T/err"
	RC=$?
	[ "$RC" != 0 ] && grep -q 'Read-only file system' "$T/err" &&
		ok "1. -o rw alone: touch fails with 'Read-only file system'" ||
		fail "1. -o rw alone: touch: want 'Read-only file system' $(last)"
	mount_line "$T/m1" | awk '{ print $4 }' | tr , '\n' | grep -qx ro &&
		ok "1. -o rw alone: mounted ro" || fail "1. -o rw alone: $(mount_line "$T/m1")"
	tm_umount "1. -o rw alone" "$T/m1"
fi
run "$TARMOUNT" -o readwrite,ro "$T/ro.tar" "$T/m1"
[ "$RC" != 0 ] && grep -q 'choose one' "$T/err" && ! is_mounted "$T/m1" &&
	ok "1. -o readwrite,ro: refused" || fail "1. -o readwrite,ro: want a refusal $(last)"
gzip -c "$T/base.tar" >"$T/base.tar.gz"
mkdir -p "$T/m1gz"
MOUNTS+=("$T/m1gz")
run "$TARMOUNT" -o readwrite "$T/base.tar.gz" "$T/m1gz"
if [ "$RC" != 0 ] && [ "$RC" != 124 ] && [ "$(wc -l <"$T/err")" = 1 ] &&
	grep -qi 'compressed' "$T/err" && grep -qi 'read-only' "$T/err"; then
	ok "1. -o readwrite on a .tar.gz: exit $RC, one line: $(cat "$T/err")"
else
	fail "1. -o readwrite on a .tar.gz: want exit non-zero and one line saying read-only, compressed $(last)"
fi
! is_mounted "$T/m1gz" && [ -z "$(daemon_pids "$T/m1gz")" ] &&
	ok "1. -o readwrite on a .tar.gz: nothing mounted, no daemon" || fail "1. -o readwrite on a .tar.gz: mounted or a daemon left"

# ---- 2. a file, everything a user does --------------------------------------------------
cp "$T/base.tar" "$T/main.tar"
start main "$T/main.tar"
if tm_mount "2. -o readwrite" "$T/main.tar" "$M" -o readwrite; then
	opts=$(mount_line "$M" | awk '{ print $4 }')
	for o in rw nosuid nodev; do
		[[ ,$opts, == *,$o,* ]] && ok "2. mount table: $o" || fail "2. mount table: no $o in '$opts'"
	done
	got=$("$PY" "$HERE/mount_rw.py" avail "$M" 2>&1)
	[ "$got" -gt 0 ] 2>/dev/null && ok "2. statfs of a file's mount: $got bytes available" ||
		fail "2. statfs of a file's mount: '$got' bytes available, want more than 0"
	run df "$M"
	[ "$RC" = 0 ] && [ "$(tail -n 1 "$T/out" | awk '{ print $4 }')" -gt 0 ] 2>/dev/null &&
		ok "2. df: exit 0, $(tail -n 1 "$T/out" | awk '{ print $4 }') KiB available" || fail "2. df $(last)"
	both "2. cp FILE MNT/" 'cp "$S/file1" "$D/"'
	both "2. cp -a TREE MNT/" 'cp -a "$S/tree" "$D/"'
	both "2. tar -x -C MNT -f X.tar" 'tar -x -C "$D" -f "$S/x.tar"'
	if command -v rsync >/dev/null; then
		both "2. rsync -a TREE/ MNT/t/" 'rsync -a "$S/tree/" "$D/t/"'
	else
		without "2. rsync -a: needs rsync"
	fi
	both "2. mkdir -p a/b/c" 'mkdir -p a/b/c'
	both "2. ln -s" 'ln -s ../../file1 a/b/link && ln -s hard a/plainlink && ln -s "$(printf "L%.0s" $(seq 200))" a/longlink'
	both "2. ln (hard links to new files)" 'ln file1 a/hard && ln tree/empty a/hard-empty'
	both "2. mkfifo" 'mkfifo a/fifo'
	both "2. echo hi > new" 'echo hi > new'
	both "2. echo new > a member of the archive" 'echo new > old'
	both "2. cp other over a member of the archive" 'cp "$S/other" old2'
	both "2. an editor's save: write .ed.tmp, mv over ed" 'printf "edited\n" > .ed.tmp && mv .ed.tmp ed'
	both "2. an editor's save with fsync: .ed2.tmp fsynced, mv over ed2" \
		'printf "edited 2\n" > .ed2.tmp && "$PY" "$HERE/mount_rw.py" fsync .ed2.tmp && mv .ed2.tmp ed2'
	both "2. truncate -s members (grow, shrink) and a new file" \
		'truncate -s 5000 tr-grow && truncate -s 10 tr-shrink && : > nt && truncate -s 3000 nt'
	both "2. chmod, chown, touch -d on files just written" \
		'chmod 640 new && chown 1234:5678 new && touch -d "2011-02-03 04:05:06" new && chmod 755 file1 && touch -d @1400000000.5 file1 && chown -h 7:8 a/plainlink'
	both "2. echo more >> a member" 'echo more >> app'
	both "2. dd conv=notrunc seek= into a member, a new file and past the end" \
		'printf XYZ | dd of=dd.bin bs=1 seek=1000 conv=notrunc status=none && dd if="$S/file1" of=ddnew bs=4096 seek=3 count=2 conv=notrunc status=none && printf END | dd of=dd.bin bs=1 seek=70000 conv=notrunc status=none'
	both "2. dd conv=notrunc into a file written here" 'printf abc | dd of=file1 bs=1 seek=5000 conv=notrunc status=none'
	both "2. a 50 MiB file" 'cp "$S/big" big'
	both "2. empty files" 'touch empty-new && : > empty2'
	both "2. names over 100 and 255 bytes, non-ASCII names" \
		'mkdir -p "$LONGD/$LONGD" && echo deep > "$LONGD/$LONGD/$LONGF" && echo é > "été-ünï.txt" && mkdir -p 日本語 && echo x > 日本語/ファイル && ln -s "ü-target/日本" 日本語/リンク'
	both "2. ln to a name over 100 bytes, ln of members of the archive" \
		'ln "$LONGD/$LONGD/$LONGF" hl-long && ln keep/orig keep/orig-link && ln sub/x x-link'
	both "2. chown to ids over 2097151 (not octal in ustar)" 'echo big-ids > bigid && chown 3000000:4000000 bigid'
	both "2. chmod, chown, touch -d on members of the archive" \
		'chmod 600 sub/x && chown 5:6 app && touch -d @1250000000 tr-grow && chmod 700 keep/emptydir'
	# (their times are set: the mount's run may take longer than the mtime slack)
	both "2. four writers at once, some fsyncing" \
		'for i in 1 2 3 4; do (mkdir par$i && for j in $(seq 40); do echo $i-$j > par$i/f$j; [ $((j % 10)) = 0 ] && "$PY" "$HERE/mount_rw.py" fsync par$i/f$j; done) & done; wait; touch -d @1500000000 par*/*'
	same "2. the mount before unmounting" "$R" "$M"
	tm_umount "2. -o readwrite" "$M" && ok "2. unmounted, the daemon gone"
	verify "2. file" "$T/main.tar"
fi
# a second session on the same archive (tarkv appended to it in between): changes to what
# the first one appended
echo 'put by tarkv' >"$S/tkv" && touch -d @1234567890 "$S/tkv"
tk "$T/main.tar" put tkv/added "$S/tkv"
expect_rc 0 "2. tarkv put between two sessions"
mkdir -p "$R/tkv" && cp -p "$S/tkv" "$R/tkv/added"
if tm_mount "2. a second -o readwrite mount" "$T/main.tar" "$M" -o readwrite; then
	both "2. second session: overwrite, append to files of the first" 'echo second > new && echo more >> file1 && cp "$S/other" big'
	both "2. second session: >> onto tarkv's member" 'echo more >> tkv/added'
	both "2. second session: a file fsynced, then rm (the last member)" 'echo s > s2 && "$PY" "$HERE/mount_rw.py" fsync s2 && rm s2'
	both "2. second session: new files deep in directories of the first" \
		'mkdir -p tree/sub/deep/more && echo m > tree/sub/deep/more/f && echo k > keep/k'
	same "2. second session: the mount" "$R" "$M"
	tm_umount "2. a second -o readwrite mount" "$M"
	verify "2. second session" "$T/main.tar"
fi

# ---- 2b. tar -x slower than the commit interval ----------------------------------------
# GNU tar extracts a symlink with an absolute or '..' target as an empty placeholder file and
# replaces it (unlink, symlink) at the end; when the extraction takes longer than the commit
# interval the placeholder is committed first.  The final tree is expressible (the symlink's
# member would win), but the unlink of a committed member is not: reported as a note.
mkdir -p "$S/xs" && ln -s /abs/target "$S/xs/abs" && ln -s ../up "$S/xs/up" &&
	head -c 30000 /dev/urandom >"$S/xs/z" && tar -C "$S" -cf "$S/xs.tar" xs/abs xs/up xs/z
cp "$T/base.tar" "$T/slow.tar"
start slow "$T/slow.tar"
if tm_mount "2b. -o readwrite" "$T/slow.tar" "$M" -o readwrite; then
	slow_x='{ head -c 10240 "$S/xs.tar"; sleep 2.5; tail -c +10241 "$S/xs.tar"; } | tar -x -C "$D" -f -'
	(cd "$M" && D=$M timeout 60 bash -c "$slow_x") >"$T/out" 2>"$T/err"
	RC=$?
	(cd "$R" && D=$R bash -c "$slow_x")
	if [ "$RC" = 0 ] && [ ! -s "$T/err" ]; then
		ok "2b. tar -x with symlink placeholders, slower than commit=1"
		tm_umount "2b. -o readwrite" "$M"
		verify "2b. slow tar -x" "$T/slow.tar"
	else
		note "2b. tar -x with symlink placeholders (absolute, '..'), slower than commit=1, fails $(last)"
		tm_umount "2b. -o readwrite" "$M"
	fi
fi

# ---- 3. a member hard-linked in the archive, overwritten through one name ---------------
cp "$T/base.tar" "$T/hl.tar"
start hl "$T/hl.tar"
if tm_mount "3. -o readwrite,noindex" "$T/hl.tar" "$M" -o readwrite,noindex; then
	both "3. echo > one name of a hard-linked member" 'echo changed > hl-a && [ "$(cat hl-b)" = changed ]'
	both "3. >> onto the other name" 'echo more >> hl-b'
	tm_umount "3. -o readwrite" "$M"
	verify "3. hard links" "$T/hl.tar"
fi

# ---- 3b. archives other writers made, and an empty one -----------------------------------
"$PY" - "$S/base" "$T" <<'PYEOF' || fail "3b. Python's tarfile writing the archives"
import os, sys, tarfile
src, out = sys.argv[1], sys.argv[2]
for name, fmt in (("py-ustar.tar", tarfile.USTAR_FORMAT), ("py-pax.tar", tarfile.PAX_FORMAT)):
    with tarfile.open(os.path.join(out, name), "w", format=fmt) as tf:
        for n in sorted(os.listdir(src)):
            tf.add(os.path.join(src, n), n)
PYEOF
tar -C "$S/base" --format=posix -cf "$T/gnu-posix.tar" . &&
	tar -C "$S/base" --format=v7 -cf "$T/gnu-v7.tar" . &&
	bsdtar -C "$S/base" -cf "$T/bsdtar.tar" . && tar -cf "$T/empty.tar" -T /dev/null ||
	fail "3b. tar and bsdtar writing the archives"
for f in gnu-posix gnu-v7 bsdtar py-ustar py-pax empty; do
	start "$f" "$T/$f.tar"
	if tm_mount "3b. -o readwrite on $f.tar" "$T/$f.tar" "$M" -o readwrite; then
		both "3b. $f.tar: cp -a, echo >, mkdir -p" 'cp -a "$S/tree" t && echo hi > new && mkdir -p a/b'
		tm_umount "3b. $f.tar" "$M"
		verify "3b. $f.tar" "$T/$f.tar"
	fi
done

# ---- 4. when changes reach the archive -----------------------------------------------------
cp "$T/base.tar" "$T/commit.tar"
start commit "$T/commit.tar"
if tm_mount "4. -o readwrite,commit=3600" "$T/commit.tar" "$M" -o readwrite,commit=3600; then
	both "4. echo hello > p1" 'echo hello > p1'
	[ "$(stat -c %s "$M/p1")" = 6 ] && [ "$(cat "$M/p1")" = hello ] && find "$M" -maxdepth 1 -name p1 | grep -q . &&
		ok "4. a new file is listed, has its size and contents at once" ||
		fail "4. a new file: size $(stat -c %s "$M/p1"), contents '$(cat "$M/p1")'"
	got=$("$PY" "$HERE/mount_rw.py" size-while-open "$M/p2" 1000 2>&1)
	[ "$got" = 1000 ] && ok "4. a file being written: stat says 1000 bytes before close" ||
		fail "4. a file being written: stat says '$got', want 1000"
	head -c 1000 /dev/zero | tr '\0' w >"$R/p2"
	! listed "$T/commit.tar" p1 && ok "4. commit=3600: p1 is not in the archive before fsync" ||
		fail "4. commit=3600: p1 is in the archive before any fsync"
	fsync_m "4. fsync p1" p1
	listed "$T/commit.tar" p1 && [ "$(tar -xOf "$T/commit.tar" p1 2>/dev/null || tar -xOf "$T/commit.tar" ./p1)" = hello ] &&
		ok "4. once fsync returned, GNU tar reads p1 in the archive" || fail "4. after fsync, p1 is not in the archive whole"
	both "4. mkdir pd" 'mkdir pd'
	fsync_m "4. fsync of a directory" pd
	listed "$T/commit.tar" pd && ok "4. once fsync of pd returned, GNU tar lists pd" || fail "4. after fsync of pd, pd is not in the archive"
	both "4. echo > p3 left pending" 'echo pending > p3 && mkdir -p pd/q && echo q > pd/q/f'
	tm_umount "4. -o readwrite,commit=3600" "$M"
	verify "4. commit at unmount" "$T/commit.tar"
fi
cp "$T/base.tar" "$T/commit1.tar"
if tm_mount "4. -o readwrite (commit=1)" "$T/commit1.tar" "$T/m.commit1" -o readwrite; then
	echo soon >"$T/m.commit1/c1"
	t0=$(date +%s%N)
	for _ in $(seq 40); do listed "$T/commit1.tar" c1 && break; sleep 0.2; done
	ms=$((($(date +%s%N) - t0) / 1000000))
	listed "$T/commit1.tar" c1 && [ "$ms" -le 4000 ] && ok "4. default commit: c1 in the archive after $ms ms" ||
		fail "4. default commit: c1 not in the archive after $ms ms (want about 1 s)"
	tm_umount "4. -o readwrite (commit=1)" "$T/m.commit1"
fi
cp "$T/base.tar" "$T/term.tar"
if tm_mount "4. -o readwrite,commit=3600, then SIGTERM" "$T/term.tar" "$T/m.term" -o readwrite,commit=3600; then
	echo 'pending at SIGTERM' >"$T/m.term/t1"
	pids=$(daemon_pids "$T/m.term")
	# shellcheck disable=SC2086
	kill -TERM $pids
	# shellcheck disable=SC2086
	wait_gone "$T/m.term" $pids && ok "4. SIGTERM: unmounted, the daemon gone" || fail "4. SIGTERM: still mounted or running"
	[ "$(tar -xOf "$T/term.tar" t1 2>/dev/null || tar -xOf "$T/term.tar" ./t1 2>/dev/null)" = 'pending at SIGTERM' ] &&
		ok "4. SIGTERM: the pending file was appended before the daemon exited" ||
		fail "4. SIGTERM: the pending file is not in the archive"
fi

# ---- 5. EPERM for what append-only cannot do; what can be undone works ------------------
cp "$T/base.tar" "$T/eperm.tar"
start eperm "$T/eperm.tar"
LOG=$T/eperm.log
MOUNTS+=("$M")
"$TARMOUNT" -f -o readwrite,commit=3600 "$T/eperm.tar" "$M" >"$LOG" 2>&1 &
FG=$!
for _ in $(seq 100); do is_mounted "$M" && break; alive "$FG" || break; sleep 0.1; done
# refused WHAT CMD PATH OPS: CMD fails on the mount with "Operation not permitted", and the
# daemon's log has one new line naming PATH and one of OPS (an extended regex)
refused() {
	local what=$1 n lines
	n=$(wc -l <"$LOG")
	(cd "$M" && timeout 20 bash -c "$2") >"$T/out" 2>"$T/err"
	RC=$?
	[ "$RC" != 0 ] && grep -q 'Operation not permitted' "$T/err" &&
		ok "5. $what: Operation not permitted" || fail "5. $what: want EPERM $(last)"
	for _ in $(seq 20); do [ "$(wc -l <"$LOG")" -gt "$n" ] && break; sleep 0.1; done
	lines=$(tail -n +$((n + 1)) "$LOG" | grep -F -- "$3")
	[ "$(printf '%s\n' "$lines" | grep -c .)" = 1 ] && grep -Eqi -- "$4" <<<"$lines" &&
		ok "5. $what: one log line: $lines" ||
		fail "5. $what: want one log line naming $3 and /$4/, got: $(tail -n +$((n + 1)) "$LOG" | head -c 300)"
}
if is_mounted "$M"; then
	refused "rm of a member from before the mount" 'rm keep/orig' keep/orig 'unlink|remov|rm|delet'
	refused "rmdir of a directory from before the mount" 'rmdir keep/emptydir' keep/emptydir 'rmdir|remov|delet'
	refused "mv of a member from before the mount" 'mv keep/orig keep/moved' keep/orig 'rename|mv|mov'
	[ "$(cat "$M/keep/orig")" = 'original file' ] && ok "5. after the refusals keep/orig is still there, whole" ||
		fail "5. after the refusals keep/orig reads '$(cat "$M/keep/orig" 2>&1)'"
	both "5. echo > lm, fsync, rm lm: the last member" 'echo last > lm && "$PY" "$HERE/mount_rw.py" fsync lm && rm lm'
	both "5. echo > lm2, fsync, mv lm2 lm3: the last member renamed" \
		'echo last2 > lm2 && "$PY" "$HERE/mount_rw.py" fsync lm2 && mv lm2 lm3'
	both "5. mkdir cdir, fsync it" 'mkdir cdir && "$PY" "$HERE/mount_rw.py" fsync cdir'
	refused "mv of a committed directory" 'mv cdir cdir2' cdir 'rename|mv|mov'
	both "5. create, then rm (not committed)" 'echo gone > u1 && rm u1'
	both "5. mkdir, then rmdir (not committed)" 'mkdir ud && rmdir ud'
	both "5. create, then mv (not committed)" 'echo moved > u2 && mv u2 u3'
	both "5. a new tree, then mv of its directory (not committed)" 'mkdir -p nd/e && echo f > nd/e/f && mv nd nd2'
	both "5. a new tree, then rm -r (not committed)" 'mkdir -p rd/e && echo f > rd/e/f && ln -s f rd/l && rm -r rd'
	both "5. a new file moved over another new one (not committed)" 'echo a > na && echo b > nb && mv na nb'
	both "5. a new file, a hard link to it, rm of the first name (not committed)" 'echo h > h1 && ln h1 h2 && rm h1'
	both "5. a hard link to a member, then rm of the link (not committed)" 'ln keep/orig keep/ol && rm keep/ol'
	# (the last member renamed to a name its header cannot hold: cut and appended again?)
	(cd "$M" && echo l4 >lm4 && "$PY" "$HERE/mount_rw.py" fsync lm4 && mv lm4 "$LONGF") >"$T/out" 2>"$T/err"
	RC=$?
	if [ "$RC" = 0 ]; then echo l4 >"$R/$LONGF"; else
		note "5. mv of the last member to a name over 100 bytes fails $(last)"; echo l4 >"$R/lm4"; fi
	same "5. the mount after the refusals" "$R" "$M"
	tm_umount "5. -o readwrite,commit=3600 -f" "$M"
	wait "$FG"
	rc=$?
	[ "$rc" = 0 ] && ok "5. tarmount -f exits 0 at unmount" || fail "5. tarmount -f exit $rc: $(tail -n 3 "$LOG")"
	verify "5. after the refusals" "$T/eperm.tar"
else
	fail "5. tarmount -f -o readwrite did not mount: $(head -c 300 "$LOG")"
fi

# ---- 6. a loop device, a window, an NBD export --------------------------------------------
# few_changes WHAT: changes made on $M and $R alike, the last ones fsynced
few_changes() {
	both "$1: cp -a a tree" 'cp -a "$S/tree" t'
	both "$1: echo >, mkdir -p, ln -s, ln" 'echo hi > new && mkdir -p a/b && ln -s ../../new a/b/l && ln new a/h'
	both "$1: echo > a member of the archive" 'echo over > old'
	both "$1: fsync" '"$PY" "$HERE/mount_rw.py" fsync new t/hello.txt a/b'
}
DEVSIZE=16777216
truncate -s "$DEVSIZE" "$T/dev.img" && dd if="$T/base.tar" of="$T/dev.img" conv=notrunc status=none
if loop "$T/dev.img"; then
	start dev "$T/base.tar"
	if tm_mount "6. -o readwrite on a loop device" "$dev" "$M" -o readwrite; then
		avail_about "6. loop device" "$M" $((DEVSIZE - $(used "$T/base.tar"))) $((DEVSIZE / 10))
		few_changes "6. loop device"
		both "6. loop device: a 4 MiB file, fsynced" 'head -c 4194304 "$S/big" > four && "$PY" "$HERE/mount_rw.py" fsync four'
		avail_about "6. loop device after 4 MiB more" "$M" $((DEVSIZE - $(used "$dev"))) $((DEVSIZE / 10))
		tm_umount "6. loop device" "$M"
	fi
	unloop "$dev"
	verify "6. loop device" "$T/dev.img"
fi
OFF=$((512 * 2049)) WIN=4194304
head -c "$OFF" /dev/urandom >"$T/pre" && head -c 100000 /dev/urandom >"$T/post"
cp "$T/base.tar" "$T/win.tar" && truncate -s "$WIN" "$T/win.tar"
cat "$T/pre" "$T/win.tar" "$T/post" >"$T/win.img"
start win "$T/base.tar"
if tm_mount "6. -o readwrite,offset=$OFF,size=$WIN" "$T/win.img" "$M" -o "readwrite,offset=$OFF,size=$WIN"; then
	avail_about "6. window" "$M" $((WIN - $(used "$T/base.tar"))) $((WIN / 10))
	few_changes "6. window"
	tm_umount "6. window" "$M"
	[ "$(stat -c %s "$T/win.img")" = $((OFF + WIN + 100000)) ] && cmp -s <(head -c "$OFF" "$T/win.img") "$T/pre" &&
		cmp -s <(tail -c 100000 "$T/win.img") "$T/post" && ok "6. window: the bytes around it are unchanged" ||
		fail "6. window: the bytes around it changed (size $(stat -c %s "$T/win.img"))"
	tail -c +$((OFF + 1)) "$T/win.img" | head -c "$WIN" >"$T/win.inner"
	verify "6. window" "$T/win.inner"
fi
if command -v nbdkit >/dev/null && command -v nbdinfo >/dev/null; then
	cp "$T/base.tar" "$T/nbd.img" && truncate -s 8M "$T/nbd.img"
	start nbd "$T/base.tar"
	if start_nbdkit file "$T/nbd.sock" file "$T/nbd.img" &&
		tm_mount "6. -o readwrite on NBD" "$(uri "$T/nbd.sock")" "$M" -o readwrite; then
		few_changes "6. NBD"
		tm_umount "6. NBD" "$M"
		stop_server "$T/file.pid"
		verify "6. NBD" "$T/nbd.img"
	fi
else
	without "6. NBD: needs nbdkit and nbdinfo"
fi

# ---- 7. no space ----------------------------------------------------------------------------
N=$(($(stat -c %s "$T/base.tar") + 65536))
cp "$T/base.tar" "$T/nospc.img" && truncate -s "$N" "$T/nospc.img"
start nospc "$T/base.tar"
if tm_mount "7. -o readwrite,offset=0,size=$N" "$T/nospc.img" "$M" -o "readwrite,offset=0,size=$N"; then
	avail_about "7. a window of $N bytes" "$M" $((N - $(used "$T/base.tar"))) $((N / 10))
	both "7. a small file, fsynced" 'echo small > small && "$PY" "$HERE/mount_rw.py" fsync small'
	got=$("$PY" "$HERE/mount_rw.py" enospc "$M/huge" 1048576 2>&1) &&
		ok "7. 1 MiB into about 50 KiB of room: $got" ||
		fail "7. 1 MiB into about 50 KiB of room: want ENOSPC at write, fsync or close, got: $got"
	rm -f "$M/huge" 2>/dev/null || note "7. rm of the file that got ENOSPC failed"
	both "7. after the ENOSPC a small file still goes in" 'echo after > after && "$PY" "$HERE/mount_rw.py" fsync after'
	tm_umount "7. no space" "$M"
	[ "$(stat -c %s "$T/nospc.img")" = "$N" ] && ok "7. the file did not grow past the window" ||
		fail "7. the file is $(stat -c %s "$T/nospc.img") bytes, the window $N"
	verify "7. no space" "$T/nospc.img"
fi

# ---- 8. two processes ---------------------------------------------------------------------
cp "$T/base.tar" "$T/two.tar"
if tm_mount "8. -o readwrite" "$T/two.tar" "$T/m.two" -o readwrite,commit=3600; then
	# (tarkv waits for another writer's lock, --wait seconds: then refuses, exit 3)
	timeout 20 "$TARKV" --wait=2 "$T/two.tar" put k "$S/other" >"$T/out" 2>"$T/err"
	RC=$?
	[ "$RC" = 3 ] && grep -Eqi 'lock|busy' "$T/err" && ok "8. tarkv put while mounted -o readwrite: exit $RC, $(head -n 1 "$T/err")" ||
		fail "8. tarkv put while mounted -o readwrite: want a locked/busy error $(last)"
	mkdir -p "$T/m.two2"
	MOUNTS+=("$T/m.two2")
	run "$TARMOUNT" -o readwrite "$T/two.tar" "$T/m.two2"
	[ "$RC" != 0 ] && [ "$RC" != 124 ] && grep -Eqi 'lock|busy' "$T/err" && ! is_mounted "$T/m.two2" &&
		ok "8. a second -o readwrite mount: exit $RC, $(head -n 1 "$T/err")" ||
		fail "8. a second -o readwrite mount: want a locked/busy error, nothing mounted $(last)"
	if tm_mount "8. a read-only mount beside" "$T/two.tar" "$T/m.two3"; then
		[ "$(cat "$T/m.two3/keep/orig" 2>&1)" = 'original file' ] && ok "8. a read-only mount beside reads" ||
			fail "8. a read-only mount beside: keep/orig reads '$(cat "$T/m.two3/keep/orig" 2>&1)'"
		tm_umount "8. read-only beside" "$T/m.two3"
	fi
	tk "$T/two.tar" ls -R
	expect_rc 0 "8. tarkv ls -R while mounted -o readwrite"
	tm_umount "8. -o readwrite" "$T/m.two"
	cmp -s "$T/two.tar" "$T/base.tar" && ok "8. the refused put left the archive unchanged" ||
		fail "8. the archive changed"
fi

# ---- 9. kill -9 ----------------------------------------------------------------------------
cp "$T/base.tar" "$T/crash.tar"
: >"$T/crash.log"
# rounds 5 and 6 write files of about 1 MiB
kills=0
for round in 1 2 3 4 5x300 6x300; do
	tm_mount "9. round $round: -o readwrite (after $kills kills)" "$T/crash.tar" "$T/m.crash" -o readwrite || break
	pids=$(daemon_pids "$T/m.crash")
	timeout 60 "$PY" "$HERE/mount_rw.py" writer "$T/m.crash" "$T/crash.log" "r$round" 300 >"$T/writer.out" 2>&1 &
	wpid=$!
	# the kill comes after a random number of acknowledged files, at a random moment after it
	case $round in *x*) spread=40 ;; *) spread=150 ;; esac
	want=$(($(wc -l <"$T/crash.log") + 5 + RANDOM % spread))
	for _ in $(seq 2000); do [ "$(wc -l <"$T/crash.log")" -lt "$want" ] && alive "$wpid" || break; sleep 0.01; done
	sleep "0.0$((RANDOM % 5))$((RANDOM % 10))"
	# shellcheck disable=SC2086
	[ -n "$pids" ] && kill -9 $pids && kills=$((kills + 1))
	wait "$wpid"
	timeout 20 fusermount3 -u -z "$T/m.crash"
	# shellcheck disable=SC2086
	wait_gone "$T/m.crash" $pids || fail "9. round $round: the mount or the daemon is still there"
	run tar -tf "$T/crash.tar"
	[ "$RC" = 0 ] && ok "9. round $round: GNU tar reads the archive after kill -9 ($(grep -c "^r$round-" "$T/crash.log") fsyncs had returned)" ||
		fail "9. round $round: GNU tar $(last)"
	rm -rf "$T/x.crash" && mkdir -p "$T/x.crash"
	tar -xf "$T/crash.tar" -C "$T/x.crash" 2>/dev/null
	helper "9. round $round: every fsynced file is in the archive" crash-check "$T/x.crash" "$T/crash.log"
done
acked=$(wc -l <"$T/crash.log")
[ "$acked" -gt 0 ] && ok "9. $acked fsyncs returned over the rounds" || fail "9. no fsync ever returned"
if tm_mount "9. after the kills: a read-only mount" "$T/crash.tar" "$T/m.crash"; then
	same "9. after the kills: the read-only mount and GNU tar's extraction" "$T/x.crash" "$T/m.crash"
	tm_umount "9. after the kills: a read-only mount" "$T/m.crash"
fi

finish
