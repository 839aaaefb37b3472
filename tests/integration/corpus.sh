#!/bin/bash
# For every archive of the corpus (mkarchives.py): extract it with GNU tar as root (the
# oracle) and compare tarkv's view of it with the extraction (compare.py): paths, types,
# modes, owners, sizes, mtimes (ns: GNU tar sets the nanoseconds the format carries and 0
# otherwise, so they are always compared), links, devices, xattrs, sparseness, contents.
# Run by `sh script`: go on under bash.
if [ -z "${BASH_VERSION:-}" ]; then exec bash "$0" "$@"; fi
. "$(dirname "$0")/lib.sh"

need_root
need_cmd tar bsdtar timeout "$PY"
need_tarkv
make_tmp
make_corpus

mkdir -p "$T/x"
while IFS=$'\t' read -r name flags desc; do
	# CORPUS_ONLY=REGEX (by hand): only the archives whose name matches
	if [ -n "${CORPUS_ONLY:-}" ] && ! [[ $name =~ $CORPUS_ONLY ]]; then
		continue
	fi
	a=$CORPUS/$name
	d=$T/x/$name
	mkdir -p "$d"
	if ! tar_extract "$a" "$d" 2>"$T/tar.err"; then
		fail "$name: GNU tar -x failed, no oracle: $(head -c 500 "$T/tar.err")"
		continue
	fi
	if "$PY" "$HERE/compare.py" --ns --label "$name" "$TARKV" "$a" "$d" >"$T/cmp.out" 2>&1; then
		grep -E '^(ok|note):' "$T/cmp.out" | sed 's/^/    /'
		ok "$name ($desc): tarkv agrees with GNU tar's extraction"
	else
		sed 's/^/    /' "$T/cmp.out"
		fail "$name ($desc): tarkv differs from GNU tar's extraction"
	fi
	chmod -R u+rwx "$d" 2>/dev/null
	rm -rf "$d"
done <"$T/corpus/manifest.tsv"

finish
