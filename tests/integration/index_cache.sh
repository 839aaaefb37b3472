#!/bin/bash
# shellcheck disable=SC2015,SC2317 # ok and fail return 0; functions run from traps
# The index cache's cap, through tarkv and tarmount.
#
# With a private XDG_CACHE_HOME and archives whose index files all have the same size S:
#   1. without a cap given (and the default far above S), every index stays;
#   2. LRU: with --index-cache-max=3S, saving a fourth index removes the least recently
#      used, a load counting as a use (its mtime is set);
#   3. an index whose source was removed goes first, even when it is the most recently used;
#   4. a tiny cap (1K) leaves only the index just saved; stale temporary files (".ID.XXXXXX"
#      older than an hour) go, a fresh one stays, foreign files stay (other names, an
#      "ID.idx" without the magic, a symlink);
#   5. TARMOUNT_INDEX_CACHE_MAX is the cap when no option is given; the option wins over it
#      (0: no cap); a bad value in either is refused (exit 2) with its name in the message;
#   6. --index=PATH, even inside the cache directory, prunes nothing;
#   7. tarmount (root, /dev/fuse, fusermount3; otherwise skipped with a note, a failure
#      under CI=true): with -o index_cache_max=1K the live mount's index survives every later
#      save (tarkv runs with a 1K cap, a second mount with the cap from the environment)
#      while the others are pruned, and the mount still reads; once unmounted, the next save
#      prunes it; a mount that loaded its index from the cache holds it as well; a bad
#      -o index_cache_max= mounts nothing.
# Run by `sh script`: go on under bash.
if [ -z "${BASH_VERSION:-}" ]; then exec bash "$0" "$@"; fi
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"

. "$(dirname "$0")/lib_mount.sh"
need_cmd tar timeout find sort comm stat touch
need_tarkv

setup_tmp
umask 022
private_cache

# Archives a1.tar ... a9.tar of the same shape: their index files have the same size.
for i in 1 2 3 4 5 6 7 8 9; do
	mkdir -p "$T/src$i/d"
	for j in 1 2 3 4 5; do echo "archive $i file $j" >"$T/src$i/d/f$j"; done
	tar -C "$T/src$i" -cf "$T/a$i.tar" d || exit 2
done

# ---- helpers -------------------------------------------------------------------------------
# idx_list: the index files of our archives in the cache (not the foreign ones made in 4.,
# whose names start with $ID0's digits, nor --index files)
ID0=0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef
idx_list() {
	find "$C" -maxdepth 1 -name '*.idx' -printf '%f\n' 2>/dev/null |
		grep -E '^[0-9a-f]{64}\.idx$' | grep -v "^${ID0%????}" | sort
}
declare -A IDX # archive number -> its index file's name, learnt from its first save
# index N [TARKV OPTIONS...]: tarkv on aN, remembering the index file a first save makes
index() {
	local n=$1 before new
	shift
	before=$(idx_list)
	tk "$@" "$T/a$n.tar" info
	expect_rc 0 "tarkv a$n $*"
	new=$(comm -13 <(echo "$before") <(idx_list) | head -1)
	[ -n "$new" ] && IDX[$n]=$new
}
has() { [ -n "${IDX[$1]:-}" ] && [ -f "$C/${IDX[$1]}" ]; }
# expect_left WHAT N...: exactly the indexes of these archives are in the cache
expect_left() {
	local what=$1 n want=() got
	shift
	for n in "$@"; do want+=("${IDX[$n]:-?a$n}"); done
	got=$(idx_list | tr '\n' ' ')
	want=$(printf '%s\n' "${want[@]}" | sort | tr '\n' ' ')
	if [ "$got" = "$want" ]; then
		ok "$what: the cache holds a$(echo "$@" | sed 's/ /, a/g')"
	else
		local names=
		for n in "${!IDX[@]}"; do has "$n" && names="$names a$n"; done
		fail "$what: the cache holds${names:- nothing known} ($(idx_list | wc -l) files), want a$(echo "$@" | sed 's/ /, a/g')"
	fi
}
# used N SECONDS_AGO: set the last use of aN's index
used() { [ -n "${IDX[$1]:-}" ] && touch -d "@$(($(date +%s) - $2))" "$C/${IDX[$1]}"; }
reset_cache() { rm -rf "$XDG_CACHE_HOME"; IDX=(); }

# ---- 1. the default keeps them all ---------------------------------------------------------
index 1; index 2; index 3
expect_rc 0 "default cap"
expect_left "default cap" 1 2 3
S=$(stat -c %s "$C/${IDX[1]}")
same_size=1
for n in 2 3; do [ "$(stat -c %s "$C/${IDX[$n]}")" = "$S" ] || same_size=; done
[ -n "$same_size" ] && ok "index files of the same size ($S bytes)" || fail "index files differ in size"

# ---- 2. least recently used first; a load is a use -----------------------------------------
used 1 300; used 2 200; used 3 100
index 1 --index-cache-max=$((3 * S))
grep -qx 'index: loaded' "$T/out" && ok "a1 loaded" || fail "a1 not loaded $(last)"
expect_left "a load prunes nothing" 1 2 3
[ "$(stat -c %Y "$C/${IDX[1]}")" -ge $(($(date +%s) - 60)) ] && ok "a load sets the mtime" ||
	fail "a load left the mtime at $(stat -c %y "$C/${IDX[1]}")"
index 4 --index-cache-max=$((3 * S))
expect_left "cap 3S, a4 saved: the least recently used (a2) goes" 1 3 4

# ---- 3. a gone source first ----------------------------------------------------------------
used 1 300; used 4 200; used 3 10
mv "$T/a3.tar" "$T/a3.moved"
index 5 --index-cache-max=$((3 * S))
expect_left "a3's source gone: its index goes first, though the newest" 1 4 5
mv "$T/a3.moved" "$T/a3.tar"

# ---- 4. a tiny cap; temporary and foreign files -----------------------------------------
echo torn >"$C/.$ID0.Ab12Z9"
touch -d '2 hours ago' "$C/.$ID0.Ab12Z9"
echo writing >"$C/.$ID0.Qw34Er"
echo mine >"$C/notes.txt"
touch -d '2 hours ago' "$C/notes.txt"
head -c 5000 /dev/zero >"$C/${ID0%0}1.idx" # named like ours, no magic
touch -d '2 hours ago' "$C/${ID0%0}1.idx"
ln -s "$T/a1.tar" "$C/${ID0%0}2.idx"
index 6 --index-cache-max=1K
expect_left "cap 1K: only the index just saved" 6
[ ! -e "$C/.$ID0.Ab12Z9" ] && ok "stale temporary file removed" || fail "stale temporary file kept"
[ -e "$C/.$ID0.Qw34Er" ] && ok "fresh temporary file kept" || fail "fresh temporary file removed"
[ -f "$C/notes.txt" ] && [ -f "$C/${ID0%0}1.idx" ] && [ -L "$C/${ID0%0}2.idx" ] && [ -f "$T/a1.tar" ] &&
	ok "foreign files untouched" || fail "foreign files: $(ls -A "$C" | tr '\n' ' ')"
rm -f "$C/.$ID0.Qw34Er" "$C/notes.txt" "$C/${ID0%0}1.idx" "$C/${ID0%0}2.idx"

# ---- 5. the environment variable -----------------------------------------------------------
reset_cache
index 1; index 2
TARMOUNT_INDEX_CACHE_MAX=1K index 3
expect_left "TARMOUNT_INDEX_CACHE_MAX=1K" 3
TARMOUNT_INDEX_CACHE_MAX=1K index 4 --index-cache-max=0
expect_left "the option (0: no cap) wins over the environment" 3 4
TARMOUNT_INDEX_CACHE_MAX=1K index 5 --index-cache-max=10M
expect_left "the option (10M) wins over the environment" 3 4 5
TARMOUNT_INDEX_CACHE_MAX=lots tk "$T/a6.tar" info
expect_rc 2 "TARMOUNT_INDEX_CACHE_MAX=lots"
grep -q 'TARMOUNT_INDEX_CACHE_MAX=lots' "$T/err" && ok "bad variable named" || fail "bad variable: $(last)"
tk --index-cache-max=1.5G "$T/a6.tar" info
expect_rc 2 "--index-cache-max=1.5G"
grep -q 'index-cache-max=1.5G' "$T/err" && ok "bad option named" || fail "bad option: $(last)"
expect_left "refused runs prune nothing" 3 4 5
TARMOUNT_INDEX_CACHE_MAX=lots tk --no-index "$T/a6.tar" info
expect_rc 0 "--no-index: the variable is not used"

# ---- 6. an explicit path prunes nothing ----------------------------------------------------
tk --index="$C/mine.idx" --index-cache-max=1 "$T/a7.tar" info
expect_rc 0 "--index=PATH in the cache directory"
[ -f "$C/mine.idx" ] && ok "--index=PATH written" || fail "--index=PATH not written"
expect_left "--index=PATH with a cap of 1 byte prunes nothing" 3 4 5
TARMOUNT_INDEX_CACHE_MAX=1 tk --index="$T/elsewhere.idx" "$T/a8.tar" info
expect_rc 0 "--index=PATH elsewhere"
expect_left "--index=PATH with the variable set prunes nothing" 3 4 5
rm -f "$C/mine.idx"

# ---- 7. tarmount ---------------------------------------------------------------------------
# wait_idx N: up to 10 s for aN's index (saved in the background after mounting)
wait_idx() {
	local i new before=$2
	for i in $(seq 100); do
		new=$(comm -13 <(echo "$before") <(idx_list) | head -1)
		[ -n "$new" ] && { IDX[$1]=$new; return 0; }
		sleep 0.1
	done
	return 1
}
if fuse_ok; then
	reset_cache
	index 2; index 3
	M1=$T/m1 M2=$T/m2
	before=$(idx_list)
	if tm_mount "mount a1, cap 1K" "$T/a1.tar" "$M1" -o index_cache_max=1K; then
		wait_idx 1 "$before" && ok "mount a1: index saved" || fail "mount a1: no index after 10 s"
		expect_left "mount a1 with a 1K cap: the others pruned" 1
		index 4 --index-cache-max=1K
		index 5 --index-cache-max=1K
		expect_left "tarkv with a 1K cap: the live mount's index survives" 1 5
		before=$(idx_list)
		if TARMOUNT_INDEX_CACHE_MAX=1K tm_mount "mount a6, cap from the environment" "$T/a6.tar" "$M2"; then
			wait_idx 6 "$before" && ok "mount a6: index saved" || fail "mount a6: no index after 10 s"
			expect_left "second mount (TARMOUNT_INDEX_CACHE_MAX=1K): both live indexes survive" 1 6
			[ "$(cat "$M1/d/f3")" = "archive 1 file 3" ] && [ "$(cat "$M2/d/f2")" = "archive 6 file 2" ] &&
				ok "both mounts read" || fail "the mounts do not read right"
			tm_umount "unmount a6" "$M2"
		fi
		tm_umount "unmount a1" "$M1"
		index 7 --index-cache-max=1K
		expect_left "unmounted: the next save prunes their indexes" 7
		ino=$(stat -c %i "$C/${IDX[7]}")
		if tm_mount "mount a7, its index loaded" "$T/a7.tar" "$M1"; then
			index 8 --index-cache-max=1K
			expect_left "a mount that loaded its index holds it too" 7 8
			[ "$(stat -c %i "$C/${IDX[7]:-none}" 2>/dev/null)" = "$ino" ] && ok "a7's index loaded, not rewritten" ||
				fail "a7's index was rewritten"
			tm_umount "unmount a7" "$M1"
		fi
	fi
	timeout 60 "$TARMOUNT" -o index_cache_max=zz "$T/a8.tar" "$M1" >"$T/out" 2>"$T/err"
	RC=$?
	[ "$RC" != 0 ] && ! is_mounted "$M1" && grep -q 'index_cache_max=zz' "$T/err" &&
		ok "-o index_cache_max=zz: refused, nothing mounted" ||
		fail "-o index_cache_max=zz: exit $RC, $(head -c 300 "$T/err")"
fi

finish
