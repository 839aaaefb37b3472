#!/bin/bash
# shellcheck disable=SC2015 # ok and fail return 0
# Runs of extension headers before one member (exthdr.py gen: ~30 hand-made archives): 'x'
# after 'x', 'L' after 'L', 'K' after 'K', 'x' with 'L' or 'K' in both orders, and global
# headers carrying path, linkpath or size, each with files, symlinks and hard links.
#
# The oracles are GNU tar and bsdtar: for each archive, `tarkv --json ls -R` must give the
# names, types, sizes, link targets and hard-link groups that `tar -tvf` and `bsdtar -tvf`
# list (exthdr.py canonicalises all three).  Where the two tools agree tarkv must agree with
# both (and a case marked so whose tools stop agreeing fails: it needs a choice); where they
# differ, tarkv must follow the one README names: GNU tar for a pax path or linkpath against
# an 'L' or 'K' before it (bsdtar 3.6 takes the earlier header), bsdtar for path, linkpath and
# size in a global header (GNU tar gives every later member that name).  tarkv must also
# exit 0 and warn where the case says (a replaced header, an ignored global record), and
# stay quiet elsewhere.
#
# Environment: TARKV, top_srcdir (see lib.sh).
if [ -z "${BASH_VERSION:-}" ]; then exec bash "$0" "$@"; fi
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"

XP=$HERE/exthdr.py
need_cmd tar bsdtar "$PY"
need_tarkv
make_tmp

C=$T/cases
"$PY" "$XP" gen "$C" || { fail "exthdr.py gen"; finish; }
ok "exthdr.py gen: $(wc -l <"$C/cases.tsv") archives"

while IFS=$'\t' read -r name oracle warn; do
	a=$C/$name.tar
	"$PY" "$XP" tool tar "$a" >"$T/gnu" 2>"$T/gnu.err" || fail "$name: listing tar -tvf"
	"$PY" "$XP" tool bsdtar "$a" >"$T/bsd" 2>"$T/bsd.err" || fail "$name: listing bsdtar -tvf"
	if [ ! -s "$T/gnu" ] || [ ! -s "$T/bsd" ]; then
		fail "$name: an oracle lists nothing"
		continue
	fi
	if ! "$PY" "$XP" tarkv "$TARKV" "$a" >"$T/kv" 2>"$T/kv.err"; then
		fail "$name: tarkv ls -R --json: $(head -c 300 "$T/kv.err")"
		continue
	fi
	same=no
	cmp -s "$T/gnu" "$T/bsd" && same=yes
	case $oracle in
	agree)
		if [ $same = no ]; then
			fail "$name: GNU tar and bsdtar disagree; the case needs a documented choice"
			diff "$T/gnu" "$T/bsd" | sed 's/^/    /'
			continue
		fi
		want=$T/gnu ;;
	gnu)
		[ $same = yes ] && note "$name: bsdtar now agrees with GNU tar"
		want=$T/gnu ;;
	bsd)
		[ $same = yes ] && note "$name: GNU tar now agrees with bsdtar"
		want=$T/bsd ;;
	*)
		fail "$name: unknown oracle '$oracle'"
		continue ;;
	esac
	if cmp -s "$want" "$T/kv"; then
		ok "$name: tarkv lists what $( [ "$oracle" = agree ] && echo "GNU tar and bsdtar list" || echo "$oracle's tar lists")"
	else
		fail "$name: tarkv differs from the oracle ($oracle)"
		diff "$want" "$T/kv" | sed 's/^/    /'
	fi

	# the warnings
	tk --no-index "$a" ls -R
	expect_rc 0 "$name: tarkv ls -R"
	if [ "$warn" = - ]; then
		expect_err_empty "$name: no warning"
	else
		expect_err_match "^tarkv: .*$name\\.tar: warning: .*$warn" "$name: warns"
	fi
done <"$C/cases.tsv"

finish
