#!/bin/bash
# shellcheck disable=SC2015,SC2317 # ok and fail return 0; functions run from traps
# The persisted index, through tarkv and tarmount.
#
# With a private XDG_CACHE_HOME (the one automake passes is shared by every test):
#   1. tarkv: the first run builds and saves exactly one $XDG_CACHE_HOME/tarmount/*.idx
#      ("index: built"), the next loads it ("index: loaded") without rewriting it; ls -lR
#      --json, find --json, cat and digest give the same bytes built, loaded and with
#      --no-index (digests also equal sha256sum of the source files);
#   2. --no-index reads and writes nothing (not even with --index); --index PATH (absolute
#      or relative) writes PATH instead of the cache and reuses it;
#   3. the archive changed in place (tar -rf, touch -d, new bytes of the same size written
#      over it) or replaced (mv): "index: built" again and the output is the new archive's;
#   4. a damaged index file (bytes flipped in the header, the data, the page table and the
#      middle of each section, truncated, extended, random bytes, empty): either refused
#      when loaded (rebuilt, exit 0, right output), or loaded and the damage found where it
#      is read: exit 2, "damaged" on stderr, what was printed a prefix of the right output,
#      the file removed, and the next run rebuilds it (exit 0, right output); in the end
#      replaced by a valid file (byte-identical to the first save; the next run loads it);
#   5. a cache that cannot be written (XDG_CACHE_HOME a file, its tarmount/ a file, a path
#      under /proc, a read-only directory when not root): a warning on stderr (none with
#      -q), exit 0, right output;
#   6. a damaged archive (bad checksum in a later header) indexed once: the loaded run still
#      exits 2 and says the archive is damaged, with the same output; a truncated archive
#      (no end marker) exits 0 both times with the same output;
#   7. tarmount (root, /dev/fuse, fusermount3; otherwise skipped with a note, a failure
#      under CI=true): the first mount writes the index (in the background: waited for, at
#      most 10 s), the second loads it (the file keeps its inode and bytes: a rebuild
#      would rename a new file over it; a load only sets the mtime of a file in the cache), tarkv then loads the same file; -o noindex writes
#      nothing; -o index=PATH writes PATH and reuses it; the mounted tree (find -printf
#      '%p %y %m %s %T@', sorted) is the same in every case; a damaged archive's second
#      mount warns that it is damaged.
#   8. one directory of 600,000 names and one of them given again later (the index builder's
#      table of a directory's names grown past the size it maps in huge pages): tarkv ls
#      of it is GNU tar's listing of it, unique and in byte order, and the later member is
#      the one served (its mode).
# Run by `sh script`: go on under bash.
if [ -z "${BASH_VERSION:-}" ]; then exec bash "$0" "$@"; fi
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"

. "$(dirname "$0")/lib_mount.sh"
need_cmd tar timeout dd od cmp find sort sha256sum stat truncate head
need_tarkv

make_tmp
trap 'mount_cleanup; cleanup' EXIT
umask 022
export XDG_CACHE_HOME=$T/cache

# ---- helpers -------------------------------------------------------------------------------
# idx_in DIR: the *.idx files in DIR/tarmount, one per line
idx_in() { find "$1/tarmount" -maxdepth 1 -name '*.idx' 2>/dev/null | sort; }
n_idx() { idx_in "$1" | grep -c .; }
# entries_in DIR: everything in DIR/tarmount, dot files (temporary files) included
entries_in() { find "$1/tarmount" -mindepth 1 -maxdepth 1 -printf '%f\n' 2>/dev/null | sort | tr '\n' ' '; }
# fileid FILE: inode, size, mtime to the nanosecond and sha256: changes if the file is
# rewritten or replaced (or, for a file in the cache, used: a load sets its mtime)
fileid() { echo "$(stat -c '%i %s %.9Y' "$1") $(sha256sum <"$1" | cut -c1-64)"; }
# cacheid FILE: fileid without the mtime, for files in the cache (a rewrite is a new file
# renamed over the old one: a new inode)
cacheid() { echo "$(stat -c '%i %s' "$1") $(sha256sum <"$1" | cut -c1-64)"; }
# expect_index WANT WHAT: the last run was `info` and said "index: WANT"
expect_index() {
	local got
	got=$(sed -n 's/^index: //p' "$T/out")
	if [ "$got" = "$1" ]; then ok "$2: index: $1"; else fail "$2: want \"index: $1\", got \"$got\" $(last)"; fi
}
# same FILE1 FILE2 WHAT
same() {
	if cmp -s "$1" "$2"; then
		ok "$3"
	else
		fail "$3: differ"
		diff "$1" "$2" | head -10 | sed 's/^/    /'
	fi
}
# flip_bytes FILE OFFSET COUNT: invert COUNT bytes in place
flip_bytes() {
	local b
	for b in $(od -An -tu1 -v -j "$2" -N "$3" "$1"); do
		# shellcheck disable=SC2059
		printf "\\$(printf %03o $((255 - b)))"
	done | dd of="$1" bs=1 seek="$2" conv=notrunc status=none
}
# outputs ARCHIVE PREFIX [TARKV OPTIONS...]: the commands whose output must not depend on
# where the index came from, into PREFIX.ls, .find, .cat, .digest (of the members in
# $FILES); each must exit 0, stderr appended to PREFIX.err
FILES="a.txt d/big.bin d/e/f.txt hard"
outputs() {
	local a=$1 p=$2 c
	shift 2
	for c in "ls -lR --json" "find --json" "cat $FILES" "digest $FILES"; do
		# shellcheck disable=SC2086
		tk "$@" "$a" $c
		[ "$RC" = 0 ] || fail "$(basename "$p"): tarkv $* $c: want exit 0 $(last)"
		cp "$T/out" "$p.${c%% *}"
		cat "$T/err" >>"$p.err"
	done
}
# same_outputs P1 P2 WHAT
same_outputs() {
	local k
	for k in ls find cat digest; do same "$1.$k" "$2.$k" "$3: $k output"; done
}

# ---- the archive ---------------------------------------------------------------------------
S=$T/src
LONG=$(printf 'long%.0s' $(seq 30))
mkdir -p "$S/d/e" "$S/empty" "$S/$LONG"
printf 'hello\n' >"$S/a.txt"
head -c 70000 /dev/urandom >"$S/d/big.bin"
printf 'deep\n' >"$S/d/e/f.txt"
printf 'in a long directory\n' >"$S/$LONG/x"
ln -s ../a.txt "$S/d/link"
ln "$S/a.txt" "$S/hard"
truncate -s 1M "$S/sparse"
printf 'x' | dd of="$S/sparse" bs=1 seek=500000 conv=notrunc status=none
find "$S" -exec touch -h -d @1600000000 {} +
A=$T/a.tar
tar --format=gnu --sparse -cf "$A" -C "$S" . || { fail "tar -c"; finish; }
# shellcheck disable=SC2086 # FILES is a list
(cd "$S" && sha256sum $FILES) >"$T/want.digest"

# ---- 1. built, loaded, no index ------------------------------------------------------------
tk "$A" info
expect_rc 0 "first run"
expect_index built "first run"
if [ "$(n_idx "$XDG_CACHE_HOME")" = 1 ] && [ "$(entries_in "$XDG_CACHE_HOME")" = "$(basename "$(idx_in "$XDG_CACHE_HOME")") " ]; then
	ok "first run: exactly one file in \$XDG_CACHE_HOME/tarmount, an .idx"
else
	fail "first run: \$XDG_CACHE_HOME/tarmount holds: $(entries_in "$XDG_CACHE_HOME")"
fi
IDX=$(idx_in "$XDG_CACHE_HOME" | head -1)
[ -n "$IDX" ] || { fail "first run: no index file"; finish; }
if [[ $(basename "$IDX") =~ ^[0-9a-f]{64}\.idx$ ]]; then
	ok "index file named by 64 hex digits"
else
	fail "index file name: $(basename "$IDX")"
fi
cp "$IDX" "$T/good.idx"
ID1=$(cacheid "$IDX")
tk "$A" info
expect_rc 0 "second run"
expect_index loaded "second run"
[ "$(cacheid "$IDX")" = "$ID1" ] && ok "second run: index file not rewritten" ||
	fail "second run: the index file changed"
[ "$(n_idx "$XDG_CACHE_HOME")" = 1 ] && ok "second run: still one index file" ||
	fail "second run: $(entries_in "$XDG_CACHE_HOME")"

rm -rf "$XDG_CACHE_HOME"
: >"$T/built.err"
outputs "$A" "$T/built"            # the first command builds, the others load
rm -rf "$XDG_CACHE_HOME"
tk "$A" ls -lR --json              # built alone
cp "$T/out" "$T/built-alone.ls"
: >"$T/loaded.err"
outputs "$A" "$T/loaded"           # all loaded
: >"$T/noidx.err"
outputs "$A" "$T/noidx" --no-index
same "$T/built-alone.ls" "$T/loaded.ls" "ls -lR --json: built = loaded"
same_outputs "$T/built" "$T/loaded" "built vs loaded"
same_outputs "$T/noidx" "$T/loaded" "--no-index vs loaded"
same "$T/want.digest" "$T/loaded.digest" "digest (loaded index) = sha256sum"
for e in built loaded noidx; do
	[ -s "$T/$e.err" ] && fail "$e: stderr not empty: $(head -c 300 "$T/$e.err")" || ok "$e: stderr empty"
done
grep -q '"sparse":true' "$T/loaded.ls" && grep -q "$LONG" "$T/loaded.ls" &&
	ok "the listing has the sparse file and the long name" ||
	fail "the listing lacks the sparse file or the long name"
REF=$T/noidx # what every later run of $A must print

# ---- 2. --no-index, --index PATH -----------------------------------------------------------
XDG_CACHE_HOME=$T/c-noindex tk --no-index "$A" info
expect_rc 0 "--no-index"
expect_index "not saved" "--no-index"
[ -e "$T/c-noindex" ] && fail "--no-index: $T/c-noindex created" || ok "--no-index: nothing written"
mkdir -p "$T/c-noindex2/tarmount"
cp "$T/good.idx" "$T/c-noindex2/tarmount/$(basename "$IDX")"
XDG_CACHE_HOME=$T/c-noindex2 tk --no-index "$A" info
expect_index "not saved" "--no-index with a valid index in the cache"
XDG_CACHE_HOME=$T/c-noindex tk --no-index --index "$T/never/x.idx" "$A" info
expect_rc 0 "--no-index --index PATH"
[ -e "$T/never" ] || [ -e "$T/c-noindex" ] && fail "--no-index --index PATH: something written" ||
	ok "--no-index --index PATH: nothing written"

P=$T/explicit/sub/my.idx
XDG_CACHE_HOME=$T/c-explicit tk --index "$P" "$A" info
expect_rc 0 "--index PATH, first"
expect_index built "--index PATH, first"
[ -f "$P" ] && ok "--index PATH: written (parent directories made)" || fail "--index PATH: $P not written"
[ -e "$T/c-explicit" ] && fail "--index PATH: the cache was written too" || ok "--index PATH: cache untouched"
cmp -s "$P" "$T/good.idx" && ok "--index PATH: the same bytes as the cached index" ||
	fail "--index PATH: differs from the cached index of the same archive"
PID1=$(fileid "$P")
XDG_CACHE_HOME=$T/c-explicit tk --index "$P" "$A" info
expect_index loaded "--index PATH, second"
[ "$(fileid "$P")" = "$PID1" ] && ok "--index PATH, second: not rewritten" || fail "--index PATH, second: rewritten"
: >"$T/explicit.err"
XDG_CACHE_HOME=$T/c-explicit outputs "$A" "$T/explicit" --index "$P"
same_outputs "$REF" "$T/explicit" "--index PATH"
(cd "$T" && timeout 60 "$TARKV" --index rel/r.idx "$A" info >"$T/out" 2>"$T/err")
RC=$?
expect_rc 0 "--index relative path"
expect_index built "--index relative path"
[ -f "$T/rel/r.idx" ] && ok "--index relative path: written relative to the current directory" ||
	fail "--index relative path: $T/rel/r.idx not written"
(cd "$T" && timeout 60 "$TARKV" --index rel/r.idx "$A" info >"$T/out" 2>"$T/err")
expect_index loaded "--index relative path, second"

# ---- 3. the archive changed ----------------------------------------------------------------
W=$T/w.tar
cp "$A" "$W"
export XDG_CACHE_HOME=$T/c-change
tk "$W" info
expect_index built "changing archive, first"
tk "$W" info
expect_index loaded "changing archive, second"
INO=$(stat -c %i "$W")

# check_changed WHAT HOW NEWFILE CONTENT: the archive changed: its index built anew or (an
# archive that only grew, or was touched) extended (HOW), the new content shown, output
# equal to --no-index's, then loaded
check_changed() {
	local what=$1 how=$2
	shift
	tk "$W" info
	expect_rc 0 "$what"
	expect_index "$how" "$what"
	tk "$W" cat "$2"
	expect_out "$3" "$what: cat $2"
	: >"$T/ch-idx.err"
	: >"$T/ch-noidx.err"
	outputs "$W" "$T/ch-idx"
	outputs "$W" "$T/ch-noidx" --no-index
	same_outputs "$T/ch-noidx" "$T/ch-idx" "$what"
	tk "$W" info
	expect_index loaded "$what, then"
}
printf 'appended\n' >"$T/new1"
tar --format=gnu -rf "$W" -C "$T" new1 || fail "tar -rf"
[ "$(stat -c %i "$W")" = "$INO" ] && ok "tar -rf rewrote the archive in place" || note "tar -rf made a new file"
check_changed "after tar -rf" extended new1 appended
touch -d @1700000000 "$W"
check_changed "after touch -d" extended new1 appended
# other bytes of the same size written over it (same inode, same size, new mtime)
mkdir -p "$T/s2"
printf 'HELLO\n' >"$T/s2/a.txt"
printf 'APPENDED\n' >"$T/s2/new1"
cp "$W" "$T/w-before"
SZ=$(stat -c %s "$W")
tar --format=gnu -cf "$T/w2.tar" -C "$T/s2" a.txt new1
truncate -s "$SZ" "$T/w2.tar"
dd if="$T/w2.tar" of="$W" conv=notrunc status=none
[ "$(stat -c %i.%s "$W")" = "$INO.$SZ" ] && ok "overwritten in place, same size" ||
	fail "overwriting in place changed the inode or the size"
FILES="a.txt new1" check_changed "after new bytes of the same size" built new1 APPENDED
tk "$W" cat a.txt
expect_out HELLO "after new bytes of the same size: the old member's new content"
# replaced by another file
cp "$A" "$T/w3.tar"
mv "$T/w3.tar" "$W"
tk "$W" info
expect_index built "after mv of another archive over it"
tk "$W" exists new1
expect_rc 1 "after mv: the old archive's member is gone"
tk --no-index "$W" ls -lR --json
cp "$T/out" "$T/w-noidx.ls"
tk "$W" ls -lR --json
expect_out_file "$T/w-noidx.ls" "after mv: listing"
sed "s|$W|$A|" "$T/w-noidx.ls" >"$T/w-as-a.ls"
same "$REF.ls" "$T/w-as-a.ls" "after mv: the listing is the original archive's"

# ---- 4. damaged index files ----------------------------------------------------------------
SIZE=$(stat -c %s "$T/good.idx")
# section_middle FILE NAME: the offset of the middle of a section of an index file (format
# version 4: the header's counts and offsets, little-endian; the page table follows it).
section_middle() {
	python3 - "$1" "$2" <<'PY'
import struct, sys
h = open(sys.argv[1], "rb").read(272)
ni, nd, nc = struct.unpack_from("<I", h, 108)[0], *struct.unpack_from("<II", h, 112)
slen, alen = struct.unpack_from("<QQ", h, 120)
off = dict(zip(("inodes", "dentries", "children", "strings", "aux"),
               struct.unpack_from("<5Q", h, 136)))
off["parents"] = struct.unpack_from("<Q", h, 224)[0]
size = dict(inodes=ni * 64, dentries=nd * 8, children=nc * 4, strings=slen, aux=alen,
            parents=ni * 8, table=struct.unpack_from("<Q", h, 248)[0] * 8)
off["table"] = 272
print(off[sys.argv[2]] + size[sys.argv[2]] // 2)
PY
}

for how in header-flip data-flip last-byte inodes dentries children strings aux parents table \
	truncate-half truncate-1 extend random empty; do
	export XDG_CACHE_HOME=$T/c-$how
	tk "$A" info
	expect_index built "$how: first"
	F=$(idx_in "$XDG_CACHE_HOME" | head -1)
	[ -n "$F" ] || { fail "$how: no index file"; continue; }
	case $how in
	header-flip) flip_bytes "$F" 100 4 ;;
	data-flip) flip_bytes "$F" $((SIZE / 2)) 16 ;;
	last-byte) flip_bytes "$F" $((SIZE - 1)) 1 ;;
	inodes | dentries | children | strings | aux | parents | table)
		flip_bytes "$F" "$(section_middle "$F" $how)" 1 ;;
	truncate-half) truncate -s $((SIZE / 2)) "$F" ;;
	truncate-1) truncate -s $((SIZE - 1)) "$F" ;;
	extend) printf 'x' >>"$F" ;;
	random) head -c "$SIZE" /dev/urandom >"$F" ;;
	empty) : >"$F" ;;
	esac
	cmp -s "$F" "$T/good.idx" && { fail "$how: the file was not changed"; continue; }
	tk "$A" ls -lR --json
	if [ "$RC" != 0 ]; then
		expect_rc 2 "$how: damage found as it was read"
		expect_err_match 'index .* damaged' "$how: said"
		head -c "$(stat -c %s "$T/out")" "$REF.ls" | cmp -s - "$T/out" &&
			ok "$how: what was printed is right" || fail "$how: wrong output $(last)"
		[ -e "$F" ] && fail "$how: the damaged file was kept" || ok "$how: the damaged file removed"
		tk "$A" ls -lR --json
	fi
	expect_rc 0 "$how: rebuilt"
	expect_out_file "$REF.ls" "$how: rebuilt"
	cmp -s "$F" "$T/good.idx" && ok "$how: the index file was replaced by a valid one" ||
		fail "$how: the index file was not replaced by the one a first run writes"
	[ "$(entries_in "$XDG_CACHE_HOME")" = "$(basename "$F") " ] && ok "$how: no other file left" ||
		fail "$how: the cache holds $(entries_in "$XDG_CACHE_HOME")"
	tk "$A" info
	expect_index loaded "$how: then"
	tk "$A" cat d/big.bin
	cmp -s "$T/out" "$S/d/big.bin" && ok "$how: then cat d/big.bin = the source file" ||
		fail "$how: then cat d/big.bin $(last)"
done

# The same flips in an index of many pages, where loading checks only a few of them: a run
# that meets the damage fails with what it printed right (GNU tar's listing is the oracle),
# the next one rebuilds.
mkdir -p "$T/many"
for d in 0 1 2 3 4 5 6 7 8 9; do
	mkdir -p "$T/many/dir$d"
	for f in $(seq 1 300); do : >"$T/many/dir$d/file-with-a-long-name-$f"; done
done
M=$T/many.tar
tar -cf "$M" -C "$T/many" . || fail "tar -c many"
tar -tf "$M" | sed -e 's|^\./||' -e 's|/$||' -e '/^$/d' >"$T/many.oracle"
export XDG_CACHE_HOME=$T/c-many
tk "$M" ls -R
expect_rc 0 "many: first"
sort "$T/out" | cmp -s - <(sort "$T/many.oracle") && ok "many: ls -R = tar -tf" ||
	fail "many: ls -R differs from tar -tf"
cp "$T/out" "$T/many.ls"
G=$(idx_in "$XDG_CACHE_HOME" | head -1)
cp "$G" "$T/many-good.idx"
for how in inodes dentries children strings parents; do
	cp "$T/many-good.idx" "$G"
	flip_bytes "$G" "$(section_middle "$G" $how)" 1
	tk "$M" ls -R
	if [ "$RC" = 2 ] && grep -q 'index .* damaged' "$T/err"; then
		ok "many, $how: damage found as it was read"
		head -c "$(stat -c %s "$T/out")" "$T/many.ls" | cmp -s - "$T/out" &&
			ok "many, $how: what was printed is right" || fail "many, $how: wrong output"
		[ -e "$G" ] && fail "many, $how: the damaged file was kept" ||
			ok "many, $how: the damaged file removed"
		tk "$M" ls -R
	else # loading met it (the fingerprint's samples): rebuilt
		expect_rc 0 "many, $how: refused when loaded"
		expect_out_file "$T/many.ls" "many, $how: refused when loaded"
	fi
	expect_rc 0 "many, $how: then"
	expect_out_file "$T/many.ls" "many, $how: then"
done

# ---- 5. a cache that cannot be written -----------------------------------------------------
# check_unwritable WHAT [TARKV OPTIONS...]: with XDG_CACHE_HOME as set by the caller
check_unwritable() {
	local what=$1
	shift
	tk "$@" "$A" info
	expect_rc 0 "$what"
	expect_index built "$what"
	expect_err_match 'warning: .*index not saved' "$what"
	tk "$@" "$A" ls -lR --json
	expect_rc 0 "$what: ls"
	expect_out_file "$REF.ls" "$what: ls"
	tk -q "$@" "$A" ls -lR --json
	expect_rc 0 "$what: ls -q"
	expect_err_empty "$what: -q"
}
echo "a file" >"$T/plainfile"
XDG_CACHE_HOME=$T/plainfile check_unwritable "XDG_CACHE_HOME is a file"
mkdir -p "$T/c-blocked"
echo "a file" >"$T/c-blocked/tarmount"
XDG_CACHE_HOME=$T/c-blocked check_unwritable "XDG_CACHE_HOME/tarmount is a file"
XDG_CACHE_HOME=$T/cache check_unwritable "--index under /proc" --index /proc/nonexistent/x.idx
if [ "$(id -u)" != 0 ]; then
	mkdir -p "$T/c-ro"
	chmod 555 "$T/c-ro"
	XDG_CACHE_HOME=$T/c-ro check_unwritable "read-only XDG_CACHE_HOME"
	chmod 755 "$T/c-ro"
else
	note "read-only cache directory not tested: root writes anyway"
fi

# ---- 6. damaged and truncated archives -----------------------------------------------------
mkdir -p "$T/dmg"
for i in 1 2 3 4 5; do printf 'member %s\n' "$i" >"$T/dmg/f$i"; done
D=$T/damaged.tar
tar --format=gnu -cf "$D" -C "$T/dmg" f1 f2 f3 f4 f5 || fail "tar -c damaged"
# each member: a header and one data block; f3's header is at 2048, its checksum at +148
[ "$(dd if="$D" bs=1 skip=2048 count=2 status=none)" = f3 ] || fail "f3's header not at byte 2048"
flip_bytes "$D" $((2048 + 150)) 1
export XDG_CACHE_HOME=$T/c-damaged
tk "$D" ls
expect_rc 2 "damaged archive, first run"
cp "$T/out" "$T/dmg1.out"
expect_err_match '2048' "damaged archive, first run: the damage's offset"
[ "$(n_idx "$XDG_CACHE_HOME")" = 1 ] && ok "damaged archive: index saved" || fail "damaged archive: no index saved"
tk "$D" info
expect_rc 2 "damaged archive, second run"
expect_index loaded "damaged archive, second run"
grep -q '^errors: [1-9]' "$T/out" && ok "damaged archive, loaded: errors counted" || fail "damaged archive, loaded: $(last)"
expect_err_match 'damaged' "damaged archive, loaded"
tk "$D" ls
expect_rc 2 "damaged archive, loaded ls"
expect_out_file "$T/dmg1.out" "damaged archive, loaded ls"
expect_err_match 'damaged' "damaged archive, loaded ls"
tk --no-index "$D" ls
expect_rc 2 "damaged archive, --no-index"
expect_out_file "$T/dmg1.out" "damaged archive, --no-index"

TR=$T/truncated.tar
tar --format=gnu -cf "$T/ok5.tar" -C "$T/dmg" f1 f2 f3 f4 f5
head -c 5120 "$T/ok5.tar" >"$TR" # five whole members, no end marker
export XDG_CACHE_HOME=$T/c-truncated
tk "$TR" ls
expect_rc 0 "truncated archive, first run"
cp "$T/out" "$T/tr1.out"
expect_err_match 'warning' "truncated archive, first run"
tk "$TR" ls
expect_rc 0 "truncated archive, loaded"
expect_out_file "$T/tr1.out" "truncated archive, loaded"
tk "$TR" info
expect_index loaded "truncated archive, loaded"
grep -q '^truncated: yes' "$T/out" && ok "truncated archive, loaded: truncated: yes" ||
	fail "truncated archive, loaded: $(last)"

# ---- 7. tarmount ---------------------------------------------------------------------------
# tree DIR OUT: the mounted tree, sorted
tree() { (cd "$1" && timeout 60 find . -printf '%p %y %m %s %T@\n' | LC_ALL=C sort) >"$2"; }
# wait_for FILE: up to 10 s for FILE to exist
wait_for() {
	local i
	for i in $(seq 100); do [ -e "$1" ] && return 0; sleep 0.1; done
	return 1
}
# wait_idx DIR: up to 10 s for an index file under DIR/tarmount
wait_idx() {
	local i
	for i in $(seq 100); do [ "$(n_idx "$1")" -ge 1 ] && return 0; sleep 0.1; done
	return 1
}

if fuse_ok; then
	M=$T/mnt
	export XDG_CACHE_HOME=$T/c-mount
	if tm_mount "first mount" "$A" "$M"; then
		tree "$M" "$T/tree1"
		[ -s "$T/tree1" ] && ok "first mount: tree listed" || fail "first mount: empty tree"
		wait_idx "$XDG_CACHE_HOME" && ok "first mount: index written" ||
			fail "first mount: no index file after 10 s: $(entries_in "$XDG_CACHE_HOME")"
		tm_umount "first mount" "$M"
	fi
	MF=$(idx_in "$XDG_CACHE_HOME" | head -1)
	if [ -n "$MF" ]; then
		[ "$(entries_in "$XDG_CACHE_HOME")" = "$(basename "$MF") " ] &&
			ok "first mount: exactly one file in the cache" ||
			fail "first mount: the cache holds $(entries_in "$XDG_CACHE_HOME")"
		cmp -s "$MF" "$T/good.idx" && ok "first mount: the same index file as tarkv's" ||
			fail "first mount: the index file differs from tarkv's"
		MID=$(cacheid "$MF")
		if tm_mount "second mount" "$A" "$M"; then
			tree "$M" "$T/tree2"
			sleep 0.5 # a (wrong) background save would have time to land
			tm_umount "second mount" "$M"
			same "$T/tree1" "$T/tree2" "second mount: the same tree"
			[ "$(cacheid "$MF")" = "$MID" ] && ok "second mount: index loaded (file untouched)" ||
				fail "second mount: the index file was rewritten"
			[ "$(n_idx "$XDG_CACHE_HOME")" = 1 ] && ok "second mount: still one index file" ||
				fail "second mount: $(entries_in "$XDG_CACHE_HOME")"
		fi
		tk "$A" info
		expect_index loaded "tarkv after tarmount"
	fi

	export XDG_CACHE_HOME=$T/c-mount-noindex
	if tm_mount "-o noindex" "$A" "$M" -o noindex; then
		tree "$M" "$T/tree3"
		sleep 0.5
		tm_umount "-o noindex" "$M"
		same "$T/tree1" "$T/tree3" "-o noindex: the same tree"
		[ -e "$XDG_CACHE_HOME" ] && fail "-o noindex: wrote $(entries_in "$XDG_CACHE_HOME")" ||
			ok "-o noindex: nothing written"
	fi

	export XDG_CACHE_HOME=$T/c-mount-path
	MP=$T/mount-index/sub/m.idx
	if tm_mount "-o index=PATH" "$A" "$M" -o index="$MP"; then
		tree "$M" "$T/tree4"
		wait_for "$MP" && ok "-o index=PATH: written" || fail "-o index=PATH: $MP not written after 10 s"
		tm_umount "-o index=PATH" "$M"
		same "$T/tree1" "$T/tree4" "-o index=PATH: the same tree"
		[ -e "$XDG_CACHE_HOME" ] && fail "-o index=PATH: the cache was written too" ||
			ok "-o index=PATH: cache untouched"
	fi
	if [ -f "$MP" ]; then
		MID=$(fileid "$MP")
		if tm_mount "-o index=PATH, second" "$A" "$M" -o index="$MP"; then
			tree "$M" "$T/tree5"
			sleep 0.5
			tm_umount "-o index=PATH, second" "$M"
			same "$T/tree1" "$T/tree5" "-o index=PATH, second: the same tree"
			[ "$(fileid "$MP")" = "$MID" ] && ok "-o index=PATH, second: loaded (file untouched)" ||
				fail "-o index=PATH, second: the index file was rewritten"
		fi
	fi

	export XDG_CACHE_HOME=$T/c-mount-damaged
	if tm_mount "damaged archive, first mount" "$D" "$M"; then
		grep -q '2048' "$T/mount.err" && ok "damaged archive, first mount: the damage reported" ||
			fail "damaged archive, first mount: stderr: $(head -c 300 "$T/mount.err")"
		tree "$M" "$T/dtree1"
		wait_idx "$XDG_CACHE_HOME" || fail "damaged archive, first mount: no index after 10 s"
		tm_umount "damaged archive, first mount" "$M"
		if tm_mount "damaged archive, second mount" "$D" "$M"; then
			grep -q 'damaged' "$T/mount.err" && ok "damaged archive, second mount: says it is damaged" ||
				fail "damaged archive, second mount: stderr: $(head -c 300 "$T/mount.err")"
			tree "$M" "$T/dtree2"
			tm_umount "damaged archive, second mount" "$M"
			same "$T/dtree1" "$T/dtree2" "damaged archive, second mount: the same tree"
		fi
	fi
fi

# 8. A large directory, and a name given twice.
python3 - "$top_srcdir/tests/bench" "$T/flat.tar" <<'PY'
import sys
sys.path.insert(0, sys.argv[1])
from mkmany import header
with open(sys.argv[2], "wb") as f:
    f.write(header(b"d/", b"5", 0o755))
    f.write(b"".join(header(b"d/f%07d" % i, b"0", 0o644) for i in range(600000)))
    f.write(header(b"d/f0000007", b"0", 0o600))
    f.write(bytes(1024))
PY
tar -tf "$T/flat.tar" | sed -n 's|^d/\(.\)|\1|p' | LC_ALL=C sort -u >"$T/flat.want"
timeout 120 "$TARKV" -q --no-index "$T/flat.tar" ls d >"$T/flat.got" 2>"$T/err" &&
	cmp -s "$T/flat.want" "$T/flat.got" &&
	ok "600,000 names in one directory: tarkv ls is tar -tf's unique names ($(wc -l <"$T/flat.got"))" ||
	fail "600,000 names in one directory: tarkv ls differs from tar -tf ($(wc -l <"$T/flat.got") lines; $(head -c 200 "$T/err"))"
mode=$(timeout 60 "$TARKV" -q --no-index "$T/flat.tar" stat d/f0000007 | sed -n 's/^mode: \([0-7]*\).*/\1/p')
[ "$mode" = 0600 ] && ok "a name given twice: the later member wins (mode 0600)" ||
	fail "a name given twice: mode '$mode', not the later member's 0600"
rm -f "$T/flat.tar"

finish
