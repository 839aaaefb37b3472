#!/bin/bash
# shellcheck disable=SC2015,SC2317 # ok and fail return 0; functions run from traps
# The seekable copy of a compressed stream that seeks badly (decomp.h), through tarkv and
# tarmount, with a private XDG_CACHE_HOME.  The oracles: GNU tar's extraction of the plain
# archive, and the reference zstd, which must read the copy back into the same stream.
#   1. tarkv info says which streams want a copy: one zstd frame and one xz block do; gzip
#      (a point every MiB) and xz in 1 MiB blocks do not (make-seekable: "not needed");
#   2. tarkv make-seekable writes it beside the index: zstd -t passes, zstd -dc gives the
#      plain archive byte for byte, zstd -l counts one 1 MiB frame per MiB of it; the copy
#      is used from then on (info), and every member reads as GNU tar extracted it;
#   3. a frame damaged in place: the member in it still reads right (from the stream), a
#      warning names the copy, and the copy file is removed;
#   4. a copy of another archive put in its place, or a truncated one: not used, removed,
#      with a warning; reads right;
#   5. a cap on the cache that the copy would exceed: refused, nothing left behind;
#   6. a copy is counted with its index and removed with it by the cache's pruner;
#   7. tarmount (root, /dev/fuse; otherwise skipped with a note, a failure under CI): the
#      first mount makes the copy in the background; the mount and a remount (which uses it
#      at once) equal the extraction; a frame damaged under a live mount: reads stay right and
#      the daemon removes the copy; -o noseekable_copy makes none; an unmount while the copy
#      is being made stops it, leaving no temporary file.
if [ -z "${BASH_VERSION:-}" ]; then exec bash "$0" "$@"; fi
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/lib_mount.sh"
need_cmd tar zstd xz gzip python3 cmp timeout
need_tarkv

setup_tmp
umask 022
private_cache
HERE=$(cd "$(dirname "$0")" && pwd)

# ---- the archives ------------------------------------------------------------------------
# About 75 MiB: random bytes (which no compressor shrinks) and text, in files of many sizes, some larger than a frame.
python3 - "$T/src" <<'EOF' || exit 2
import os, random, sys
random.seed(11)
root = sys.argv[1]
words = [b"alpha", b"beta", b"gamma", b"delta", b"tar", b"mount", b"frame", b"\n"]
text = b" ".join(random.choice(words) for _ in range(20000))
for i in range(100):
    d = os.path.join(root, "d%d" % (i % 9), "s%d" % (i % 4))
    os.makedirs(d, exist_ok=True)
    n = random.choice([0, 17, 4096, 70000, 150000]) if i % 40 else 3 << 20
    if i % 3:
        data = os.urandom(n)
    else:
        data = (text * (n // len(text) + 1))[:n]
    with open(os.path.join(d, "f%03d" % i), "wb") as f:
        f.write(data)
# And 64 MiB that compress to almost nothing: a single zstd frame of 90 MiB takes longer to
# decode than a read should wait, which is what makes a copy worth it.
for i in range(4):
    with open(os.path.join(root, "big%d.txt" % i), "wb") as f:
        f.write((text * (16 * 2**20 // len(text) + 1))[:16 * 2**20])
EOF
tar -C "$T/src" --sort=name -cf "$T/a.tar" . || exit 2
mkdir -p "$T/x" && tar -xf "$T/a.tar" -C "$T/x" || exit 2
zstd -q -3 "$T/a.tar" -o "$T/a.tar.zst" || exit 2
xz -T1 -0 -c "$T/a.tar" >"$T/a.tar.xz" || exit 2
# Streams that seek well whatever their size: a small archive will do.
tar -C "$T/src" -cf "$T/small.tar" d0 d1 || exit 2
xz -T2 -0 --block-size=1MiB -c "$T/small.tar" >"$T/blocks.tar.xz" || exit 2
gzip -c "$T/small.tar" >"$T/a.tar.gz" || exit 2
# Another archive, for a copy that belongs elsewhere.
echo other >"$T/src/other" && tar -C "$T/src" -cf "$T/b.tar" . && zstd -q "$T/b.tar" -o "$T/b.tar.zst" || exit 2
A_SIZE=$(stat -c %s "$T/a.tar")
FRAMES=$(((A_SIZE + 1048575) / 1048576))

# copy_of ARCHIVE: the copy's path, from tarkv info ("" when none is in use)
copy_of() { "$TARKV" -q "$1" info | sed -n 's/^seekable copy: \(\/.*\) ([0-9]* bytes)$/\1/p'; }
# reads_right WHAT ARCHIVE: every member through tarkv equals the extraction
reads_right() {
	local what=$1 a=$2 bad=0 f
	while IFS= read -r f; do
		"$TARKV" -q "$a" cat "$f" 2>>"$T/reads.err" | cmp -s - "$T/x/$f" || { bad=$((bad + 1)); echo "  differs: $f"; }
	done < <(cd "$T/x" && find . -type f | sed 's|^\./||' | sort)
	[ "$bad" = 0 ] && ok "$what: every member equals GNU tar's extraction" ||
		fail "$what: $bad members differ"
}

# ---- 1. who wants a copy -------------------------------------------------------------------
for f in a.tar.zst a.tar.xz; do
	tk "$T/$f" info
	grep -qx 'seekable copy: wanted, not made yet' "$T/out" && ok "1. $f: a copy is wanted" ||
		fail "1. $f: info says: $(grep seekable "$T/out")"
done
for f in a.tar.gz blocks.tar.xz; do
	tk "$T/$f" info
	grep -qx 'seekable copy: not needed' "$T/out" && ok "1. $f: no copy needed" ||
		fail "1. $f: info says: $(grep seekable "$T/out")"
	tk "$T/$f" make-seekable
	expect_rc 0 "1. $f make-seekable"
	grep -q '^not needed' "$T/out" && ok "1. $f make-seekable: not needed" ||
		fail "1. $f make-seekable said: $(cat "$T/out")"
done
tk --no-index "$T/a.tar.zst" make-seekable
expect_rc 2 "1. make-seekable --no-index"
expect_err_match 'without an index file' "1. make-seekable --no-index says why"
tk "$T/a.tar" make-seekable
expect_rc 2 "1. make-seekable of a plain tar"

# ---- 2. make-seekable ----------------------------------------------------------------------
for f in a.tar.zst a.tar.xz; do
	tk "$T/$f" make-seekable
	expect_rc 0 "2. $f make-seekable"
	copy=$(cat "$T/out")
	case $copy in "$C"/*.seekable.zst) ;; *) fail "2. $f: copy at '$copy', not in $C"; continue ;; esac
	zstd -q -t "$copy" && ok "2. $f: zstd -t passes on the copy" || fail "2. $f: zstd -t fails on the copy"
	zstd -q -dc "$copy" | cmp -s - "$T/a.tar" && ok "2. $f: zstd -dc of the copy is the archive" ||
		fail "2. $f: zstd -dc of the copy differs from the archive"
	n=$(zstd -lv "$copy" 2>/dev/null | sed -n 's/^# Zstandard Frames: //p')
	[ "$n" = "$FRAMES" ] && ok "2. $f: $FRAMES frames of 1 MiB" || fail "2. $f: zstd -l says $n frames, want $FRAMES"
	[ "$(copy_of "$T/$f")" = "$copy" ] && ok "2. $f: info shows the copy in use" ||
		fail "2. $f: info: $("$TARKV" "$T/$f" info | grep seekable)"
	reads_right "2. $f with its copy" "$T/$f"
done
[ -z "$(find "$C" -name '.*')" ] && ok "2. no temporary files left" || fail "2. left: $(find "$C" -name '.*')"

# ---- 3. a damaged frame --------------------------------------------------------------------
copy=$(copy_of "$T/a.tar.zst")
# The frame holding the middle of a big member: find the member's data offset with GNU tar.
member=$(cd "$T/x" && find . -type f -size +2M | sed 's|^\./||' | sort | head -1)
off=$(tar -tvf "$T/a.tar" -R 2>/dev/null | awk -v m="./$member" '$NF == m { sub(/:$/, "", $2); print ($2 + 1) * 512; exit }')
frame=$(((off + 1048576) / 1048576))
python3 - "$copy" "$frame" <<'EOF' || fail "3. could not damage the copy"
import struct, sys
p, want = sys.argv[1], int(sys.argv[2])
data = open(p, "rb").read()
n = struct.unpack("<I", data[-9:-5])[0]
entries = data[-9 - 12 * n:-9]
at = 40  # after our header frame
for i in range(want):
    at += struct.unpack("<I", entries[12 * i:12 * i + 4])[0]
clen = struct.unpack("<I", entries[12 * want:12 * want + 4])[0]
with open(p, "r+b") as f:
    f.seek(at + clen // 2)
    b = f.read(1)
    f.seek(at + clen // 2)
    f.write(bytes([b[0] ^ 0x55]))
EOF
tk "$T/a.tar.zst" cat "$member"
expect_rc 0 "3. cat a member in a damaged frame"
cmp -s "$T/out" "$T/x/$member" && ok "3. it reads right (from the stream)" || fail "3. it reads wrong"
expect_err_match "seekable\.zst: .*frame $frame.*reading the zstd stream instead" "3. the warning names the copy and the frame"
[ ! -e "$copy" ] && ok "3. the damaged copy is removed" || fail "3. the damaged copy is still there"

# ---- 4. a copy of another archive, a truncated copy ----------------------------------------
tk "$T/b.tar.zst" make-seekable
bcopy=$(cat "$T/out")
tk "$T/a.tar.zst" make-seekable
copy=$(cat "$T/out")
cp "$bcopy" "$copy"
tk "$T/a.tar.zst" cat "$member"
cmp -s "$T/out" "$T/x/$member" && ok "4. with another archive's copy: reads right" || fail "4. with another archive's copy: reads wrong"
expect_err_match 'seekable copy .* not used \(made for another stream\): removed' "4. another archive's copy: warned"
[ ! -e "$copy" ] && ok "4. another archive's copy is removed" || fail "4. another archive's copy is still there"
tk "$T/a.tar.zst" make-seekable
head -c 5000000 "$copy" >"$T/cut" && cat "$T/cut" >"$copy"
tk "$T/a.tar.zst" cat "$member"
cmp -s "$T/out" "$T/x/$member" && ok "4. with a truncated copy: reads right" || fail "4. with a truncated copy: reads wrong"
expect_err_match 'not used \(damaged' "4. a truncated copy: warned"
[ ! -e "$copy" ] && ok "4. the truncated copy is removed" || fail "4. the truncated copy is still there"

# ---- 5. the cap -------------------------------------------------------------------------------
rm -rf "$C"
tk --index-cache-max=8M "$T/a.tar.xz" make-seekable
expect_rc 2 "5. a copy over half the cap"
expect_err_match 'larger than the 4194304 bytes allowed' "5. says why"
[ -z "$(find "$C" -name '*.zst' -o -name '.*')" ] && ok "5. nothing left behind" || fail "5. left: $(ls -a "$C")"

# ---- 6. pruned with its index --------------------------------------------------------------
rm -rf "$C"
tk "$T/a.tar.zst" make-seekable
copy=$(cat "$T/out")
idx=${copy%.seekable.zst}.idx
total=$(($(stat -c %s "$idx") + $(stat -c %s "$copy")))
tk --index-cache-max=$((total - 1)) "$T/b.tar" info
[ ! -e "$idx" ] && [ ! -e "$copy" ] && ok "6. the pruner removes the copy with its index (cap $((total - 1)))" ||
	fail "6. after pruning: $(ls "$C")"

# ---- 7. tarmount --------------------------------------------------------------------------
if fuse_ok; then
	rm -rf "$C"
	M=$T/mnt
	if tm_mount "7. first mount" "$T/a.tar.zst" "$M"; then
		for _ in $(seq 600); do
			[ -n "$(find "$C" -name '*.seekable.zst')" ] && break
			sleep 0.1
		done
		copy=$(find "$C" -name '*.seekable.zst')
		[ -n "$copy" ] && ok "7. the first mount makes the copy in the background" || fail "7. no copy after 60 s"
		"$PY" "$HERE/treecmp.py" --label "7. first mount" "$T/x" "$M" >"$T/cmp" 2>&1 &&
			ok "7. first mount equals the extraction" || { fail "7. first mount differs"; head -20 "$T/cmp"; }
		tm_umount "7. first mount" "$M"
	fi
	if [ -n "$copy" ] && tm_mount "7. remount" "$T/a.tar.zst" "$M"; then
		grep -q 'seek point' "$T/mount.err" && fail "7. remount warns of seeking: $(cat "$T/mount.err")" ||
			ok "7. remount uses the copy (no warning)"
		"$PY" "$HERE/treecmp.py" --label "7. remount" "$T/x" "$M" >"$T/cmp" 2>&1 &&
			ok "7. remount equals the extraction" || { fail "7. remount differs"; head -20 "$T/cmp"; }
		tm_umount "7. remount" "$M"
	fi
	if [ -n "$copy" ] && tm_mount "7. damaged" "$T/a.tar.zst" "$M"; then
		# Every frame damaged: whatever is read now comes from the stream.
		python3 - "$copy" <<'EOF'
import struct, sys
p = sys.argv[1]
data = bytearray(open(p, "rb").read())
n = struct.unpack("<I", data[-9:-5])[0]
entries = data[-9 - 12 * n:-9]
at = 40
for i in range(n):
    clen = struct.unpack("<I", entries[12 * i:12 * i + 4])[0]
    data[at + clen // 2] ^= 0x55
    at += clen
open(p, "r+b").write(data)
EOF
		cmp -s "$M/$member" "$T/x/$member" && ok "7. a damaged copy under a live mount: reads right" ||
			fail "7. a damaged copy under a live mount: reads wrong"
		[ ! -e "$copy" ] && ok "7. the daemon removed the damaged copy" || fail "7. the damaged copy is still there"
		"$PY" "$HERE/treecmp.py" --label "7. damaged" "$T/x" "$M" >"$T/cmp" 2>&1 &&
			ok "7. the whole mount still equals the extraction" || { fail "7. differs"; head -20 "$T/cmp"; }
		tm_umount "7. damaged" "$M"
	fi
	rm -rf "$C"
	if tm_mount "7. noseekable_copy" "$T/a.tar.zst" "$M" -o noseekable_copy; then
		cat "$M/$member" >/dev/null
		sleep 2
		[ -z "$(find "$C" -name '*.seekable.zst' -o -name '.*')" ] && ok "7. -o noseekable_copy makes none" ||
			fail "7. -o noseekable_copy: $(ls -a "$C")"
		tm_umount "7. noseekable_copy" "$M"
	fi
	rm -rf "$C"
	if tm_mount "7. unmount while copying" "$T/a.tar.xz" "$M"; then
		start=$(date +%s%N)
		tm_umount "7. unmount while copying" "$M"
		ms=$((($(date +%s%N) - start) / 1000000))
		[ -z "$(find "$C" -name '*.seekable.zst' -o -name '.*')" ] && ok "7. an unmount stops the copy, leaving nothing ($ms ms)" ||
			note "7. the copy was done before the unmount (a fast machine?): $(ls -a "$C")"
	fi
fi

finish
