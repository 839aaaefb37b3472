#!/bin/bash
# The tar writer (src/tar_writer.c) against independent readers: tar_writer.py generates
# member descriptions at random (the model), tests/mkmember writes them as archives with the
# writer, and GNU tar (-tvf, -x, --compare), bsdtar (-tvf, -x), Python's tarfile and tarkv
# (ls -R --json, cat) must all give the model back, without a word on stderr.  See
# tar_writer.py for the archives and the oracles' known deviations.
#
# Environment: TARKV, top_srcdir, top_builddir (see lib.sh); TAR_WRITER_SEED to replay a
# run (default: a new seed, printed).
if [ -z "${BASH_VERSION:-}" ]; then exec bash "$0" "$@"; fi
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"

MKMEMBER=$top_builddir/tests/mkmember
need_cmd tar bsdtar "$PY" getfattr
need_tarkv
[ -x "$MKMEMBER" ] || skip_or_fail "$MKMEMBER is not built (make check builds it)"
need_root
make_tmp
seed=${TAR_WRITER_SEED:-$(od -An -N4 -tu4 /dev/urandom | tr -d ' ')}

"$PY" "$HERE/tar_writer.py" "$MKMEMBER" "$TARKV" "$T" "$seed" >"$T/log" 2>&1
rc=$?
cat "$T/log"
n_pass=$(grep -c '^ok: ' "$T/log")
n_fail=$(grep -c '^FAIL: ' "$T/log")
if [ "$rc" != 0 ] && [ "$n_fail" = 0 ]; then
	fail "tar_writer.py: exit $rc"
fi
[ "$n_fail" = 0 ] || note "replay with TAR_WRITER_SEED=$seed"
finish
