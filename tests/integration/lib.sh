# Shared helpers for tarkv's integration tests (sourced by bash scripts).
#
# Environment: TARKV (path to the binary; default $top_builddir/tarkv), top_srcdir,
# top_builddir (both default to the source tree this file is in), CI (=true: a test that
# would skip fails instead), TMPDIR.
#
# Every check prints one line, "ok: WHAT" or "FAIL: WHAT"; finish prints the counts and
# exits 0 (all passed) or 1.

set -u

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
: "${top_srcdir:=$(cd "$HERE/../.." && pwd)}"
: "${top_builddir:=$top_srcdir}"
: "${TARKV:=$top_builddir/tarkv}"
case $TARKV in /*) ;; *) TARKV=$(pwd)/$TARKV ;; esac
export LC_ALL=C TZ=UTC
TEST_NAME=$(basename "$0" .sh)
PY=${PYTHON:-python3}

n_pass=0
n_fail=0
n_skip=0

ok() { n_pass=$((n_pass + 1)); echo "ok: $*"; }
fail() { n_fail=$((n_fail + 1)); echo "FAIL: $*"; }
note() { echo "note: $*"; }

# A prerequisite is missing: exit 77 (skip), or 1 under CI=true.
skip_or_fail() {
	if [ "${CI:-}" = true ]; then
		echo "FAIL: $TEST_NAME: $* (a skip is a failure under CI=true)"
		exit 1
	fi
	echo "SKIP: $TEST_NAME: $*"
	exit 77
}

need_root() { [ "$(id -u)" = 0 ] || skip_or_fail "needs root (owners, devices, tar -x as root)"; }

need_cmd() {
	local c
	for c in "$@"; do
		command -v "$c" >/dev/null 2>&1 || skip_or_fail "needs $c"
	done
}

need_tarkv() {
	[ -x "$TARKV" ] || skip_or_fail "TARKV=$TARKV is not an executable (build it first)"
}

# T: a private temporary directory, removed on exit.
make_tmp() {
	T=$(mktemp -d "${TMPDIR:-/tmp}/tarkv-$TEST_NAME.XXXXXX") || exit 2
	trap 'cleanup' EXIT
	trap 'exit 2' HUP INT TERM
}
cleanup() {
	if [ -n "${T:-}" ] && [ -d "$T" ]; then
		# extracted trees may hold read-only directories: fix modes before removal
		chmod -R u+rwx "$T" 2>/dev/null
		rm -rf "$T"
	fi
}

# private_cache: index files (and seekable copies) go to $T/cache/tarmount, held in $C,
# with no cap from the caller's environment.
private_cache() {
	export XDG_CACHE_HOME=$T/cache
	unset TARMOUNT_INDEX_CACHE_MAX
	C=$XDG_CACHE_HOME/tarmount
}

# run CMD ARGS...: runs a command with stdout in $T/out, stderr in $T/err, status in $RC.
# A time limit guards against hangs (status 124).
run() {
	timeout 120 "$@" >"$T/out" 2>"$T/err"
	RC=$?
}
# tk ARGS...: run tarkv.
tk() { run "$TARKV" "$@"; }

# Describe the last run for failure messages.
last() {
	printf '[exit %s; stdout: %s; stderr: %s]' "$RC" \
		"$(head -c 300 "$T/out" | tr '\n' '|')" "$(head -c 300 "$T/err" | tr '\n' '|')"
}

# expect_rc WANT WHAT: the last run's status.
expect_rc() {
	if [ "$RC" = "$1" ]; then ok "$2: exit $1"; else fail "$2: want exit $1 $(last)"; fi
}

# expect_out FILE WHAT: the last run's stdout equals FILE byte for byte.
expect_out_file() {
	if cmp -s "$1" "$T/out"; then
		ok "$2: output"
	else
		fail "$2: output differs from the oracle $(last)"
		diff "$1" "$T/out" | head -20 | sed 's/^/    /'
	fi
}
# expect_out STRING WHAT: stdout equals STRING followed by a newline (unless STRING is empty).
expect_out() {
	if [ -z "$1" ]; then : >"$T/want"; else printf '%s\n' "$1" >"$T/want"; fi
	expect_out_file "$T/want" "$2"
}
# expect_err_match REGEX WHAT: some stderr line matches the extended regex.
expect_err_match() {
	if grep -Eq -- "$1" "$T/err"; then
		ok "$2: stderr matches /$1/"
	else
		fail "$2: stderr does not match /$1/ $(last)"
	fi
}
expect_err_empty() {
	if [ ! -s "$T/err" ]; then ok "$1: stderr empty"; else fail "$1: stderr not empty $(last)"; fi
}
expect_out_empty() {
	if [ ! -s "$T/out" ]; then ok "$1: stdout empty"; else fail "$1: stdout not empty $(last)"; fi
}

# Extract an archive with GNU tar, the oracle: tar_extract ARCHIVE DEST [MEMBER...]
# Archives bsdtar wrote with xattrs are extracted by bsdtar: libarchive stores each xattr
# twice (LIBARCHIVE.xattr.NAME, and SCHILY.xattr.NAME with a non-ASCII NAME left
# URL-encoded); GNU tar reads only the SCHILY copy ("user.%C3%BCn%C3%AF"), bsdtar 3.6 sets
# both names. The writer's own reader is the oracle for its archives.
tar_extract() {
	local a=$1 d=$2
	shift 2
	case ${a##*/} in
	bsdtar*xattr*) bsdtar -x -p --xattrs -f "$a" -C "$d" "$@" ;;
	*) tar -xf "$a" -C "$d" --xattrs --xattrs-include='*' --warning=no-timestamp "$@" ;;
	esac
}

# Build the corpus into $T/corpus (once per script).
make_corpus() {
	if [ ! -f "$T/corpus/manifest.tsv" ]; then
		local rc=0
		"$PY" "$HERE/mkarchives.py" "$T/corpus" 2>"$T/mkarchives.err" || rc=$?
		if [ "$rc" != 0 ]; then
			cat "$T/mkarchives.err"
			[ "$rc" = 77 ] && skip_or_fail "mkarchives.py cannot run here"
			fail "mkarchives.py: building the corpus (exit $rc)"
			finish
		fi
		ok "mkarchives.py built $(wc -l <"$T/corpus/manifest.tsv") archives"
	fi
	CORPUS=$T/corpus/archives
}

finish() {
	echo "$TEST_NAME: $n_pass passed, $n_fail failed"
	[ "$n_fail" = 0 ] && exit 0
	exit 1
}
