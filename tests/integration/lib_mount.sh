# Helpers for the tests that mount: sourced after lib.sh.  Mounts are remembered and undone
# (lazily, with their daemons killed) by mount_cleanup, which setup_tmp traps on exit.
: "${TARMOUNT:=$top_builddir/tarmount}"
case $TARMOUNT in /*) ;; *) TARMOUNT=$(pwd)/$TARMOUNT ;; esac

need_fuse() {
	need_root
	[ -c /dev/fuse ] || skip_or_fail "needs /dev/fuse"
	need_cmd fusermount3 timeout
	[ -x "$TARMOUNT" ] || skip_or_fail "TARMOUNT=$TARMOUNT is not an executable (build it first)"
}
MOUNTS=()
# is_mounted DIR: DIR is a mount point in /proc/mounts (our temp paths need no unescaping)
is_mounted() { awk -v m="$1" '$2 == m { f = 1 } END { exit !f }' /proc/mounts; }
mount_line() { awk -v m="$1" '$2 == m' /proc/mounts; }
# daemon_pids DIR: live tarmount processes with DIR as an argument (zombies have no cmdline)
daemon_pids() {
	local d
	for d in /proc/[0-9]*; do
		[ "${d#/proc/}" = $$ ] && continue
		{ tr '\0' '\n' <"$d/cmdline"; } 2>/dev/null | {
			read -r a0 || exit 1
			[ "${a0##*/}" = tarmount ] || exit 1
			grep -Fxq -- "$1"
		} && echo "${d#/proc/}"
	done
}
alive() { [ -r "/proc/$1/stat" ] && [ "$(awk '{ print $3 }' "/proc/$1/stat" 2>/dev/null)" != Z ]; }
# wait_gone DIR PIDS...: up to 10 s for DIR to leave /proc/mounts and PIDS to exit
wait_gone() {
	local m=$1 i p busy
	shift
	for i in $(seq 100); do
		busy=
		is_mounted "$m" && busy=1
		for p in "$@"; do alive "$p" && busy=1; done
		[ -z "$busy" ] && return 0
		sleep 0.1
	done
	return 1
}
# tm_mount WHAT ARCHIVE DIR [ARGS...]: mount, remember DIR; true when mounted
tm_mount() {
	local what=$1 a=$2 m=$3
	shift 3
	[[ " ${MOUNTS[*]} " == *" $m "* ]] || MOUNTS+=("$m")
	mkdir -p "$m"
	timeout 60 "$TARMOUNT" "$@" "$a" "$m" >"$T/mount.out" 2>"$T/mount.err"
	RC=$?
	if [ "$RC" != 0 ] || ! is_mounted "$m"; then
		fail "$what: tarmount exit $RC, $(is_mounted "$m" || echo not) mounted: $(head -c 600 "$T/mount.err")"
		return 1
	fi
	return 0
}
# tm_umount WHAT DIR: fusermount3 -u, then the mount and the daemon must go
tm_umount() {
	local what=$1 m=$2 pids
	pids=$(daemon_pids "$m")
	if ! timeout 20 fusermount3 -u "$m" 2>"$T/umount.err"; then
		fail "$what: fusermount3 -u: $(head -c 300 "$T/umount.err")"
		timeout 20 fusermount3 -u -z "$m" 2>/dev/null
	fi
	# shellcheck disable=SC2086
	if wait_gone "$m" $pids; then
		return 0
	fi
	fail "$what: after unmounting: $(is_mounted "$m" && echo "still mounted; ")daemon $(for p in $pids; do alive "$p" && echo "$p"; done) still running after 10 s"
	return 1
}
mount_cleanup() {
	local m p pids=
	for m in "${MOUNTS[@]}"; do
		pids="$pids $(daemon_pids "$m")"
		is_mounted "$m" && { timeout 10 fusermount3 -u -z "$m" || timeout 10 umount -l "$m"; } 2>/dev/null
	done
	for p in $pids; do alive "$p" && kill "$p" 2>/dev/null; done
	for p in $pids; do
		for _ in $(seq 30); do alive "$p" || break; sleep 0.1; done
		alive "$p" && kill -9 "$p" 2>/dev/null
	done
}
setup_tmp() {
	make_tmp
	trap 'mount_cleanup; cleanup' EXIT
}
# The tarmount part's prerequisites: true, or a note (a failure under CI=true) and false.
fuse_ok() {
	local why=
	if [ "$(id -u)" != 0 ]; then why="needs root"
	elif [ ! -c /dev/fuse ]; then why="needs /dev/fuse"
	elif ! command -v fusermount3 >/dev/null 2>&1; then why="needs fusermount3"
	elif [ ! -x "$TARMOUNT" ]; then why="TARMOUNT=$TARMOUNT is not an executable"
	fi
	[ -z "$why" ] && return 0
	if [ "${CI:-}" = true ]; then
		fail "tarmount part: $why (a skip is a failure under CI=true)"
	else
		note "tarmount part skipped: $why"
	fi
	return 1
}
