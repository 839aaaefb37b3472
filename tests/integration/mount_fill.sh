#!/bin/bash
# tarmount's filling of the kernel's page cache (src/fuse_fill.c) against GNU tar.
#
# An archive (GNU tar, --sparse) with a directory of small files of awkward sizes (1 byte,
# a page less one, a page, a page and one, 1 MiB), a sparse file, hard links inside the
# directory and from another one, an empty file and one too large to be pushed:
#   - mounted, the directory listed and its first file read: within seconds the kernel holds
#     pages (fincore) of every later file small enough, before any of them is read;
#   - every file of the mount is then byte for byte its GNU tar extraction;
#   - with -o nofill, after the same steps no later file has a page cached (so the first
#     check can fail), and the contents agree too.
. "$(dirname "$0")/lib.sh"

. "$(dirname "$0")/lib_mount.sh"

need_fuse
need_cmd tar fincore truncate cmp "$PY"
setup_tmp
umask 022

S=$T/src
mkdir -p "$S/d" "$S/e"
"$PY" - "$S/d" <<'EOF' || { fail "building the tree"; finish; }
import os, random, sys
d = sys.argv[1]
rng = random.Random(12)
# a0 comes first in the mount's listing: its name sorts first, and it is the first member.
sizes = [100, 1, 4095, 4096, 4097, 65536, 131073, 1 << 20, 3, 70000] + \
        [rng.randrange(1, 200000) for _ in range(30)]
for i, n in enumerate(sizes):
    with open(os.path.join(d, f"a{i}"), "wb") as f:
        f.write(rng.randbytes(n))
with open(os.path.join(d, "big"), "wb") as f:  # over the size that is pushed
    f.write(rng.randbytes((1 << 20) + 1))
open(os.path.join(d, "empty"), "wb").close()
with open(os.path.join(d, "sparse"), "wb") as f:  # data, a hole, data, a hole at the end
    f.write(rng.randbytes(5000))
    f.seek(300000)
    f.write(rng.randbytes(7000))
    f.truncate(600000)
EOF
ln "$S/d/a5" "$S/d/hl"
ln "$S/d/a7" "$S/e/hl-other"
# Members in the order given: the read one first, the rest after it.
(cd "$S" && tar --sparse -cf "$T/fill.tar" d/a0 $(cd "$S" && ls d | grep -vx a0 | sed 's|^|d/|') e) ||
	{ fail "tar -c"; finish; }
X=$T/x
mkdir -p "$X"
tar_extract "$T/fill.tar" "$X" || { fail "tar -x"; finish; }
M=$T/m

# resident FILE: pages of FILE in the page cache
resident() { fincore -n -o PAGES "$1" 2>/dev/null | tr -d ' '; }

# later_files: the regular files of d the fill should push (1 B .. 1 MiB), but a0
later_files() {
	local f
	for f in "$X"/d/*; do
		[ "${f##*/}" = a0 ] && continue
		local n
		n=$(stat -c %s "$f")
		[ "$n" -gt 0 ] && [ "$n" -le $((1 << 20)) ] && echo "${f##*/}"
	done
}

# check_fill LABEL WANT ARGS...: mount with ARGS, list d, read d/a0; WANT is "all" (every
# later small file gets pages within 10 s) or "none" (none has any after 2 s)
check_fill() {
	local label=$1 want=$2 f i missing cached
	shift 2
	tm_mount "$label" "$T/fill.tar" "$M" -o noindex "$@" || return
	ls -l "$M/d" >/dev/null
	cat "$M/d/a0" >/dev/null
	for i in $(seq 100); do
		missing=0 cached=0
		for f in $(later_files); do
			if [ "$(resident "$M/d/$f")" -gt 0 ]; then cached=$((cached + 1)); else missing=$((missing + 1)); fi
		done
		[ "$want" = all ] && [ "$missing" = 0 ] && break
		[ "$want" = none ] && [ "$cached" != 0 ] && break
		[ "$want" = none ] && [ "$i" -ge 20 ] && break
		sleep 0.1
	done
	if [ "$want" = all ] && [ "$missing" = 0 ]; then
		ok "$label: the $cached later small files of d are cached before they are read"
	elif [ "$want" = none ] && [ "$cached" = 0 ]; then
		ok "$label: no later file of d is cached before it is read"
	else
		fail "$label: want $want of d's later small files cached before reading: $cached cached, $missing not"
	fi
	local bad=0
	for f in $(cd "$X" && find . -type f); do
		cmp -s "$X/$f" "$M/$f" || { bad=$((bad + 1)); note "$label: $f differs"; }
	done
	if [ "$bad" = 0 ]; then
		ok "$label: every file is byte for byte GNU tar's extraction"
	else
		fail "$label: $bad files differ from GNU tar's extraction"
	fi
	tm_umount "$label" "$M"
}

check_fill "fill.tar" all
check_fill "fill.tar -o nofill" none -o nofill

finish
