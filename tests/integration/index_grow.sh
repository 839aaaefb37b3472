#!/bin/bash
# shellcheck disable=SC2015,SC2317 # ok and fail return 0; functions run from traps
# An archive that only grew since its index was saved gets that index extended, not
# rebuilt (tm_index_build_resume): only the members after the old end are read.  The
# oracle is GNU tar's extraction of the archive as it is after each change (compare.py), and
# a fresh build (--no-index) must show the same tree, entry for entry.
#   1. tar -r, round after round, in GNU and pax formats: new files, long and non-ASCII
#      names, a member appended again under an earlier name (the last wins), hard links to
#      earlier members, a directory that earlier rounds only
#      implied, a directory replacing a file: every round says "index: extended", equals
#      the extraction and the fresh build, and leaves one index file in the cache (the
#      earlier one is removed);
#   2. tar -A of another archive: extended, equal;
#   3. not extended (built anew, and still right): an archive rewritten with other members
#      at the front, one cut shorter than its old end, and a --index=PATH file that belongs
#      to another source;
#   3b. 40 extensions in a row leave an index no larger than a fresh one (give or take a
#      quarter);
#   4. tarmount (root, /dev/fuse; otherwise skipped with a note, a failure under CI) of a
#      grown archive equals its extraction.
if [ -z "${BASH_VERSION:-}" ]; then exec bash "$0" "$@"; fi
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/lib_mount.sh"
need_cmd tar python3 cmp timeout
need_root
need_tarkv

setup_tmp
umask 022
private_cache
HERE=$(cd "$(dirname "$0")" && pwd)
A=$T/g.tar

# info_index ARCHIVE: the "index:" line of tarkv info
info_index() { "$TARKV" -q "$@" info | sed -n 's/^index: //p'; }
# check WHAT ARCHIVE WANT: tarkv's index is WANT (extended, built), the tree equals GNU tar's
# extraction and a fresh build, and the cache holds one index file
check() {
	local what=$1 a=$2 want=$3 got
	got=$(info_index "$a")
	[ "$got" = "$want" ] && ok "$what: index $want" || fail "$what: index $got, want $want"
	rm -rf "$T/x" && mkdir "$T/x" && tar -xf "$a" -C "$T/x" --xattrs --xattrs-include='*' 2>"$T/tar.err" ||
		fail "$what: GNU tar -x: $(head -c 300 "$T/tar.err")"
	"$PY" "$HERE/compare.py" --ns --samples 3 "$TARKV" "$a" "$T/x" >"$T/cmp" 2>&1 &&
		ok "$what: equals GNU tar's extraction" || { fail "$what: differs from the extraction"; head -20 "$T/cmp"; }
	"$TARKV" -q "$a" ls -R -l --json >"$T/kept" && "$TARKV" -q --no-index "$a" ls -R -l --json >"$T/fresh" &&
		cmp -s "$T/kept" "$T/fresh" && ok "$what: equals a fresh build" ||
		{ fail "$what: differs from a fresh build"; diff "$T/kept" "$T/fresh" | head -10; }
	[ "$want" = extended ] || return 0
	local n
	n=$(find "$C" -name '*.idx' | wc -l)
	[ "$n" = 1 ] && ok "$what: the earlier index file is removed" || fail "$what: $n index files in the cache"
}

# ---- 1. tar -r, round after round -----------------------------------------------------------
mk() { mkdir -p "$(dirname "$T/src/$1")" && printf '%s\n' "${2:-$1}" >"$T/src/$1"; }
mkdir -p "$T/src"
mk d/a
mk d/sub/b
mk top
tar -C "$T/src" -cf "$A" d/a d/sub/b top || exit 2
check "1. initial" "$A" built
for fmt in gnu posix; do
	mk "$fmt/new1" "new in $fmt"
	long=$fmt/$(printf 'long%.0s' $(seq 40))/name-$(printf 'x%.0s' $(seq 120))
	mk "$long"
	mk "$fmt/ünïcødé"
	tar -C "$T/src" --format=$fmt -rf "$A" "$fmt/new1" "$long" "$fmt/ünïcødé" || exit 2
	check "1. $fmt: new files, long and non-ASCII names" "$A" extended
	mk d/a "d/a again, in $fmt"
	tar -C "$T/src" --format=$fmt -rf "$A" d/a || exit 2
	check "1. $fmt: a member appended again" "$A" extended
	ln -f "$T/src/top" "$T/src/$fmt/hardlink"
	tar -C "$T/src" --format=$fmt -rf "$A" top "$fmt/hardlink" || exit 2
	check "1. $fmt: a hard link to an earlier member" "$A" extended
	# d/sub was only implied by d/sub/b; now it is listed, with a mode of its own
	chmod 0700 "$T/src/d/sub"
	tar -C "$T/src" --format=$fmt --no-recursion -rf "$A" d/sub || exit 2
	chmod 0755 "$T/src/d/sub"
	check "1. $fmt: an implied directory listed" "$A" extended
done
# a directory where a file was (GNU tar does not put a file where a directory is)
rm "$T/src/top" && mkdir "$T/src/top" && mk top/inside
tar -C "$T/src" -rf "$A" top || exit 2
check "1. a directory replaces a file" "$A" extended

# ---- 2. tar -A --------------------------------------------------------------------------------
mkdir -p "$T/other/o" && echo other >"$T/other/o/f"
tar -C "$T/other" -cf "$T/other.tar" o || exit 2
tar -Af "$A" "$T/other.tar" || exit 2
check "2. tar -A" "$A" extended

# ---- 3. not extended ----------------------------------------------------------------------
cp "$A" "$T/saved.tar"
tar -C "$T/src" -cf "$T/front.tar" d/a && cat "$T/front.tar" "$T/saved.tar" >"$A" || exit 2
check "3. other members at the front" "$A" built
cp "$T/saved.tar" "$A"
info_index "$A" >/dev/null
truncate -s $(($(stat -c %s "$A") / 2 / 512 * 512)) "$A"
tk "$A" info
grep -qx 'index: built' "$T/out" && ok "3. cut shorter: built" || fail "3. cut shorter: $(grep index: "$T/out")"
cp "$T/saved.tar" "$A"
tk --index="$T/mine.idx" "$T/other.tar" info
tk --index="$T/mine.idx" "$A" info
grep -qx 'index: built' "$T/out" && ok "3. --index of another source: built" ||
	fail "3. --index of another source: $(grep index: "$T/out")"

# ---- 3b. an index extended again and again stays the size of a fresh one ----------------
# (each extension once copied every name again: 7,000 appends made a 172 MB index)
rm -rf "$C"
cp "$T/saved.tar" "$A"
info_index "$A" >/dev/null
for i in $(seq 40); do
	mk "grow/f$i" "round $i"
	tar -C "$T/src" -rf "$A" "grow/f$i" || exit 2
	info_index "$A" >/dev/null
done
grown=$(find "$C" -name '*.idx' -printf '%s\n' | head -n 1)
tk --index="$T/fresh.idx" "$A" info
fresh=$(stat -c %s "$T/fresh.idx")
[ -n "$grown" ] && [ "$grown" -le $((fresh + fresh / 4)) ] &&
	ok "3b. after 40 extensions the index is $grown bytes, a fresh one $fresh" ||
	fail "3b. after 40 extensions the index is ${grown:-missing} bytes, a fresh one $fresh"

# ---- 4. tarmount ------------------------------------------------------------------------------
if fuse_ok; then
	rm -rf "$C"
	cp "$T/saved.tar" "$A"
	info_index "$A" >/dev/null
	mk after/mount "appended before the mount"
	tar -C "$T/src" -rf "$A" after/mount || exit 2
	rm -rf "$T/x" && mkdir "$T/x" && tar -xf "$A" -C "$T/x" || exit 2
	if tm_mount "4. mount" "$A" "$T/mnt"; then
		"$PY" "$HERE/treecmp.py" --ns --label "4. mount" "$T/x" "$T/mnt" >"$T/cmp" 2>&1 &&
			ok "4. the mount of a grown archive equals its extraction" ||
			{ fail "4. the mount differs"; head -20 "$T/cmp"; }
		tm_umount "4. mount" "$T/mnt"
	fi
	n=$(find "$C" -name '*.idx' | wc -l)
	[ "$n" = 1 ] && ok "4. one index file in the cache" || fail "4. $n index files in the cache"
fi

finish
