# lib.sh - what the lab, demo, bench and scale scripts share: log lines
# prefixed with the script's name, the root check, installing the packages
# of missing tools, stopping a process, listing a namespace's tunnel
# devices. Not run on its own: each script sets ME and sources it,
#   ME=bench
#   . "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
# LOG_STDERR=1 sends log lines to stderr (scale.sh keeps stdout for its
# report); DIE_STATUS is die's exit status (default 1).

log() {
	if [[ ${LOG_STDERR:-} == 1 ]]; then
		printf '%s: %s\n' "$ME" "$*" >&2
	else
		printf '%s: %s\n' "$ME" "$*"
	fi
}
warn() { printf '%s: %s\n' "$ME" "$*" >&2; }
die() {
	printf '%s: error: %s\n' "$ME" "$*" >&2
	exit "${DIE_STATUS:-1}"
}

# need_root [WHY]: die unless running as root.
need_root() {
	[[ $(id -u) -eq 0 ]] || die "must run as root (${1:-network namespaces and sshd need it})"
}

# need_tools CMD:PACKAGE...: install, with apt-get, the Debian packages of
# the commands that are missing (a CMD with a slash is a path to test).
need_tools() {
	local t cmd pkgs=()
	for t in "$@"; do
		cmd=${t%%:*}
		if [[ $cmd == */* ]]; then
			[[ -x $cmd ]] && continue
		else
			command -v "$cmd" >/dev/null 2>&1 && continue
		fi
		[[ " ${pkgs[*]} " == *" ${t#*:} "* ]] || pkgs+=("${t#*:}")
	done
	((${#pkgs[@]})) || return 0
	command -v apt-get >/dev/null 2>&1 && [[ $(id -u) -eq 0 ]] ||
		die "missing tools; install ${pkgs[*]}"
	log "installing ${pkgs[*]}"
	DEBIAN_FRONTEND=noninteractive apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${pkgs[@]}" >/dev/null
}

# stop_pid PID SECONDS: SIGTERM, wait up to SECONDS, then SIGKILL; reaps it
# if it is a child of this shell. Sets STOP_RC to its exit status and
# STOP_KILLED=1 if it needed SIGKILL.
STOP_RC=0
STOP_KILLED=0
stop_pid() {
	local pid=$1 secs=$2 i
	STOP_RC=0 STOP_KILLED=0
	[[ -n $pid ]] || return 0
	kill -TERM "$pid" 2>/dev/null || true
	for ((i = 0; i < secs * 10; i++)); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	if kill -0 "$pid" 2>/dev/null; then
		kill -KILL "$pid" 2>/dev/null || true
		STOP_KILLED=1
	fi
	wait "$pid" 2>/dev/null || STOP_RC=$?
}

# tun_devs NS: the network devices in namespace NS other than lo and the
# lab's veths: what a tunnel made.
tun_devs() {
	ip -n "$1" -o link show 2>/dev/null |
		awk -F': ' '{ sub(/@.*/, "", $2); print $2 }' |
		grep -vxE 'lo|wan[0-9]*|lan0' || true
}
