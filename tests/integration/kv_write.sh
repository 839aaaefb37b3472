#!/bin/bash
# shellcheck disable=SC2015,SC2317 # ok and fail return 0; functions run from traps
# tarkv's writing commands (KV_RW), against GNU tar, bsdtar and Python's tarfile:
#   1. random operation sequences (kv_write.py, two seeds): put (from a file and stdin,
#      new keys and existing ones), mkdir, symlink, link, allocate, put-partial, rm and mv
#      of the last member, long, deep and non-ASCII names, empty and multi-MiB values; the
#      archive equals a model of the operations after every 25;
#   2. refusals, each with exit 3 (or 1, 2) and one clear line, the archive unchanged
#      byte for byte: rm and mv of a member that is not the last, mkdir of an existing key,
#      put under a value (1), put-partial past a value's end (2), a compressed archive
#      (read-only), a read-only loop device;
#   3. kill -9 of tarkv at random points of 30 appends of 8 MiB values (a third of them with
#      --no-sync, which a kill does not defeat either): after each, GNU tar
#      reads the whole archive (exit 0), every acknowledged member is there and intact, and
#      the killed one is there whole or not at all; tarkv then appends again; then 300
#      small appends, each killed at a random point, with the same checks;
#   4. appends through a 4096-byte-sector loop device, a window at an odd offset (the
#      bytes around it unchanged) and an NBD export (nbdkit file), GNU tar reading each;
#      nbdkit's error filter failing every write (a clear error, the archive intact), a
#      read-only export (exit 3);
#   5. no space: a device too small and a full tmpfs refuse (exit 3, "no space") before
#      any byte is written;
#   6. two processes appending at once: every member of both is there.
if [ -z "${BASH_VERSION:-}" ]; then exec bash "$0" "$@"; fi
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/lib_nbd.sh"
need_cmd tar bsdtar python3 cmp timeout gzip losetup nbdkit nbdinfo
need_root
need_tarkv

LOOPS=()
MOUNTED=()
make_tmp
trap 'for m in "${MOUNTED[@]}"; do umount -l "$m"; done; for d in "${LOOPS[@]}"; do [ -n "$d" ] && losetup -d "$d" 2>/dev/null; done; servers_cleanup; cleanup' EXIT
umask 022
private_cache
HERE=$(cd "$(dirname "$0")" && pwd)

# unchanged WHAT FILE COPY: FILE is byte for byte COPY
unchanged() { cmp -s "$2" "$3" && ok "$1: the archive is unchanged" || fail "$1: the archive changed"; }
# lists WHAT ARCHIVE KEY...: GNU tar lists ARCHIVE with exit 0 and every KEY in it
lists() {
	local what=$1 a=$2 k
	shift 2
	tar -tf "$a" >"$T/list" 2>"$T/tar.err" || { fail "$what: GNU tar -tf: $(head -c 300 "$T/tar.err")"; return; }
	for k in "$@"; do
		grep -qxF "$k" "$T/list" || { fail "$what: GNU tar does not list $k"; return; }
	done
	ok "$what: GNU tar lists it"
}
# loop ARGS...: a loop device in $dev, detached on exit (not in a subshell: LOOPS is ours)
loop() {
	dev=$(losetup -f --show "$@") || { fail "losetup $*"; return 1; }
	LOOPS+=("$dev")
}

# ---- 1. random operations ---------------------------------------------------------------
for seed in 1 2; do
	if "$PY" "$HERE/kv_write.py" "$TARKV" "$T/model$seed" "$seed" 150 >"$T/model.out" 2>&1; then
		ok "1. seed $seed: 150 random operations equal the model ($(grep -c '^ok:' "$T/model.out") checks)"
	else
		fail "1. seed $seed: $(grep -m 3 FAIL "$T/model.out" | tr '\n' ' ')"
	fi
done

# ---- 2. refusals ------------------------------------------------------------------------
mkdir -p "$T/src/d" && echo a >"$T/src/d/a" && echo b >"$T/src/b" && ln "$T/src/b" "$T/src/hb"
tar -C "$T/src" -cf "$T/r.tar" d b hb || exit 2
cp "$T/r.tar" "$T/r.copy"
tk "$T/r.tar" rm d/a
expect_rc 3 "2. rm of a member that is not the last"
expect_err_match 'r\.tar: d/a: append-only archive: .*not the archive.s last member .*extract' "2. rm says why and how to compact"
tk "$T/r.tar" mv b b2
expect_rc 3 "2. mv of a member a hard link names"
expect_err_match 'a hard link names it' "2. mv says why"
tk "$T/r.tar" mkdir d
expect_rc 3 "2. mkdir of an existing directory"
expect_err_match 'already present' "2. mkdir says it is there"
tk "$T/r.tar" put b/under - <<<x
expect_rc 1 "2. put under a value"
tk "$T/r.tar" put-partial b 1 - <<<xyz
expect_rc 2 "2. put-partial past the value's end"
expect_err_match 'past its size' "2. put-partial says why"
unchanged "2. after the refusals" "$T/r.tar" "$T/r.copy"
gzip -c "$T/r.tar" >"$T/r.tar.gz" && cp "$T/r.tar.gz" "$T/gz.copy"
tk "$T/r.tar.gz" put new - <<<x
expect_rc 3 "2. put into a compressed archive"
expect_err_match 'read-only.*compressed' "2. says a compressed archive cannot be written"
unchanged "2. compressed" "$T/r.tar.gz" "$T/gz.copy"
truncate -s 1M "$T/ro.img" && dd if="$T/r.tar" of="$T/ro.img" conv=notrunc status=none
if loop -r "$T/ro.img"; then
	tk "$dev" put new - <<<x
	expect_rc 3 "2. put on a read-only device"
	expect_err_match 'read-only' "2. a read-only device says so"
fi

# ---- 3. kill -9 -----------------------------------------------------------------------------
# killed_put ARCHIVE KEY FILE DELAY [OPTION]: tarkv put, killed after DELAY seconds (KEY goes
# to $T/acked when the put returned first); then GNU tar must read ARCHIVE, list every key
# acknowledged so far and, when it lists KEY, hold it whole.  Problems are counted in bad.
killed_put() {
	local archive=$1 key=$2 file=$3 pid lost
	"$TARKV" -q ${5:+"$5"} "$archive" put "$key" "$file" 2>/dev/null &
	pid=$!
	sleep "$4"
	kill -9 "$pid" 2>/dev/null
	wait "$pid" 2>/dev/null && echo "$key" >>"$T/acked"
	if ! tar -tf "$archive" >"$T/list" 2>"$T/tar.err"; then
		bad=$((bad + 1)); echo "  after the kill of $key: GNU tar: $(head -c 200 "$T/tar.err")"; return
	fi
	lost=$(grep -vxFf "$T/list" "$T/acked" | head -n 3 | tr '\n' ' ')
	[ -z "$lost" ] || { bad=$((bad + 1)); echo "  after the kill of $key: $lost lost"; }
	# (a kill between the two writes leaves "a lone zero block", which GNU tar notes)
	if grep -qxF "$key" "$T/list" && ! tar -xOf "$archive" "$key" 2>/dev/null | cmp -s - "$file"; then
		bad=$((bad + 1)); echo "  after the kill of $key: it is there but not whole"
	fi
}

cp "$T/r.tar" "$T/k.tar"
head -c 8388608 /dev/urandom >"$T/big"
: >"$T/acked"
bad=0
for i in $(seq 30); do
	sync=; [ $((i % 3)) = 0 ] && sync=--no-sync # without flushes, a kill is as safe
	killed_put "$T/k.tar" "k/v$i" "$T/big" "0.0$((RANDOM % 10))$((RANDOM % 10))" $sync
done
mapfile -t acked <"$T/acked"
[ "$bad" = 0 ] && ok "3. 30 kills during appends: GNU tar reads every acknowledged member whole (${#acked[@]} acknowledged)" ||
	fail "3. $bad problems after kills"
for k in "${acked[@]}"; do
	tar -xOf "$T/k.tar" "$k" 2>/dev/null | cmp -s - "$T/big" || { fail "3. $k differs"; break; }
done
echo after >"$T/after" && tk "$T/k.tar" put after "$T/after"
expect_rc 0 "3. an append after the kills"
tk "$T/k.tar" cat after
expect_out after "3. it reads back"
lists "3. after the kills" "$T/k.tar" after "${acked[@]}"

# Hundreds of small appends, each killed at a random point of its few milliseconds (before
# its start, in its writes and flushes, or after its end): the same checks after every one.
cp "$T/r.tar" "$T/s.tar"
: >"$T/acked"
bad=0
for i in $(seq 300); do
	head -c $((RANDOM % 3 * 20000 + RANDOM % 700)) /dev/urandom >"$T/small$i"
	killed_put "$T/s.tar" "s/v$i" "$T/small$i" "0.0$(printf %02d $((RANDOM % 25)))"
done
mapfile -t acked <"$T/acked"
for k in "${acked[@]}"; do
	tar -xOf "$T/s.tar" "$k" 2>/dev/null | cmp -s - "$T/small${k#s/v}" ||
		{ bad=$((bad + 1)); echo "  $k was acknowledged but differs"; }
done
[ "$bad" = 0 ] && [ "${#acked[@]}" -gt 0 ] &&
	ok "3. 300 kills of small appends: GNU tar reads the archive each time, every acknowledged member whole (${#acked[@]} acknowledged)" ||
	fail "3. 300 kills of small appends: $bad problems, ${#acked[@]} acknowledged"

# ---- 4. devices, windows, NBD ------------------------------------------------------------
truncate -s 16M "$T/d4096.img" && dd if="$T/r.tar" of="$T/d4096.img" conv=notrunc status=none
if loop --sector-size 4096 "$T/d4096.img"; then
	printf 'through a 4096-byte-sector device\n' >"$T/v"
	tk "$dev" put dev/v "$T/v"
	expect_rc 0 "4. put on a 4096-byte-sector loop device"
	tk "$dev" put dev/big "$T/big"
	expect_rc 0 "4. an 8 MiB put on it"
	losetup -d "$dev" && LOOPS=("${LOOPS[@]/$dev/}")
	lists "4. 4096-byte sectors" "$T/d4096.img" dev/v dev/big
	tar -xOf "$T/d4096.img" dev/big | cmp -s - "$T/big" && ok "4. 4096-byte sectors: the value is whole" || fail "4. 4096-byte sectors: the value differs"
fi
head -c 1001 /dev/urandom >"$T/pre" && head -c 77777 /dev/urandom >"$T/post"
truncate -s 200000 "$T/space" && cat "$T/r.tar" >"$T/win.tar" && truncate -s 200000 "$T/win.tar"
cat "$T/pre" "$T/win.tar" "$T/post" >"$T/win.img"
tk --offset=1001 --size=200000 "$T/win.img" put w/v "$T/v"
expect_rc 0 "4. put in a window at byte 1001"
cmp -s <(head -c 1001 "$T/win.img") "$T/pre" && cmp -s <(tail -c 77777 "$T/win.img") "$T/post" &&
	ok "4. the bytes around the window are unchanged" || fail "4. the bytes around the window changed"
tail -c +1002 "$T/win.img" | head -c 200000 >"$T/inner.tar"
lists "4. window" "$T/inner.tar" w/v
cp "$T/r.tar" "$T/nbd.img" && truncate -s 4M "$T/nbd.img"
if start_nbdkit file "$T/nbd.sock" file "$T/nbd.img"; then
	tk "$(uri "$T/nbd.sock")" put n/v "$T/v"
	expect_rc 0 "4. put through an NBD export"
	stop_server "$T/file.pid"
	lists "4. NBD" "$T/nbd.img" n/v
fi
cp "$T/nbd.img" "$T/nbd.copy"
if start_nbdkit err "$T/err.sock" --filter=error file "$T/nbd.img" error-pwrite=EIO error-pwrite-rate=100%; then
	tk "$(uri "$T/err.sock")" put n/w "$T/v"
	expect_rc 2 "4. every write failing"
	expect_err_match 'n/w: .*(I/O|Input/output) error' "4. a failing write is one clear error"
	stop_server "$T/err.pid"
	unchanged "4. failing writes" "$T/nbd.img" "$T/nbd.copy"
	lists "4. failing writes" "$T/nbd.img" n/v
fi
if start_nbdkit ro "$T/ro.sock" -r file "$T/nbd.img"; then
	tk "$(uri "$T/ro.sock")" put n/w "$T/v"
	expect_rc 3 "4. a read-only export"
	expect_err_match 'read-only' "4. a read-only export says so"
	stop_server "$T/ro.pid"
fi

# ---- 5. no space ------------------------------------------------------------------------
truncate -s 65536 "$T/small.img" && dd if="$T/r.tar" of="$T/small.img" conv=notrunc status=none
cp "$T/small.img" "$T/small.copy"
if loop "$T/small.img"; then
	tk "$dev" put big "$T/big"
	expect_rc 3 "5. a device too small"
	expect_err_match 'no space left' "5. says no space"
	losetup -d "$dev" && LOOPS=("${LOOPS[@]/$dev/}")
	unchanged "5. device" "$T/small.img" "$T/small.copy"
fi
mkdir -p "$T/full"
if mount -t tmpfs -o size=4m tmpfs "$T/full"; then
	MOUNTED+=("$T/full")
	cp "$T/r.tar" "$T/full/a.tar" && cp "$T/r.tar" "$T/full.copy"
	tk "$T/full/a.tar" put big "$T/big"
	expect_rc 3 "5. a full filesystem"
	expect_err_match 'no space left' "5. says no space"
	unchanged "5. filesystem" "$T/full/a.tar" "$T/full.copy"
fi

# ---- 6. two writers ---------------------------------------------------------------------
cp "$T/r.tar" "$T/two.tar"
for w in a b; do
	(for i in $(seq 10); do echo "$w$i" | "$TARKV" -q "$T/two.tar" put "w$w/$i" - || echo "put w$w/$i failed"; done) >"$T/w$w.out" 2>&1 &
done
wait
keys=()
for w in a b; do for i in $(seq 10); do keys+=("w$w/$i"); done; done
[ ! -s "$T/wa.out" ] && [ ! -s "$T/wb.out" ] && ok "6. two writers: every put succeeded" || fail "6. two writers: $(cat "$T/wa.out" "$T/wb.out" | head -3)"
lists "6. two writers" "$T/two.tar" "${keys[@]}"
bsdtar -tf "$T/two.tar" >/dev/null 2>&1 && ok "6. bsdtar reads it" || fail "6. bsdtar fails on it"

finish
