#!/bin/bash
# The write half of the block layer, through tests/blockio (tm_block_open with tarkv's
# source options, then tm_block_pwrite and tm_block_flush), against the kernel and nbdkit.
# The oracle: after every write, the image (the file itself, a loop device's backing file,
# the file nbdkit serves, or the memory export copied out with nbdcopy) equals a model, a
# copy the same bytes were put into with dd conv=notrunc.  Refused writes must change
# nothing and print one line saying why.
#   1. a regular file: writes at odd offsets and lengths, across the end (the file grows to
#      exactly the end of the write) and past it (a hole); blockio pread agrees; a window at
#      an odd offset (its bytes change, nothing outside; a write past its end fails); a
#      read-only open and a gzip file: "not writable" and why; the writer lock between
#      processes: refused while another holds it, waited for with --wait, advisory only.
#   2. (root) a file on a full tmpfs: "no space left ... No space left on device"; a file on
#      a tmpfs remounted read-only: "not writable: cannot open for writing"; a file whose
#      writes fail (nbdfuse over nbdkit's error filter): "I/O error ... Input/output error".
#   3. (root) a loop device with 4096-byte sectors: unaligned writes, buffered and O_DIRECT
#      (with and without the cache); a window at an odd offset of it; writes past the end; a
#      read-only loop device (BLKROGET); the lock on the device node.
#   4. (root) GPT images on loop devices with 512- and 4096-byte sectors: writes through
#      --partition land in the partition and nowhere else.
#   5. NBD: nbdkit memory over several connections (multi-conn; nbdkit's log shows that no
#      read on one connection comes after a write on another without a flush between them),
#      with and without the cache; nbdkit file, also with 4096-byte minimum blocks; the error
#      filter failing writes with EIO and ENOSPC; a flush the server fails (eval plugin),
#      and the next flush fails too; a server without flush (no_flush=1, writes still
#      work); nbdkit -r: "the NBD export is read-only"; nbdkit full: no space; a write past
#      the end of a small export; no writer lock on NBD.
# Without root, parts 2-4 are left out and the test then skips (exit 77; a failure under
# CI=true) after the others have run.
if [ -z "${BASH_VERSION:-}" ]; then exec bash "$0" "$@"; fi
. "$(dirname "$0")/lib.sh"

. "$(dirname "$0")/lib_nbd.sh"

: "${BLOCKIO:=$top_builddir/tests/blockio}"
case $BLOCKIO in /*) ;; *) BLOCKIO=$(pwd)/$BLOCKIO ;; esac
[ -x "$BLOCKIO" ] || skip_or_fail "BLOCKIO=$BLOCKIO is not an executable (make check builds it)"
need_cmd dd cmp head stat truncate gzip mkfifo sha256sum nbdkit nbdinfo nbdcopy "$PY"
make_tmp

ROOT=
[ "$(id -u)" = 0 ] && ROOT=1
LOOPS=()
MOUNTED=()
loop_attach() {
	local f=$1
	shift
	dev=$(timeout 30 losetup -f --show "$@" "$f" 2>"$T/losetup.err") || {
		fail "losetup $* $f: $(head -c 300 "$T/losetup.err")"
		dev=
		return 1
	}
	LOOPS+=("$dev")
}
loop_detach() {
	local i
	timeout 30 losetup -d "$1" 2>/dev/null
	for i in "${!LOOPS[@]}"; do [ "${LOOPS[$i]}" = "$1" ] && unset 'LOOPS[i]'; done
}
all_cleanup() {
	local d
	[ -n "${HOLDER:-}" ] && kill "$HOLDER" 2>/dev/null
	servers_cleanup
	for d in "${LOOPS[@]}"; do timeout 30 losetup -d "$d" 2>/dev/null; done
	for d in "${MOUNTED[@]}"; do timeout 30 umount -l "$d" 2>/dev/null; done
	cleanup
}
trap all_cleanup EXIT

# ---- helpers ------------------------------------------------------------------------------
# SRC: what blockio opens; OPTS: its options; MODEL: the model file; BASE: where byte 0 of
# SRC is in the model (a window's or partition's start); image: prints the path of a file
# holding what the source's storage holds now.
SRC='' MODEL='' BASE=0 IMG=''
OPTS=()
image() { echo "$IMG"; }
bio() { run "$BLOCKIO" "$@"; }

# same WHAT: the image equals the model
same() {
	local img
	if ! img=$(image) || [ ! -f "$img" ]; then
		fail "$1: cannot read the image"
		return
	fi
	if cmp -s "$img" "$MODEL"; then
		ok "$1"
	else
		fail "$1: the image differs from the model: $(cmp "$img" "$MODEL" 2>&1 | head -n1)"
	fi
}
# put WHAT OFF LEN: LEN random bytes through blockio at OFF of SRC, into the model at
# BASE + OFF; then the image must equal the model
put() {
	head -c "$3" /dev/urandom >"$T/data"
	bio "${OPTS[@]}" pwrite "$SRC" "$2" "$T/data"
	if [ "$RC" != 0 ]; then
		fail "$1: pwrite $2+$3 ${OPTS[*]}: $(last)"
		return
	fi
	dd if="$T/data" of="$MODEL" bs=65536 seek=$((BASE + $2)) oflag=seek_bytes conv=notrunc \
		status=none
	same "$1: pwrite $2+$3 ${OPTS[*]}"
}
# refused WHAT REGEX OFF LEN: blockio's write of LEN bytes at OFF exits 1 with one line on
# stderr matching REGEX, and changes nothing
refused() {
	head -c "$4" /dev/urandom >"$T/data"
	bio "${OPTS[@]}" pwrite "$SRC" "$3" "$T/data"
	expect_rc 1 "$1"
	expect_err_match "$2" "$1"
	if [ "$(wc -l <"$T/err")" = 1 ]; then ok "$1: one line"; else fail "$1: not one line $(last)"; fi
	same "$1: nothing written"
}
# readback WHAT OFF LEN: blockio pread of SRC equals the model's bytes
readback() {
	bio "${OPTS[@]}" pread "$SRC" "$2" "$3"
	dd if="$MODEL" bs=65536 skip=$((BASE + $2)) count="$3" iflag=skip_bytes,count_bytes \
		status=none >"$T/want"
	if [ "$RC" = 0 ] && cmp -s "$T/out" "$T/want"; then
		ok "$1: pread $2+$3 ${OPTS[*]}"
	else
		fail "$1: pread $2+$3 ${OPTS[*]} differs from the model $(last)"
	fi
}
# hold_lock SOURCE [OPTIONS...]: a blockio in the background holds SOURCE's writer lock
# until release_lock
hold_lock() {
	rm -f "$T/hold" && mkfifo "$T/hold"
	"$BLOCKIO" "${@:2}" lock "$1" 300 <"$T/hold" >"$T/hold.out" 2>&1 &
	HOLDER=$!
	exec 7>"$T/hold"
	for _ in $(seq 100); do
		grep -q '^locked$' "$T/hold.out" && return 0
		alive "$HOLDER" || break
		sleep 0.1
	done
	fail "the lock holder did not lock: $(head -c 300 "$T/hold.out")"
	return 1
}
release_lock() {
	exec 7>&-
	wait "$HOLDER"
	local rc=$?
	HOLDER=
	return $rc
}
# lock_cases WHAT: with another process holding SRC's lock, --lock is refused (image
# unchanged), a write without --lock goes through (the lock is advisory), and --lock --wait
# waits for the holder, then writes
lock_cases() {
	local what=$1 w
	hold_lock "$SRC" "${OPTS[@]}" || return
	ok "$what: another process holds the writer lock"
	OPTS+=(--lock)
	refused "$what: --lock while another holds it" "locked by another writer" 0 10
	unset 'OPTS[${#OPTS[@]}-1]'
	put "$what: a write without the lock (advisory)" 3 10
	head -c 600 /dev/urandom >"$T/wdata"
	"$BLOCKIO" "${OPTS[@]}" --lock --wait pwrite "$SRC" 7 "$T/wdata" >"$T/w.out" 2>&1 7>&- &
	w=$!
	sleep 1
	if alive "$w"; then ok "$what: --lock --wait waits"; else fail "$what: --lock --wait did not wait: $(cat "$T/w.out")"; fi
	release_lock || fail "$what: the holder failed: $(cat "$T/hold.out")"
	if wait "$w"; then
		dd if="$T/wdata" of="$MODEL" bs=65536 seek=$((BASE + 7)) oflag=seek_bytes \
			conv=notrunc status=none
		same "$what: --lock --wait wrote once the holder ended"
	else
		fail "$what: --lock --wait failed: $(cat "$T/w.out")"
	fi
}
# info_is WHAT KEY=VALUE...: blockio info (OPTS) of SRC says so
info_is() {
	local what=$1 kv
	shift
	bio "${OPTS[@]}" info "$SRC"
	for kv in "$@"; do
		if grep -qx -- "$kv" "$T/out"; then ok "$what: $kv"; else fail "$what: want $kv $(last)"; fi
	done
}

# ---- 1. a regular file --------------------------------------------------------------------
note "1. a regular file"
IMG=$T/file.img
MODEL=$T/file.model
head -c $((1048576 + 300)) /dev/urandom >"$IMG"
cp "$IMG" "$MODEL"
SRC=$IMG BASE=0
OPTS=()
info_is "1 file, read-only open" read_write=0 growable=0
OPTS=(--read-write)
info_is "1 file, read_write open" read_write=1 growable=1 no_flush=0 sector_size=512
OPTS=()
for spec in "0 1" "1 511" "511 2" "512 512" "4095 4097" "100000 65536" "1048000 876"; do
	# shellcheck disable=SC2086
	put "1 file" $spec
done
size=$(stat -c %s "$IMG")
put "1 file: across the end" $((size - 10)) 5000
if [ "$(stat -c %s "$IMG")" = $((size - 10 + 5000)) ]; then ok "1 file: grew to the end of the write"; else fail "1 file: size $(stat -c %s "$IMG"), want $((size - 10 + 5000))"; fi
size=$(stat -c %s "$IMG")
put "1 file: past the end (a hole)" $((size + 99999)) 7
readback "1 file" 4000 70000
readback "1 file" 0 "$(stat -c %s "$IMG")"
OPTS=(--cache)
put "1 file, cached" 1000 3000
readback "1 file, cached" 0 "$(stat -c %s "$IMG")"
OPTS=(--offset 777 --size 100000) BASE=777
for spec in "0 1" "99990 10" "12345 5000" "0 100000"; do
	# shellcheck disable=SC2086
	put "1 window 777+100000" $spec
done
refused "1 window: past its end" "past the end of the device" 99990 11
readback "1 window" 0 100000
OPTS=(--read-only) BASE=0
refused "1 read-only open" "^blockio: .*: not writable: opened read-only" 0 10
OPTS=()
lock_cases "1 file lock"
OPTS=(--offset 4096)
BASE=4096
lock_cases "1 file lock, through a window"
OPTS=() BASE=0

gzip -c -1 "$IMG" >"$T/file.gz"
sum=$(sha256sum <"$T/file.gz")
head -c 512 /dev/urandom >"$T/data"
bio --compressed pwrite "$T/file.gz" 0 "$T/data"
expect_rc 1 "1 gzip file"
expect_err_match "not writable: a compressed archive cannot be written" "1 gzip file"
if [ "$(sha256sum <"$T/file.gz")" = "$sum" ]; then ok "1 gzip file: unchanged"; else fail "1 gzip file changed"; fi
bio --compressed --read-write info "$T/file.gz"
if grep -qx read_write=0 "$T/out"; then ok "1 gzip file: read_write=0"; else fail "1 gzip file: $(last)"; fi

if [ -z "$ROOT" ]; then
	chmod 0444 "$IMG"
	refused "1 a file without write permission" "not writable: cannot open for writing: Permission denied" 0 10
	chmod 0644 "$IMG"
fi

if [ -n "$ROOT" ]; then
	need_cmd losetup sfdisk mount umount
	# ---- 2. full and read-only filesystems ----------------------------------------------
	note "2. full and read-only filesystems"
	mkdir -p "$T/full" "$T/ro"
	if mount -t tmpfs -o size=1m tmpfs "$T/full"; then
		MOUNTED+=("$T/full")
		head -c 300000 /dev/urandom >"$T/full/a.img"
		head -c 2000000 /dev/urandom >"$T/data"
		bio pwrite "$T/full/a.img" 300000 "$T/data"
		expect_rc 1 "2 full tmpfs"
		expect_err_match "^blockio: .*: no space left: writing at byte [0-9]+: No space left on device \[code NO_SPACE\]$" "2 full tmpfs"
	else
		fail "2: mount tmpfs"
	fi
	if mount -t tmpfs -o size=1m tmpfs "$T/ro"; then
		MOUNTED+=("$T/ro")
		head -c 10000 /dev/urandom >"$T/ro/a.img"
		cp "$T/ro/a.img" "$T/ro.model"
		if mount -o remount,ro "$T/ro"; then
			SRC=$T/ro/a.img IMG=$T/ro/a.img MODEL=$T/ro.model
			refused "2 read-only tmpfs" "not writable: cannot open for writing: Read-only file system" 0 10
		else
			fail "2: mount -o remount,ro"
		fi
	else
		fail "2: mount tmpfs"
	fi

	# a file whose writes fail with EIO: nbdfuse over nbdkit's error filter
	if [ ! -c /dev/fuse ] || ! command -v nbdfuse >/dev/null; then
		fail "2: EIO from a file needs /dev/fuse and nbdfuse (libnbd-bin)"
	elif start_nbdkit eio "$T/eio.sock" --filter=error memory 1M error-pwrite=EIO \
		error-pwrite-rate=100%; then
		mkdir -p "$T/fuse"
		timeout 300 nbdfuse "$T/fuse/disk" "$(uri "$T/eio.sock")" >"$T/nbdfuse.log" 2>&1 &
		NBDFUSE=$!
		MOUNTED+=("$T/fuse")
		for _ in $(seq 100); do [ -f "$T/fuse/disk" ] && break; sleep 0.1; done
		if [ -f "$T/fuse/disk" ]; then
			head -c 4096 /dev/urandom >"$T/data"
			bio --flushes 2 pwrite "$T/fuse/disk" 100 "$T/data"
			expect_rc 1 "2 a file whose writes fail"
			expect_err_match "^blockio: .*: I/O error: writing at byte 100: Input/output error \[code IO\]$" \
				"2 a file whose writes fail"
		else
			fail "2: nbdfuse did not mount: $(head -c 300 "$T/nbdfuse.log")"
		fi
		fusermount3 -u "$T/fuse" 2>/dev/null
		wait "$NBDFUSE" 2>/dev/null
		stop_server "$T/eio.pid"
	fi

	# ---- 3. a loop device with 4096-byte sectors ----------------------------------------
	note "3. a loop device with 4096-byte sectors"
	IMG=$T/dev.img
	MODEL=$T/dev.model
	DEVSIZE=$((4 * 1048576))
	head -c $DEVSIZE /dev/urandom >"$IMG"
	cp "$IMG" "$MODEL"
	if loop_attach "$IMG" --sector-size 4096; then
		SRC=$dev BASE=0
		OPTS=(--read-write)
		info_is "3 loop4k" read_write=1 growable=0 sector_size=4096 size=$DEVSIZE
		for o in "" "--direct" "--direct --no-cache" "--cache"; do
			# shellcheck disable=SC2206
			OPTS=($o)
			for spec in "1 10" "4095 2" "12287 8194" "0 4096" "40000 100000" "$((DEVSIZE - 5)) 5"; do
				# shellcheck disable=SC2086
				put "3 loop4k" $spec
			done
			refused "3 loop4k $o: past the end" "past the end of the device" $((DEVSIZE - 5)) 6
			refused "3 loop4k $o: starting past the end" "past the end of the device" $((DEVSIZE + 1)) 1
			readback "3 loop4k $o" 4000 70000
		done
		for o in "" "--direct"; do
			# shellcheck disable=SC2206
			OPTS=(--offset 12345 --size 50000 $o)
			BASE=12345
			for spec in "0 1" "0 100" "49990 10" "4000 9000" "0 50000" "4095 4098"; do
				# shellcheck disable=SC2086
				put "3 window 12345+50000 of loop4k" $spec
			done
			refused "3 window of loop4k $o: past its end" "past the end of the device" 49995 6
			readback "3 window of loop4k $o" 0 50000
		done
		OPTS=() BASE=0
		lock_cases "3 loop4k lock"
		loop_detach "$SRC"
	fi
	if loop_attach "$IMG" -r --sector-size 4096; then
		SRC=$dev
		refused "3 read-only loop device" "not writable: the device is read-only" 0 10
		loop_detach "$SRC"
	fi

	# ---- 4. GPT partitions --------------------------------------------------------------
	note "4. GPT partitions on loop devices"
	part_start() {
		timeout 30 sfdisk --json "$1" | "$PY" -c '
import json, sys
t = json.load(sys.stdin)["partitiontable"]
p = t["partitions"][int(sys.argv[1]) - 1]
print(p["start"] * t.get("sectorsize", 512), p["size"] * t.get("sectorsize", 512))
' "$2"
	}
	for ss in 512 4096; do
		IMG=$T/gpt$ss.img
		MODEL=$T/gpt$ss.model
		head -c $((16 * 1048576)) /dev/urandom >"$IMG"
		loop_attach "$IMG" --sector-size $ss || continue
		SRC=$dev
		# 1 MiB and 8 MiB in, 2 MiB each, whatever the sector size
		if ! printf 'label: gpt\nstart=%d, size=%d\nstart=%d, size=%d\n' \
			$((1048576 / ss)) $((2097152 / ss)) $((8388608 / ss)) $((2097152 / ss)) |
			timeout 30 sfdisk -q "$SRC" >"$T/sfdisk.out" 2>&1; then
			fail "4 gpt $ss: sfdisk: $(head -c 300 "$T/sfdisk.out")"
			loop_detach "$SRC"
			continue
		fi
		read -r pstart psize < <(part_start "$SRC" 2)
		if [ "$pstart" = 8388608 ] && [ "$psize" = 2097152 ]; then ok "4 gpt $ss: partition 2 at $pstart"; else fail "4 gpt $ss: partition 2 at '$pstart' '$psize'"; fi
		cp "$IMG" "$MODEL"
		OPTS=(--partition 2) BASE=$pstart
		for spec in "0 1" "1 1000" "$((psize - 100)) 100" "4095 4097"; do
			# shellcheck disable=SC2086
			put "4 gpt $ss partition 2" $spec
		done
		refused "4 gpt $ss partition 2: past its end" "past the end of the device" $((psize - 100)) 101
		OPTS=(--partition 2 --offset 1001 --size 5000) BASE=$((pstart + 1001))
		put "4 gpt $ss partition 2, window 1001+5000" 4990 10
		refused "4 gpt $ss partition 2, window: past its end" "past the end of the device" 4990 11
		OPTS=() BASE=0
		loop_detach "$SRC"
	done
fi

# ---- 5. NBD -------------------------------------------------------------------------------
note "5. NBD"
# 5a. nbdkit memory: several connections, every request logged
MS=$T/mem.sock
if start_nbdkit mem "$MS" --filter=log memory 1M logfile="$T/mem-requests.log"; then
	SRC=$(uri "$MS") MODEL=$T/mem.model BASE=0
	head -c 1048576 /dev/zero >"$MODEL"
	image() { timeout 60 nbdcopy "$SRC" "$T/snap" && echo "$T/snap"; }
	OPTS=(--read-write)
	info_is "5 memory" read_write=1 no_flush=0 sector_size=512 size=1048576
	for o in --no-cache ""; do
		# shellcheck disable=SC2206
		OPTS=($o)
		for spec in "0 1" "1 511" "511 2" "4095 4097" "100000 65536" "1048570 6" "0 1048576" \
			"999 300000"; do
			# shellcheck disable=SC2086
			put "5 memory" $spec
		done
		refused "5 memory $o: past the end" "past the end of the device" 1048570 7
		readback "5 memory $o" 777 100000
	done
	OPTS=()
	bio lock "$SRC" 0
	expect_rc 1 "5 memory: lock"
	expect_err_match "not supported: an NBD export has no writer lock" "5 memory: lock"
	OPTS=(--lock)
	refused "5 memory: --lock" "no writer lock" 0 1
	OPTS=()
	image() { echo "$IMG"; }
	stop_server "$T/mem.pid"
	if [ "$(grep -Eo 'connection=[0-9]+ Write' "$T/mem-requests.log" | sort -u | wc -l)" -gt 1 ]; then
		ok "5 memory: writes went out on several connections"
	else
		fail "5 memory: writes on one connection only (no multi-conn?)"
	fi
	# multi-conn's guarantee holds only through a flush: a read must not see a write made
	# on another connection unless a flush, sent after that write completed, completed first
	if "$PY" - "$T/mem-requests.log" >"$T/logcheck.out" 2>&1 <<'EOF'; then
import re, sys
pending = []   # (seq, connection) of completed writes no completed flush covers yet
flushes = {}   # (connection, id) -> seq the flush was sent at
bad = 0
for seq, line in enumerate(open(sys.argv[1])):
    m = re.search(r"connection=(\d+) (\.\.\.)?(Write|Read|Flush) id=(\d+)", line)
    if not m:
        continue
    conn, done, op, rid = int(m[1]), bool(m[2]), m[3], int(m[4])
    if op == "Write" and done and "return=0" in line:
        pending.append((seq, conn))
    elif op == "Flush" and not done:
        flushes[(conn, rid)] = seq
    elif op == "Flush" and done and "return=0" in line:
        sent = flushes.pop((conn, rid))
        pending = [(s, c) for s, c in pending if s > sent]
    elif op == "Read" and not done:
        other = [(s, c) for s, c in pending if c != conn]
        if other:
            bad += 1
            print("read on connection %d after unflushed writes on %s: %s"
                  % (conn, sorted({c for _, c in other}), line.strip()))
sys.exit(1 if bad else 0)
EOF
		ok "5 memory: no read on one connection before a write on another was flushed"
	else
		fail "5 memory: multi-conn reads: $(head -c 600 "$T/logcheck.out")"
	fi
fi

# 5b. nbdkit file, and with 4096-byte minimum blocks
IMG=$T/nbd.img
MODEL=$T/nbd.model
head -c $((2 * 1048576 + 4096)) /dev/urandom >"$IMG"
cp "$IMG" "$MODEL"
FS=$T/file.sock
for kind in plain 4k; do
	if [ $kind = plain ]; then
		start_nbdkit nbdfile "$FS" file "$IMG" || continue
	else
		start_nbdkit nbdfile "$FS" --filter=blocksize-policy file "$IMG" \
			blocksize-minimum=4096 blocksize-preferred=4096 blocksize-maximum=65536 \
			blocksize-error-policy=error || continue
	fi
	SRC=$(uri "$FS") BASE=0
	OPTS=(--read-write)
	if [ $kind = 4k ]; then info_is "5 nbdkit file $kind" sector_size=4096; fi
	for o in --no-cache ""; do
		# shellcheck disable=SC2206
		OPTS=($o)
		for spec in "0 1" "1 511" "4095 4097" "300000 200001" "$((2 * 1048576 + 4090)) 6"; do
			# shellcheck disable=SC2086
			put "5 nbdkit file $kind" $spec
		done
		refused "5 nbdkit file $kind $o: past the end" "past the end of the device" \
			$((2 * 1048576 + 4090)) 7
	done
	OPTS=(--offset 1001 --size 7000) BASE=1001
	put "5 nbdkit file $kind, window 1001+7000" 6000 1000
	refused "5 nbdkit file $kind, window: past its end" "past the end of the device" 6000 1001
	OPTS=() BASE=0
	stop_server "$T/nbdfile.pid"
done

# 5c. read-only export
if start_nbdkit ro "$T/ro.sock" -r file "$IMG"; then
	SRC=$(uri "$T/ro.sock")
	refused "5 nbdkit -r" "^blockio: .*: not writable: the NBD export is read-only \[code READ_ONLY\]$" 0 10
	OPTS=()
	readback "5 nbdkit -r: reads still work" 5 5000
	stop_server "$T/ro.pid"
fi

# 5d. failing writes: EIO and ENOSPC from the error filter, a full disk
for e in EIO ENOSPC; do
	if start_nbdkit err$e "$T/err.sock" --filter=error file "$IMG" error-pwrite=$e \
		error-pwrite-rate=100%; then
		SRC=$(uri "$T/err.sock")
		if [ $e = EIO ]; then want="I/O error: the server failed a write at byte 0: Input/output error"
		else want="no space left: the server failed a write at byte 0: No space left on device"; fi
		for o in --no-cache ""; do
			# shellcheck disable=SC2206
			OPTS=($o)
			refused "5 error filter $e $o" "$want" 0 4096
		done
		OPTS=()
		stop_server "$T/err$e.pid"
	fi
done
if start_nbdkit full "$T/full.sock" full 1M; then
	head -c 4096 /dev/urandom >"$T/data"
	bio pwrite "$(uri "$T/full.sock")" 4096 "$T/data"
	expect_rc 1 "5 nbdkit full"
	expect_err_match "no space left: the server failed a write at byte 4096: No space left on device" "5 nbdkit full"
	stop_server "$T/full.pid"
fi

# 5e. flush: one the server fails (and the next fails too); a server without flush
EVAL_FILE=$T/eval.img
head -c 1048576 /dev/zero >"$EVAL_FILE"
EVAL=(eval get_size="echo 1048576"
	pread="dd if=$EVAL_FILE skip=\$4 count=\$3 iflag=skip_bytes,count_bytes status=none"
	pwrite="dd of=$EVAL_FILE seek=\$4 oflag=seek_bytes conv=notrunc status=none")
if start_nbdkit badflush "$T/bf.sock" "${EVAL[@]}" flush='echo "EIO the disk is on fire" >&2; exit 1'; then
	head -c 1000 /dev/urandom >"$T/data"
	bio --flushes 2 pwrite "$(uri "$T/bf.sock")" 0 "$T/data"
	expect_rc 1 "5 a failed flush (exit 3: the second succeeded)"
	expect_err_match "^blockio: .*: I/O error: the server failed a flush: Input/output error \[code IO\]$" "5 a failed flush"
	stop_server "$T/badflush.pid"
fi
head -c 1048576 /dev/zero >"$EVAL_FILE" # the failed flush's write landed
if start_nbdkit noflush "$T/nf.sock" "${EVAL[@]}"; then
	SRC=$(uri "$T/nf.sock") IMG=$EVAL_FILE MODEL=$T/eval.model BASE=0
	cp "$EVAL_FILE" "$MODEL"
	OPTS=(--read-write)
	info_is "5 a server without flush" read_write=1 no_flush=1
	OPTS=()
	put "5 a server without flush" 1000 3000
	stop_server "$T/noflush.pid"
fi

# 5f. a small export
if start_nbdkit small "$T/small.sock" memory 65536; then
	SRC=$(uri "$T/small.sock") IMG=$T/small.snap MODEL=$T/small.model BASE=0
	head -c 65536 /dev/zero >"$MODEL"
	image() { timeout 60 nbdcopy "$SRC" "$T/snap" && echo "$T/snap"; }
	put "5 a small export" 65530 6
	refused "5 a small export: past the end" "past the end of the device: writing bytes 65530\+7 of 65536" 65530 7
	image() { echo "$IMG"; }
	stop_server "$T/small.pid"
fi

if [ -z "$ROOT" ]; then
	echo "$TEST_NAME: $n_pass passed, $n_fail failed (without the parts that need root)"
	[ "$n_fail" = 0 ] || exit 1
	skip_or_fail "parts 2-4 need root (mounts, loop devices)"
fi
finish
