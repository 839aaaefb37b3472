#!/bin/bash
# shellcheck disable=SC2015,SC2317 # ok and fail return 0; functions run from traps
# Compressed archives against the reference tools.  The oracle for each archive is GNU tar's
# listing and extraction of the stream that the writer's own decompressor gives
# (`gzip -dc`, `zstd -dc`, `xz -dc`, `bzip2 -dc`, `lz4 -dc`).
#
# Two trees (compressed.py tree): BIG (~17 MiB of tar: a 10 MiB member of random and text
# runs, random and text members, a 16 MiB file with holes stored with --sparse, hard links,
# symlinks, long names, 60 small files) for the fast codecs, MID (the same at 1/4 scale)
# for xz and bzip2, whose writers are slow.
#   1. writers: gzip -6, gzip -1, pigz, pigz -i, gzip and pigz members of one tar cut by
#      split(1) and concatenated, bgzip; zstd -3 (one frame), zstd -T0 --long, zstd -T2 -B1M
#      (still one frame in zstd 1.5.4: -B sizes the jobs, not the frames), pzstd (many frames
#      and skippable frames), zstd frames of split pieces; xz -6 (one block), xz -1 -T2
#      (3 MiB blocks), xz -0 --block-size=1MiB -T2, pixz, two xz streams with stream padding
#      between and after; bzip2, pbzip2, lbzip2, bzip2 streams of split pieces; lz4
#      (independent blocks), lz4 -BD (linked blocks), lz4 -B4, lz4 frames of split pieces.
#   2. each: `tarkv info` (compression:, compressed bytes: the file's size, decompressed
#      bytes: the reference's output size), compare.py against the extraction,
#      get-partial across seek points, 128 KiB chunk edges and frame/block sizes
#      (compressed.py probes), a mount compared by diff -r and sha256 of every file, and 8
#      threads reading random ranges through it (readers.py).
#   3. the saved index: loaded the second time with the same answers; the file rewritten
#      (new size; new bytes of the same size with the mtime put back) rebuilds it; a wrong
#      --compression fails naming the file.
#   4. sources: .tar.gz and .tar.xz on a 4096-byte-sector loop device and on nbdkit file.
#   5. bad input: cut at several points (complete members still listed and readable, as in
#      the reference's output, a warning and exit 0 as for a truncated plain tar (damaged.sh);
#      the mount serves them and gives EIO for the cut one), a
#      flipped byte, garbage after the end, decompression bombs (peak RSS under 200 MiB),
#      an xz index that lies, a gzip ISIZE that lies.  A read never succeeds with wrong
#      bytes; tarkv exits non-zero with one line naming the file; nothing hangs.
# ZONLY=REGEX (by hand): only the writers of part 1-2 whose name matches.
# Run by `sh script`: go on under bash.
if [ -z "${BASH_VERSION:-}" ]; then exec bash "$0" "$@"; fi
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"
# shellcheck source=lib_mount.sh
. "$(dirname "$0")/lib_mount.sh"

need_root
need_cmd tar gzip pigz bgzip zstd pzstd xz pixz bzip2 pbzip2 lbzip2 lz4 split timeout \
	sha256sum diff cmp dd truncate stat find sort "$PY"
need_tarkv
setup_tmp
umask 022
export XDG_CACHE_HOME=$T/cache
ZPY=$HERE/compressed.py
START=$EPOCHREALTIME
HAVE_FUSE=
fuse_ok && HAVE_FUSE=1

elapsed() { awk -v a="$START" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.0f", b - a }'; }
info_field() { sed -n "s/^$1: //p" "$2"; }
# one_line_naming FILE WHAT: the last run failed (non-zero, no crash or timeout) with one
# error line that names FILE; other lines may only be warnings naming it too (what is still
# served: "using the N complete members", "truncated at byte N")
one_line_naming() {
	local f=$1 what=$2 n e
	n=$(grep -c . "$T/err")
	e=$(grep -vc ': warning: ' "$T/err")
	if [ "$RC" = 0 ] || [ "$RC" -ge 124 ]; then
		fail "$what: want a non-zero exit (not a timeout or a signal) $(last)"
	elif [ "$e" != 1 ] || [ "$(grep -Fc -- "$f" "$T/err")" != "$n" ]; then
		fail "$what: exit $RC, but want one error line naming $f (and warnings naming it), got $n line(s) $(last)"
	else
		ok "$what: exit $RC: $(cat "$T/err")"
	fi
}

# ---- the trees and their tars ---------------------------------------------------------------
for t in BIG:1 MID:0.25; do
	"$PY" "$ZPY" tree "$T/src/${t%%:*}" "${t#*:}" || { fail "compressed.py tree $t"; finish; }
	tar --format=gnu --sparse --sort=name -cf "$T/${t%%:*}.tar" -C "$T/src/${t%%:*}" . ||
		{ fail "GNU tar -c ${t%%:*}"; finish; }
done
ok "trees: BIG.tar $(stat -c %s "$T/BIG.tar") bytes, MID.tar $(stat -c %s "$T/MID.tar") bytes"

# pieces TAR SIZE CMD...: split TAR into SIZE-byte pieces, compress each with CMD (stdin to
# stdout), concatenate to stdout
pieces() {
	local tar=$1 size=$2 p
	shift 2
	rm -rf "$T/pieces" && mkdir "$T/pieces"
	split -b "$size" "$tar" "$T/pieces/p."
	for p in "$T/pieces"/p.*; do "$@" <"$p" || return 1; done
}
xz_two_streams() {
	local tar=$1 half
	half=$(($(stat -c %s "$tar") / 2 + 1000))
	head -c "$half" "$tar" | xz -1 -c && head -c 8 /dev/zero &&
		tail -c +$((half + 1)) "$tar" | xz -1 -c && head -c 4 /dev/zero
}

# name|tar|format|decompressor|writer (stdin to stdout, eval'd)|extra probe steps
WRITERS=(
	"gz6|BIG|gzip|gzip -dc|gzip -6 -c|"
	"gz1|BIG|gzip|gzip -dc|gzip -1 -c|"
	"pigz|BIG|gzip|gzip -dc|pigz -p2 -c|"
	"pigz-i|BIG|gzip|gzip -dc|pigz -p2 -i -c|"
	"gz-members|BIG|gzip|gzip -dc|pieces \$T/BIG.tar 3000000 gzip -6 -c|3000000"
	"pigz-members|BIG|gzip|gzip -dc|pieces \$T/BIG.tar 5000000 pigz -p2 -c|5000000"
	"bgzip|BIG|gzip|gzip -dc|bgzip -@2 -c|65280"
	"zst3|BIG|zstd|zstd -dc|zstd -q -3 -c|"
	"zst-long|BIG|zstd|zstd -dc|zstd -q -T0 --long -c|"
	"zst-B1M|BIG|zstd|zstd -dc|zstd -q -T2 -B1M -c|1048576"
	"pzstd|BIG|zstd|zstd -dc|pzstd -q -p2 -c|"
	"zst-frames|BIG|zstd|zstd -dc|pieces \$T/BIG.tar 2000000 zstd -q -3 -c|2000000"
	"xz6|MID|xz|xz -dc|xz -6 -c|"
	"xz-T2|MID|xz|xz -dc|xz -1 -T2 -c|3145728"
	"xz-bs1M|MID|xz|xz -dc|xz -0 --block-size=1MiB -T2 -c|1048576"
	"pixz|MID|xz|xz -dc|pixz -p2|"
	"xz-streams|MID|xz|xz -dc|xz_two_streams \$T/MID.tar|"
	"bz2|MID|bzip2|bzip2 -dc|bzip2 -9 -c|900000"
	"pbzip2|MID|bzip2|bzip2 -dc|pbzip2 -p2 -c|900000"
	"lbzip2|MID|bzip2|bzip2 -dc|lbzip2 -n2 -c|"
	"bz2-streams|MID|bzip2|bzip2 -dc|pieces \$T/MID.tar 1500000 bzip2 -1 -c|1500000"
	"lz4|BIG|lz4|lz4 -dc|lz4 -q -c|4194304"
	"lz4-BD|BIG|lz4|lz4 -dc|lz4 -q -BD -c|4194304"
	"lz4-B4|BIG|lz4|lz4 -dc|lz4 -q -B4 -c|65536"
	"lz4-frames|BIG|lz4|lz4 -dc|pieces \$T/BIG.tar 2500000 lz4 -q -c|2500000"
)
declare -A ZFILE ZDEC ZFMT
declare -A EXT=([gzip]=gz [zstd]=zst [xz]=xz [bzip2]=bz2 [lz4]=lz4)
mkdir -p "$T/z" "$T/x"
for w in "${WRITERS[@]}"; do
	IFS='|' read -r name tree fmt dec cmd steps <<<"$w"
	if [ -n "${ZONLY:-}" ] && ! [[ $name =~ $ZONLY ]]; then continue; fi
	f=$T/z/$name.tar.${EXT[$fmt]}
	if ! eval "$cmd" <"$T/$tree.tar" >"$f" 2>"$T/writer.err"; then
		fail "$name: the writer ($cmd) failed: $(head -c 300 "$T/writer.err")"
		continue
	fi
	ZFILE[$name]=$f ZDEC[$name]=$dec ZFMT[$name]=$fmt
done
ok "${#ZFILE[@]} compressed archives written ($(elapsed) s)"

# ---- 1, 2. each writer against the reference --------------------------------------------
# check_archive NAME FILE DECOMPRESSOR FORMAT [STEP...]
check_archive() {
	local name=$1 f=$2 dec=$3 fmt=$4 x ref dsize got spacing s M
	shift 4
	ref=$T/ref.tar x=$T/x/$name
	if ! $dec <"$f" >"$ref" 2>"$T/dec.err"; then
		fail "$name: the reference $dec failed, no oracle: $(head -c 300 "$T/dec.err")"
		return
	fi
	dsize=$(stat -c %s "$ref")
	mkdir -p "$x"
	if ! tar_extract "$ref" "$x" 2>"$T/tar.err"; then
		fail "$name: GNU tar -x of the decompressed stream failed: $(head -c 300 "$T/tar.err")"
		return
	fi
	tk "$f" info
	cp "$T/out" "$T/info.$name"
	if [ "$RC" = 0 ] && [ "$(info_field compression "$T/out")" = "$fmt" ] &&
		[ "$(info_field 'decompressed bytes' "$T/out")" = "$dsize" ] &&
		[ "$(info_field 'compressed bytes' "$T/out")" = "$(stat -c %s "$f")" ]; then
		ok "$name: info: compression: $fmt, decompressed bytes: $dsize, $(info_field 'seek points' "$T/out") seek points"
	else
		fail "$name: info: want compression: $fmt, decompressed bytes: $dsize, compressed bytes: $(stat -c %s "$f") $(last)"
	fi
	spacing=$(info_field 'seek point spacing' "$T/out" | awk '{ print $1 }')
	if "$PY" "$HERE/compare.py" --ns --samples 2 --tar-archive "$ref" --label "$name" "$TARKV" "$f" "$x" \
		>"$T/cmp.out" 2>&1; then
		ok "$name: tarkv agrees with GNU tar's extraction of \`$dec\`"
	else
		sed 's/^/    /' "$T/cmp.out"
		fail "$name: tarkv differs from GNU tar's extraction of \`$dec\`"
	fi
	local stepargs=(--step 131072)
	for s in "${spacing:-0}" "$@"; do [ -n "$s" ] && stepargs+=(--step "$s"); done
	if "$PY" "$ZPY" probes "${stepargs[@]}" "$TARKV" "$f" "$ref" "$x" >"$T/probes.out" 2>&1; then
		ok "$name: $(head -1 "$T/probes.out") (steps ${stepargs[*]//--step /})"
	else
		sed 's/^/    /' "$T/probes.out"
		fail "$name: get-partial across seek points and chunk edges"
	fi
	# The mount, for one writer of each kind of stream (the rest are read through tarkv, the
	# same layers below the FUSE front end): the suite must fit CI's time on two cores.
	if [ -n "$HAVE_FUSE" ] && [[ " $MOUNT_WRITERS " == *" $name "* ]]; then
		M=$T/m/$name
		if tm_mount "$name: tarmount" "$f" "$M"; then
			if diff -r --no-dereference "$x" "$M" >"$T/diff.out" 2>&1; then
				ok "$name: mount: diff -r with the extraction"
			else
				fail "$name: mount: diff -r with the extraction: $(head -c 500 "$T/diff.out")"
			fi
			(cd "$x" && find . -type f -print0 | sort -z | xargs -0 sha256sum) >"$T/sha.x"
			(cd "$M" && find . -type f -print0 | sort -z | xargs -0 sha256sum) >"$T/sha.m" 2>&1
			if cmp -s "$T/sha.x" "$T/sha.m"; then
				ok "$name: mount: sha256 of all $(wc -l <"$T/sha.x") files"
			else
				fail "$name: mount: sha256 differ: $(diff "$T/sha.x" "$T/sha.m" | head -5 | tr '\n' '|')"
			fi
			if timeout 60 "$PY" "$HERE/readers.py" --threads 8 --seconds 1 --ops 100 \
				"$M" "$x" >"$T/par.out" 2>"$T/par.err"; then
				ok "$name: mount: 8 threads, random ranges: $(head -1 "$T/par.out")"
			else
				fail "$name: mount: parallel readers: $(head -c 600 "$T/par.out") $(head -c 300 "$T/par.err")"
			fi
			tm_umount "$name: tarmount" "$M"
		fi
	fi
	chmod -R u+rwx "$x" 2>/dev/null
	rm -rf "$x"
}

MOUNT_WRITERS="gz6 gz-members bgzip zst3 pzstd xz6 xz-bs1M bz2 pbzip2 lz4 lz4-BD"
for w in "${WRITERS[@]}"; do
	IFS='|' read -r name tree fmt dec cmd steps <<<"$w"
	[ -n "${ZFILE[$name]:-}" ] || continue
	# shellcheck disable=SC2086 # steps: zero or more numbers
	check_archive "$name" "${ZFILE[$name]}" "$dec" "$fmt" $steps
done
note "parts 1-2 done at $(elapsed) s"

# The rest needs the archives of these writers.
for n in gz6 gz1 zst-frames xz-bs1M bz2 lz4 xz6; do
	[ -n "${ZFILE[$n]:-}" ] || { note "ZONLY leaves out $n: parts 3-5 skipped"; finish; }
done

# reference extractions for parts 3-5
for t in BIG MID; do
	mkdir -p "$T/x/$t" && tar_extract "$T/$t.tar" "$T/x/$t" || fail "GNU tar -x $t.tar"
done

# ---- 3. the saved index ---------------------------------------------------------------------
note "3. the saved index"
export XDG_CACHE_HOME=$T/cache3
for n in gz6 zst-frames xz-bs1M bz2 lz4; do
	f=$T/i/$n.${ZFILE[$n]##*.}
	mkdir -p "$T/i" && cp "${ZFILE[$n]}" "$f"
	tk "$f" info
	[ "$(info_field index "$T/out")" = built ] && ok "$n: first info: index: built" ||
		fail "$n: first info: want index: built $(last)"
	grep -v '^index:' "$T/out" >"$T/info1"
	tk "$f" ls --json -R && cp "$T/out" "$T/ls1"
	tk "$f" digest d/mixed c/sparse && cp "$T/out" "$T/dg1"
	tk "$f" info
	[ "$(info_field index "$T/out")" = loaded ] && ok "$n: second info: index: loaded" ||
		fail "$n: second info: want index: loaded $(last)"
	grep -v '^index:' "$T/out" | cmp -s - "$T/info1" && ok "$n: loaded: the same info" ||
		fail "$n: loaded: info differs: $(grep -v '^index:' "$T/out" | diff "$T/info1" - | head -6 | tr '\n' '|')"
	tk "$f" ls --json -R
	expect_out_file "$T/ls1" "$n: loaded: ls --json -R"
	tk "$f" digest d/mixed c/sparse
	expect_out_file "$T/dg1" "$n: loaded: digest"
	# rewritten with other content under the same name (cp keeps the inode)
	rm -rf "$T/src/new" && mkdir -p "$T/src/new/d" && head -c 3000000 /dev/urandom >"$T/src/new/d/mixed" &&
		echo new >"$T/src/new/only_new"
	tar -cf "$T/new.tar" -C "$T/src/new" . && ${ZDEC[$n]%% *} -c <"$T/new.tar" >"$T/new.z" && cp "$T/new.z" "$f"
	tk "$f" info
	[ "$(info_field index "$T/out")" = built ] && ok "$n: rewritten: index: built" ||
		fail "$n: rewritten: want index: built $(last)"
	tk "$f" cat d/mixed
	cmp -s "$T/out" "$T/src/new/d/mixed" && ok "$n: rewritten: cat gives the new content" ||
		fail "$n: rewritten: cat d/mixed is not the new content $(last)"
	tk "$f" exists only_new
	expect_out value "$n: rewritten: the new member exists"
done
# new bytes of the same size, mtime put back: gzip -1 of random data, one byte changed
rm -rf "$T/src/same" && mkdir -p "$T/src/same"
head -c 2000000 /dev/urandom >"$T/src/same/r"
touch -d @1700000000 "$T/src/same/r"
tar -cf "$T/same1.tar" -C "$T/src/same" r
cp "$T/same1.tar" "$T/same2.tar"
printf 'X' | dd of="$T/same2.tar" bs=1 seek=1500000 conv=notrunc status=none
printf 'Y' | dd of="$T/same2.tar" bs=1 seek=1500001 conv=notrunc status=none
gzip -1 -n -c "$T/same1.tar" >"$T/same1.gz"
gzip -1 -n -c "$T/same2.tar" >"$T/same2.gz"
if [ "$(stat -c %s "$T/same1.gz")" = "$(stat -c %s "$T/same2.gz")" ]; then
	cp "$T/same1.gz" "$T/i/same.tar.gz" && touch -d @1700000000 "$T/i/same.tar.gz"
	tk "$T/i/same.tar.gz" info
	tk "$T/i/same.tar.gz" get-partial r 1499000 2000
	cp "$T/i/same.tar.gz" "$T/same.before"
	cat "$T/same2.gz" >"$T/i/same.tar.gz" && touch -d @1700000000 "$T/i/same.tar.gz"
	tk "$T/i/same.tar.gz" info
	[ "$(info_field index "$T/out")" = built ] && ok "same size and mtime, new bytes: index: built" ||
		fail "same size and mtime, new bytes: want index: built $(last)"
	tk "$T/i/same.tar.gz" get-partial r 1499000 2000
	dd if="$T/same2.tar" bs=1 skip=$((1499000 + 512)) count=2000 status=none >"$T/want"
	expect_out_file "$T/want" "same size and mtime, new bytes: get-partial gives the new bytes"
else
	note "gzip -1 gave different sizes: the same-size rewrite is not checked"
fi
# --compression overrides
gz=${ZFILE[gz6]}
tk --compression=none "$gz" ls
one_line_naming "$gz" "--compression=none on a .tar.gz"
tk --compression=gzip "$T/BIG.tar" ls
one_line_naming "$T/BIG.tar" "--compression=gzip on a plain tar"
tk --compression=xz "$gz" ls
one_line_naming "$gz" "--compression=xz on a .tar.gz"
tk --compression=gzip "$gz" digest d/text
[ "$RC" = 0 ] && [ "$(awk '{ print $1 }' "$T/out")" = "$(sha256sum <"$T/x/BIG/d/text" | cut -c1-64)" ] &&
	ok "--compression=gzip on a .tar.gz: digest" || fail "--compression=gzip on a .tar.gz: digest $(last)"
tk --compression=bogus "$gz" ls
[ "$RC" = 2 ] && grep -q bogus "$T/err" && ok "--compression=bogus: exit 2 naming it" ||
	fail "--compression=bogus: want exit 2 naming it $(last)"
if [ -n "$HAVE_FUSE" ]; then
	M=$T/m/override
	if tm_mount "-o compression=gzip" "$gz" "$M" -o compression=gzip; then
		cmp -s "$M/d/text" "$T/x/BIG/d/text" && ok "-o compression=gzip: mounted, d/text right" ||
			fail "-o compression=gzip: d/text differs"
		tm_umount "-o compression=gzip" "$M"
	fi
	mkdir -p "$T/m/none"
	timeout 60 "$TARMOUNT" -o compression=none "$gz" "$T/m/none" >"$T/out" 2>"$T/err"
	RC=$?
	MOUNTS+=("$T/m/none")
	if is_mounted "$T/m/none"; then
		fail "-o compression=none on a .tar.gz: mounted"
		tm_umount "-o compression=none" "$T/m/none"
	else
		one_line_naming "$gz" "tarmount -o compression=none on a .tar.gz"
	fi
fi
export XDG_CACHE_HOME=$T/cache
note "part 3 done at $(elapsed) s"

# ---- 4. sources: a loop device with 4096-byte sectors, nbdkit file ----------------------
note "4. sources"
# the extraction to compare with, per archive
src_compare() {
	local what=$1 src=$2 tree=$3
	if "$PY" "$HERE/compare.py" --ns --tar-archive "$T/$tree.tar" --label "$what" --samples 3 \
		"$TARKV" "$src" "$T/x/$tree" >"$T/cmp.out" 2>&1; then
		ok "$what: tarkv agrees with GNU tar's extraction"
	else
		sed 's/^/    /' "$T/cmp.out"
		fail "$what: tarkv differs from GNU tar's extraction"
	fi
	if [ -n "$HAVE_FUSE" ] && tm_mount "$what: tarmount" "$src" "$T/m/src"; then
		diff -r --no-dereference "$T/x/$tree" "$T/m/src" >"$T/diff.out" 2>&1 &&
			ok "$what: mount: diff -r with the extraction" ||
			fail "$what: mount: diff -r: $(head -c 400 "$T/diff.out")"
		tm_umount "$what: tarmount" "$T/m/src"
	fi
}
LOOPS=()
loop_cleanup() { local d; for d in "${LOOPS[@]}"; do timeout 30 losetup -d "$d" 2>/dev/null; done; }
SERVER_PIDS=()
servers_cleanup() { local p; for p in "${SERVER_PIDS[@]}"; do alive "$p" && kill "$p" 2>/dev/null; done; }
trap 'mount_cleanup; loop_cleanup; servers_cleanup; cleanup' EXIT
if command -v losetup >/dev/null; then
	for n in gz6 xz-bs1M; do
		img=$T/img.$n
		cp "${ZFILE[$n]}" "$img"
		truncate -s %4096 "$img"
		if dev=$(timeout 30 losetup -f --show --sector-size 4096 "$img" 2>"$T/losetup.err"); then
			LOOPS+=("$dev")
			[ "$(blockdev --getss "$dev")" = 4096 ] && ok "$n: $dev has 4096-byte sectors" ||
				fail "$n: $dev: sector size $(blockdev --getss "$dev")"
			tree=BIG
			[ "$n" = xz-bs1M ] && tree=MID
			src_compare "$n on a 4096-byte-sector loop device" "$dev" "$tree"
		else
			fail "$n: losetup --sector-size 4096: $(head -c 300 "$T/losetup.err")"
		fi
	done
else
	fail "losetup missing: the loop device part is not run"
fi
if command -v nbdkit >/dev/null && command -v nbdinfo >/dev/null; then
	for n in gz6 xz-bs1M; do
		sock=$T/nbd.$n.sock
		timeout 600 nbdkit -f -U "$sock" -P "$T/nbd.$n.pid" file "${ZFILE[$n]}" >"$T/nbd.log" 2>&1 &
		SERVER_PIDS+=("$!")
		for _ in $(seq 100); do
			[ -s "$T/nbd.$n.pid" ] && timeout 5 nbdinfo --size "nbd+unix:///?socket=$sock" >/dev/null 2>&1 && break
			sleep 0.1
		done
		SERVER_PIDS+=("$(cat "$T/nbd.$n.pid" 2>/dev/null)")
		tree=BIG
		[ "$n" = xz-bs1M ] && tree=MID
		src_compare "$n on nbdkit file" "nbd+unix:///?socket=$sock" "$tree"
	done
else
	fail "nbdkit or nbdinfo missing: the NBD part is not run"
fi
note "part 4 done at $(elapsed) s"

# ---- 5. bad input ---------------------------------------------------------------------------
note "5. bad input"
# mount_verify WHAT FILE TREE [--complete PREFIX]: mount if tarmount can; reads give the
# right bytes or EIO; the mount stays up
mount_verify() {
	local what=$1 f=$2 tree=$3 M=$T/m/bad
	shift 3
	[ -n "$HAVE_FUSE" ] || return 0
	mkdir -p "$M"
	MOUNTS+=("$M")
	timeout 60 "$TARMOUNT" "$f" "$M" >"$T/mount.out" 2>"$T/mount.err"
	RC=$?
	if ! is_mounted "$M"; then
		note "$what: not mountable (exit $RC): $(head -1 "$T/mount.err" | head -c 300)"
		return 0
	fi
	if timeout 120 "$PY" "$ZPY" verify --mount "$M" "$@" "$TARKV" "$f" "$T/x/$tree" >"$T/v.out" 2>&1; then
		ok "$what: mount: $(head -1 "$T/v.out")"
	else
		sed 's/^/    /' "$T/v.out"
		fail "$what: mount: reads"
	fi
	if grep -q 'failed [1-9]' "$T/v.out"; then
		is_mounted "$M" && ls "$M" >/dev/null 2>&1 && ok "$what: the mount is still up after EIO" ||
			fail "$what: the mount went away after a failed read"
	fi
	tm_umount "$what: tarmount" "$M"
}
# verify_tarkv WHAT FILE TREE [--complete PREFIX]
verify_tarkv() {
	local what=$1 f=$2 tree=$3
	shift 3
	if timeout 300 "$PY" "$ZPY" verify "$@" "$TARKV" "$f" "$T/x/$tree" >"$T/v.out" 2>&1; then
		ok "$what: tarkv: $(head -1 "$T/v.out")"
	else
		sed 's/^/    /' "$T/v.out"
		fail "$what: tarkv: reads"
	fi
}

# 5a. truncated: the contract of damaged.sh for a truncated plain tar (serve the complete
# members, warn, exit 0), or an error when no member is complete
for spec in gz6:BIG zst-frames:BIG xz-bs1M:MID bz2:MID lz4:BIG; do
	n=${spec%%:*} tree=${spec#*:}
	src=${ZFILE[$n]} dec=${ZDEC[$n]}
	size=$(stat -c %s "$src")
	for cut in 700 $((size / 3)) $((size * 2 / 3)) $((size - 7)); do
		f=$T/bad/cut$cut.$n.tar.${EXT[${ZFMT[$n]}]}
		mkdir -p "$T/bad"
		head -c "$cut" "$src" >"$f"
		$dec <"$f" >"$T/prefix.tar" 2>/dev/null
		what="$n cut at $cut of $size"
		tk "$f" ls -R
		if [ -n "$("$PY" "$ZPY" members "$T/prefix.tar")" ]; then
			# members to serve: as with a truncated plain tar (damaged.sh), a warning, exit 0
			[ "$RC" = 0 ] && grep -F -- "$f" "$T/err" | grep -qi 'truncat' &&
				ok "$what: ls -R: exit 0, warns: $(head -1 "$T/err")" ||
				fail "$what: ls -R: want exit 0 and a warning naming the file $(last)"
		else
			one_line_naming "$f" "$what: ls -R (nothing complete)"
		fi
		verify_tarkv "$what" "$f" "$tree" --complete "$T/prefix.tar"
		[ "$cut" = $((size / 3)) ] && mount_verify "$what" "$f" "$tree" --complete "$T/prefix.tar"
		rm -f "$f"
	done
done
note "5a done at $(elapsed) s"

# 5b. a flipped byte in the middle
for spec in gz6:BIG bgzip:BIG zst3:BIG xz6:MID xz-bs1M:MID bz2:MID lz4:BIG lz4-B4:BIG; do
	n=${spec%%:*} tree=${spec#*:}
	src=${ZFILE[$n]}
	[ -n "$src" ] || continue
	f=$T/bad/flip.$n.tar.${EXT[${ZFMT[$n]}]}
	cp "$src" "$f"
	at=$(($(stat -c %s "$f") / 2))
	b=$(od -An -tu1 -j "$at" -N1 "$f" | tr -d ' ')
	printf "\\$(printf %03o $((b ^ 0x55)))" | dd of="$f" bs=1 seek="$at" conv=notrunc status=none
	what="$n with byte $at flipped"
	tk "$f" ls -R
	# One error from the decoder, naming format and offset; a tar-level complaint about a
	# header that the damage garbled before the checksum caught it may come too.
	if [ "$RC" != 0 ] && [ "$RC" -lt 124 ] && [ "$(grep -c 'data at compressed byte' "$T/err")" = 1 ] &&
		[ "$(grep -Fc -- "$f" "$T/err")" = "$(grep -c . "$T/err")" ]; then
		ok "$what: ls -R: exit $RC: $(grep 'data at compressed byte' "$T/err")"
	else
		fail "$what: ls -R: want a non-zero exit and one decoder error naming $f $(last)"
	fi
	verify_tarkv "$what" "$f" "$tree"
	mount_verify "$what" "$f" "$tree"
done
note "5b done at $(elapsed) s"

# 5c. garbage after the end: a warning, the content intact
for spec in gz6:BIG zst-frames:BIG xz-bs1M:MID bz2:MID lz4:BIG; do
	n=${spec%%:*} tree=${spec#*:}
	f=$T/bad/tail.$n.tar.${EXT[${ZFMT[$n]}]}
	{ cat "${ZFILE[$n]}"; printf 'this is not compressed data\n'; head -c 3000 /dev/urandom; } >"$f"
	what="$n with garbage appended"
	tk "$f" info
	if [ "$RC" = 0 ] && grep -Fq -- "$f" "$T/err" && grep -Eqi 'warn|trailing|garbage|after' "$T/err"; then
		ok "$what: info: exit 0, a warning naming the file: $(head -1 "$T/err")"
	else
		fail "$what: info: want exit 0 and a warning naming the file $(last)"
	fi
	[ "$(info_field 'decompressed bytes' "$T/out")" = "$(grep '^decompressed bytes' "$T/info.$n" | sed 's/.*: //')" ] &&
		ok "$what: the same decompressed bytes" || fail "$what: decompressed bytes differ $(last)"
	tk "$f" digest d/mixed d/text c/sparse a/small/f059
	(cd "$T/x/$tree" && sha256sum d/mixed d/text c/sparse a/small/f059) | awk '{ print $1 "  " $2 }' >"$T/want"
	if [ "$RC" = 0 ] && [ "$(awk '{ print $1 }' "$T/out")" = "$(awk '{ print $1 }' "$T/want")" ]; then
		ok "$what: digests intact"
	else
		fail "$what: digests $(last)"
	fi
done

# 5d. decompression bombs: 4 GiB of zeros as one member; peak RSS under 200 MiB
"$PY" "$ZPY" bomb-tar $((4 << 30)) "$T/bomb.h" "$T/bomb.t"
"$PY" "$ZPY" bomb-tar $((1 << 30)) "$T/bomb1.h" "$T/bomb1.t"
# one zstd frame of 1 GiB
cat "$T/bomb1.h" <(head -c 1G /dev/zero) "$T/bomb1.t" | zstd -q -1 -T2 -c >"$T/bad/bomb1g.tar.zst"
# 64 zstd frames and 64 xz streams of 64 MiB of zeros each: 4 GiB
head -c 64M /dev/zero | zstd -q -1 -c >"$T/z64.zst"
head -c 64M /dev/zero | xz -0 -T2 -c >"$T/z64.xz"
for c in zst:zstd xz:xz; do
	e=${c%%:*} z=${c#*:}
	{
		$z -q -c <"$T/bomb.h"
		for _ in $(seq 64); do cat "$T/z64.$e"; done
		$z -q -c <"$T/bomb.t"
	} >"$T/bad/bomb4g.tar.$e"
done
for f in "$T/bad/bomb1g.tar.zst" "$T/bad/bomb4g.tar.zst" "$T/bad/bomb4g.tar.xz"; do
	what=${f##*/}
	# AddressSanitizer's shadow memory and quarantine of freed blocks (256 MiB) are not
	# ours: under it only the exit and the time are checked.
	rss_max=204800
	ldd "$TARKV" 2>/dev/null | grep -q libasan && rss_max=$((4 << 20))
	want=$((1 << 30))
	[ "$what" = bomb1g.tar.zst ] || want=$((4 << 30))
	for cmd in info "get-partial zeros $((want - 100)) 100"; do
		# shellcheck disable=SC2086
		XDG_CACHE_HOME=$T/cache5 timeout 120 /usr/bin/time -v "$TARKV" "$f" $cmd >"$T/out" 2>"$T/err"
		RC=$?
		rss=$(sed -n 's/.*Maximum resident set size (kbytes): //p' "$T/err")
		el=$(sed -n 's/.*Elapsed (wall clock) time.*: //p' "$T/err")
		if [ "$RC" = 0 ] && [ -n "$rss" ] && [ "$rss" -lt "$rss_max" ]; then
			ok "$what: ${cmd%% *}: exit 0, peak RSS $((rss / 1024)) MiB, $el"
		else
			fail "$what: ${cmd%% *}: want exit 0 and peak RSS under 200 MiB: RSS ${rss:-?} KiB $(last)"
		fi
	done
	[ "$(head -c 100 "$T/out" | tr -d '\0' | wc -c)" = 0 ] && [ "$(wc -c <"$T/out")" = 100 ] &&
		ok "$what: the last 100 bytes are zeros" || fail "$what: get-partial at the end $(last)"
done
rm -f "$T/bad"/bomb* "$T/z64".*

# 5e. an xz index that lies: the first record's uncompressed size + 512 (same VLI length),
# the index CRC32 recomputed
f=$T/bad/lying-index.tar.xz
"$PY" - "${ZFILE[xz-bs1M]}" "$f" <<'EOF' || fail "patching the xz index"
import struct, sys, zlib
d = bytearray(open(sys.argv[1], "rb").read())
assert d[-2:] == b"YZ"
back = (struct.unpack("<I", d[-8:-4])[0] + 1) * 4
start = len(d) - 12 - back
assert d[start] == 0
def vli(p):
    v = s = 0
    while True:
        b = d[p]; v |= (b & 0x7f) << s; s += 7; p += 1
        if not b & 0x80:
            return v, p
n, p = vli(start + 1)
_, p = vli(p)                # unpadded size of record 0
u, q = vli(p)                # its uncompressed size
enc = []
v = u + 512
while True:
    enc.append((v & 0x7f) | (0x80 if v >= 0x80 else 0)); v >>= 7
    if not enc[-1] & 0x80:
        break
assert len(enc) == q - p, "VLI length changed"
d[p:q] = bytes(enc)
end = start + back - 4
d[end:end + 4] = struct.pack("<I", zlib.crc32(bytes(d[start:end])) & 0xffffffff)
open(sys.argv[2], "wb").write(d)
EOF
xz -t "$f" >/dev/null 2>&1 && fail "xz -t accepts the lying index (the patch did nothing)"
tk "$f" ls -R
one_line_naming "$f" "xz with a lying index: ls -R"
verify_tarkv "xz with a lying index" "$f" MID
mount_verify "xz with a lying index" "$f" MID

# 5f. a gzip ISIZE that lies
f=$T/bad/lying-isize.tar.gz
cp "${ZFILE[gz6]}" "$f"
"$PY" -c 'import sys,struct; f=open(sys.argv[1],"r+b"); f.seek(-4,2); v=struct.unpack("<I",f.read(4))[0]; f.seek(-4,2); f.write(struct.pack("<I",(v+4096)&0xffffffff))' "$f"
gzip -t "$f" >/dev/null 2>&1 && fail "gzip -t accepts the lying ISIZE (the patch did nothing)"
tk "$f" ls -R
one_line_naming "$f" "gzip with a lying ISIZE: ls -R"
verify_tarkv "gzip with a lying ISIZE" "$f" BIG
tk "$f" info
[ "$(info_field 'decompressed bytes' "$T/out")" != "$(($(stat -c %s "$T/BIG.tar") + 4096))" ] &&
	ok "gzip with a lying ISIZE: decompressed bytes not taken from ISIZE" ||
	fail "gzip with a lying ISIZE: info believes ISIZE $(last)"

note "run time $(elapsed) s"
finish
