# shellcheck shell=bash
# Helpers for the tests that serve NBD exports with nbdkit: sourced after lib.sh.  Servers
# listen on unix sockets in $T only, and servers_cleanup (to call from the EXIT trap) kills
# them all.
declare -F alive >/dev/null ||
	alive() { [ -r "/proc/$1/stat" ] && [ "$(awk '{ print $3 }' "/proc/$1/stat" 2>/dev/null)" != Z ]; }

# ---- NBD servers: unix sockets in $T only, each killed on exit -----------------------------
# Every server we start is remembered by the file holding its process id (written by the
# server itself once it accepts connections); the timeout(1) wrappers are remembered too.
SERVER_PIDFILES=()
WRAPPERS=()
server_pid() { [ -s "$1" ] && cat "$1"; }
# stop_server PIDFILE: TERM (after CONT, in case it was stopped), KILL after 3 s
stop_server() {
	local p
	p=$(server_pid "$1") || return 0
	alive "$p" || return 0
	kill -CONT "$p" 2>/dev/null
	kill "$p" 2>/dev/null
	for _ in $(seq 30); do alive "$p" || return 0; sleep 0.1; done
	kill -9 "$p" 2>/dev/null
}
servers_cleanup() {
	local f p
	for f in "${SERVER_PIDFILES[@]}"; do stop_server "$f"; done
	for p in "${WRAPPERS[@]}"; do alive "$p" && kill "$p" 2>/dev/null; done
}
# wait_ready URI PIDFILE: up to 10 s for the pid file and an answer to nbdinfo
wait_ready() {
	for _ in $(seq 100); do
		if [ -s "$2" ] && timeout 5 nbdinfo --size "$1" >/dev/null 2>&1; then
			return 0
		fi
		sleep 0.1
	done
	return 1
}
uri() { echo "nbd+unix:///${2:-}?socket=$1"; }
# start_nbdkit NAME SOCKET NBDKIT-ARGS...: true once it serves (READY_URI, if set, is the
# URI that says so); its log is $T/NAME.log
start_nbdkit() {
	local name=$1 sock=$2
	shift 2
	rm -f "$sock" "$T/$name.pid"
	SERVER_PIDFILES+=("$T/$name.pid")
	timeout 900 nbdkit -f -U "$sock" -P "$T/$name.pid" "$@" >"$T/$name.log" 2>&1 &
	WRAPPERS+=("$!")
	disown "$!"
	if ! wait_ready "${READY_URI:-$(uri "$sock")}" "$T/$name.pid"; then
		fail "$name: nbdkit $* did not start: $(head -c 500 "$T/$name.log")"
		return 1
	fi
}
