#!/bin/bash
# Fuzzer regressions through the normal build's tarkv (no clang needed): every file in
# tests/fuzz/crashes/*/ and every archive seed in tests/fuzz/corpus/fuzz_archive/ is read as
# an archive with
#   tarkv --index SCRATCH FILE ls -R          (builds and saves an index)
#   tarkv --index SCRATCH FILE ls -l -R       (the saved index, loaded)
#   tarkv --no-index FILE find
#   tarkv --index SCRATCH FILE digest PATH... (every path find listed)
# and the reproducers of tests/fuzz/crashes/fuzz_index_file/ (mode byte 0 or 1, see
# tests/fuzz/fuzz_index_file.c) are also made into index files for a reference archive
# (source id and checksums set, as the fuzzer does) and given to tarkv --index with the same
# commands.  Each run must end with exit status 0, 1 or 2 within 20 s: never a signal, a
# sanitizer report or a hang.  Output is kept to its first MiB (a looping tree prints
# without end).
#
# Environment: TARKV, top_srcdir (see lib.sh).  Exit 0 (all passed), 1, or 77 when tarkv
# is missing.
if [ -z "${BASH_VERSION:-}" ]; then exec bash "$0" "$@"; fi
. "$(dirname "$0")/lib.sh"

need_cmd timeout head
need_tarkv
make_tmp
FUZZ=$top_srcdir/tests/fuzz
LIMIT=20
# A sanitizer build of tarkv must not pass a report off as exit 1.
export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}exitcode=86"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:+$UBSAN_OPTIONS:}halt_on_error=1:exitcode=87"
export XDG_CACHE_HOME=$T/cache

# replay WHAT ARGS...: tarkv ARGS with the limit; stdout's first MiB in $T/out.
replay() {
	local what=$1
	shift
	timeout -k 5 "$LIMIT" "$TARKV" "$@" 2>"$T/err" |
		{ head -c 1048576 >"$T/out"; cat >/dev/null; }
	RC=${PIPESTATUS[0]}
	case $RC in
	0 | 1 | 2)
		if grep -Eq 'Sanitizer|runtime error:' "$T/err"; then
			fail "$what: sanitizer report $(last)"
		else
			ok "$what: exit $RC"
		fi
		;;
	124 | 137) fail "$what: still running after $LIMIT s $(last)" ;;
	*)
		if [ "$RC" -gt 128 ]; then
			fail "$what: killed by signal $((RC - 128)) $(last)"
		else
			fail "$what: exit $RC $(last)"
		fi
		;;
	esac
}

# archive_cmds NAME FILE INDEX: the commands on FILE, INDEX being its saved index.
archive_cmds() {
	local name=$1 file=$2 idx=$3 paths
	replay "$name: ls -R" -q --index "$idx" "$file" ls -R
	replay "$name: ls -l -R" -q --index "$idx" "$file" ls -l -R
	replay "$name: find" -q --no-index "$file" find
	[ "$RC" = 0 ] || return
	mapfile -t paths <"$T/out"
	if [ ${#paths[@]} -gt 0 ]; then
		replay "$name: digest of ${#paths[@]} paths" -q --index "$idx" "$file" digest -- "${paths[@]}"
	fi
}

n=0
for f in "$FUZZ"/crashes/*/* "$FUZZ"/corpus/fuzz_archive/*; do
	[ -f "$f" ] || continue
	n=$((n + 1))
	rel=${f#"$FUZZ"/}
	rm -f "$T/a.idx"
	archive_cmds "$rel" "$f" "$T/a.idx"
done
[ "$n" -gt 0 ] || fail "no inputs under $FUZZ/crashes or $FUZZ/corpus/fuzz_archive"

# ---- crafted index files ----------------------------------------------------------------
# The reference archive is the seed the index-file seeds were saved from, so that tarkv's
# check of a loaded index against its source (tm_index_verify) passes for reproducers made
# from them, and the crafted structure is what tarkv walks.
ref=$T/ref.tar
cp "$FUZZ/corpus/fuzz_archive/py_replay" "$ref"
if ! command -v "$PY" >/dev/null 2>&1; then
	note "no $PY: index-file reproducers replayed as archives only"
	finish
fi
replay "reference index" -q --index "$T/ref.idx" "$ref" info
[ -f "$T/ref.idx" ] || { fail "tarkv saved no index for the reference archive"; finish; }

# craft INPUT OUT: the index file a mode 0/1 reproducer stands for, with the reference's
# source id; exit 3 for a mode tarkv cannot be given (2: built on the fuzzer's own bases).
craft() {
	"$PY" - "$1" "$T/ref.idx" "$2" <<'EOF'
import struct, sys
data = open(sys.argv[1], "rb").read()
sid = open(sys.argv[2], "rb").read()[16:80]
if not data or data[0] % 3 == 2:
    sys.exit(3)
mode, f = data[0] % 3, bytearray(data[1:])

def hash_bytes(b):
    # src/index_file.c's checksum (four multiply-xor lanes, then a byte tail)
    k, m = 0x9E3779B97F4A7C15, (1 << 64) - 1
    h = [1, 2, 3, len(b)]
    i = 0
    while i + 32 <= len(b):
        for l in range(4):
            w = int.from_bytes(b[i + 8 * l:i + 8 * l + 8], "little")
            h[l] = ((h[l] ^ w) * k) & m
            h[l] ^= h[l] >> 29
        i += 32
    r = h[0] ^ ((h[1] << 1) & m) ^ ((h[2] << 2) & m) ^ ((h[3] << 3) & m)
    for c in b[i:]:
        r = ((r ^ c) * k) & m
    return r ^ (r >> 31)

HDR = 200
if len(f) < HDR:
    if mode == 0:
        open(sys.argv[3], "wb").write(f)
        sys.exit(0)
    f += bytes(HDR - len(f))
f[16:80] = sid
if mode == 1:
    f[0:8] = b"TARMIDX\n"
    struct.pack_into("<II", f, 8, 1, HDR)
    struct.pack_into("<Q", f, 176, len(f))
    struct.pack_into("<Q", f, 184, hash_bytes(bytes(f[HDR:])))
struct.pack_into("<Q", f, 192, 0)
struct.pack_into("<Q", f, 192, hash_bytes(bytes(f[:HDR])))
open(sys.argv[3], "wb").write(f)
EOF
}

for f in "$FUZZ"/crashes/fuzz_index_file/*; do
	[ -f "$f" ] || continue
	rel=${f#"$FUZZ"/}
	craft "$f" "$T/crafted.idx"
	rc=$?
	if [ $rc = 3 ]; then
		note "$rel: a mode 2 input (needs the fuzzer's base index): replayed as an archive only"
		continue
	elif [ $rc != 0 ]; then
		fail "$rel: crafting the index file (exit $rc)"
		continue
	fi
	# tarkv replaces an index it refuses: a fresh copy for every command.
	for cmd in "ls -R" "ls -l -R" "find" "--json ls -R"; do
		cp "$T/crafted.idx" "$T/x.idx"
		# shellcheck disable=SC2086
		replay "$rel as an index: $cmd" -q --index "$T/x.idx" "$ref" $cmd
	done
	cp "$T/crafted.idx" "$T/x.idx"
	replay "$rel as an index: info" -q --index "$T/x.idx" "$ref" info
	if grep -q '^index: loaded' "$T/out"; then
		note "$rel: tarkv loaded the crafted index"
	else
		note "$rel: tarkv refused the crafted index (rebuilt from the archive)"
	fi
done
finish
