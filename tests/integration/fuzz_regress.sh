#!/bin/bash
# Fuzzer regressions through the normal build's tarkv (no clang needed): every file in
# tests/fuzz/crashes/*/ and every archive seed in tests/fuzz/corpus/fuzz_archive/ is read as
# an archive with
#   tarkv --index SCRATCH FILE ls -R          (builds and saves an index)
#   tarkv --index SCRATCH FILE ls -l -R       (the saved index, loaded)
#   tarkv --no-index FILE find
#   tarkv --index SCRATCH FILE digest PATH... (every path find listed)
# Each run must end with exit status 0, 1 or 2 within LIMIT s: never a signal, a sanitizer
# report or a hang.  Output is kept to its first MiB (a looping tree prints without end).
# Then every reproducer and seed of every target goes through that target's replay program
# (tests/fuzz/replay.c): the fuzzer's own checks, without libFuzzer.  Reproducers whose fix
# is pending sit in tests/fuzz/crashes/TARGET/pending/ and are not replayed.
#
# Environment: TARKV, top_srcdir, top_builddir (see lib.sh).  Exit 0 (all passed), 1, or 77 when tarkv
# is missing.
if [ -z "${BASH_VERSION:-}" ]; then exec bash "$0" "$@"; fi
. "$(dirname "$0")/lib.sh"

need_cmd timeout head
need_tarkv
make_tmp
FUZZ=$top_srcdir/tests/fuzz
# A hang guard: the deepest reproducer lists 10 GB of paths (ls -R of a 100,000-deep
# path), 7 s in the plain build and 21 s under the sanitizers here.
LIMIT=90
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

# ---- every target's reproducers and seeds, as the fuzzer runs them ----------------------
# tests/fuzz/replay_TARGET is the target's code with a plain main() (built by make check,
# with the sanitizers in the sanitizer build): its own checks abort on a violation.
for t in header pax sparse archive index_file decomp seek_table seek_copy tar_writer; do
	bin=$top_builddir/tests/fuzz/replay_$t
	if [ ! -x "$bin" ]; then
		fail "$bin not built (make check builds it)"
		continue
	fi
	for f in "$FUZZ/crashes/fuzz_$t"/* "$FUZZ/corpus/fuzz_$t"/*; do
		[ -f "$f" ] || continue
		rel=${f#"$FUZZ"/}
		timeout -k 5 "$LIMIT" "$bin" "$f" >"$T/out" 2>"$T/err"
		RC=$?
		[ "$RC" = 0 ] && ok "fuzz_$t replays $rel" || fail "fuzz_$t on $rel: $(last)"
	done
done
finish
