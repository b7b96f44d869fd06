# Shared by dovecot.sh and postfix.sh (sourced, not run): ports and the
# liveness of a daemon that has left its parent.

free_port() {
	python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# True while PID is a live process. A daemon reparents to PID 1, and in a
# container PID 1 may never reap it: `kill -0` then succeeds on the zombie
# of a stopped daemon, and `start` would take it for a running one.
running() {
	local state
	state="$(ps -o stat= -p "$1" 2>/dev/null)" || return 1
	[[ -n "$state" && "$state" != Z* ]]
}
