#!/bin/sh
# Run the fuzz targets built by build.sh, one after the other:
#
#   tests/fuzz/run.sh [TARGET...]        default: all eight
#
# Environment:
#   FUZZ_SECONDS  seconds per target (default 60)
#   FUZZ_WORKDIR  where new corpus entries, crash artifacts and logs go (default
#                 ${TMPDIR:-/tmp}/tarmount-fuzz); never the seed corpus in the tree
#   FUZZ_NICE     command prefix (default "nice -n 19"; empty to run at normal priority)
#   FUZZ_FLAGS    extra libFuzzer flags
#   FUZZ_SKIP_CHECKS  checks to switch off while a finding's fix is pending (fuzz_common.h)
#
# Each target starts from WORKDIR/TARGET/corpus plus tests/fuzz/corpus/TARGET (read only)
# and stops after FUZZ_SECONDS or at its first crash; the last libFuzzer lines are shown.
# Exit status 1 when any target found a crash (its reproducer is in WORKDIR/TARGET/).
set -u

here=$(cd "$(dirname "$0")" && pwd)
ALL="fuzz_header fuzz_pax fuzz_sparse fuzz_archive fuzz_index_file fuzz_decomp fuzz_seek_table"
ALL="$ALL fuzz_tar_writer"
targets=${*:-$ALL}
secs=${FUZZ_SECONDS:-60}
work=${FUZZ_WORKDIR:-${TMPDIR:-/tmp}/tarmount-fuzz}
nice=${FUZZ_NICE-nice -n 19}
failed=

for t in $targets; do
	bin=$here/bin/$t
	if [ ! -x "$bin" ]; then
		echo "run.sh: $bin not built (tests/fuzz/build.sh)" >&2
		exit 2
	fi
	case $t in
	fuzz_archive | fuzz_decomp | fuzz_seek_table) maxlen=262144 ;;
	*) maxlen=65536 ;;
	esac
	case $t in
	fuzz_header | fuzz_pax | fuzz_archive) dict=-dict=$here/tar.dict ;;
	*) dict= ;;
	esac
	mkdir -p "$work/$t/corpus"
	echo "== $t: $secs s (log: $work/$t/log)"
	# shellcheck disable=SC2086
	$nice "$bin" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -max_len=$maxlen \
		$dict -print_final_stats=1 -artifact_prefix="$work/$t/" ${FUZZ_FLAGS:-} \
		"$work/$t/corpus" "$here/corpus/$t" >"$work/$t/log" 2>&1
	rc=$?
	grep -E '^#[0-9]+[[:space:]]+(DONE|INITED)|^stat::|SUMMARY|FUZZ CHECK' "$work/$t/log" | tail -12
	if [ $rc != 0 ]; then
		echo "$t: exit $rc; reproducer(s): $(ls "$work/$t" | grep -E '^(crash|leak|timeout|oom|slow-unit)-' | tr '\n' ' ')"
		failed="$failed $t"
	fi
done
if [ -n "$failed" ]; then
	echo "run.sh: crashes in:$failed"
	exit 1
fi
