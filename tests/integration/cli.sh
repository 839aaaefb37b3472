#!/bin/bash
# tarkv's command line: usage errors and exit codes, error and warning messages, and the
# output of every command on a small archive made by GNU tar.  Expected outputs come from
# GNU tar (its extraction, `tar -tvf`) and coreutils, never from tarkv.
# Run by `sh script`: go on under bash.
if [ -z "${BASH_VERSION:-}" ]; then exec bash "$0" "$@"; fi
. "$(dirname "$0")/lib.sh"

need_root
need_cmd tar timeout sha256sum "$PY"
need_tarkv
make_tmp

# ---- the tree, the archives, the oracle extraction -----------------------------------------
"$PY" - "$T/src" <<'EOF' || { fail "building the test tree"; finish; }
import os, random, stat, sys
r = sys.argv[1]
os.umask(0o022)
def p(x): return os.path.join(r, x)
os.makedirs(p("b/d"))
os.makedirs(p("b/f/g"))
def w(name, data, mode=0o644, uid=0, gid=0):
    with open(p(name), "wb") as f: f.write(data)
    os.chown(p(name), uid, gid); os.chmod(p(name), mode)
w("a.txt", b"hello\n")
w("b/c.bin", random.Random(7).randbytes(3000), 0o600, 1234, 5678)
w("b/e.txt", b"e\n")
w("b/f/g/h.txt", b"deep\n")
w("space name.txt", b"space\n")
w("neg", b"negative mtime\n")
w("late", b"local date differs from UTC\n")
os.link(p("a.txt"), p("hard"))
os.symlink("a.txt", p("link"))
os.symlink("b/nowhere", p("dangling"))
os.mkfifo(p("fifo"))
os.mknod(p("null"), 0o666 | stat.S_IFCHR, os.makedev(1, 3))
os.chmod(p("null"), 0o666)
NS = 10**9
times = {"a.txt": 1600000000 * NS + 123456789, "b/c.bin": 1600000050 * NS,
         "b/e.txt": 1600000060 * NS + 5, "b/f/g/h.txt": 1600000070 * NS,
         "space name.txt": 1600000080 * NS, "neg": -100000 * NS,
         "late": 1600038000 * NS,   # 2020-09-13 22:20 UTC, 2020-09-14 03:50 in Kolkata
         "link": 1600000090 * NS, "dangling": 1600000091 * NS, "fifo": 1600000092 * NS,
         "null": 1600000093 * NS, "b/f/g": 1600000094 * NS, "b/f": 1600000095 * NS,
         "b/d": 1600000096 * NS, "b": 1600000100 * NS + 999999999, ".": 1600000200 * NS}
for k, v in times.items():
    os.utime(p(k), ns=(v, v), follow_symlinks=False)
EOF
(cd "$T/src" && LC_ALL=C ls -A) >"$T/rootlist"
tr '\n' '\0' <"$T/rootlist" | tar --format=posix -cf "$T/cli.tar" -C "$T/src" --null -T - 2>"$T/tar.err" ||
	{ fail "GNU tar -c: $(cat "$T/tar.err")"; finish; }
mkdir "$T/x"
tar_extract "$T/cli.tar" "$T/x" 2>"$T/tar.err" || { fail "GNU tar -x: $(cat "$T/tar.err")"; finish; }
A=$T/cli.tar
X=$T/x

# Paths on stdin, depth first with children sorted bytewise.
dfsort() {
	"$PY" -c '
import sys
ps = [l.rstrip(b"\n") for l in sys.stdin.buffer]
sys.stdout.buffer.write(b"".join(p + b"\n" for p in sorted(ps, key=lambda p: p.split(b"/"))))'
}
# The oracle's full listing.
(cd "$X" && find . -mindepth 1 | sed 's|^\./||' | dfsort) >"$T/all"

# ---- usage ---------------------------------------------------------------------------------
tk
expect_rc 2 "no arguments"
[ -s "$T/err" ] && ok "no arguments: a usage message on stderr" || fail "no arguments: stderr empty"
tk --help
expect_rc 0 "--help"
[ -s "$T/out" ] && ok "--help: prints help on stdout" || fail "--help: stdout empty $(last)"
tk --version
expect_rc 0 "--version"
[ -s "$T/out" ] && ok "--version: prints a version on stdout" || fail "--version: stdout empty $(last)"
tk "$A"
expect_rc 2 "a source but no command"
tk "$A" frobnicate
expect_rc 2 "an unknown command"
tk --no-such-option "$A" ls
expect_rc 2 "an unknown option"
tk "$A" ls --no-such-option
expect_rc 2 "an unknown option after the command"
tk "$A" cat
expect_rc 2 "cat without a path"
tk "$A" get-partial a.txt 1
expect_rc 2 "get-partial with 2 arguments"
tk "$A" get-partial a.txt x 1
expect_rc 2 "get-partial with a non-numeric offset"
tk "$A" get-partial a.txt 0 1y
expect_rc 2 "get-partial with a non-numeric length"
tk "$A" extract a.txt
expect_rc 2 "extract without a destination"
tk "$A" size a.txt b/e.txt
expect_rc 2 "size with two paths"
tk "$A" exists
expect_rc 2 "exists without a path"

# ---- sources -------------------------------------------------------------------------------
tk "$T/no-such.tar" ls
expect_rc 2 "a source that does not exist"
expect_err_match "^tarkv: $T/no-such.tar: " "a source that does not exist"
tk "$T/src" ls
expect_rc 2 "a directory as the source"
expect_err_match "^tarkv: $T/src: " "a directory as the source"
head -c 3000 /dev/urandom | base64 >"$T/text.txt"
tk "$T/text.txt" ls
expect_rc 2 "a text file as the source"
expect_err_match "^tarkv: $T/text.txt: .*not a tar archive" "a text file as the source"
: >"$T/empty.tar"
# GNU tar 1.34, the oracle: "This does not look like a tar archive", exit 2.
tk "$T/empty.tar" ls
expect_rc 2 "an empty (0-byte) file: not a tar archive"
expect_err_match "^tarkv: $T/empty.tar: .*not a tar archive" "an empty (0-byte) file"
tar -cf "$T/tarempty.tar" -T /dev/null
tk "$T/tarempty.tar" ls -R
expect_rc 0 "GNU tar's empty archive (end marker only)"
expect_out_empty "GNU tar's empty archive: ls -R"
# A relative source: messages and JSON name it as given.
(cd "$T" && timeout 60 "$TARKV" cli.tar cat no/such >"$T/out" 2>"$T/err")
RC=$?
expect_rc 1 "relative source, missing key"
expect_err_match '^tarkv: cli\.tar: no/such: .*not found' "relative source, missing key"
(cd "$T" && timeout 60 "$TARKV" cli.tar ls --json >"$T/out" 2>"$T/err")
RC=$?
if "$PY" -c 'import json,sys; sys.exit(json.load(open(sys.argv[1]))["source"] != "cli.tar")' "$T/out" 2>/dev/null; then
	ok "ls --json: source is the SOURCE argument as given"
else
	fail "ls --json: source is not \"cli.tar\" $(last)"
fi

# ---- ls ------------------------------------------------------------------------------------
cp "$T/rootlist" "$T/want.root"
for root in "" / . ./ //; do
	tk "$A" ls $([ -n "$root" ] && printf '%s' "$root")
	[ -z "$root" ] && what="ls" || what="ls '$root'"
	expect_rc 0 "$what"
	expect_out_file "$T/want.root" "$what (root children, bytewise)"
done
tk "$A" ls ""
expect_rc 0 "ls ''"
expect_out_file "$T/want.root" "ls '' (root children)"
(cd "$X/b" && ls -A) >"$T/want.b"
for b in b b/ /b ./b b/. //b; do
	tk "$A" ls "$b"
	expect_rc 0 "ls $b"
	expect_out_file "$T/want.b" "ls $b"
done
tk "$A" ls a.txt
expect_out "a.txt" "ls on a file prints its name"
tk "$A" ls b/f/g/h.txt
expect_out "h.txt" "ls on a nested file prints its name"
tk "$A" ls link
expect_out "link" "ls on a symlink prints its name (not followed)"
tk "$A" ls no/such
expect_rc 1 "ls no/such"
expect_err_match "^tarkv: $A: no/such: .*not found" "ls no/such"
tk "$A" ls a.txt/x
expect_rc 1 "ls under a file"

cp "$T/all" "$T/want.R"
for form in "ls -R" "-R ls" "ls --recursive" "--recursive ls" "+-R"; do
	# shellcheck disable=SC2086
	set -- $form
	if [ "$1" = ls ]; then tk "$A" "$@"; elif [ "$1" = +-R ]; then tk "$A" -R ls; form="SOURCE -R ls"; else tk "$1" "$A" "$2"; fi
	expect_rc 0 "$form"
	expect_out_file "$T/want.R" "$form (depth first, children bytewise)"
done
tk "$A" -R ls b
(cd "$X/b" && find . -mindepth 1 | sed 's|^\./||' | dfsort) >"$T/want.Rb"
expect_out_file "$T/want.Rb" "ls -R b: paths relative to b"
tk "$A" ls -R b/f
printf 'g\ng/h.txt\n' >"$T/want.Rbf"
expect_out_file "$T/want.Rbf" "ls -R b/f"

# ls -l against tar -tv (whitespace squeezed), in three time zones.  The SIZE of a symlink
# may be tar's 0 or the target's length (the contract's JSON size).
cat >"$T/tv.py" <<'EOF'
import subprocess, sys
# tv.py ARCHIVE DIR RECURSIVE(0/1) OUTPUT: check OUTPUT, tarkv's ls -l of DIR, against the
# `tar -tv` lines of DIR's children (or descendants), NAME relative to DIR, hard links shown
# as their target.
a, d, rec, outf = sys.argv[1], sys.argv[2].strip("/"), sys.argv[3] == "1", sys.argv[4]
q = ["tar", "--quoting-style=literal", "--warning=no-timestamp"]
names = subprocess.run(q + ["-tf", a], capture_output=True).stdout.decode().split("\n")[:-1]
lines = subprocess.run(q + ["-tvf", a], capture_output=True).stdout.decode().split("\n")[:-1]
assert len(names) == len(lines)
byname = {}
for n, l in zip(names, lines):
    byname[n.strip("/")] = l.split(None, 5)
want = []
for n in byname:
    if d:
        if not n.startswith(d + "/"):
            continue
        rel = n[len(d) + 1:]
    else:
        rel = n
    if not rec and "/" in rel:
        continue
    f = byname[n]
    if f[0].startswith("h"):
        f = byname[f[5].split(" link to ", 1)[1]]
    mode, owner, size, date, tm, rest = f
    tail = " -> " + rest.split(" -> ", 1)[1] if mode.startswith("l") else ""
    sizes = [size, str(len(tail) - 4)] if tail else [size]
    want.append((rel.encode().split(b"/"), [mode, owner, sizes, date, tm, rel + tail]))
want = [w for _, w in sorted(want)]
got = [l.split(" ", 5) for l in open(outf, encoding="utf-8").read().split("\n")[:-1]]
bad = 0
for i in range(max(len(want), len(got))):
    w = want[i] if i < len(want) else None
    g = got[i] if i < len(got) else None
    if w and g and len(g) == 6 and g[2] in w[2] and g[:2] + g[3:] == w[:2] + w[3:]:
        continue
    bad += 1
    print("    line %d: want %s" % (i + 1, w and " ".join(w[:2] + [w[2][0]] + w[3:])))
    print("    line %d: got  %s" % (i + 1, g and " ".join(g)))
sys.exit(1 if bad else 0)
EOF
for tz in UTC Asia/Kolkata America/New_York; do
	TZ=$tz tk "$A" ls -l
	expect_rc 0 "TZ=$tz ls -l"
	tr -s ' ' <"$T/out" >"$T/out.sq"
	if TZ=$tz "$PY" "$T/tv.py" "$A" "" 0 "$T/out.sq" >"$T/why"; then
		ok "TZ=$tz ls -l: the lines of tar -tv"
	else
		fail "TZ=$tz ls -l: differs from tar -tv"
		cat "$T/why"
	fi
done
tk "$A" --long -R ls b
tr -s ' ' <"$T/out" >"$T/out.sq"
if "$PY" "$T/tv.py" "$A" b 1 "$T/out.sq" >"$T/why"; then
	ok "ls --long -R b: the lines of tar -tv, relative names"
else
	fail "ls --long -R b: differs from tar -tv"
	cat "$T/why"
fi
tk "$A" ls -l link
tr -s ' ' <"$T/out" >"$T/out.sq"
grep -q "^lrwxrwxrwx root/root [0-9]* [-0-9]* [0-9:]* link -> a.txt$" "$T/out.sq" &&
	ok "ls -l link: one long line" || fail "ls -l link $(last)"

# ls --json
cat >"$T/jsonpaths.py" <<'EOF'
import json, sys
d = json.load(open(sys.argv[1]))
assert set(d) >= {"source", "entries"}, d.keys()
for e in d["entries"]:
    print(e["path"])
EOF
jsonpaths() { "$PY" "$T/jsonpaths.py" "$T/out" >"$T/out.paths" 2>"$T/out.jerr" && cp "$T/out.paths" "$T/out"; }
tk "$A" ls --json
expect_rc 0 "ls --json"
jsonpaths || fail "ls --json: not the JSON document wanted: $(cat "$T/out.jerr")"
expect_out_file "$T/want.root" "ls --json: entries are the root's children"
tk "$A" ls --json -l
jsonpaths
expect_out_file "$T/want.root" "ls --json -l: same entries"
tk "$A" --json ls b
jsonpaths
sed 's|^|b/|' "$T/want.b" >"$T/want.jb"
expect_out_file "$T/want.jb" "ls --json b: full archive paths"
for form in "ls --json -R" "ls -R --json" "-R --json ls" "--json -R ls" "-q -R --json ls"; do
	# shellcheck disable=SC2086
	set -- $form
	case $1 in ls) tk "$A" "$@" ;; *) n=$#; tk "${@:1:n-1}" "$A" ls ;; esac
	jsonpaths
	expect_out_file "$T/want.R" "$form: every path (options in any order)"
done
tk "$A" ls --json b/e.txt
jsonpaths
expect_out "b/e.txt" "ls --json on a file: one entry"

# ---- stat ----------------------------------------------------------------------------------
cat >"$T/stat.py" <<'EOF'
import json, os, stat, sys
# stat.py JSONFILE EXTRACTED_PATH ARCHIVE_PATH: check one ENTRY against os.lstat
e = json.load(open(sys.argv[1])); x = sys.argv[2]; p = sys.argv[3]
st = os.lstat(x)
t = {stat.S_IFREG: "file", stat.S_IFDIR: "dir", stat.S_IFLNK: "symlink", stat.S_IFCHR: "chr",
     stat.S_IFBLK: "blk", stat.S_IFIFO: "fifo"}[stat.S_IFMT(st.st_mode)]
want = {"path": p, "name": p.rsplit("/", 1)[-1], "type": t, "mode": st.st_mode & 0o7777,
        "uid": st.st_uid, "gid": st.st_gid, "mtime": st.st_mtime_ns // 10**9,
        "mtime_nsec": st.st_mtime_ns % 10**9, "xattrs": {},
        "size": st.st_size if t == "file" else len(os.readlink(x)) if t == "symlink" else 0}
if t != "dir": want["nlink"] = st.st_nlink
if t == "symlink": want["target"] = os.readlink(x)
if t in ("chr", "blk"): want["major"], want["minor"] = os.major(st.st_rdev), os.minor(st.st_rdev)
if t == "file": want["sparse"] = False
bad = ["%s: want %r, got %r" % (k, v, e.get(k)) for k, v in want.items() if e.get(k) != v]
for k in ("uname", "gname", "ino"):
    if k not in e: bad.append("missing " + k)
print("; ".join(bad))
sys.exit(1 if bad else 0)
EOF
for p in a.txt b b/c.bin link dangling fifo null hard "space name.txt" neg; do
	tk "$A" stat --json "$p"
	if [ "$RC" = 0 ] && "$PY" "$T/stat.py" "$T/out" "$X/$p" "$p" >"$T/why" 2>&1; then
		ok "stat --json '$p' matches the extracted file"
	else
		fail "stat --json '$p': $(cat "$T/why") $(last)"
	fi
done
tk "$A" --json stat /b/c.bin
if [ "$RC" = 0 ] && "$PY" "$T/stat.py" "$T/out" "$X/b/c.bin" "b/c.bin" >"$T/why" 2>&1; then
	ok "stat --json /b/c.bin (leading slash; path normalised)"
else
	fail "stat --json /b/c.bin: $(cat "$T/why") $(last)"
fi
tk "$A" stat --json /
expect_rc 0 "stat --json / (the root)"
"$PY" -c 'import json,sys; sys.exit(json.load(open(sys.argv[1]))["type"] != "dir")' "$T/out" 2>/dev/null &&
	ok "stat --json /: a dir" || fail "stat --json /: not a dir entry $(last)"
tk "$A" stat a.txt
expect_rc 0 "stat a.txt (text)"
if [ -s "$T/out" ] && ! grep -vqE '^[^:]+: ' "$T/out"; then
	ok "stat a.txt: 'key: value' lines"
else
	fail "stat a.txt: not 'key: value' lines $(last)"
fi
grep -qE ': 6$' "$T/out" && ok "stat a.txt: shows the size 6" || fail "stat a.txt: no ': 6' line $(last)"
tk "$A" stat no/such
expect_rc 1 "stat no/such"
expect_err_match "^tarkv: $A: no/such: " "stat no/such"

# ---- cat -----------------------------------------------------------------------------------
for p in a.txt /a.txt ./a.txt a.txt/ hard; do
	tk "$A" cat "$p"
	expect_rc 0 "cat $p"
	expect_out_file "$X/a.txt" "cat $p"
done
for p in b/c.bin b//c.bin b/./c.bin /b/c.bin; do
	tk "$A" cat "$p"
	expect_out_file "$X/b/c.bin" "cat $p"
done
tk "$A" cat "space name.txt"
expect_out_file "$X/space name.txt" "cat 'space name.txt'"
cat "$X/a.txt" "$X/b/e.txt" "$X/b/c.bin" >"$T/want.cat3"
tk "$A" cat a.txt b/e.txt b/c.bin
expect_rc 0 "cat of three files"
expect_out_file "$T/want.cat3" "cat of three files: concatenated"
tk "$A" cat link
expect_rc 0 "cat link"
printf '%s' "$(readlink "$X/link")" >"$T/want.link"
expect_out_file "$T/want.link" "cat link: the target text, no newline"
tk "$A" cat dangling
printf '%s' "$(readlink "$X/dangling")" >"$T/want.dangling"
expect_out_file "$T/want.dangling" "cat dangling: the target text"
tk "$A" cat b
expect_rc 1 "cat on a directory"
expect_err_match "^tarkv: $A: b: " "cat on a directory names the key"
tk "$A" cat /
expect_rc 1 "cat on the root"
tk "$A" cat no/such
expect_rc 1 "cat no/such"
expect_err_match "^tarkv: $A: no/such: .*not found" "cat no/such"
[ "$(wc -l <"$T/err")" = 1 ] && ok "cat no/such: one line on stderr" || fail "cat no/such: stderr has $(wc -l <"$T/err") lines $(last)"
tk "$A" cat a.txt no/such
expect_rc 1 "cat of a file and a missing key"
expect_err_match "no/such" "cat of a file and a missing key names the missing key"

# ---- get-partial ---------------------------------------------------------------------------
gp() { # gp PATH OFF LEN: compare with dd on the extracted file
	local p=$1 off=$2 len=$3 src=$X/$1
	if [ -L "$src" ]; then printf '%s' "$(readlink "$src")" >"$T/gp.src"; src=$T/gp.src; fi
	"$PY" -c 'import sys; d=open(sys.argv[1],"rb").read(); o,l=int(sys.argv[2]),int(sys.argv[3]); sys.stdout.buffer.write(d[o:o+l])' "$src" "$off" "$len" >"$T/want.gp"
	tk "$A" get-partial "$p" "$off" "$len"
	if [ "$RC" = 0 ] && cmp -s "$T/want.gp" "$T/out"; then
		ok "get-partial $p $off $len"
	else
		fail "get-partial $p $off $len: want $(wc -c <"$T/want.gp") bytes $(last)"
	fi
}
gp b/c.bin 0 10
gp b/c.bin 0 3000
gp b/c.bin 0 0
gp b/c.bin 100 1000
gp b/c.bin 511 2
gp b/c.bin 512 512
gp b/c.bin 2990 100
gp b/c.bin 2999 1
gp b/c.bin 3000 10
gp b/c.bin 5000 1
gp b/c.bin 0 1000000000
gp a.txt 1 3
gp link 2 10
gp hard 0 6
tk "$A" get-partial b 0 1
expect_rc 1 "get-partial on a directory"
tk "$A" get-partial no/such 0 1
expect_rc 1 "get-partial no/such"

# ---- exists --------------------------------------------------------------------------------
ex() { # ex PATH WANT_OUTPUT WANT_RC
	tk "$A" exists "$1"
	if [ "$RC" = "$3" ] && [ "$(cat "$T/out")" = "$2" ]; then
		ok "exists '$1': $2, exit $3"
	else
		fail "exists '$1': want '$2' exit $3 $(last)"
	fi
}
ex a.txt value 0
ex /a.txt value 0
ex b dictionary 0
ex b/ dictionary 0
ex b/f/g dictionary 0
ex "" dictionary 0
ex / dictionary 0
ex link value 0
ex dangling value 0
ex hard value 0
ex no/such none 1
ex a.txt/x none 1
ex b/nowhere none 1

# ---- size, digest, last-modified -----------------------------------------------------------
for p in a.txt b/c.bin hard "space name.txt" neg; do
	tk "$A" size "$p"
	expect_out "$(stat -c %s "$X/$p")" "size $p"
	tk "$A" digest "$p"
	expect_out "$(sha256sum <"$X/$p" | cut -d' ' -f1)" "digest $p (sha256sum)"
done
tk "$A" size link
expect_out "$(readlink "$X/link" | tr -d '\n' | wc -c)" "size link: the target's length"
tk "$A" digest link
expect_out "$(readlink "$X/link" | tr -d '\n' | sha256sum | cut -d' ' -f1)" "digest link: of the target text"
tk "$A" size b
expect_rc 1 "size on a directory"
tk "$A" digest b
expect_rc 1 "digest on a directory"
tk "$A" size no/such
expect_rc 1 "size no/such"
tk "$A" digest no/such
expect_rc 1 "digest no/such"
lm_want() { "$PY" -c 'import os,sys; s,n=divmod(os.lstat(sys.argv[1]).st_mtime_ns,10**9); print("%d.%09d"%(s,n))' "$X/$1"; }
for p in a.txt b b/e.txt b/f/g link neg "space name.txt" late; do
	tk "$A" last-modified "$p"
	expect_rc 0 "last-modified $p"
	expect_out "$(lm_want "$p")" "last-modified $p"
done
tk "$A" last-modified no/such
expect_rc 1 "last-modified no/such"

# ---- find ----------------------------------------------------------------------------------
tk "$A" find
expect_rc 0 "find"
expect_out_file "$T/want.R" "find: every path, ls -R order"
for pat in '*' '*.txt' 'b/*' 'b*' '?.txt' '[ab]*' '*/*/*' '*e*' 'b/f/g/h.txt' 'space name.txt' '[!ab]*' 'nomatch*'; do
	"$PY" -c 'import fnmatch,sys; print("".join(l for l in open(sys.argv[1]) if fnmatch.fnmatchcase(l.rstrip("\n"), sys.argv[2])), end="")' "$T/want.R" "$pat" >"$T/want.find"
	tk "$A" find "$pat"
	if [ -s "$T/want.find" ]; then expect_rc 0 "find '$pat'"; else
		[ "$RC" != 2 ] && ok "find '$pat' (no match): exit $RC, not 2" || fail "find '$pat' (no match): exit 2"
	fi
	expect_out_file "$T/want.find" "find '$pat' (fnmatch, * matches /)"
done
tk "$A" find --json '*.txt'
if [ "$RC" = 0 ] && "$PY" - "$T/out" "$T/want.R" "$A" <<'EOF' >"$T/why" 2>&1; then
import fnmatch, json, sys
d = json.load(open(sys.argv[1]))
want = [l.rstrip("\n") for l in open(sys.argv[2]) if fnmatch.fnmatchcase(l.rstrip("\n"), "*.txt")]
assert d["source"] == sys.argv[3], d["source"]
assert d["paths"] == want, (d["paths"], want)
EOF
	ok "find --json '*.txt'"
else
	fail "find --json '*.txt': $(tail -1 "$T/why") $(last)"
fi

# ---- warnings and -q -----------------------------------------------------------------------
# No end-of-archive marker: cut the archive after the last member's data.
"$PY" - "$A" "$T/noend.tar" <<'EOF'
import sys
d = open(sys.argv[1], "rb").read()
end = len(d)
while end >= 512 and d[end - 512:end] == bytes(512):
    end -= 512
open(sys.argv[2], "wb").write(d[:end])
EOF
tk "$T/noend.tar" ls -R
expect_rc 0 "no end marker: ls -R"
expect_out_file "$T/want.R" "no end marker: every member"
expect_err_match "^tarkv: $T/noend.tar: warning: " "no end marker: a warning"
tk -q "$T/noend.tar" ls -R
expect_rc 0 "-q, no end marker"
expect_err_empty "-q, no end marker"
expect_out_file "$T/want.R" "-q, no end marker: every member"
tk "$T/noend.tar" ls --quiet
expect_err_empty "--quiet after the command"
tk "$A" ls -R
expect_err_empty "a sound archive: no warnings"

finish
