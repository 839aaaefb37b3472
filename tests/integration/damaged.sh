#!/bin/bash
# Damaged archives: truncated at every kind of place, bad header checksums (first header and
# later ones), garbage after the end-of-archive marker, missing end marker, empty and tiny
# inputs, '..' member names, hard links to missing targets.
#
# The oracle is GNU tar's listing and extraction of the same bytes.  Where the contract
# departs from GNU tar's exit status it is followed and the departure said:
#  - truncated archives (no end marker, cut inside a header or inside data): tarkv serves the
#    members that are complete, warns, exits 0 (GNU tar exits 2 when a member's data is cut,
#    and lists that incomplete member too);
#  - a bad checksum after the first header: tarkv serves the members before it, exits 2 (GNU
#    tar skips to the next header and goes on);
#  - a hard link to a missing target is skipped with a warning, exit 0 (GNU tar: error).
# Run by `sh script`: go on under bash.
if [ -z "${BASH_VERSION:-}" ]; then exec bash "$0" "$@"; fi
. "$(dirname "$0")/lib.sh"

need_root
need_cmd tar timeout "$PY"
need_tarkv
make_tmp
umask 022

# ---- a small archive and its structure ----------------------------------------------------
mkdir -p "$T/src/d"
printf 'aaa' >"$T/src/a"
head -c 2000 /dev/urandom >"$T/src/b"
head -c 600 /dev/urandom >"$T/src/d/e"
printf 'ccc' >"$T/src/c"
touch -d @1600000000 "$T/src/a" "$T/src/b" "$T/src/d/e" "$T/src/c" "$T/src/d"
tar --format=gnu -cf "$T/base.tar" -C "$T/src" --no-recursion a b d d/e c ||
	{ fail "GNU tar -c"; finish; }
tar --format=posix -cf "$T/pax.tar" -C "$T/src" --no-recursion a b d d/e c ||
	{ fail "GNU tar -c posix"; finish; }
# A sparse member with extension headers after a plain one.
"$PY" - "$T/src2" <<'EOF'
import os, sys
os.makedirs(sys.argv[1])
open(os.path.join(sys.argv[1], "plain"), "wb").write(b"plain\n")
with open(os.path.join(sys.argv[1], "sparse"), "wb") as f:
    f.truncate(30 * 65536)
    for i in range(30):
        f.seek(i * 65536 + 4096)
        f.write(os.urandom(4096))
EOF
tar --format=gnu --sparse -cf "$T/sparse.tar" -C "$T/src2" plain sparse || { fail "GNU tar -c --sparse"; finish; }

# member offsets: "INDEX NAME HEADER_OFFSET DATA_OFFSET STORED_SIZE" for each member
members() {
	"$PY" - "$1" <<'EOF'
import sys, tarfile
with tarfile.open(sys.argv[1]) as tf:
    for i, m in enumerate(tf.getmembers()):
        stored = sum(n for _, n in m.sparse) if m.sparse is not None else m.size
        if m.isdir() or m.islnk() or m.issym():
            stored = 0
        print(i, m.name, m.offset, m.offset_data, stored)
EOF
}
members "$T/base.tar" >"$T/base.members"
members "$T/pax.tar" >"$T/pax.members"
members "$T/sparse.tar" >"$T/sparse.members"
NMEM=$(wc -l <"$T/base.members")

# cut FILE BYTES OUT: the first BYTES bytes of FILE
cut_at() { head -c "$2" "$1" >"$3"; }
# the archive end: after the last member's data, rounded up to a block
end_of() {
	"$PY" -c '
import sys
last = [l.split() for l in open(sys.argv[1])][-1]
print(int(last[3]) + (int(last[4]) + 511) // 512 * 512)' "$1"
}
# dfs LIST: names from a `tar -tf` listing (normalised) in ls -R order
dfs() {
	"$PY" -c '
import sys
ps = {b"/".join(c for c in l.rstrip(b"\n").split(b"/") if c not in (b"", b"."))
      for l in sys.stdin.buffer}
ps.discard(b"")
# with their implicit parents
for p in list(ps):
    while b"/" in p:
        p = p.rsplit(b"/", 1)[0]
        ps.add(p)
sys.stdout.buffer.write(b"".join(p + b"\n" for p in sorted(ps, key=lambda p: p.split(b"/"))))'
}
# first_n N MEMBERS_FILE: the names of the first N members in ls -R order
first_n() { head -n "$1" "$2" | awk '{print $2}' | dfs; }

# check_list ARCHIVE WANT_FILE WANT_RC WHAT: tarkv ls -R output and exit status
check_list() {
	tk "$1" ls -R
	expect_rc "$3" "$4"
	expect_out_file "$2" "$4: the members served"
}
# check_warned WHAT: a warning line on stderr
check_warned() { expect_err_match "^tarkv: [^ ]+: warning: " "$1: warns"; }

A=$T/base.tar
END=$(end_of "$T/base.members")

# ---- intact --------------------------------------------------------------------------------
tar -tf "$A" | dfs >"$T/want.all"
check_list "$A" "$T/want.all" 0 "intact archive"
expect_err_empty "intact archive"

# ---- truncation at header boundaries (no end marker) ----------------------------------------
while read -r i name hoff doff stored; do
	[ "$i" = 0 ] && continue
	cut_at "$A" "$hoff" "$T/cut.tar"
	tar -tf "$T/cut.tar" 2>/dev/null | dfs >"$T/want"
	first_n "$i" "$T/base.members" >"$T/want.n"
	cmp -s "$T/want" "$T/want.n" || note "GNU tar lists $(wc -l <"$T/want") names for a cut before member $i"
	check_list "$T/cut.tar" "$T/want" 0 "cut before member $i ($name), no end marker"
	check_warned "cut before member $i"
	mkdir -p "$T/x$i"
	if tar_extract "$T/cut.tar" "$T/x$i" 2>/dev/null; then
		if "$PY" "$HERE/compare.py" --ns --label "cut before member $i" "$TARKV" "$T/cut.tar" "$T/x$i" >"$T/cmp"; then
			ok "cut before member $i: agrees with GNU tar's extraction"
		else
			fail "cut before member $i: differs from GNU tar's extraction"
			grep -v '^ok' "$T/cmp"
		fi
	fi
done <"$T/base.members"
cut_at "$A" "$END" "$T/cut.tar"
check_list "$T/cut.tar" "$T/want.all" 0 "cut after the last member, no end marker"
check_warned "cut after the last member"
cut_at "$A" $((END + 512)) "$T/cut.tar"
tar -tf "$T/cut.tar" 2>/dev/null | dfs >"$T/want"
check_list "$T/cut.tar" "$T/want" 0 "a lone zero block as the end"

# ---- truncation inside headers and data -----------------------------------------------------
while read -r i name hoff doff stored; do
	# inside the header block
	cut_at "$A" $((hoff + 100)) "$T/cut.tar"
	if [ "$i" = 0 ]; then
		tk "$T/cut.tar" ls -R
		expect_rc 2 "cut inside the first header (100 bytes)"
		expect_err_match "^tarkv: $T/cut.tar: " "cut inside the first header"
	else
		tar -tf "$T/cut.tar" 2>/dev/null | dfs >"$T/want"
		check_list "$T/cut.tar" "$T/want" 0 "cut inside the header of member $i ($name)"
		check_warned "cut inside the header of member $i"
	fi
	[ "$stored" -gt 0 ] || continue
	first_n "$i" "$T/base.members" >"$T/want"
	# GNU tar lists the incomplete member too; tarkv serves only complete ones.
	for cut in $((doff)) $((doff + stored / 2)) $((doff + stored - 1)); do
		cut_at "$A" "$cut" "$T/cut.tar"
		check_list "$T/cut.tar" "$T/want" 0 "cut at byte $cut, in the data of member $i ($name)"
		check_warned "cut in the data of member $i"
	done
done <"$T/base.members"

# pax: cut inside the extended header of a member, and inside its data
while read -r i name hoff doff stored; do
	[ "$i" = 0 ] && continue
	# the 'x' header block precedes the member's own header: hoff points at it
	first_n "$i" "$T/pax.members" >"$T/want"
	for cut in $((hoff + 512 + 10)) $((hoff + 1024 + 10)); do
		cut_at "$T/pax.tar" "$cut" "$T/cut.tar"
		check_list "$T/cut.tar" "$T/want" 0 "pax: cut at byte $cut, in the headers of member $i ($name)"
	done
done <"$T/pax.members"

# sparse: cut inside the extension headers and inside the data of the sparse member
read -r _ _ shoff sdoff sstored < <(sed -n 2p "$T/sparse.members")
printf 'plain\n' >"$T/want"
for cut in $((shoff + 512 + 100)) $((sdoff + 4096 * 10 + 7)); do
	cut_at "$T/sparse.tar" "$cut" "$T/cut.tar"
	check_list "$T/cut.tar" "$T/want" 0 "sparse: cut at byte $cut inside the sparse member"
	check_warned "sparse: cut at byte $cut"
done

# ---- bad checksums --------------------------------------------------------------------------
# corrupt FILE OFFSET OUT: change one byte of the checksum field of the header at OFFSET
corrupt() {
	"$PY" -c '
import sys
d = bytearray(open(sys.argv[1], "rb").read())
o = int(sys.argv[2]) + 148
d[o] = ord("1") if d[o] != ord("1") else ord("2")
open(sys.argv[3], "wb").write(d)' "$@"
}
corrupt "$A" 0 "$T/bad.tar"
tk "$T/bad.tar" ls -R
expect_rc 2 "bad checksum in the first header"
expect_err_match "^tarkv: $T/bad.tar: .*not a tar archive" "bad checksum in the first header"
expect_out_empty "bad checksum in the first header"
while read -r i name hoff doff stored; do
	[ "$i" = 0 ] && continue
	corrupt "$A" "$hoff" "$T/bad.tar"
	# GNU tar lists the members before the bad header, skips it, and goes on.
	tar -tf "$T/bad.tar" 2>/dev/null | head -n "$i" | dfs >"$T/want"
	first_n "$i" "$T/base.members" >"$T/want.n"
	cmp -s "$T/want" "$T/want.n" || fail "GNU tar's listing before a bad header $i is not the first $i members (test bug)"
	check_list "$T/bad.tar" "$T/want" 2 "bad checksum in the header of member $i ($name)"
	expect_err_match "^tarkv: $T/bad.tar: " "bad checksum in member $i: an error message"
	tk "$T/bad.tar" cat a
	if cmp -s "$T/src/a" "$T/out"; then
		ok "bad checksum in member $i: an earlier member is served (cat a, exit $RC)"
	else
		fail "bad checksum in member $i: cat a $(last)"
	fi
done <"$T/base.members"
read -r _ _ phoff _ _ < <(sed -n 3p "$T/pax.members")
corrupt "$T/pax.tar" "$phoff" "$T/bad.tar"
first_n 2 "$T/pax.members" >"$T/want"
check_list "$T/bad.tar" "$T/want" 2 "pax: bad checksum in an extended header"

# ---- after the end marker -------------------------------------------------------------------
{ head -c $((END + 1024)) "$A"; head -c 5000 /dev/urandom; } >"$T/garbage.tar"
tar -tf "$T/garbage.tar" | dfs >"$T/want"
check_list "$T/garbage.tar" "$T/want" 0 "random bytes after the end marker"
expect_err_empty "random bytes after the end marker"
{ head -c $((END + 1024)) "$A"; cat "$T/sparse.tar"; } >"$T/two.tar"
tar -tf "$T/two.tar" | dfs >"$T/want"
check_list "$T/two.tar" "$T/want" 0 "a second archive after the end marker (ignored, as GNU tar does)"
{ cat "$A"; printf 'trailing text, not a multiple of 512'; } >"$T/tail.tar"
tar -tf "$T/tail.tar" | dfs >"$T/want"
check_list "$T/tail.tar" "$T/want" 0 "text after the end marker and the padding"

# ---- tiny and non-tar inputs ----------------------------------------------------------------
: >"$T/empty.tar"
tk "$T/empty.tar" ls -R
expect_rc 2 "empty file: not a tar archive (as GNU tar 1.34 says)"
expect_out_empty "empty file"
head -c 512 /dev/zero >"$T/z1.tar"
tk "$T/z1.tar" ls -R
expect_rc 0 "one zero block: an empty archive"
expect_out_empty "one zero block"
head -c 10240 /dev/zero >"$T/z20.tar"
tk "$T/z20.tar" ls -R
expect_rc 0 "20 zero blocks (tar's empty archive)"
expect_out_empty "20 zero blocks"
head -c 100 /dev/urandom >"$T/short.tar"
tk "$T/short.tar" ls -R
expect_rc 2 "100 random bytes"
expect_err_match "^tarkv: $T/short.tar: " "100 random bytes"
head -c 10240 /dev/urandom >"$T/random.tar"
tk "$T/random.tar" ls -R
expect_rc 2 "10 KiB of random bytes"
expect_err_match "^tarkv: $T/random.tar: .*not a tar archive" "10 KiB of random bytes"

# ---- '..' names, links to missing targets ---------------------------------------------------
"$PY" - "$T" <<'EOF'
import io, sys, tarfile
def add(tf, name, data=b"x\n", type=tarfile.REGTYPE, linkname=""):
    t = tarfile.TarInfo(name)
    t.type, t.linkname, t.mtime, t.uname, t.gname = type, linkname, 1600000000, "root", "root"
    t.size = len(data) if type == tarfile.REGTYPE else 0
    tf.addfile(t, io.BytesIO(data) if type == tarfile.REGTYPE else None)
d = sys.argv[1]
with tarfile.open(d + "/dotdot.tar", "w", format=tarfile.GNU_FORMAT) as tf:
    add(tf, "ok", b"ok\n")
    add(tf, "../evil")
    add(tf, "a/../b")
    add(tf, "c/..")
    add(tf, "d/../../e")
    add(tf, "sub/..x", b"dots in a name are fine\n")
    add(tf, "/abs", b"leading slash\n")
with tarfile.open(d + "/hardmissing.tar", "w", format=tarfile.GNU_FORMAT) as tf:
    add(tf, "f", b"target\n")
    add(tf, "hl", type=tarfile.LNKTYPE, linkname="missing")
    add(tf, "hl2", type=tarfile.LNKTYPE, linkname="f")
with tarfile.open(d + "/hardup.tar", "w", format=tarfile.GNU_FORMAT) as tf:
    add(tf, "f", b"target\n")
    add(tf, "hl3", type=tarfile.LNKTYPE, linkname="../f")
EOF
# compare_extraction ARCHIVE WHAT: tarkv against GNU tar's extraction (tar may exit 2)
compare_extraction() {
	rm -rf "$T/xx" && mkdir "$T/xx"
	tar_extract "$1" "$T/xx" 2>/dev/null
	if "$PY" "$HERE/compare.py" --ns --label "$2" "$TARKV" "$1" "$T/xx" >"$T/cmp"; then
		ok "$2: agrees with GNU tar's extraction"
	else
		fail "$2: differs from GNU tar's extraction"
		grep -v '^ok' "$T/cmp"
	fi
}
tk "$T/dotdot.tar" ls -R
expect_rc 0 "'..' names"
expect_err_match "warning: .*\.\./evil" "'..' names: a warning names ../evil"
compare_extraction "$T/dotdot.tar" "'..' names skipped"
tk "$T/hardmissing.tar" ls -R
expect_rc 0 "hard link to a missing target"
expect_err_match "warning: .*(hl|missing)" "hard link to a missing target: a warning"
compare_extraction "$T/hardmissing.tar" "hard link to a missing target skipped"
tk -q "$T/hardmissing.tar" ls -R
expect_err_empty "-q: no warning for a hard link to a missing target"
compare_extraction "$T/hardup.tar" "hard link target '../f' (GNU tar strips the ../)"

finish
