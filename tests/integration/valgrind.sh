#!/bin/bash
# tarkv and tarmount under valgrind (memcheck): no invalid reads or writes, no use of
# uninitialised values, no definite leaks.
#
#   valgrind --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite
#
#  - tarkv over two small mixed archives (GNU format: old GNU sparse, long names and links,
#    hard links, symlinks, a FIFO, an empty directory; posix format: pax sparse 1.0, xattrs,
#    names that are not UTF-8): ls -lR, ls -R --json, find --json, stat --json, cat of every
#    file, digest of every file, get-partial, info, extract / DIR; with --no-index, with
#    --index FILE (built) and again (loaded);
#  - tarkv --no-index ls -lR and an extract over a dozen hostile archives (malformed.py gen:
#    truncated, bad pax records, bad sparse maps, huge sizes);
#  - tarmount -f -s (foreground, one thread) on each mixed archive, first writing its index
#    (-o index=) and then loading it, while a reader lists everything (ls -lR, find), reads
#    every file, readlinks and lists xattrs; then fusermount3 -u, and the daemon must exit 0.
# Each run's log is parsed: "ERROR SUMMARY: 0 errors" and nothing "definitely lost".
#
# Environment: TARKV, TARMOUNT, top_srcdir, CI (as in the other scripts).  valgrind is the
# Debian package valgrind; without it the script skips (fails under CI=true).
# Run by `sh script`: go on under bash.
if [ -z "${BASH_VERSION:-}" ]; then exec bash "$0" "$@"; fi
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"
# shellcheck source=lib_mount.sh
. "$(dirname "$0")/lib_mount.sh"
START=$(date +%s)

need_cmd valgrind timeout tar "$PY"
need_tarkv
# A sanitizer build (CI's second build) cannot run under memcheck: its runtime maps shadow
# memory valgrind does not allow.  There AddressSanitizer and LeakSanitizer check the same
# things in every other test, so this one passes with a note.
if { ldd "$TARKV"; ldd "$TARMOUNT"; } 2>/dev/null | grep -Eq 'lib(a|ub|t)san'; then
	note "$TARKV is a sanitizer build: memcheck cannot run it (the sanitizers check it instead)"
	ok "sanitizer build: valgrind left to the plain build"
	finish
fi
setup_tmp
# the foreground daemons started here, killed on exit if still there
BG=()
trap 'for p in "${BG[@]}"; do alive "$p" && kill "$p" 2>/dev/null; done; mount_cleanup; cleanup' EXIT
umask 022
export XDG_CACHE_HOME=$T/cache
# glib: plain malloc, and pointers cleared when freed (fewer "possibly lost" false alarms)
export G_SLICE=always-malloc G_DEBUG=gc-friendly
VG=(valgrind --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite
	--show-leak-kinds=definite --track-origins=yes --num-callers=30)
n_runs=0

# check_log WHAT LOG RC: the valgrind verdict on one run
check_log() {
	local what=$1 log=$2 rc=$3 errs lost
	n_runs=$((n_runs + 1))
	errs=$(sed -n 's/.*ERROR SUMMARY: \([0-9][0-9]*\) errors.*/\1/p' "$log" | tail -n 1)
	lost=$(sed -n 's/.*definitely lost: \([0-9,][0-9,]*\) bytes.*/\1/p' "$log" | tail -n 1 | tr -d ,)
	if [ "$rc" = 99 ] || [ "${errs:-x}" != 0 ] || [ "${lost:-0}" != 0 ]; then
		fail "$what: valgrind: exit $rc, ${errs:-no} errors, ${lost:-0} bytes definitely lost"
		grep -E '^==[0-9]+== (Invalid|Conditional|Use of|Syscall param|Mismatched|Source and|[0-9,]+ bytes in .* definitely| {3}(at|by) )' "$log" |
			head -40 | sed 's/^/    /'
		return 1
	fi
	return 0
}

# vg WANT_RC WHAT CMD...: run CMD under valgrind (output in $T/out, log in $T/vg.log)
vg() {
	local want=$1 what=$2
	shift 2
	timeout 600 "${VG[@]}" --log-file="$T/vg.log" "$@" >"$T/out" 2>"$T/err"
	RC=$?
	check_log "$what" "$T/vg.log" "$RC" || return 1
	if [ "$want" != any ] && [ "$RC" != "$want" ]; then
		fail "$what: exit $RC, want $want: $(head -c 300 "$T/err")"
		return 1
	fi
	return 0
}

# ---- archives ------------------------------------------------------------------------------------
S=$T/src
"$PY" - "$S" <<'EOF' || { fail "building the source tree"; finish; }
import os, sys
root = sys.argv[1]
def w(rel, data):
    p = os.path.join(root, rel)
    os.makedirs(os.path.dirname(p), exist_ok=True)
    with open(p, "wb") as f:
        f.write(data)
for i, n in enumerate((0, 1, 511, 512, 513, 5000, 70000)):
    w("files/f%d" % i, os.urandom(n))
w("long/" + "n" * 150, b"long name\n")
w("long/" + "/".join(["d" * 90] * 4) + "/deep", b"long path\n")
p = os.path.join(root, "sparse/holes")
os.makedirs(os.path.dirname(p))
with open(p, "wb") as f:
    f.truncate(1 << 20)
    for off in (0, 300000, 700000):
        f.seek(off)
        f.write(os.urandom(5000))
os.makedirs(os.path.join(root, "links"))
os.link(os.path.join(root, "files/f5"), os.path.join(root, "links/hard"))
os.symlink("../files/f5", os.path.join(root, "links/sym"))
os.symlink("t" * 200, os.path.join(root, "links/longsym"))
os.mkfifo(os.path.join(root, "links/fifo"))
os.makedirs(os.path.join(root, "empty"))
w(b"names/caf\xe9".decode("utf-8", "surrogateescape"), b"latin-1 name\n")
EOF
setfattr -n user.test -v value "$S/files/f1" 2>/dev/null
G=$T/mixed-gnu.tar P=$T/mixed-pax.tar
tar --format=gnu --sparse -cf "$G" -C "$S" . 2>"$T/tar.err" || fail "tar -c gnu: $(head -c 300 "$T/tar.err")"
tar --format=posix --sparse --sparse-version=1.0 --xattrs -cf "$P" -C "$S" . 2>"$T/tar.err" ||
	fail "tar -c posix: $(head -c 300 "$T/tar.err")"
(cd "$S" && find . -type f | sed 's|^\./||' | sort) >"$T/files"
(cd "$S" && find . | sed 's|^\./||' | sed '/^\.$/d' | sort) >"$T/paths"
mapfile -t FILES <"$T/files"

# ---- tarkv ---------------------------------------------------------------------------------------
for a in "$G" "$P"; do
	an=$(basename "$a" .tar)
	for mode in no-index index-build index-load; do
		case $mode in
		no-index) opt=(--no-index) ;;
		*) opt=(--index "$T/$an.idx") ;;
		esac
		what="tarkv $an ($mode)"
		bad=0
		vg 0 "$what: info" "$TARKV" "${opt[@]}" "$a" info || bad=1
		case $mode in
		index-build) grep -q '^index: built' "$T/out" || { fail "$what: info: $(head -n 1 "$T/out")"; bad=1; } ;;
		index-load) grep -q '^index: loaded' "$T/out" || { fail "$what: info: $(head -n 1 "$T/out")"; bad=1; } ;;
		esac
		vg 0 "$what: ls -lR" "$TARKV" "${opt[@]}" "$a" ls -lR || bad=1
		vg 0 "$what: ls -R --json" "$TARKV" "${opt[@]}" --json "$a" ls -R || bad=1
		"$PY" -c 'import json,sys; json.loads(open(sys.argv[1],"rb").read().decode())' "$T/out" ||
			{ fail "$what: ls -R --json: not JSON"; bad=1; }
		vg 0 "$what: find --json" "$TARKV" "${opt[@]}" --json "$a" find || bad=1
		vg 0 "$what: stat --json" "$TARKV" "${opt[@]}" --json "$a" stat files/f1 || bad=1
		vg 0 "$what: cat of every file" "$TARKV" "${opt[@]}" "$a" cat -- "${FILES[@]}" || bad=1
		(cd "$S" && cat -- "${FILES[@]}") | cmp -s - "$T/out" || { fail "$what: cat: bytes differ"; bad=1; }
		vg 0 "$what: digest of every file" "$TARKV" "${opt[@]}" "$a" digest -- "${FILES[@]}" || bad=1
		(cd "$S" && sha256sum -- "${FILES[@]}") | cmp -s - "$T/out" || { fail "$what: digest differs from sha256sum"; bad=1; }
		vg 0 "$what: get-partial" "$TARKV" "${opt[@]}" "$a" get-partial sparse/holes 299990 20 || bad=1
		x=$T/x-$an-$mode
		mkdir "$x"
		vg 0 "$what: extract / DIR" "$TARKV" "${opt[@]}" "$a" extract / "$x" || bad=1
		(cd "$x" && find . | sed 's|^\./||' | sed '/^\.$/d' | sort) | cmp -s - "$T/paths" ||
			{ fail "$what: the extracted tree differs from the source"; bad=1; }
		rm -rf "$x"
		[ "$bad" = 0 ] && ok "$what: info, ls -lR, ls --json, find, stat, cat, digest, get-partial, extract: no valgrind errors, no definite leaks"
	done
done

# hostile archives
"$PY" "$HERE/malformed.py" gen "$T/cases" >/dev/null || fail "malformed.py gen"
bad=0 n=0
for c in size-b256-past-end size-b256-negative pax-len-long pax-no-newline pax-huge-len \
	pax-size-negative pax-global-bad sparse01-out-of-order sparse01-count-mismatch \
	sparse10-huge-count sparse10-count-16M-truncated gnuS-ext-garbage gnuS-ext-endless \
	L-no-nul hardlink-loop symlink-loops names-not-utf8 dir-replaced-twice; do
	a=$T/cases/$c.tar
	[ -f "$a" ] || { fail "hostile: $c.tar was not made"; continue; }
	n=$((n + 1))
	vg any "hostile $c: ls -lR" "$TARKV" --no-index "$a" ls -lR || bad=1
	case $RC in 0 | 2) ;; *) fail "hostile $c: ls -lR exit $RC"; bad=1 ;; esac
	mkdir "$T/hx"
	vg any "hostile $c: extract" "$TARKV" --no-index -q "$a" extract / "$T/hx" || bad=1
	rm -rf "$T/hx"
done
[ "$bad" = 0 ] && ok "tarkv over $n hostile archives (ls -lR, extract): no valgrind errors, no definite leaks"
# a truncated copy of each mixed archive
for a in "$G" "$P"; do
	head -c $(($(stat -c %s "$a") / 2 + 100)) "$a" >"$T/cut.tar"
	vg 0 "tarkv $(basename "$a" .tar) cut in half: ls -lR" "$TARKV" --no-index "$T/cut.tar" ls -lR &&
		ok "tarkv $(basename "$a" .tar) cut in half: no valgrind errors"
done

# ---- tarmount ----------------------------------------------------------------------------------
if fuse_ok; then
	M=$T/m
	mkdir -p "$M"
	MOUNTS+=("$M")
	for a in "$G" "$P"; do
		an=$(basename "$a" .tar)
		for mode in build load; do
			what="tarmount $an (index $mode)"
			log=$T/vg-mount-$an-$mode.log
			timeout 600 "${VG[@]}" --log-file="$log" "$TARMOUNT" -f -s -o "index=$T/m-$an.idx" "$a" "$M" \
				>"$T/fg.out" 2>"$T/fg.err" &
			pid=$!
			BG+=("$pid")
			for _ in $(seq 600); do
				is_mounted "$M" && break
				alive "$pid" || break
				sleep 0.1
			done
			if ! is_mounted "$M"; then
				fail "$what: not mounted after 60 s: $(head -c 300 "$T/fg.err")"
				kill "$pid" 2>/dev/null
				wait "$pid"
				continue
			fi
			bad=0
			(cd "$M" && timeout 300 ls -lR . && timeout 300 find . -printf '%p %y %m %s %n\n') >/dev/null 2>"$T/walk.err" ||
				{ fail "$what: listing: $(head -c 300 "$T/walk.err")"; bad=1; }
			(cd "$M" && timeout 300 cat -- "${FILES[@]}") | cmp -s - <(cd "$S" && cat -- "${FILES[@]}") ||
				{ fail "$what: the files read differ from the source"; bad=1; }
			[ "$(timeout 30 readlink "$M/links/sym")" = ../files/f5 ] || { fail "$what: readlink"; bad=1; }
			timeout 30 getfattr -d -m - "$M/files/f1" >/dev/null 2>&1
			timeout 30 stat -f "$M" >/dev/null || { fail "$what: statfs"; bad=1; }
			timeout 60 fusermount3 -u "$M" || { fail "$what: fusermount3 -u"; timeout 20 fusermount3 -u -z "$M"; bad=1; }
			wait "$pid"
			rc=$?
			check_log "$what" "$log" "$rc" || bad=1
			[ "$rc" = 0 ] || { fail "$what: tarmount -f exit $rc after the unmount: $(tail -c 300 "$T/fg.err")"; bad=1; }
			[ "$bad" = 0 ] && ok "$what: -f -s, listed and read everything, unmounted: exit 0, no valgrind errors, no definite leaks"
		done
	done
fi

note "valgrind.sh: $n_runs runs under valgrind in $(($(date +%s) - START)) s"
finish
