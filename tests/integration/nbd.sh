#!/bin/bash
# tarkv and tarmount over NBD, against several servers, with faults injected.
#
# One GNU tar archive made here (files, directories, symlinks, hard links, a sparse file, a
# long name, other owners, random 5 and 3 MiB files) is served on unix sockets in the
# temporary directory, each server under timeout(1) and killed on exit:
#   1. nbdkit file: `tarkv URI ls -R --json` equals the file backend's listing (compare.py
#      checks that one against GNU tar's extraction), `tarkv URI digest` of every file equals
#      sha256sum of the extraction, `tarkv URI cat` and get-partial; tarmount URI M agrees
#      with the extraction (treecmp.py: paths, types, modes, owners, sizes, mtimes, links,
#      contents), also with 8 readers at once; 4 connections where the server offers
#      multi-conn, 1 where it does not (nbdkit log filter).
#      An export whose size is not a multiple of 512 reads like the same file.
#   2. nbdkit memory filled by nbdcopy: a non-file export.
#   3. nbdkit delay filter (rdelay=2ms): still right.
#   3b. blocksize-policy filter (minimum 4096, maximum 64 KiB, violations rejected): the
#      backend honours the server's constraints.
#   4. nbdkit error filter: `tarkv cat` gives the right bytes or fails with exit 2 and a
#      message, never wrong bytes; through tarmount, EIO or the right bytes, the mount stays
#      up and reads work again when the errors stop.
#   5. qemu-nbd and nbd-server serving the archive: every digest right.
#   6. The server killed in the middle of a read through tarmount -o timeout=3: EIO within
#      a few seconds, the mount stays up, and once a server is back on the socket the file
#      reads right.
#   7. A stalled server: tarkv --timeout 2 over rdelay=60 exits 2 in 2-6 s; tarmount over it
#      fails in bounded time; a mounted server that stops (SIGSTOP) gives EIO in 2-6 s and
#      reads work again after SIGCONT (and the backend's one second of failing at once).
#   8. Errors: no server on the socket, a bad URI, an export the server lacks, TLS
#      mismatches: exit 2 and one line naming the source.  nbds+unix with a PSK: reads right.
# The fault runs use no saved index (--no-index, -o noindex); saved indexes go to a private
# XDG_CACHE_HOME.
. "$(dirname "$0")/lib.sh"

. "$(dirname "$0")/lib_mount.sh"

. "$(dirname "$0")/lib_nbd.sh"

need_fuse
need_cmd tar sha256sum nbdkit nbdcopy nbdinfo qemu-nbd nbd-server cmp truncate "$PY"
make_tmp
trap 'mount_cleanup; servers_cleanup; cleanup' EXIT
umask 022
# Saved indexes in a private cache.  The runs that inject faults use none (--no-index,
# -o noindex): they are about the reads, not about which index a failed identity finds.
export XDG_CACHE_HOME=$T/cache

# ---- the archive and its extraction --------------------------------------------------------
S=$T/src
mkdir -p "$S/dir/sub" "$S/private" "$S/with space" "$S/empty"
head -c 5M /dev/urandom >"$S/big"
head -c 3M /dev/urandom >"$S/dir/big2"
printf 'hello\n' >"$S/dir/hello.txt"
: >"$S/dir/empty.txt"
seq 1 20000 >"$S/dir/sub/numbers"
printf 'x%.0s' $(seq 300) >"$S/with space/three hundred x"
ln "$S/dir/hello.txt" "$S/dir/sub/hardlink"
ln -s hello.txt "$S/dir/rel-link"
ln -s /nonexistent/target "$S/dangling"
ln -s ../dir/sub "$S/private/dirlink"
long=$S/dir/$(printf 'n%.0s' $(seq 150))
printf 'long name\n' >"$long"
truncate -s 4M "$S/sparse"
printf 'in the middle' | dd of="$S/sparse" bs=1 seek=1048576 conv=notrunc status=none
printf 'at the end' | dd of="$S/sparse" bs=1 seek=4194000 conv=notrunc status=none
chown -R 1234:5678 "$S/private"
chmod 0640 "$S/dir/sub/numbers"
chmod 0700 "$S/private"
find "$S" -exec touch -h -d @1600000000 {} +
touch -d @1500000000 "$S/big"
A=$T/a.tar
if ! tar --format=gnu --sparse -cf "$A" -C "$S" .; then
	fail "GNU tar -c"
	finish
fi
X=$T/x
mkdir -p "$X"
if ! tar_extract "$A" "$X"; then
	fail "GNU tar -x of the test archive"
	finish
fi
BIG_SUM=$(sha256sum <"$X/big" | cut -d' ' -f1)
# every regular file, "./path" one a line, and its digests as sha256sum prints them
(cd "$X" && find . -type f | LC_ALL=C sort) >"$T/files"
(cd "$X" && tr '\n' '\0' <"$T/files" | xargs -0 sha256sum) >"$T/sums"
ok "test archive: $(wc -l <"$T/files") files, $(stat -c %s "$A") bytes"

# The file backend against GNU tar first: what the NBD runs are compared with.
if "$PY" "$HERE/compare.py" --ns --label "file backend" "$TARKV" "$A" "$X" >"$T/cmp.out" 2>&1; then
	ok "compare.py: tarkv on the archive file agrees with GNU tar"
else
	sed 's/^/    /' "$T/cmp.out"
	fail "compare.py: tarkv on the archive file differs from GNU tar"
fi
"$TARKV" "$A" ls -R --json >"$T/ls.file" 2>"$T/ls.file.err" || fail "tarkv FILE ls -R --json"

# check_digests WHAT URI [TARKV-OPTIONS...]: ls -R --json and digest of every file
check_digests() {
	local what=$1 u=$2
	shift 2
	tk "$@" "$u" ls -R --json
	if [ "$RC" = 0 ] && "$PY" - "$T/ls.file" "$T/out" <<'EOF'; then
import json, sys
a, b = (json.load(open(p)) for p in sys.argv[1:])
a.pop("source"); b.pop("source")
sys.exit(a != b)
EOF
		ok "$what: ls -R --json equals the file backend's"
	else
		fail "$what: ls -R --json differs from the file backend's $(last)"
	fi
	tr '\n' '\0' <"$T/files" | timeout 120 xargs -0 "$TARKV" "$@" "$u" digest >"$T/out" 2>"$T/err"
	RC=$?
	if [ "$RC" = 0 ] && cmp -s "$T/sums" "$T/out"; then
		ok "$what: digest of all $(wc -l <"$T/files") files"
	else
		fail "$what: digests differ from sha256sum of the extraction $(last)"
		diff "$T/sums" "$T/out" | head -10 | sed 's/^/    /'
	fi
}

# one_line WHAT REGEX: exit 2, one line on stderr matching REGEX, nothing on stdout
one_line() {
	expect_rc 2 "$1"
	expect_err_match "$2" "$1"
	[ "$(wc -l <"$T/err")" = 1 ] && ok "$1: one line" || fail "$1: not one line $(last)"
	expect_out_empty "$1"
}

# evict FILE...: drop the files' pages from the page cache (tarmount asks the kernel to keep
# them), so that the next read reaches tarmount and the backend
evict() {
	local f
	for f in "$@"; do dd if="$f" iflag=nocache count=0 status=none 2>/dev/null; done
}

# elapsed SINCE: seconds since SINCE (an $EPOCHREALTIME), with 1 decimal
elapsed() { awk -v a="$1" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", b - a }'; }
# within SECONDS LOW HIGH: LOW <= SECONDS <= HIGH
within() { awk -v t="$1" -v lo="$2" -v hi="$3" 'BEGIN { exit !(t >= lo && t <= hi) }'; }

# ---- 1. nbdkit file ------------------------------------------------------------------------
K=$T/k.sock
U=$(uri "$K")
if start_nbdkit file "$K" --filter=log file "$A" logfile="$T/file.connlog"; then
	check_digests "nbdkit file" "$U"
	if grep -q 'can_multi_conn: true' <(nbdinfo "$U" 2>/dev/null); then
		n0=$(grep -c 'Connect ' "$T/file.connlog")
		tk "$U" info
		n=$(($(grep -c 'Connect ' "$T/file.connlog") - n0))
		[ "$RC" = 0 ] && [ "$n" = 4 ] && ok "nbdkit file offers multi-conn: tarkv opens 4 connections" ||
			fail "nbdkit file offers multi-conn: tarkv opened $n connections $(last)"
	else
		fail "nbdkit file does not offer multi-conn"
	fi
	tk "$U" cat ./big
	[ "$RC" = 0 ] && cmp -s "$T/out" "$X/big" && ok "nbdkit file: cat big" ||
		fail "nbdkit file: cat big $(last)"
	tk "$U" get-partial dir/big2 1000001 777777
	tail -c +1000002 "$X/dir/big2" | head -c 777777 >"$T/want"
	expect_out_file "$T/want" "nbdkit file: get-partial at an odd offset"
	tk --no-cache "$U" cat dir/sub/numbers big
	cat "$X/dir/sub/numbers" "$X/big" >"$T/want"
	expect_out_file "$T/want" "nbdkit file, --no-cache: cat"

	M=$T/m1
	mkdir -p "$M"
	if tm_mount "tarmount over nbdkit file" "$U" "$M"; then
		if timeout 300 "$PY" "$HERE/treecmp.py" --ns --archive "$A" --label "nbd mount" "$X" "$M" \
			>"$T/cmp.out" 2>&1; then
			ok "tarmount over nbdkit file: the mount agrees with GNU tar's extraction"
		else
			sed 's/^/    /' "$T/cmp.out"
			fail "tarmount over nbdkit file: the mount differs from GNU tar's extraction"
		fi
		# 8 readers at once, several times over each file
		(cd "$M" && tr '\n' '\0' <"$T/files" | xargs -0 sh -c 'for f; do dd if="$f" iflag=nocache count=0 status=none; done' sh)
		(cd "$M" && for _ in 1 2 3; do cat "$T/files"; done | tr '\n' '\0' |
			timeout 120 xargs -0 -n 2 -P 8 sha256sum) >"$T/par" 2>"$T/par.err"
		if [ "$(LC_ALL=C sort -u "$T/par")" = "$(LC_ALL=C sort "$T/sums")" ] && [ ! -s "$T/par.err" ]; then
			ok "tarmount over nbdkit file: 8 parallel readers get the right bytes"
		else
			fail "tarmount over nbdkit file: parallel readers: $(head -c 300 "$T/par.err")"
		fi
		grep -q 'tarmount' <(mount_line "$M") && ok "tarmount over nbdkit file: in /proc/mounts" ||
			fail "tarmount over nbdkit file: not a tarmount in /proc/mounts: $(mount_line "$M")"
		# reads over NBD are copied, not spliced: a 1 MiB read-ahead window by default
		ra=/sys/class/bdi/$(mountpoint -d "$M")/read_ahead_kb
		for _ in $(seq 50); do [ "$(cat "$ra" 2>/dev/null)" = 1024 ] && break; sleep 0.1; done
		[ "$(cat "$ra" 2>/dev/null)" = 1024 ] && ok "tarmount over nbdkit file: read-ahead 1024 KiB" ||
			fail "tarmount over nbdkit file: read_ahead_kb is '$(cat "$ra" 2>&1)', want 1024"
		tm_umount "tarmount over nbdkit file" "$M"
	fi
	stop_server "$T/file.pid"
fi

# An export that ends inside a sector: the archive without record padding (-b 1), less the
# last 100 bytes of its end-of-archive blocks.  The backend reads the partial last sector
# (zeros past the end), as the file backend does.
AO=$T/odd.tar
tar --format=gnu --sparse -b 1 -cf "$T/b1.tar" -C "$S" . &&
	head -c $(($(stat -c %s "$T/b1.tar") - 100)) "$T/b1.tar" >"$AO"
KO=$T/odd.sock
if start_nbdkit odd "$KO" file "$AO"; then
	check_digests "an export of $(stat -c %s "$AO") bytes" "$(uri "$KO")"
	"$TARKV" --no-index "$AO" info >"$T/info.file" 2>&1
	tk --no-index "$(uri "$KO")" info
	expect_out_file "$T/info.file" "an export that ends inside a sector: info as for the file"
	stop_server "$T/odd.pid"
fi

# One connection where the server does not offer multi-conn.
K1=$T/k1.sock
if start_nbdkit single "$K1" --filter=log --filter=multi-conn file "$A" \
	multi-conn-mode=disable logfile="$T/single.connlog"; then
	check_digests "nbdkit without multi-conn" "$(uri "$K1")"
	n0=$(grep -c 'Connect ' "$T/single.connlog")
	tk "$(uri "$K1")" info
	n=$(($(grep -c 'Connect ' "$T/single.connlog") - n0))
	[ "$RC" = 0 ] && [ "$n" = 1 ] && ok "nbdkit without multi-conn: tarkv opens 1 connection" ||
		fail "nbdkit without multi-conn: tarkv opened $n connections $(last)"
	stop_server "$T/single.pid"
fi

# ---- 2. nbdkit memory, filled with nbdcopy -------------------------------------------------
KM=$T/mem.sock
size=$(($(stat -c %s "$A") / 1048576 * 1048576 + 1048576))
if start_nbdkit memory "$KM" memory "size=$size"; then
	if timeout 60 nbdcopy "$A" "$(uri "$KM")" 2>"$T/nbdcopy.err"; then
		check_digests "nbdkit memory" "$(uri "$KM")"
		tk "$(uri "$KM")" info
		expect_rc 0 "nbdkit memory: info"
		grep -q '^truncated: no' "$T/out" && ok "nbdkit memory: the zeros after the archive end it" ||
			fail "nbdkit memory: info says $(tr '\n' '|' <"$T/out")"
	else
		fail "nbdcopy into nbdkit memory: $(head -c 300 "$T/nbdcopy.err")"
	fi
	stop_server "$T/memory.pid"
fi

# ---- 3. delay filter -----------------------------------------------------------------------
KD=$T/delay.sock
if start_nbdkit delay "$KD" --filter=delay file "$A" rdelay=2ms; then
	check_digests "nbdkit delay rdelay=2ms" "$(uri "$KD")"
	stop_server "$T/delay.pid"
fi

# ---- 3b. block size constraints: 4 KiB minimum, 64 KiB maximum, enforced ------------------
A4=$T/a4k.tar
cp "$A" "$A4" && truncate -s %4096 "$A4"
KB=$T/bs.sock
if start_nbdkit blocksize "$KB" --filter=blocksize-policy file "$A4" blocksize-minimum=4096 \
	blocksize-preferred=4096 blocksize-maximum=65536 blocksize-error-policy=error; then
	check_digests "nbdkit minimum 4 KiB, maximum 64 KiB" "$(uri "$KB")"
	check_digests "nbdkit minimum 4 KiB, maximum 64 KiB, --no-cache" "$(uri "$KB")" --no-cache
	stop_server "$T/blocksize.pid"
fi

# ---- 4. error filter -----------------------------------------------------------------------
KE=$T/err.sock
TRIGGER=$T/errors-on
# right_or_eio WHAT FILE ORACLE: FILE is ORACLE, or a prefix of it after a failed read
right_or_eio() {
	local what=$1 got=$2 want=$3 rc=$4 errf=$5 errre=$6
	local n
	n=$(stat -c %s "$got")
	if [ "$rc" = 0 ]; then
		cmp -s "$got" "$want" && return 0
		fail "$what: exit 0 with wrong bytes"
		return 1
	fi
	if ! cmp -s -n "$n" "$got" "$want"; then
		fail "$what: exit $rc after $n wrong bytes"
		return 1
	fi
	if ! grep -Eq -- "$errre" "$errf"; then
		fail "$what: exit $rc without the expected message: $(head -c 300 "$errf")"
		return 1
	fi
	return 2
}
if start_nbdkit error "$KE" --filter=error file "$A" error-pread=EIO error-pread-rate=8% \
	error-pread-file="$TRIGGER"; then
	UE=$(uri "$KE")
	touch "$TRIGGER"
	good=0 bad=0
	for i in $(seq 12); do
		tk --no-index "$UE" cat big
		right_or_eio "error filter: tarkv cat, run $i" "$T/out" "$X/big" "$RC" "$T/err" \
			'^tarkv: .*(I/O|Input/output) error'
		case $? in 0) good=$((good + 1)) ;; 2) bad=$((bad + 1)) ;; esac
		[ "$RC" = 0 ] || [ "$RC" = 2 ] || fail "error filter: tarkv cat, run $i: exit $RC $(last)"
	done
	ok "error filter: tarkv cat gave the right bytes $good times, failed cleanly $bad times"
	rm -f "$TRIGGER"
	M=$T/m4
	mkdir -p "$M"
	if tm_mount "tarmount over the error filter" "$UE" "$M" -o nocache,noindex; then
		touch "$TRIGGER"
		good=0 bad=0
		for i in $(seq 8); do
			evict "$M/big"
			timeout 60 cat "$M/big" >"$T/out" 2>"$T/err"
			RC=$?
			right_or_eio "error filter: cat through tarmount, run $i" "$T/out" "$X/big" "$RC" \
				"$T/err" 'Input/output error'
			case $? in 0) good=$((good + 1)) ;; 2) bad=$((bad + 1)) ;; esac
		done
		ok "error filter: cat through tarmount gave the right bytes $good times, EIO $bad times"
		rm -f "$TRIGGER"
		timeout 10 ls "$M/dir" >/dev/null 2>&1 && ok "error filter: the mount stays up" ||
			fail "error filter: ls of the mount fails"
		evict "$M/big" "$M/dir/big2"
		timeout 60 cat "$M/big" "$M/dir/big2" >"$T/out" 2>"$T/err"
		RC=$?
		cat "$X/big" "$X/dir/big2" >"$T/want"
		[ "$RC" = 0 ] && cmp -s "$T/out" "$T/want" &&
			ok "error filter: reads right again once the errors stop" ||
			fail "error filter: reads after the errors stopped: $(head -c 300 "$T/err")"
		tm_umount "tarmount over the error filter" "$M"
	fi
	stop_server "$T/error.pid"
fi

# ---- 5. qemu-nbd and nbd-server ------------------------------------------------------------
KQ=$T/qemu.sock
SERVER_PIDFILES+=("$T/qemu.pid")
timeout 900 qemu-nbd --read-only --format=raw --persistent --socket="$KQ" \
	--pid-file="$T/qemu.pid" "$A" >"$T/qemu.log" 2>&1 &
WRAPPERS+=("$!")
disown "$!"
if wait_ready "$(uri "$KQ")" "$T/qemu.pid"; then
	check_digests "qemu-nbd" "$(uri "$KQ")"
	stop_server "$T/qemu.pid"
else
	fail "qemu-nbd did not start: $(head -c 500 "$T/qemu.log")"
fi

KN=$T/nbd-server.sock
cat >"$T/nbd-server.conf" <<EOF
[generic]
unixsock = $KN
[tar]
exportname = $A
readonly = true
EOF
SERVER_PIDFILES+=("$T/nbd-server.pid")
UN=$(uri "$KN" tar) UN_BAD=$(uri "$KN" nosuch)
# it forks to the background: the pid file names the daemon
timeout 60 nbd-server -C "$T/nbd-server.conf" -p "$T/nbd-server.pid" >"$T/nbd-server.log" 2>&1
if ! wait_ready "$UN" "$T/nbd-server.pid"; then
	# no unixsock in this version: TCP on the loopback, on a free port
	stop_server "$T/nbd-server.pid"
	port=$("$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
	printf '[generic]\nlistenaddr = 127.0.0.1\nport = %s\n[tar]\nexportname = %s\nreadonly = true\n' \
		"$port" "$A" >"$T/nbd-server.conf"
	UN=nbd://127.0.0.1:$port/tar UN_BAD=nbd://127.0.0.1:$port/nosuch
	rm -f "$T/nbd-server.pid"
	timeout 60 nbd-server -C "$T/nbd-server.conf" -p "$T/nbd-server.pid" >"$T/nbd-server.log" 2>&1
	wait_ready "$UN" "$T/nbd-server.pid" && note "nbd-server: on 127.0.0.1:$port"
fi
if [ -s "$T/nbd-server.pid" ] && timeout 5 nbdinfo --size "$UN" >/dev/null 2>&1; then
	check_digests "nbd-server" "$UN"
	tk "$UN_BAD" ls
	one_line "nbd-server, an export it does not have" "^tarkv: .*nosuch.*: cannot open: .*nosuch"
	stop_server "$T/nbd-server.pid"
else
	fail "nbd-server did not start: $(head -c 500 "$T/nbd-server.log")"
fi

# ---- 6. the server killed in the middle of a read ------------------------------------------
KK=$T/kill.sock
if start_nbdkit kill "$KK" file "$A"; then
	M=$T/m6
	mkdir -p "$M"
	if tm_mount "kill: tarmount -o timeout=3" "$(uri "$KK")" "$M" -o timeout=3,noindex; then
		# Freeze the server so that the read is surely in flight, then kill it.
		kill -STOP "$(server_pid "$T/kill.pid")"
		t0=$EPOCHREALTIME
		timeout 60 cat "$M/big" >"$T/out" 2>"$T/err" &
		reader=$!
		sleep 1
		kill -9 "$(server_pid "$T/kill.pid")"
		wait "$reader"
		RC=$? dt=$(elapsed "$t0")
		if [ "$RC" != 0 ] && grep -q 'Input/output error' "$T/err" && within "$dt" 0 6; then
			ok "kill: the read fails with EIO after $dt s"
		else
			fail "kill: cat exit $RC after $dt s: $(head -c 300 "$T/err")"
		fi
		timeout 10 ls -l "$M" "$M/dir" >/dev/null 2>"$T/err" && timeout 10 stat "$M/big" >/dev/null &&
			ok "kill: the mount stays up (ls, stat)" ||
			fail "kill: the mount does not answer: $(head -c 300 "$T/err")"
		t0=$EPOCHREALTIME
		timeout 60 cat "$M/dir/big2" >/dev/null 2>"$T/err"
		RC=$? dt=$(elapsed "$t0")
		[ "$RC" != 0 ] && within "$dt" 0 5 && ok "kill: with no server, a read fails in $dt s" ||
			fail "kill: with no server, cat exit $RC after $dt s"
		start_nbdkit kill "$KK" file "$A"
		evict "$M/big"
		timeout 60 cat "$M/big" >"$T/out" 2>"$T/err"
		RC=$?
		[ "$RC" = 0 ] && [ "$(sha256sum <"$T/out" | cut -d' ' -f1)" = "$BIG_SUM" ] &&
			ok "kill: after a restart on the same socket, the file reads right" ||
			fail "kill: after the restart, cat exit $RC: $(head -c 300 "$T/err")"
		tm_umount "kill" "$M"
	fi
	stop_server "$T/kill.pid"
fi

# ---- 7. a stalled server -------------------------------------------------------------------
KS=$T/stall.sock
if start_nbdkit stall "$KS" --filter=delay file "$A" rdelay=60; then
	t0=$EPOCHREALTIME
	tk --no-index --timeout 2 "$(uri "$KS")" cat big
	dt=$(elapsed "$t0")
	expect_rc 2 "stall: tarkv --timeout 2 over rdelay=60"
	within "$dt" 1.5 6 && ok "stall: tarkv gave up after $dt s" || fail "stall: tarkv took $dt s"
	expect_err_match "^tarkv: .*$KS.*(timed out|no reply)" "stall: tarkv"
	[ "$(wc -l <"$T/err")" = 1 ] && ok "stall: tarkv: one line" || fail "stall: tarkv: $(last)"
	M=$T/m7
	mkdir -p "$M"
	MOUNTS+=("$M")
	t0=$EPOCHREALTIME
	timeout 60 "$TARMOUNT" -o timeout=2,noindex "$(uri "$KS")" "$M" >"$T/out" 2>"$T/err"
	RC=$? dt=$(elapsed "$t0")
	[ "$RC" != 0 ] && ! is_mounted "$M" && within "$dt" 1.5 6 &&
		ok "stall: tarmount -o timeout=2 gives up after $dt s" ||
		fail "stall: tarmount exit $RC after $dt s, $(is_mounted "$M" || echo not) mounted $(last)"
	expect_err_match "$KS.*(timed out|no reply)" "stall: tarmount"
	stop_server "$T/stall.pid"
fi
KS=$T/stop.sock
if start_nbdkit stop "$KS" file "$A"; then
	M=$T/m7b
	mkdir -p "$M"
	if tm_mount "stop: tarmount -o timeout=2" "$(uri "$KS")" "$M" -o timeout=2,noindex; then
		kill -STOP "$(server_pid "$T/stop.pid")"
		t0=$EPOCHREALTIME
		timeout 60 cat "$M/big" >/dev/null 2>"$T/err"
		RC=$? dt=$(elapsed "$t0")
		[ "$RC" != 0 ] && grep -q 'Input/output error' "$T/err" && within "$dt" 1.5 6 &&
			ok "stop: a read from a stopped server fails with EIO after $dt s" ||
			fail "stop: cat exit $RC after $dt s: $(head -c 300 "$T/err")"
		timeout 10 ls "$M/dir" >/dev/null && ok "stop: the mount stays up" ||
			fail "stop: ls of the mount fails"
		kill -CONT "$(server_pid "$T/stop.pid")"
		sleep 1.5 # just after a timeout, reads fail at once for a second
		evict "$M/big"
		timeout 60 cat "$M/big" >"$T/out" 2>"$T/err"
		RC=$?
		[ "$RC" = 0 ] && [ "$(sha256sum <"$T/out" | cut -d' ' -f1)" = "$BIG_SUM" ] &&
			ok "stop: after SIGCONT, the file reads right" ||
			fail "stop: after SIGCONT, cat exit $RC: $(head -c 300 "$T/err")"
		tm_umount "stop" "$M"
	fi
	stop_server "$T/stop.pid"
fi

# ---- 8. error messages, TLS ----------------------------------------------------------------
tk "$(uri "$T/nobody.sock")" ls
one_line "no server" "^tarkv: nbd\+unix:///\?socket=$T/nobody.sock: .*No such file"
mkfifo "$T/not-a-socket"
tk "$(uri "$T/not-a-socket")" ls
one_line "a FIFO for a socket" "^tarkv: .*not-a-socket: "
tk "nbd+unix:///" ls
one_line "nbd+unix without socket=" '^tarkv: nbd\+unix:///: .*socket'
tk "nbd://[::1" ls
one_line "a URI that does not parse" '^tarkv: nbd://\[::1: '

# TLS with a pre-shared key (libnbd reads the key file named in the URI)
KT=$T/tls.sock
printf 'alice:%s\n' "$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')" >"$T/keys.psk"
UT="nbds+unix://alice@/?socket=$KT&tls-psk-file=$T/keys.psk"
if READY_URI=$UT start_nbdkit tls "$KT" --tls=require --tls-psk="$T/keys.psk" file "$A"; then
	check_digests "nbds+unix with a PSK" "$UT"
	tk "$(uri "$KT")" ls
	one_line "nbd+unix to a server that requires TLS" "^tarkv: nbd\+unix:///\?socket=$KT: "
	stop_server "$T/tls.pid"
fi
start_nbdkit notls "$K1" file "$A"
tk "nbds+unix://alice@/?socket=$K1&tls-psk-file=$T/keys.psk" ls
one_line "nbds+unix to a server without TLS" "^tarkv: nbds\+unix://alice@/\?socket=$K1.*: "
stop_server "$T/notls.pid"

finish
