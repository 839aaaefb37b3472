#!/bin/bash
# tarmount through mount(8) and fstab:
#   - mount.fuse3 SOURCE MNT -t fuse.tarmount, with tarmount found on PATH (a temp dir
#     holding a symlink tarmount -> $TARMOUNT put first in PATH);
#   - mount -t fuse.tarmount SOURCE MNT (mount(8) -> mount.fuse3 -> tarmount), with and
#     without options;
#   - an fstab line through `mount -T TMPFSTAB MNT` (and by source), so that the real
#     /etc/fstab is never read for this nor changed (checked);
#   - every mount: type fuse.tarmount, the source as fsname, ro, the files readable, the
#     options applied; umount(8) removes it and the daemon exits;
#   - the fstab line with allow_other: default_permissions added, so uid 65534 reads the
#     0644 file but not the root-owned 0600 one.
#
# mount(8) runs its helpers without PATH (util-linux 2.38 drops it), so mount.fuse3's
# /bin/sh looks tarmount up in the shell's default path.  Rather than install anything, the
# script runs in a private mount namespace (unshare -m) where the temp dir is bind-mounted
# on /usr/local/sbin (in every /bin/sh's default path): nothing outside sees it, and the
# mounts made here vanish with the namespace.
. "$(dirname "$0")/lib.sh"

. "$(dirname "$0")/lib_mount.sh"


need_fuse
need_cmd mount umount unshare mount.fuse3 tar sha256sum setpriv
if [ -z "${TARMOUNT_FSTAB_NS:-}" ]; then
	unshare -m --propagation private true 2>/dev/null ||
		skip_or_fail "needs unshare -m (a private mount namespace)"
	export TARMOUNT TARKV top_srcdir top_builddir
	TARMOUNT_FSTAB_NS=1 exec timeout 600 unshare -m --propagation private bash "$0" "$@"
fi
setup_tmp
umask 022
chmod 755 "$T" # mktemp's 0700: the other user must reach the mount
etc_fstab_sum=$(sha256sum /etc/fstab 2>/dev/null)

BIN=$T/bin
mkdir -p "$BIN" "$T/src/sub"
ln -s "$TARMOUNT" "$BIN/tarmount"
export PATH="$BIN:$PATH"
if [ "$(command -v tarmount)" = "$BIN/tarmount" ]; then
	ok "tarmount on PATH: $BIN/tarmount -> $TARMOUNT"
else
	fail "tarmount on PATH: command -v finds $(command -v tarmount)"
fi
DEFBIN=
for d in /usr/local/sbin /usr/local/bin; do
	[ -d "$d" ] && { DEFBIN=$d; break; }
done
if [ -n "$DEFBIN" ] && mount --bind "$BIN" "$DEFBIN"; then
	ok "private namespace: $BIN bind-mounted on $DEFBIN"
else
	fail "cannot bind $BIN on /usr/local/sbin or /usr/local/bin in the private namespace"
fi

echo "hello from the archive" >"$T/src/hello.txt"
head -c 300000 /dev/urandom >"$T/src/sub/data.bin"
chown 42:43 "$T/src/hello.txt"
chmod 0644 "$T/src/hello.txt"
echo "root only" >"$T/src/secret"
chmod 0600 "$T/src/secret"
tar -cf "$T/a.tar" -C "$T/src" . || fail "tar -c"
A=$T/a.tar
M=$T/m
mkdir -p "$M"
MOUNTS+=("$M")

# check_mounted WHAT [OPTION...]: mounted, fuse.tarmount, fsname $A, ro and the OPTIONs, files
check_mounted() {
	local what=$1 line fsname fstype opts o
	shift
	if ! is_mounted "$M"; then
		fail "$what: not mounted: $(head -c 400 "$T/err")"
		return 1
	fi
	line=$(mount_line "$M")
	read -r fsname _ fstype opts _ <<<"$line"
	if [ "$fstype" = fuse.tarmount ] && [ "$fsname" = "$A" ]; then
		ok "$what: mounted, type fuse.tarmount, fsname the source"
	else
		fail "$what: mount table line: $line"
	fi
	for o in ro "$@"; do
		[[ ,$opts, == *,$o,* ]] || fail "$what: no option $o in '$opts'"
	done
	if cmp -s "$M/hello.txt" "$T/src/hello.txt" && cmp -s "$M/sub/data.bin" "$T/src/sub/data.bin"; then
		ok "$what: files read right"
	else
		fail "$what: files do not read as the source tree's"
	fi
	return 0
}
# unmount_umount WHAT: umount(8), then no mount and no daemon
unmount_umount() {
	local pids
	pids=$(daemon_pids "$M")
	[ -n "$pids" ] || fail "$1: no tarmount process found for $M"
	if ! timeout 20 umount "$M" 2>"$T/umount.err"; then
		fail "$1: umount: $(head -c 300 "$T/umount.err")"
		timeout 10 umount -l "$M" 2>/dev/null
	fi
	# shellcheck disable=SC2086
	if wait_gone "$M" $pids; then
		ok "$1: umount: mount gone, daemon exited"
	else
		fail "$1: after umount: $(is_mounted "$M" && echo "still mounted, ")daemon $pids alive"
	fi
}
# mnt WHAT CMD...: run a mount command, bounded; stderr in $T/err
mnt() {
	local what=$1
	shift
	timeout 60 "$@" >"$T/out" 2>"$T/err"
	RC=$?
	if [ "$RC" = 0 ]; then
		ok "$what: exit 0"
	else
		fail "$what: exit $RC $(last)"
		grep -q 'tarmount: not found' "$T/err" &&
			note "mount.fuse3's /bin/sh did not find tarmount (PATH of mount helpers)"
	fi
}

# 1. mount.fuse3 directly: it keeps PATH, so the symlink on PATH is what it runs
mnt "mount.fuse3 A M -t fuse.tarmount" mount.fuse3 "$A" "$M" -t fuse.tarmount -o ro
check_mounted "mount.fuse3" && unmount_umount "mount.fuse3"

# 2. mount -t fuse.tarmount
mnt "mount -t fuse.tarmount A M" mount -t fuse.tarmount "$A" "$M"
check_mounted "mount -t fuse.tarmount" && unmount_umount "mount -t fuse.tarmount"

# 3. with options
mnt "mount -t fuse.tarmount -o ro,nosuid,nodev,uid=1234,gid=5678" \
	mount -t fuse.tarmount -o ro,nosuid,nodev,uid=1234,gid=5678 "$A" "$M"
if check_mounted "mount -t fuse.tarmount -o ..." nosuid nodev; then
	if [ "$(stat -c %u:%g "$M/hello.txt")" = 1234:5678 ]; then
		ok "mount -t fuse.tarmount -o uid=1234,gid=5678: owners shown as 1234:5678"
	else
		fail "mount -t fuse.tarmount -o uid=1234,gid=5678: hello.txt is $(stat -c %u:%g "$M/hello.txt")"
	fi
	unmount_umount "mount -t fuse.tarmount -o ..."
fi

# 4. an fstab line (the man page's), by mount point and by source
FSTAB=$T/fstab
cat >"$FSTAB" <<FSTABEOF
# a private fstab for this test; /etc/fstab is never used
tmpfs $T/unused tmpfs noauto 0 0
$A $M fuse.tarmount ro,allow_other,nofail 0 0
FSTABEOF
mnt "mount -T FSTAB M" mount -T "$FSTAB" "$M"
if check_mounted "fstab, mount -T FSTAB M" allow_other default_permissions; then
	as_other() { (cd / && setpriv --reuid=65534 --regid=65534 --clear-groups "$@"); }
	if as_other cat "$M/hello.txt" >/dev/null 2>&1 && ! as_other cat "$M/secret" >/dev/null 2>&1; then
		ok "fstab allow_other: uid 65534 reads hello.txt (0644) but not secret (0600, root)"
	else
		fail "fstab allow_other: uid 65534 should read hello.txt and not secret: $(as_other cat "$M/hello.txt" "$M/secret" 2>&1 | tr '\n' '|')"
	fi
	# mount.fuse3 run by root adds dev,suid unless the line says nodev/nosuid, so this line
	# gives a mount that honours set-user-ID bits and devices: reported, not failed (the
	# README promises nosuid,nodev "unless you ask"; here mount.fuse3 asks)
	opts=$(mount_line "$M" | awk '{ print $4 }')
	[[ ,$opts, == *,nosuid,* && ,$opts, == *,nodev,* ]] ||
		note "the man page's fstab line (ro,allow_other,nofail) mounts without nosuid,nodev: $opts"
	unmount_umount "fstab, mount -T FSTAB M"
fi
mnt "mount -T FSTAB SOURCE" mount -T "$FSTAB" "$A"
check_mounted "fstab, mount -T FSTAB SOURCE" && unmount_umount "fstab, mount -T FSTAB SOURCE"

# 5. fstab options reach tarmount
cat >"$FSTAB" <<FSTABEOF
$A $M fuse.tarmount ro,nosuid,nodev,uid=1234,gid=5678,umask=077 0 0
FSTABEOF
mnt "mount -T FSTAB M (uid, gid, umask)" mount -T "$FSTAB" "$M"
if check_mounted "fstab with uid,gid,umask" nosuid nodev; then
	got=$(stat -c '%u:%g %a' "$M/hello.txt")
	if [ "$got" = "1234:5678 600" ]; then
		ok "fstab uid=1234,gid=5678,umask=077: hello.txt is 1234:5678 600"
	else
		fail "fstab uid=1234,gid=5678,umask=077: hello.txt is $got, want 1234:5678 600"
	fi
	unmount_umount "fstab with uid,gid,umask"
fi

if [ "$(sha256sum /etc/fstab 2>/dev/null)" = "$etc_fstab_sum" ]; then
	ok "/etc/fstab unchanged"
else
	fail "/etc/fstab changed"
fi

finish
