#!/bin/bash
# Who may read what on a mount, against a kernel filesystem holding the same tree.
#
# perm.tar (Python's tarfile) holds files owned by 4001:4002 with every combination of the
# owner, group and other read bits and some execute bits, root-owned files (one of group
# 4002), 64 directories (owner, group, other each with none, x, r or rx) with a file inside,
# nested root-owned directories, and symlinks to files and directories, some of them into
# directories others may not search.  GNU tar extracts it as root, with owners and modes,
# into a directory every user can reach: that tree is the oracle.  probe.py, run under
# setpriv as root, the owner (4001:4002), a group member (4003 with 4002 as primary group,
# and 4003 with 4002 as supplementary group) and another user (65534), prints one line per
# path and check (lstat, stat through symlinks, open and read, list a directory,
# access(X_OK)) with what it got; the outputs on the mount must be:
#   - -o allow_other: the extraction's, identity by identity, and default_permissions is in
#     the mount's options;
#   - -o allow_root: default_permissions too; on a fresh mount EACCES for everything for
#     the others, the extraction's for root; after root's walk, the others again: per check
#     EACCES or the extraction's (libfuse refuses their requests, but the kernel answers
#     from what it cached for root without asking: the modes are all that holds then);
#   - no option: root reads everything; every other user gets EACCES for everything;
#   - -o allow_other,ignore_permissions: every user reads everything (root's results);
#   - -o allow_other,umask=077: the extraction's after chmod g-rwx,o-rwx of every path;
#   - -o allow_other,umask=077,uid=4003,gid=4002: the same after chown 4003:4002.
# (Without default_permissions the kernel answers access(X_OK) from the FUSE daemon, which
# has no access operation: those lines are left out where modes are not enforced.)
. "$(dirname "$0")/lib.sh"

. "$(dirname "$0")/lib_mount.sh"

need_fuse
need_cmd tar "$PY" setpriv
setup_tmp
umask 022
# mktemp made $T 0700: the other users must reach the extraction and the mount
chmod 755 "$T"
X=$T/x
M=$T/m
# a Python every identity may run ($PY may live under root's home, as pyenv's shims do)
PROBE_PY=
for c in "$("$PY" -c 'import sys; print(sys.executable)' 2>/dev/null)" /usr/bin/python3; do
	[ -n "$c" ] && (cd / && setpriv --reuid=65534 --regid=65534 --clear-groups "$c" -c pass) 2>/dev/null &&
		{ PROBE_PY=$c; break; }
done
[ -n "$PROBE_PY" ] || skip_or_fail "needs a python3 that uid 65534 may run ($PY and /usr/bin/python3 are not)"
mkdir -p "$X" "$M"

# ---- the archive and the list of paths (PATH KIND: f file, d directory, l symlink to a
# file, ld symlink to a directory) ------------------------------------------------------------
"$PY" - "$T" <<'PYEOF' || { fail "building perm.tar"; finish; }
import io, sys, tarfile
T = sys.argv[1]
members, paths = [], [(".", "d")]

def add(name, typ, mode, uid=4001, gid=4002, kind=None, linkname=""):
    t = tarfile.TarInfo(name)
    t.type, t.mode, t.uid, t.gid, t.mtime = typ, mode, uid, gid, 1500000000
    t.uname = t.gname = ""
    t.linkname = linkname
    data = None
    if typ == tarfile.REGTYPE:
        data = ("contents of %s\n" % name).encode()
        t.size = len(data)
    members.append((t, data))
    paths.append((name, kind or {tarfile.REGTYPE: "f", tarfile.DIRTYPE: "d"}[typ]))

def f(name, mode, **kw): add(name, tarfile.REGTYPE, mode, **kw)
def d(name, mode, **kw): add(name, tarfile.DIRTYPE, mode, **kw)
def l(name, target, kind, **kw): add(name, tarfile.SYMTYPE, 0o777, kind=kind, linkname=target, **kw)

# every combination of read bits (with write bits for the owner now and then)
for u in (0, 4, 6):
    for g in (0, 4):
        for o in (0, 4):
            f("f%d%d%d" % (u, g, o), u << 6 | g << 3 | o)
for m in (0o755, 0o711, 0o700, 0o100, 0o511, 0o050, 0o005):
    f("f%03o" % m, m)
# root's
f("r600", 0o600, uid=0, gid=0)
f("r640", 0o640, uid=0, gid=4002)
f("r604", 0o604, uid=0, gid=4002)
f("r644", 0o644, uid=0, gid=0)
f("r000", 0o000, uid=0, gid=0)
# directories: owner, group, other each with none, x (search), r (list) or rx
for u in (0, 1, 4, 5):
    for g in (0, 1, 4, 5):
        for o in (0, 1, 4, 5):
            name = "d%d%d%d" % (u | 2, g, o)
            d(name, (u | 2) << 6 | g << 3 | o)
            f(name + "/f", 0o644)
# nested, root's: others may search p711 but not list it; only root gets into p711/q700
d("p711", 0o711, uid=0, gid=0)
d("p711/q700", 0o700, uid=0, gid=0)
f("p711/q700/f", 0o644, uid=0, gid=0)
d("p711/q755", 0o755, uid=0, gid=0)
f("p711/q755/f", 0o644, uid=0, gid=0)
d("p750", 0o750, uid=0, gid=4002)
f("p750/f", 0o640, uid=0, gid=4002)
# symlinks (their own modes are never checked; the path they lead to is)
l("ln_f644", "f644", "l")
l("ln_f600", "f600", "l")
l("ln_r600", "r600", "l", uid=0, gid=0)
l("ln_in_d700", "d700/f", "l")
l("ln_in_d711", "d711/f", "l")
l("ln_in_d744", "d744/f", "l")
l("ln_in_q700", "p711/q700/f", "l", uid=0, gid=0)
l("ln_in_q755", "p711/q755/f", "l", uid=0, gid=0)
l("ln_d700", "d700", "ld")
l("ln_d755", "d755", "ld")
l("ln_d711", "d711", "ld")
l("d700/ln_up", "../f644", "l")
l("d755/ln_into_d700", "../d700/f", "l")

with tarfile.open(T + "/perm.tar", "w", format=tarfile.PAX_FORMAT) as tf:
    for t, data in members:
        tf.addfile(t, io.BytesIO(data) if data is not None else None)
with open(T + "/paths.txt", "w") as out:
    for p, k in paths:
        out.write("%s %s\n" % (p, k))
PYEOF

# probe.py ROOT PATHS: one line per path and check, with what the calling user gets
cat >"$T/probe.py" <<'PYEOF'
import errno, hashlib, os, stat, sys
root, listing = sys.argv[1], sys.argv[2]

def attempt(fn):
    try:
        r = fn()
        return "ok " + r if r else "ok"
    except OSError as e:
        return errno.errorcode.get(e.errno, str(e.errno))

def attrs(st, follow):
    if stat.S_ISLNK(st.st_mode):
        return "l"  # a symlink's mode is 0777 or what the archive says; Linux ignores it
    kind = "d" if stat.S_ISDIR(st.st_mode) else "f" if stat.S_ISREG(st.st_mode) else "?"
    return "%s %o %d:%d" % (kind, stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid)

def read(p):
    with open(p, "rb") as f:
        data = f.read()
    return "%d %s" % (len(data), hashlib.sha256(data).hexdigest()[:12])

def xok(p):
    if not os.access(p, os.X_OK):
        raise OSError(errno.EACCES, "no X_OK")
    return ""

for line in open(listing):
    rel, kind = line.split()
    p = os.path.join(root, rel)
    print(rel, "lstat", attempt(lambda: attrs(os.lstat(p), False)))
    if kind.startswith("l"):
        print(rel, "stat", attempt(lambda: attrs(os.stat(p), True)))
    if kind in ("f", "l"):
        print(rel, "read", attempt(lambda: read(p)))
    else:
        print(rel, "list", attempt(lambda: ",".join(sorted(os.listdir(p)))))
    print(rel, "xok", attempt(lambda: xok(p)))
PYEOF
chmod 644 "$T/probe.py" "$T/paths.txt"

OTHERS="owner:4001:4002:- group:4003:4002:- suppl:4003:4003:4002 other:65534:65534:-"
IDS="root:0:0:- $OTHERS"
# probe ROOT NAME:UID:GID:GROUPS > OUT: probe.py as that identity (from /, which all may reach)
probe() {
	local root=$1 name uid gid groups
	IFS=: read -r name uid gid groups <<<"$2"
	if [ "$groups" = - ]; then set -- --clear-groups; else set -- --groups="$groups"; fi
	(cd / && timeout 60 setpriv --reuid="$uid" --regid="$gid" "$@" "$PROBE_PY" "$T/probe.py" "$root" "$T/paths.txt")
}
# oracle: probe the extraction as every identity into $T/want.NAME
oracle() {
	local id
	for id in $IDS; do
		probe "$X" "$id" >"$T/want.${id%%:*}" 2>"$T/probe.err" ||
			fail "probe of the extraction as ${id%%:*}: $(head -c 300 "$T/probe.err")"
	done
}
# compare WHAT NAME WANTFILE GOTFILE
compare() {
	if [ -s "$3" ] && cmp -s "$3" "$4"; then
		ok "$1: $2: $(wc -l <"$4") checks as expected"
	else
		fail "$1: $2: differs from the expected results (-want +got):"
		diff "$3" "$4" | grep '^[<>]' | head -12 | sed 's/^/    /'
	fi
}
# compare_within WHAT NAME WANTFILE GOTFILE: line by line, GOT is WANT's line or EACCES
compare_within() {
	local bad
	bad=$(awk 'NR == FNR { want[FNR] = $0; n = FNR; next }
		{ m = FNR; split($0, f, " ")
		  if ($0 != want[FNR] && $0 != f[1] " " f[2] " EACCES") print "    want " want[FNR] "; got " $0 }
		END { if (m != n) print "    " n " lines wanted, " m " got" }' "$3" "$4" | head -12)
	if [ -s "$3" ] && [ -z "$bad" ]; then
		ok "$1: $2: $(wc -l <"$4") checks refused or as the modes allow"
	else
		fail "$1: $2: more than the modes allow:"
		echo "$bad"
	fi
}
no_xok() { grep -v ' xok ' "$1"; }
# every_eacces FILE: FILE's checks, every outcome EACCES
every_eacces() { awk '{ print $1, $2, "EACCES" }' "$1"; }

# check_case WHAT MODEL [OPTIONS...]: mount with OPTIONS and compare every identity's results
# with the extraction's per MODEL: same (the identity's own results), allow_root (see the
# top), private (root: root's reads, the others: EACCES), open (every identity: root's reads)
check_case() {
	local what=$1 model=$2 id name opts want_dp
	shift 2
	tm_mount "$what" "$T/perm.tar" "$M" "$@" || return
	opts=$(mount_line "$M" | awk '{ print $4 }')
	case $model in same | allow_root) want_dp=yes ;; *) want_dp=no ;; esac
	if [[ ,$opts, == *,default_permissions,* ]]; then
		[ $want_dp = yes ] && ok "$what: default_permissions in the mount's options" ||
			fail "$what: default_permissions in the mount's options: $opts"
	else
		[ $want_dp = no ] && ok "$what: no default_permissions in the mount's options" ||
			fail "$what: no default_permissions in the mount's options: $opts"
	fi
	if [ "$model" = allow_root ]; then
		for id in $OTHERS; do
			probe_as "$what" "$id"
			every_eacces "$T/want.root" >"$T/want"
			compare "$what, fresh mount" "$name" "$T/want" "$T/got"
		done
		probe_as "$what" root:0:0:-
		compare "$what" root "$T/want.root" "$T/got"
		for id in $OTHERS; do
			probe_as "$what" "$id"
			compare_within "$what, after root's walk" "$name" "$T/want.$name" "$T/got"
		done
	else
		for id in $IDS; do
			probe_as "$what" "$id"
			case $model/$name in
			same/*) cp "$T/want.$name" "$T/want" ;;
			private/root | open/*) no_xok "$T/want.root" >"$T/want" ;;
			private/*) no_xok "$T/want.root" | every_eacces /dev/stdin >"$T/want" ;;
			esac
			[ "$model" = same ] || { no_xok "$T/got" >"$T/got.r"; mv "$T/got.r" "$T/got"; }
			compare "$what" "$name" "$T/want" "$T/got"
		done
	fi
	tm_umount "$what" "$M"
}
# probe_as WHAT NAME:UID:GID:GROUPS: probe the mount into $T/got; name=NAME
probe_as() {
	name=${2%%:*}
	probe "$M" "$2" >"$T/got" 2>"$T/probe.err" ||
		fail "$1: probe as $name: $(head -c 300 "$T/probe.err")"
}

# ---- the oracle ---------------------------------------------------------------------------
if tar -xpf "$T/perm.tar" -C "$X" --same-owner --numeric-owner 2>"$T/tar.err"; then
	ok "tar -x perm.tar as root"
else
	fail "tar -x perm.tar: $(head -c 300 "$T/tar.err")"
	finish
fi
chmod 755 "$X"
oracle
# the oracle itself is not trivial: the other user reads f004 but not f440, the owner not f044
# (and a symlink into d700 is refused to the group): else the extraction did not keep modes
if grep -qx 'f004 read ok.*' "$T/want.other" && grep -qx 'f440 read EACCES' "$T/want.other" &&
	grep -qx 'f044 read EACCES' "$T/want.owner" && grep -qx 'ln_in_d700 read EACCES' "$T/want.group" &&
	grep -qx 'd711/f read ok.*' "$T/want.suppl" && grep -qx 'f000 read ok.*' "$T/want.root"; then
	ok "the extraction: each identity reads what its modes allow ($(wc -l <"$T/want.root") checks each)"
else
	fail "the extraction does not keep the archive's modes and owners: the oracle is wrong"
	finish
fi

# ---- the mounts ----------------------------------------------------------------------------
check_case "allow_other" same -o allow_other
check_case "allow_root" allow_root -o allow_root
check_case "no allow_other" private
check_case "allow_other,ignore_permissions" open -o allow_other,ignore_permissions

# umask=077: a kernel filesystem of the same tree with group and other bits cleared
# (the root too, as the mount's; chmod -R neither follows nor changes the symlinks it meets)
chmod -R g-rwx,o-rwx "$X"
oracle
check_case "allow_other,umask=077" same -o allow_other,umask=077
chown -R -h 4003:4002 "$X"
oracle
check_case "allow_other,umask=077,uid=4003,gid=4002" same -o allow_other,umask=077,uid=4003,gid=4002

finish
