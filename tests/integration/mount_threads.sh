#!/bin/bash
# Concurrency: 8 threads read random ranges of the same file and of different files over a
# mount (a few files of 1 to 20 MiB of random content, a sparse file, hundreds of small ones,
# a hard link), every byte checked against the source tree (readers.py): GNU and pax
# archives, with --sparse; the default thread pool, -s (one thread), -o max_threads=2, and
# -o spin=200 and 1000 (a thread polls the device);
# readers alongside `tar -c` of the whole mount and `find -ls` loops.  Then fusermount3 -u
# must leave no mount (/proc/mounts) and no tarmount process (pgrep) behind.
. "$(dirname "$0")/lib.sh"

. "$(dirname "$0")/lib_mount.sh"


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
run_one "$T/gnu.tar" "gnu -o spin=200" 40 -o spin=200
run_one "$T/posix.tar" "posix -s -o spin=1000" 40 -s -o spin=1000

finish
