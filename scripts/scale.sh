#!/usr/bin/env bash
# scale.sh - many sshvpn clients at once against one --pool key, in a
# throw-away lab (scripts/lab.sh); nothing touched in the root namespace.
#
# Usage (as root):
#   scripts/scale.sh [-n N]    run N clients (1..250, default $SCALE_N or 100)
#   scripts/scale.sh -h        show this help
#
# It brings up a lab with N client namespaces (LAB_CLIENTS=N, and a MaxStartups
# high enough that sshd accepts all N handshakes at once), gives the lab key
# the forced command of
#   sshvpn authorized-key --pool 198.18.64.0/24 --pool fd00:64::/64 \
#       --dev 'vpn%d' --state-dir $LAB_DIR/state
# turns on forwarding inside the server namespace only, and starts all N
# clients at the same moment, one per client namespace:
#   ip netns exec NS sshvpn -e "ssh -F $LAB_SSH_CONFIG" --dev vpn0 root@server
# A client that exits before its tunnel is up (e.g. sshd dropped its
# connection) is restarted, at most 3 times; restarts are counted.
#
# Then it measures and checks:
#   - how many tunnels came up, and the seconds until the last one was up;
#   - the server's memory per session: the summed VmRSS of the remote sshvpn
#     processes, and of the per-session sshd processes (not the listener),
#     divided by the number of sessions (PSS is printed too: RSS counts
#     the pages that sessions share once per process);
#   - that the clients' tunnel addresses (IPv4 and IPv6) are all distinct;
#   - that every client pings the server's tunnel address 198.18.64.1 and
#     its neighbour (client k pings client k+1, the last one client 1);
#   - after SIGTERM to every client: that they all exit, and that the server
#     namespace is left without remote sshvpn or session sshd processes,
#     vpn devices or lease files;
#   - after `lab.sh down`: no lab namespaces, processes or files.
# It ends with a Markdown table of the results and exits non-zero if any
# check failed. The lab is torn down on every exit, also on Ctrl-C.
#
# Environment:
#   SCALE_N        number of clients when -n is not given (default 100)
#   SCALE_TIMEOUT  seconds to wait for all tunnels (default 60 + N/2)
#   SCALE_PING_PARALLEL  pings run at the same time (default 32)
#   SCALE_LOG_DIR  directory for the client logs (default: a new
#                  /tmp/sshvpn-scale-logs.XXXXXX). Kept if a check fails or
#                  SCALE_KEEP_LOGS=1, removed otherwise.
#   LAB_NAME       the lab's name (default sshvpn-scale); must not exist yet
#   LAB_DIR        the lab's directory (default /tmp/$LAB_NAME)
#   SSHVPN_BIN     prebuilt sshvpn binary for the lab (see scripts/lab.sh);
#                  if unset, lab.sh builds ./cmd/sshvpn.
set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
LAB_SH=$SCRIPT_DIR/lab.sh
ME=scale LOG_STDERR=1 DIE_STATUS=2
# shellcheck source=lib.sh
. "$SCRIPT_DIR/lib.sh"

export LAB_NAME=${LAB_NAME:-sshvpn-scale}
export LAB_DIR=${LAB_DIR:-/tmp/$LAB_NAME}
N=${SCALE_N:-100}
POOL4=198.18.64.0/24
POOL6=fd00:64::/64
SERVER_TUN=198.18.64.1
MAX_TRIES=4 # the first start and up to 3 restarts

usage() { sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed -e '$d' -e 's/^# \{0,1\}//'; }

while getopts ':n:h' opt; do
	case $opt in
	n) N=$OPTARG ;;
	h) usage; exit 0 ;;
	*) usage >&2; exit 2 ;;
	esac
done
shift $((OPTIND - 1))
(($# == 0)) || { usage >&2; exit 2; }
if ! [[ $N =~ ^[1-9][0-9]{0,2}$ ]] || ((N > 250)); then
	die "N must be 1..250 (the lab's limit), got '$N'"
fi
TIMEOUT=${SCALE_TIMEOUT:-$((60 + N / 2))}
PAR=${SCALE_PING_PARALLEL:-32}
[[ $TIMEOUT =~ ^[1-9][0-9]*$ ]] || die "SCALE_TIMEOUT must be a positive number of seconds"
[[ $PAR =~ ^[1-9][0-9]*$ ]] || die "SCALE_PING_PARALLEL must be a positive number"
need_root
[[ -x $LAB_SH ]] || die "$LAB_SH not found"
need_tools ping:iputils-ping flock:util-linux

if ip netns list 2>/dev/null | grep -q "^$LAB_NAME-" || [[ -e $LAB_DIR ]]; then
	die "lab '$LAB_NAME' already exists; remove it with: LAB_NAME=$LAB_NAME LAB_DIR=$LAB_DIR $LAB_SH down"
fi

if [[ -n ${SCALE_LOG_DIR:-} ]]; then
	LOGDIR=$SCALE_LOG_DIR
	mkdir -p "$LOGDIR"
else
	LOGDIR=$(mktemp -d /tmp/sshvpn-scale-logs.XXXXXX)
fi

now() { echo "${EPOCHREALTIME/,/.}"; }
NOW=0 # set_now sets it without a subshell
set_now() { NOW=${EPOCHREALTIME/,/.}; }
T0=$(now)

# ---------------------------------------------------------------- cleanup

declare -a PID=() TRIES=() LOGF=() UPAT=()
LAB_STARTED=0
FAILED=0
fail() { log "FAIL: $*"; FAILED=1; }

# alive PID: the process exists and is not a zombie. Builtins only: it runs
# for every pending client ten times a second, beside the clients under test.
alive() {
	local st
	[[ -n $1 ]] || return 1
	{ read -r st </proc/"$1"/stat; } 2>/dev/null || return 1
	st=${st##*) }
	[[ ${st%% *} != Z ]]
}

# stop_clients SECONDS: SIGTERM every client still running, wait up to
# SECONDS for them, SIGKILL the rest. Prints how many needed SIGKILL.
stop_clients() {
	local limit=$1 k pids=() left=() i
	for k in "${!PID[@]}"; do
		alive "${PID[k]}" && pids+=("${PID[k]}")
	done
	if ((${#pids[@]})); then kill -TERM "${pids[@]}" 2>/dev/null || true; fi
	for ((i = 0; i < limit * 10; i++)); do
		left=()
		for k in "${pids[@]}"; do alive "$k" && left+=("$k"); done
		((${#left[@]})) || break
		sleep 0.1
	done
	left=()
	for k in "${pids[@]}"; do alive "$k" && left+=("$k"); done
	if ((${#left[@]})); then kill -KILL "${left[@]}" 2>/dev/null || true; fi
	echo "${#left[@]}"
}

lab_down() {
	((LAB_STARTED)) || return 0
	LAB_STARTED=0
	env -u LAB_USER "$LAB_SH" down >"$LOGDIR/lab-down.log" 2>&1 || {
		cat "$LOGDIR/lab-down.log" >&2
		return 1
	}
}

cleanup() {
	local rc=$?
	trap - EXIT INT TERM
	if ((${#PID[@]})); then
		stop_clients 5 >/dev/null || true
	fi
	if ((LAB_STARTED)); then
		cp "$LAB_DIR/sshd.log" "$LOGDIR/" 2>/dev/null || true
		log "tearing the lab down"
		lab_down || true
	fi
	if ((rc != 0 || FAILED)) || [[ ${SCALE_KEEP_LOGS:-} == 1 ]]; then
		log "logs kept in $LOGDIR"
	elif [[ -z ${SCALE_LOG_DIR:-} ]]; then
		rm -rf -- "$LOGDIR"
	fi
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ---------------------------------------------------------------- lab

log "bringing up lab '$LAB_NAME' with $N clients"
LAB_STARTED=1
if ! env -u LAB_USER -u LAB_SYSLOG_SOCKET -u LAB_PERMIT_TUNNEL \
	LAB_CLIENTS="$N" LAB_MAX_STARTUPS="$((N + 10)):30:$((2 * N + 20))" \
	"$LAB_SH" up >"$LOGDIR/lab-up.log" 2>&1; then
	cat "$LOGDIR/lab-up.log" >&2
	exit 1
fi
# shellcheck source=/dev/null
source "$LAB_DIR/env"
T_LAB=$(now)

client_ns() { if (($1 == 1)); then echo "$LAB_CLIENT_NS"; else echo "$LAB_CLIENT_NS$1"; fi; }

"$LAB_BIN" authorized-key --sshvpn "$LAB_BIN" --pool "$POOL4" --pool "$POOL6" \
	--dev 'vpn%d' --state-dir "$LAB_DIR/state" "$LAB_DIR/id_ed25519.pub" >"$LAB_DIR/authorized_keys.root.new"
chmod 0600 "$LAB_DIR/authorized_keys.root.new"
mv "$LAB_DIR/authorized_keys.root.new" "$LAB_DIR/authorized_keys.root"
log "key: $(cut -c1-160 "$LAB_DIR/authorized_keys.root")..."
ip netns exec "$LAB_SERVER_NS" sysctl -qw net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1

# ---------------------------------------------------------------- start

# The clients wait for a shared lock on $BARRIER, which the script holds
# exclusively until all of them are forked: forking hundreds of them takes
# a while, and they are to start at the same moment. (A restart, later,
# passes at once.) Each becomes its sshvpn by exec, so PID[k] is sshvpn's.
BARRIER=$LOGDIR/start.lock
exec 7>"$BARRIER"
flock -x 7

start_client() {
	local k=$1 ns=$LAB_CLIENT_NS
	((k == 1)) || ns=$LAB_CLIENT_NS$k
	TRIES[k]=$((${TRIES[k]:-0} + 1))
	LOGF[k]=$LOGDIR/client$k.try${TRIES[k]}.log
	(
		exec 7>&-
		flock -s 8
		exec 8<&-
		exec ip netns exec "$ns" "$LAB_BIN" --log-format logfmt -e "ssh -F $LAB_SSH_CONFIG" --dev vpn0 root@server
	) 8<"$BARRIER" </dev/null >"${LOGF[k]}" 2>&1 &
	PID[k]=$!
}

# The client's own "tunnel up" line; the remote's has side=remote first.
UP_RE='msg="tunnel up" dev='

# cpu_ticks prints the ticks all CPUs spent busy and in total (/proc/stat).
cpu_ticks() {
	awk '/^cpu / { busy = $2 + $3 + $4 + $7 + $8 + $9; print busy, busy + $5 + $6; exit }' /proc/stat
}

log "starting $N clients at once"
TSPAWN=$(now)
for ((k = 1; k <= N; k++)); do start_client "$k"; done
read -r CPU0_BUSY CPU0_ALL < <(cpu_ticks)
TSTART=$(now)
flock -u 7
exec 7>&-
log "forked them in $(awk -v a="$TSPAWN" -v b="$TSTART" 'BEGIN { printf "%.2f", b - a }') s, then released them together"

RETRIES=0
declare -a GAVE_UP=()
: >"$LOGDIR/retries.log"
deadline=$(awk -v t="$TSTART" -v d="$TIMEOUT" 'BEGIN { printf "%.0f", t + d }')
while :; do
	pending=()
	for ((k = 1; k <= N; k++)); do
		[[ -z ${UPAT[k]:-} && -z ${GAVE_UP[k]:-} ]] && pending+=("$k")
	done
	((${#pending[@]})) || break
	files=()
	for k in "${pending[@]}"; do files+=("${LOGF[k]}"); done
	set_now
	while read -r f; do
		[[ $f =~ /client([0-9]+)\.try[0-9]+\.log$ ]] && UPAT[BASH_REMATCH[1]]=$NOW
	done < <(grep -l -e "$UP_RE" "${files[@]}" 2>/dev/null || true)
	for k in "${pending[@]}"; do
		[[ -z ${UPAT[k]:-} ]] || continue
		alive "${PID[k]}" && continue
		if grep -q -e "$UP_RE" "${LOGF[k]}"; then set_now; UPAT[k]=$NOW; continue; fi
		printf 'client%d try %d: %s\n' "$k" "${TRIES[k]}" "$(tail -n 1 "${LOGF[k]}")" >>"$LOGDIR/retries.log"
		if ((TRIES[k] < MAX_TRIES)); then
			RETRIES=$((RETRIES + 1))
			start_client "$k"
		else
			GAVE_UP[k]=1
		fi
	done
	set_now
	if ((${NOW%.*} >= deadline)); then
		log "timeout: ${#pending[@]} clients not up after ${TIMEOUT}s"
		break
	fi
	sleep 0.1
done

read -r CPU1_BUSY CPU1_ALL < <(cpu_ticks)
CPU_NOTE=$(awk -v b=$((CPU1_BUSY - CPU0_BUSY)) -v a=$((CPU1_ALL - CPU0_ALL)) -v hz="$(getconf CLK_TCK)" -v n="$(nproc)" \
	'BEGIN { printf "%.1f s of %.1f s CPU busy (%d CPUs, %.0f%%)", b / hz, a / hz, n, a ? 100 * b / a : 0 }')
log "while the tunnels came up: $CPU_NOTE"
UP=0
: >"$LOGDIR/up-times"
for ((k = 1; k <= N; k++)); do
	if [[ -n ${UPAT[k]:-} ]]; then
		UP=$((UP + 1))
		printf '%s %d %d\n' "${UPAT[k]}" "$k" "${TRIES[k]}" >>"$LOGDIR/up-times"
	fi
done
last=$TSTART
if ((UP)); then
	last=$(sort -n "$LOGDIR/up-times" | tail -n 1 | cut -d' ' -f1)
	log "tunnels up after (s): $(sort -n "$LOGDIR/up-times" | awk -v t="$TSTART" '
		{ d[NR] = $1 - t }
		END { printf "first %.2f, 25%% %.2f, median %.2f, 75%% %.2f, 90%% %.2f, last %.2f",
			d[1], d[int((NR + 3) / 4)], d[int((NR + 1) / 2)], d[int((3 * NR + 3) / 4)], d[int((9 * NR + 9) / 10)], d[NR] }')"
fi
if ((UP == N)); then
	T_ALL=$(awk -v a="$TSTART" -v b="$last" 'BEGIN { printf "%.2f s", b - a }')
else
	T_ALL="n/a (last of $UP up after $(awk -v a="$TSTART" -v b="$last" 'BEGIN { printf "%.2f", b - a }') s)"
	fail "only $UP of $N tunnels came up"
	for ((k = 1; k <= N; k++)); do
		[[ -n ${UPAT[k]:-} ]] || log "  client$k (try ${TRIES[k]}): $(tail -n 1 "${LOGF[k]}" 2>/dev/null)"
	done | head -n 20 >&2 || true
fi
log "$UP of $N tunnels up, $RETRIES restarts, all up after $T_ALL"
if ((RETRIES)); then
	log "restarted clients (last log line of each failed try):"
	head -n 20 "$LOGDIR/retries.log" >&2
fi

# ---------------------------------------------------------------- memory

# Let the sessions that just came up settle, then sum VmRSS and PSS.
sleep 1
declare -A RSS=() PSS=() CNT=()
for p in $(ip netns pids "$LAB_SERVER_NS"); do
	[[ $p == "$LAB_SSHD_PID" ]] && continue
	comm=$(cat "/proc/$p/comm" 2>/dev/null) || continue
	case $comm in sshvpn | sshd) ;; *) continue ;; esac
	rss=$(awk '/^VmRSS:/ { print $2 }' "/proc/$p/status" 2>/dev/null) || continue
	pss=$(awk '/^Pss:/ { print $2 }' "/proc/$p/smaps_rollup" 2>/dev/null) || pss=0
	RSS[$comm]=$((${RSS[$comm]:-0} + ${rss:-0}))
	PSS[$comm]=$((${PSS[$comm]:-0} + ${pss:-0}))
	CNT[$comm]=$((${CNT[$comm]:-0} + 1))
done
# Sessions: the remote sshvpn processes (N when every client is up).
SESSIONS=${CNT[sshvpn]:-0}
per_session() { # KiB-sum -> "x.y MiB"
	if ((SESSIONS)); then awk -v s="$1" -v n="$SESSIONS" 'BEGIN { printf "%.1f MiB", s / n / 1024 }'; else echo n/a; fi
}
RSS_VPN=$(per_session "${RSS[sshvpn]:-0}")
RSS_SSHD=$(per_session "${RSS[sshd]:-0}")
log "server: ${CNT[sshvpn]:-0} remote sshvpn processes, RSS $RSS_VPN per session (PSS $(per_session "${PSS[sshvpn]:-0}"))"
log "server: ${CNT[sshd]:-0} session sshd processes, RSS $RSS_SSHD per session (PSS $(per_session "${PSS[sshd]:-0}"))"
((${CNT[sshvpn]:-0} == UP)) || fail "${CNT[sshvpn]:-0} remote sshvpn processes for $UP sessions"

# ---------------------------------------------------------------- addresses

declare -a A4=() A6=()
for ((k = 1; k <= N; k++)); do
	[[ -n ${UPAT[k]:-} ]] || continue
	ns=$(client_ns "$k")
	A4[k]=$(ip -n "$ns" -4 -o addr show dev vpn0 scope global 2>/dev/null | awk '{ split($4, a, "/"); print a[1]; exit }')
	A6[k]=$(ip -n "$ns" -6 -o addr show dev vpn0 scope global 2>/dev/null | awk '{ split($4, a, "/"); print a[1]; exit }')
	[[ -n ${A4[k]} && -n ${A6[k]} ]] || fail "client$k: vpn0 lacks an address (v4 '${A4[k]}', v6 '${A6[k]}')"
done
n4=$(printf '%s\n' "${A4[@]}" | grep -c . || true)
u4=$(printf '%s\n' "${A4[@]}" | { grep . || true; } | sort -u | wc -l)
n6=$(printf '%s\n' "${A6[@]}" | grep -c . || true)
u6=$(printf '%s\n' "${A6[@]}" | { grep . || true; } | sort -u | wc -l)
DISTINCT="$u4/$UP v4, $u6/$UP v6"
if ((u4 == UP && n4 == UP && u6 == UP && n6 == UP)); then
	DISTINCT_OK=yes
else
	DISTINCT_OK=no
	fail "tunnel addresses not distinct: $DISTINCT"
	printf '%s\n' "${A4[@]}" | sort | uniq -d | head >&2 || true
fi
log "distinct tunnel addresses: $DISTINCT"

# ---------------------------------------------------------------- pings

ping_one() { # NS DST RESULTFILE: up to 3 tries of one echo request
	local i
	for i in 1 2 3; do
		if ip netns exec "$1" ping -n -q -c 1 -W 2 "$2" >/dev/null 2>&1; then
			echo ok >"$3"
			return 0
		fi
	done
	echo "fail $1 -> $2" >"$3"
}
export -f ping_one

mkdir -p "$LOGDIR/ping"
PING_TOTAL=0
{
	# A client that is not up fails its pings without trying.
	for ((k = 1; k <= N; k++)); do
		ns=$(client_ns "$k")
		PING_TOTAL=$((PING_TOTAL + 1))
		if [[ -n ${A4[k]:-} ]]; then
			printf '%s %s %s\n' "$ns" "$SERVER_TUN" "$LOGDIR/ping/$k.server"
		else
			echo "fail client$k is not up" >"$LOGDIR/ping/$k.server"
		fi
		if ((N > 1)); then
			j=$((k % N + 1))
			PING_TOTAL=$((PING_TOTAL + 1))
			if [[ -n ${A4[k]:-} && -n ${A4[j]:-} ]]; then
				printf '%s %s %s\n' "$ns" "${A4[j]}" "$LOGDIR/ping/$k.client$j"
			else
				echo "fail client$k or client$j is not up" >"$LOGDIR/ping/$k.client$j"
			fi
		fi
	done >"$LOGDIR/ping/jobs"
}
log "running $PING_TOTAL pings, $PAR at a time"
TP=$(now)
xargs -r -P "$PAR" -L 1 bash -c 'ping_one "$@"' _ <"$LOGDIR/ping/jobs" || true
PING_OK=$(cat "$LOGDIR"/ping/*.server "$LOGDIR"/ping/*.client* 2>/dev/null | grep -c '^ok$' || true)
PINGS="$PING_OK/$PING_TOTAL"
log "pings ok: $PINGS in $(awk -v a="$TP" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }') s"
if ((PING_OK != PING_TOTAL)); then
	fail "$((PING_TOTAL - PING_OK)) pings failed"
	grep -h '^fail' "$LOGDIR"/ping/*.server "$LOGDIR"/ping/*.client* 2>/dev/null | head >&2 || true
fi

# ---------------------------------------------------------------- stop

log "stopping all clients (SIGTERM)"
TS=$(now)
killed=$(stop_clients 30)
((killed == 0)) || fail "$killed clients needed SIGKILL"
nonzero=0
for k in "${!PID[@]}"; do
	rc=0
	wait "${PID[k]}" 2>/dev/null || rc=$?
	((rc == 0 || rc == 127)) || nonzero=$((nonzero + 1))
done
((nonzero == 0)) || log "note: $nonzero clients exited non-zero after SIGTERM"
PID=()
log "clients stopped after $(awk -v a="$TS" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }') s"

LEFT=()
server_leftovers() {
	local p c vpnp=0 sshdp=0 devs leases
	for p in $(ip netns pids "$LAB_SERVER_NS"); do
		[[ $p == "$LAB_SSHD_PID" ]] && continue
		c=$(cat "/proc/$p/comm" 2>/dev/null) || continue
		[[ $c == sshvpn ]] && vpnp=$((vpnp + 1))
		[[ $c == sshd ]] && sshdp=$((sshdp + 1))
	done
	devs=$(ip -n "$LAB_SERVER_NS" -o link show | awk -F': ' '$2 ~ /^vpn/' | wc -l)
	leases=$(find "$LAB_DIR/state" -maxdepth 1 -name 'lease-*' 2>/dev/null | wc -l)
	LEFT=()
	((vpnp == 0)) || LEFT+=("$vpnp remote sshvpn")
	((sshdp == 0)) || LEFT+=("$sshdp session sshd")
	((devs == 0)) || LEFT+=("$devs vpn devices")
	((leases == 0)) || LEFT+=("$leases lease files")
	((${#LEFT[@]} == 0))
}
for ((i = 0; i < 200; i++)); do
	server_leftovers && break
	sleep 0.1
done
LEFTOVERS=()
if ((${#LEFT[@]})); then
	LEFTOVERS+=("${LEFT[@]}")
	fail "left on the server 20 s after the clients stopped: ${LEFT[*]}"
	ip -n "$LAB_SERVER_NS" -o link show | awk -F': ' '$2 ~ /^vpn/ { print "  " $2 }' | head >&2 || true
	find "$LAB_DIR/state" -maxdepth 1 -name 'lease-*' 2>/dev/null | head >&2 || true
else
	log "server clean: no remote sshvpn, session sshd, vpn devices or leases"
fi

# ---------------------------------------------------------------- teardown

cp "$LAB_DIR/sshd.log" "$LOGDIR/" 2>/dev/null || true
log "tearing the lab down"
lab_down || fail "lab.sh down failed"
nsleft=$(ip netns list | grep -c "^$LAB_NAME-" || true)
procs=$(pgrep -f -- "$LAB_DIR/" | grep -cvx "$$" || true)
((nsleft == 0)) || { LEFTOVERS+=("$nsleft namespaces"); fail "$nsleft lab namespaces left"; }
((procs == 0)) || {
	LEFTOVERS+=("$procs processes")
	fail "$procs processes still reference $LAB_DIR"
	pgrep -af -- "$LAB_DIR/" >&2 || true
}
[[ ! -e $LAB_DIR ]] || { LEFTOVERS+=("$LAB_DIR"); fail "$LAB_DIR is still there"; }
LEFTSTR=none
if ((${#LEFTOVERS[@]})); then LEFTSTR=$(IFS=,; echo "${LEFTOVERS[*]}"); fi

# ---------------------------------------------------------------- summary

TOTAL=$(awk -v a="$T0" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }')
LABT=$(awk -v a="$T0" -v b="$T_LAB" 'BEGIN { printf "%.1f", b - a }')
RESULT=PASS
((FAILED == 0)) || RESULT=FAIL
cat <<EOF

## sshvpn scale run: $RESULT

| N | up | retries | time to all up | RSS/session sshvpn | RSS/session sshd | distinct addresses | pings ok | leftovers |
| --- | --- | --- | --- | --- | --- | --- | --- | --- |
| $N | $UP | $RETRIES | $T_ALL | $RSS_VPN | $RSS_SSHD | $DISTINCT_OK ($DISTINCT) | $PINGS | $LEFTSTR |

Lab up in $LABT s; whole run $TOTAL s. While the tunnels came up: $CPU_NOTE.
Pool $POOL4 + $POOL6, forced command from \`sshvpn authorized-key\`.
EOF
((FAILED == 0)) || exit 1
