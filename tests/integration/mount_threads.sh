#!/bin/bash
# Concurrency: 8 threads read random ranges of the same file and of different files over a
# mount (a few files of 1 to 20 MiB of random content, a sparse file, hundreds of small ones,
# a hard link), every byte checked against the source tree (readers.py): GNU and pax
# archives, with --sparse; the default thread pool, -s (one thread) and -o max_threads=2;
# readers alongside `tar -c` of the whole mount and `find -ls` loops.  Then fusermount3 -u
# must leave no mount (/proc/mounts) and no tarmount process (pgrep) behind.
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
need_cmd tar find pgrep sha256sum "$PY"
setup_tmp
umask 022

SRC=$T/src
"$PY" - "$SRC" <<'PYEOF' || { fail "building the source tree"; finish; }
import os, random, sys
root = sys.argv[1]
rng = random.Random(20261124)
def put(rel, data):
    p = os.path.join(root, rel)
    os.makedirs(os.path.dirname(p), exist_ok=True)
    with open(p, "wb") as f:
        f.write(data)
# big files of random content, sizes not multiples of anything
for name, size in (("r1", (1 << 20) + 1), ("r5", (5 << 20) - 3), ("r13", (13 << 20) + 511),
                   ("r20", 20 << 20)):
    put("big/" + name, rng.randbytes(size))
# a sparse file: islands of data in 8 MiB of holes
p = os.path.join(root, "big/sparse8")
with open(p, "wb") as f:
    f.truncate(8 << 20)
    for off in (0, 1 << 20, (3 << 20) + 12345, (8 << 20) - 4096):
        f.seek(off)
        f.write(rng.randbytes(4096))
# many small files
for i in range(600):
    size = rng.choice([0, 1, 511, 512, 513, 4096, rng.randrange(0, 70000)])
    put("small/d%02d/f%03d" % (i % 23, i), rng.randbytes(size))
os.link(os.path.join(root, "big/r5"), os.path.join(root, "small/r5_link"))
PYEOF
ok "source tree: $(find "$SRC" -type f | wc -l) files, $(du -sm "$SRC" | cut -f1) MiB"

tar --format=gnu --sparse -cf "$T/gnu.tar" -C "$SRC" . || fail "tar --format=gnu"
tar --format=posix --sparse --sparse-version=1.0 -cf "$T/posix.tar" -C "$SRC" . ||
	fail "tar --format=posix"

(cd "$SRC" && tar --sort=name --format=gnu -cf - . | sha256sum >"$T/tar-of-src.sum")

# readers WHAT ARGS...: readers.py with a time limit; its report is shown indented
readers() {
	local what=$1 out=$T/readers.$BASHPID.out rc
	shift
	timeout 120 "$PY" "$HERE/readers.py" "$@" >"$out" 2>&1
	rc=$?
	sed 's/^/    /' "$out"
	if [ "$rc" = 0 ]; then ok "$what"; else fail "$what (exit $rc)"; fi
}

M=$T/m
mkdir -p "$M"
sec() { awk -v a="$1" -v s="$2" 'BEGIN { printf "%.1f", a * s / 100 }'; }
run_one() { # run_one ARCHIVE LABEL SCALE [TARMOUNT ARGS...]; SCALE: % of the read time
	local a=$1 label=$2 s=$3
	shift 3
	tm_mount "$label" "$a" "$M" "$@" || return
	readers "$label: 8 threads, random files" --threads 8 --seconds "$(sec 6 "$s")" --ops 1500 --seed 1 \
		"$M" "$SRC"
	readers "$label: 8 threads, all on big/r20" --threads 8 --seconds "$(sec 4 "$s")" --ops 400 --seed 2 \
		--same big/r20 "$M" "$SRC"
	readers "$label: 8 threads, all on big/sparse8" --threads 8 --seconds "$(sec 2 "$s")" --ops 300 \
		--seed 3 --same big/sparse8 "$M" "$SRC"
	readers "$label: 8 threads, all on one small file" --threads 8 --seconds "$(sec 2 "$s")" --ops 300 \
		--seed 4 --same small/d05/f005 "$M" "$SRC"
	# everything at once: two reader processes, a full tar of the mount, find -ls loops
	local t0 p1 p2 p3 p4
	(readers "$label: concurrent: random files" --threads 8 --seconds "$(sec 5 "$s")" --ops 3000 --seed 5 \
		"$M" "$SRC") &
	p1=$!
	(readers "$label: concurrent: big/r13" --threads 4 --seconds "$(sec 5 "$s")" --ops 3000 --seed 6 \
		--same big/r13 "$M" "$SRC") &
	p2=$!
	(cd "$M" && timeout 120 tar --sort=name --format=gnu -cf - . | sha256sum >"$T/tar-of-mount.sum") \
		2>"$T/tar-of-mount.err" &
	p3=$!
	(for _ in 1 2 3 4 5; do timeout 60 find "$M" -ls >/dev/null || exit 1; done) 2>"$T/find.err" &
	p4=$!
	wait "$p1"
	wait "$p2"
	wait "$p3"
	# the same archive as tar -c of the source tree: every name, mode, owner, time, link
	if [ -s "$T/tar-of-mount.err" ]; then
		fail "$label: concurrent: tar -c of the mount: $(head -c 300 "$T/tar-of-mount.err")"
	elif ! cmp -s "$T/tar-of-src.sum" "$T/tar-of-mount.sum"; then
		fail "$label: concurrent: tar --sort=name -c of the mount differs from that of the source tree"
	else
		ok "$label: concurrent: tar --sort=name -c of the mount = of the source tree"
	fi
	if wait "$p4" && [ ! -s "$T/find.err" ]; then
		ok "$label: concurrent: find -ls x5"
	else
		fail "$label: concurrent: find -ls: $(head -c 300 "$T/find.err")"
	fi
	# the daemon survived all that
	if is_mounted "$M" && timeout 10 ls "$M" >/dev/null; then
		ok "$label: still mounted and listable"
	else
		fail "$label: the mount is gone or does not answer after the readers"
	fi
	local pids
	pids=$(daemon_pids "$M")
	[ -n "$pids" ] || fail "$label: no tarmount process found for $M"
	if tm_umount "$label" "$M"; then
		ok "$label: fusermount3 -u: mount gone, daemon $pids exited"
	fi
	# pgrep too: no tarmount process naming our mount point (zombies excluded: reaping is
	# init's business, not ours)
	local left
	left=$(pgrep -f -- "tarmount.* $M\$|tarmount.* $M " | while read -r p; do alive "$p" && echo "$p"; done)
	if [ -z "$left" ]; then
		ok "$label: pgrep finds no tarmount for $M"
	else
		fail "$label: tarmount processes left: $left"
	fi
	if grep -Fq " $M " /proc/mounts; then
		fail "$label: $M still in /proc/mounts"
	fi
}

run_one "$T/gnu.tar" "gnu" 100
run_one "$T/posix.tar" "posix" 100
run_one "$T/posix.tar" "posix -s" 40 -s
run_one "$T/gnu.tar" "gnu -o max_threads=2" 40 -o max_threads=2

finish
