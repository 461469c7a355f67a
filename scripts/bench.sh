#!/usr/bin/env bash
# bench.sh - TCP throughput of sshvpn (with each of its SSH transports) next
# to OpenSSH's own `ssh -w` tunnel, measured in one run in the lab's network
# namespaces.
#
# Usage (as root, from anywhere):
#   scripts/bench.sh
#   BENCH_ROUNDS=5 BENCH_SECONDS=10 BENCH_MTU=9000 scripts/bench.sh
#   BENCH_CONTENDERS="native ssh-w" scripts/bench.sh
#
# What it measures: iperf3 TCP throughput (the receiver's bits per second)
# through up to four tunnels between the same two namespaces, over the same
# lab sshd, keys and cipher (the BENCH_CONTENDERS name comes first):
#   sshvpn       tun device <-> sshvpn <-> ssh -T (session channel) <-> sshd
#                <-> sshvpn --remote <-> tun device; 198.18.0.1 -> 198.18.0.2
#   native       the same, but sshvpn --native speaks SSH itself
#                (golang.org/x/crypto/ssh, -F $LAB_DIR/ssh_config) instead of
#                spawning ssh; 198.18.0.1 -> 198.18.0.2
#   openssh-tun  tun device <-> sshvpn --native --openssh-tun --remote-dev 7
#                (OpenSSH's tun@openssh.com channel) <-> sshd <-> tun7, which
#                sshd creates and this script configures; no sshvpn on the
#                server (PermitTunnel point-to-point); 198.18.2.1 -> 198.18.2.2
#   ssh-w        tun5 <-> ssh (tun forwarding channel) <-> sshd <-> tun5
#                (PermitTunnel point-to-point); 198.18.1.1 -> 198.18.1.2
# All tunnels use MTU 1500 (sshvpn's default). Each round brings every
# contender up, runs iperf3 client->server ("up") and server->client ("down",
# iperf3 -R), and takes it down again; the order of the contenders is
# reversed every other round to spread machine noise. The table shows each
# round in Mbit/s, the median, the CPU used by the tunnel's own processes
# (every process in the two namespaces but iperf3: ssh + sshd + sshvpn
# --remote for sshvpn, sshvpn + sshd + sshvpn --remote for native, sshvpn +
# sshd for openssh-tun, ssh + sshd for ssh -w; in cores, i.e. CPU seconds per
# second; kernel softirq work is not included) and how busy the whole machine
# was, plus each contender / ssh -w as a ratio of medians (if ssh-w ran).
# Numbers are only comparable within one run: the machine may be shared.
#
# Steps: installs iperf3 with apt-get if missing, builds ./cmd/sshvpn (unless
# SSHVPN_BIN is set), creates a lab with scripts/lab.sh (LAB_NAME=sshvpn-bench,
# LAB_PERMIT_TUNNEL=yes), measures, and always tears the lab down on exit,
# also on failure or Ctrl-C. Nothing is changed in the root network namespace,
# and the machine's own sshd and ~/.ssh are not touched.
#
# Environment:
#   BENCH_ROUNDS   rounds per contender (default 3)
#   BENCH_SECONDS  length of each iperf3 run in seconds (default 5)
#   BENCH_REVERSE  yes (default) also measures server->client; no skips it
#   BENCH_CONTENDERS  which contenders to run, separated by spaces or commas,
#                  in this order (default "sshvpn native openssh-tun ssh-w")
#   BENCH_MTU      if set, adds one more contender: sshvpn (spawned ssh) with
#                  --mtu BENCH_MTU
#   SSHVPN_BIN     use this prebuilt sshvpn binary instead of building one
#
# Exit status: 0 if every contender came up and every measurement worked,
# 1 otherwise (the table is still printed).
set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_ROOT=$(cd "$SCRIPT_DIR/.." && pwd)
LAB=$SCRIPT_DIR/lab.sh

export LAB_NAME=sshvpn-bench
export LAB_DIR=/tmp/$LAB_NAME
export LAB_PERMIT_TUNNEL=yes
export LAB_CLIENTS=1
unset LAB_USER

ROUNDS=${BENCH_ROUNDS:-3}
DURATION=${BENCH_SECONDS:-5}
REVERSE=${BENCH_REVERSE:-yes}
BENCH_MTU=${BENCH_MTU:-}
ALL_CONTENDERS=(sshvpn native openssh-tun ssh-w)
BENCH_CONTENDERS=${BENCH_CONTENDERS:-${ALL_CONTENDERS[*]}}
read -ra CONTENDERS <<<"${BENCH_CONTENDERS//,/ }"

VPN_LOCAL=198.18.0.1
VPN_PEER=198.18.0.2
VPN_PORT=5201
SSHW_LOCAL=198.18.1.1
SSHW_PEER=198.18.1.2
SSHW_PORT=5202
SSHW_DEV=tun5
SSHW_MTU=1500
OTUN_LOCAL=198.18.2.1
OTUN_PEER=198.18.2.2
OTUN_PORT=5203
OTUN_DEV=tun7

log() { printf 'bench: %s\n' "$*"; }
warn() { printf 'bench: %s\n' "$*" >&2; }
die() { printf 'bench: error: %s\n' "$*" >&2; exit 1; }

[[ $ROUNDS =~ ^[1-9][0-9]?$ ]] || die "BENCH_ROUNDS must be 1..99"
[[ $DURATION =~ ^[1-9][0-9]{0,2}$ ]] || die "BENCH_SECONDS must be 1..999"
[[ $REVERSE == yes || $REVERSE == no ]] || die "BENCH_REVERSE must be yes or no"
((${#CONTENDERS[@]})) || die "BENCH_CONTENDERS is empty"
for c in "${CONTENDERS[@]}"; do
	[[ " ${ALL_CONTENDERS[*]} " == *" $c "* ]] ||
		die "BENCH_CONTENDERS: unknown contender '$c' (known: ${ALL_CONTENDERS[*]})"
	[[ $(printf '%s\n' "${CONTENDERS[@]}" | grep -cxF -- "$c") == 1 ]] ||
		die "BENCH_CONTENDERS: '$c' is named twice"
done
if [[ -n $BENCH_MTU ]]; then
	if ! [[ $BENCH_MTU =~ ^[0-9]{3,5}$ ]] || ((BENCH_MTU < 576 || BENCH_MTU > 65000)); then
		die "BENCH_MTU must be 576..65000"
	fi
fi
[[ $(id -u) -eq 0 ]] || die "must run as root (it creates network namespaces and starts sshd)"

if ! command -v iperf3 >/dev/null 2>&1; then
	command -v apt-get >/dev/null 2>&1 || die "iperf3 is missing and there is no apt-get; install iperf3"
	log "installing iperf3"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update
	apt-get install -y iperf3
fi
if [[ -z ${SSHVPN_BIN:-} ]]; then
	command -v go >/dev/null 2>&1 || die "'go' is not on PATH; install Go or set SSHVPN_BIN"
fi

# ---------------------------------------------------------------- cleanup

TMP=
LAB_STARTED=0
SSHVPN_PID=
SSHW_PID=
IPERF_PID=

# stop_pid PID SECONDS: SIGTERM, wait up to SECONDS, then SIGKILL; reaps it.
# Sets STOP_RC to its exit status and STOP_KILLED=1 if it needed SIGKILL.
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

cleanup() {
	local rc=$?
	trap - EXIT INT TERM
	stop_pid "$SSHVPN_PID" 5
	stop_pid "$SSHW_PID" 5
	stop_pid "$IPERF_PID" 2
	if ((LAB_STARTED)); then
		log "tearing down the lab"
		"$LAB" down 2>&1 | sed 's/^/    /' || true
	fi
	[[ -n $TMP ]] && rm -rf -- "$TMP"
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

TMP=$(mktemp -d /tmp/sshvpn-bench-run.XXXXXX)

# ---------------------------------------------------------------- build + lab

if [[ -n ${SSHVPN_BIN:-} ]]; then
	BIN=$SSHVPN_BIN
	log "using prebuilt sshvpn $BIN"
else
	BIN=$TMP/sshvpn
	log "building ./cmd/sshvpn ($(go version | awk '{print $3}'))"
	(cd "$REPO_ROOT" && go build -o "$BIN" ./cmd/sshvpn) || die "go build ./cmd/sshvpn failed"
fi

# The bench lab is ours: clear leftovers of an interrupted earlier run.
"$LAB" down >/dev/null 2>&1 || true
LAB_STARTED=1
log "creating the lab ($LAB_NAME, PermitTunnel point-to-point)"
SSHVPN_BIN=$BIN "$LAB" up >"$TMP/lab-up.log" 2>&1 || {
	cat "$TMP/lab-up.log" >&2
	die "scripts/lab.sh up failed"
}
# shellcheck source=/dev/null
source "$LAB_DIR/env"
CLIENT_NS=${LAB_CLIENT_NS:?}
SERVER_NS=${LAB_SERVER_NS:?}

# ---------------------------------------------------------------- helpers

# tun_devs NS: network devices in NS other than lo and the lab veths.
tun_devs() {
	ip -n "$1" -o link show 2>/dev/null |
		awk -F': ' '{ sub(/@.*/, "", $2); print $2 }' |
		grep -vxE 'lo|wan[0-9]*|lan0' || true
}

# wait_ping ADDR PID: until ADDR answers from the client namespace (15 s),
# giving up early if PID exits.
wait_ping() {
	local addr=$1 pid=$2 deadline=$((SECONDS + 15))
	while ((SECONDS < deadline)); do
		kill -0 "$pid" 2>/dev/null || return 1
		ip netns exec "$CLIENT_NS" ping -c1 -W1 "$addr" >/dev/null 2>&1 && return 0
		sleep 0.2
	done
	return 1
}

# wait_gone: until no tunnel device is left in either namespace (10 s).
wait_gone() {
	local i
	for ((i = 0; i < 100; i++)); do
		[[ -z $(tun_devs "$CLIENT_NS")$(tun_devs "$SERVER_NS") ]] && return 0
		sleep 0.1
	done
	warn "tunnel devices left behind: client: $(tun_devs "$CLIENT_NS" | xargs) server: $(tun_devs "$SERVER_NS" | xargs)"
	return 1
}

# start_iperf_server ADDR PORT: iperf3 server in the server namespace, bound
# to the tunnel address ADDR (which must exist by now).
start_iperf_server() {
	local addr=$1 port=$2 i
	ip netns exec "$SERVER_NS" iperf3 -s -B "$addr" -p "$port" >"$TMP/iperf3-server.log" 2>&1 &
	IPERF_PID=$!
	for ((i = 0; i < 50; i++)); do
		[[ -n $(ip netns exec "$SERVER_NS" ss -Hltn "sport = :$port") ]] && return 0
		kill -0 "$IPERF_PID" 2>/dev/null || break
		sleep 0.1
	done
	cat "$TMP/iperf3-server.log" >&2 || true
	return 1
}

stop_iperf_server() {
	stop_pid "$IPERF_PID" 2
	IPERF_PID=
}

CLK_TCK=$(getconf CLK_TCK)

# tunnel_ticks: CPU ticks (user + system) used so far by the tunnel's own
# processes: everything in the client and server namespaces but iperf3.
tunnel_ticks() {
	local ns pid stat total=0
	local -a fld
	for ns in "$CLIENT_NS" "$SERVER_NS"; do
		for pid in $(ip netns pids "$ns" 2>/dev/null); do
			[[ $(cat "/proc/$pid/comm" 2>/dev/null) == iperf3 ]] && continue
			stat=$(cat "/proc/$pid/stat" 2>/dev/null) || continue
			read -ra fld <<<"${stat##*) }"
			# fld[0] is field 3 (state); utime and stime are fields 14 and 15.
			total=$((total + fld[11] + fld[12]))
		done
	done
	echo "$total"
}

# host_ticks: "busy total" jiffies of the whole machine from /proc/stat.
host_ticks() {
	awk '/^cpu / { t = 0; for (i = 2; i <= NF; i++) t += $i; print t - $5 - $6, t; exit }' /proc/stat
}

# bps_of FILE: the receiver's bits_per_second from iperf3 -J output.
bps_of() {
	local file=$1
	if command -v jq >/dev/null 2>&1; then
		jq -er '.end.sum_received.bits_per_second' "$file"
	elif command -v python3 >/dev/null 2>&1; then
		python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["end"]["sum_received"]["bits_per_second"])' "$file"
	else
		tr -d ' \t\n' <"$file" |
			sed -n 's/.*"sum_received":{[^}]*"bits_per_second":\([0-9.eE+-]*\).*/\1/p' | grep .
	fi
}

# measure KEY ADDR PORT DIR: one iperf3 run from the client namespace; DIR is
# up (client -> server) or down (-R). Appends Mbit/s (or "fail") to
# MBPS[KEY] and the CPU figures to TCPU[KEY] and HCPU[KEY].
declare -A MBPS=() TCPU=() HCPU=()
measure() {
	local key=$1 addr=$2 port=$3 dir=$4 json t0 t1 h0 h1 w0 w1 bps
	local -a rev=()
	[[ $dir == down ]] && rev=(-R)
	json=$TMP/iperf3-$key-$dir.json
	t0=$(tunnel_ticks)
	read -r h0 w0 < <(host_ticks)
	local start=$EPOCHREALTIME
	if timeout --foreground $((DURATION + 30)) ip netns exec "$CLIENT_NS" \
		iperf3 -c "$addr" -p "$port" -t "$DURATION" -J "${rev[@]}" >"$json" 2>&1 &&
		bps=$(bps_of "$json" 2>/dev/null); then
		local end=$EPOCHREALTIME
		t1=$(tunnel_ticks)
		read -r h1 w1 < <(host_ticks)
		local mbps
		mbps=$(awk -v b="$bps" 'BEGIN { printf "%.0f", b / 1e6 }')
		MBPS[$key,$dir]+="$mbps "
		TCPU[$key,$dir]+="$(awk -v d=$((t1 - t0)) -v hz="$CLK_TCK" -v s="$start" -v e="$end" \
			'BEGIN { printf "%.2f", d / hz / (e - s) }') "
		HCPU[$key,$dir]+="$(awk -v b=$((h1 - h0)) -v w=$((w1 - w0)) \
			'BEGIN { printf "%.0f", (w > 0 ? 100 * b / w : 0) }') "
		log "  $key $dir: $mbps Mbit/s"
	else
		MBPS[$key,$dir]+="fail "
		FAILED=1
		warn "  $key $dir: iperf3 failed:"
		sed 's/^/    /' "$json" >&2 || true
	fi
}

directions() {
	echo up
	[[ $REVERSE == yes ]] && echo down
	return 0
}

fail_round() {
	local key=$1 dir
	for dir in $(directions); do
		MBPS[$key,$dir]+="fail "
	done
	FAILED=1
}

# ---------------------------------------------------------------- contenders

# otun_dev_up MTU: wait for the server's $OTUN_DEV, which sshd creates for
# the tun@openssh.com channel, and for the client's handshake to be over (its
# device has $OTUN_LOCAL; 15 s in all), then give $OTUN_DEV its address and
# MTU and bring it up, as the server's admin would.
# Why wait for the client: sshvpn's tun@openssh.com translator forwards what
# the channel carries as soon as the channel is open, even before it has
# answered the client's hello; an IPv6 router solicitation from a $OTUN_DEV
# brought up that early then ends the client with "framing: expected the
# sshvpn handshake but the peer sent ...". Waiting keeps that start-up race
# out of a throughput measurement.
otun_dev_up() {
	local mtu=$1 deadline=$((SECONDS + 15))
	while ! ip -n "$SERVER_NS" link show dev "$OTUN_DEV" >/dev/null 2>&1 ||
		[[ -z $(ip -n "$CLIENT_NS" -o addr show to "$OTUN_LOCAL/32" 2>/dev/null) ]]; do
		kill -0 "$SSHVPN_PID" 2>/dev/null && ((SECONDS < deadline)) || return 1
		sleep 0.1
	done
	ip -n "$SERVER_NS" addr add "$OTUN_PEER/30" dev "$OTUN_DEV" &&
		ip -n "$SERVER_NS" link set dev "$OTUN_DEV" mtu "$mtu" up
}

# run_sshvpn KEY MODE [MTU]: bring sshvpn up, measure, bring it down. MODE
# is exec (spawned ssh), native (--native) or openssh-tun (--native
# --openssh-tun, the server's side being sshd's own $OTUN_DEV).
declare -A LABEL=()
run_sshvpn() {
	local key=$1 mode=$2 mtu=${3:-} dev devmtu dir ok=1 name laddr=$VPN_LOCAL peer=$VPN_PEER port=$VPN_PORT
	local -a args=()
	case $mode in
	exec)
		name=sshvpn
		args=(-e "ssh -F $LAB_SSH_CONFIG")
		;;
	native)
		name="sshvpn --native"
		args=(--native -F "$LAB_SSH_CONFIG")
		;;
	openssh-tun)
		name="sshvpn --openssh-tun"
		args=(--native -F "$LAB_SSH_CONFIG" --openssh-tun --remote-dev "${OTUN_DEV#tun}")
		laddr=$OTUN_LOCAL peer=$OTUN_PEER port=$OTUN_PORT
		;;
	esac
	[[ -n $mtu ]] && args+=(--mtu "$mtu")
	ip netns exec "$CLIENT_NS" "$LAB_BIN" -q "${args[@]}" \
		--addr "$laddr/30" --peer-addr "$peer/30" root@server \
		</dev/null >"$TMP/$key.log" 2>&1 &
	SSHVPN_PID=$!
	if [[ $mode == openssh-tun ]] && ! otun_dev_up "${mtu:-1500}"; then
		warn "$key did not come up (no handshake, no $OTUN_DEV on the server, or it could not be configured):"
		sed 's/^/    /' "$TMP/$key.log" >&2 || true
		ok=0
	elif ! wait_ping "$peer" "$SSHVPN_PID"; then
		warn "$key did not come up:"
		sed 's/^/    /' "$TMP/$key.log" >&2 || true
		ok=0
	elif ! start_iperf_server "$peer" "$port"; then
		warn "iperf3 server on $peer did not start"
		ok=0
	fi
	if ((ok)); then
		dev=$(tun_devs "$CLIENT_NS" | head -n1)
		devmtu=$(ip -n "$CLIENT_NS" -o link show dev "$dev" | sed -n 's/.* mtu \([0-9]*\).*/\1/p')
		LABEL[$key]="$name (mtu $devmtu)"
		for dir in $(directions); do
			measure "$key" "$peer" "$port" "$dir"
		done
	else
		fail_round "$key"
	fi
	stop_iperf_server
	stop_pid "$SSHVPN_PID" 10
	SSHVPN_PID=
	if ((STOP_KILLED)); then
		warn "$key: sshvpn did not exit within 10 s of SIGTERM (killed); its log:"
		sed 's/^/    /' "$TMP/$key.log" >&2 || true
	elif ((ok && STOP_RC != 0)); then
		warn "$key: sshvpn exited with status $STOP_RC after SIGTERM; its log:"
		sed 's/^/    /' "$TMP/$key.log" >&2 || true
	fi
	wait_gone || die "$key: tunnel devices were not removed"
}

# ssh_dev_up NS ADDR: wait for tun5 in NS (10 s) and configure it.
ssh_dev_up() {
	local ns=$1 addr=$2 i
	for ((i = 0; i < 100; i++)); do
		ip -n "$ns" link show dev "$SSHW_DEV" >/dev/null 2>&1 && break
		kill -0 "$SSHW_PID" 2>/dev/null || return 1
		sleep 0.1
	done
	ip -n "$ns" addr add "$addr/30" dev "$SSHW_DEV" &&
		ip -n "$ns" link set dev "$SSHW_DEV" mtu "$SSHW_MTU" up
}

run_sshw() {
	local key=$1 dir ok=1
	ip netns exec "$CLIENT_NS" ssh -F "$LAB_SSH_CONFIG" -o Tunnel=point-to-point \
		-o ExitOnForwardFailure=yes -w "${SSHW_DEV#tun}:${SSHW_DEV#tun}" -N server \
		</dev/null >"$TMP/$key.log" 2>&1 &
	SSHW_PID=$!
	if ! ssh_dev_up "$CLIENT_NS" "$SSHW_LOCAL" || ! ssh_dev_up "$SERVER_NS" "$SSHW_PEER" ||
		! wait_ping "$SSHW_PEER" "$SSHW_PID"; then
		warn "$key did not come up:"
		sed 's/^/    /' "$TMP/$key.log" >&2 || true
		ok=0
	elif ! start_iperf_server "$SSHW_PEER" "$SSHW_PORT"; then
		warn "iperf3 server on $SSHW_PEER did not start"
		ok=0
	fi
	if ((ok)); then
		LABEL[$key]="ssh -w (mtu $SSHW_MTU)"
		for dir in $(directions); do
			measure "$key" "$SSHW_PEER" "$SSHW_PORT" "$dir"
		done
	else
		fail_round "$key"
	fi
	stop_iperf_server
	stop_pid "$SSHW_PID" 5
	SSHW_PID=
	wait_gone || die "$key: $SSHW_DEV was not removed"
}

# ---------------------------------------------------------------- rounds

[[ -n $BENCH_MTU ]] && CONTENDERS+=("sshvpn-mtu$BENCH_MTU")
LABEL[sshvpn]="sshvpn"
LABEL[native]="sshvpn --native"
LABEL[openssh-tun]="sshvpn --openssh-tun"
LABEL[ssh-w]="ssh -w"
[[ -n $BENCH_MTU ]] && LABEL[sshvpn-mtu$BENCH_MTU]="sshvpn (mtu $BENCH_MTU)"
FAILED=0

run_contender() {
	case $1 in
	sshvpn) run_sshvpn sshvpn exec ;;
	native) run_sshvpn native native ;;
	openssh-tun) run_sshvpn openssh-tun openssh-tun ;;
	ssh-w) run_sshw ssh-w ;;
	sshvpn-mtu*) run_sshvpn "$1" exec "$BENCH_MTU" ;;
	esac
}

log "$ROUNDS rounds of ${DURATION}s iperf3 runs; contenders: ${CONTENDERS[*]}"
for ((r = 1; r <= ROUNDS; r++)); do
	order=("${CONTENDERS[@]}")
	if ((r % 2 == 0)); then
		order=()
		for ((i = ${#CONTENDERS[@]} - 1; i >= 0; i--)); do order+=("${CONTENDERS[i]}"); done
	fi
	log "round $r/$ROUNDS: ${order[*]}"
	for c in "${order[@]}"; do
		run_contender "$c"
	done
done

# ---------------------------------------------------------------- table

# median V...: median of the numeric values ("fail" ignored), or "-".
median() {
	printf '%s\n' "$@" | awk '/^[0-9.]+$/' | sort -g |
		awk '{ v[NR] = $1 } END {
			if (NR == 0) { print "-"; exit }
			if (NR % 2) { print v[(NR + 1) / 2]; exit }
			m = (v[NR / 2] + v[NR / 2 + 1]) / 2
			printf (m == int(m) ? "%d\n" : "%.2f\n"), m }'
}

echo
printf 'sshvpn vs ssh -w: iperf3 TCP, %s s per run, %s rounds, %s CPUs; Mbit/s (receiver)\n' \
	"$DURATION" "$ROUNDS" "$(nproc)"
echo "  up = client -> server, down = server -> client (iperf3 -R)"
echo "  tun-cpu = cores used by the tunnel's ssh/sshd/sshvpn processes, host% = whole machine busy (medians)"
echo
# The first column is as wide as the longest label (at least 22).
W=22
for c in "${CONTENDERS[@]}"; do ((${#LABEL[$c]} > W)) && W=${#LABEL[$c]}; done
hdr=$(printf '%-*s %-5s' "$W" contender dir)
for ((r = 1; r <= ROUNDS; r++)); do hdr+=$(printf ' %8s' "round$r"); done
hdr+=$(printf ' %8s %8s %6s' median tun-cpu host%)
echo "$hdr"
printf '%s\n' "${hdr//?/-}"
declare -A MED=()
for dir in $(directions); do
	for c in "${CONTENDERS[@]}"; do
		# shellcheck disable=SC2206
		vals=(${MBPS[$c,$dir]:-})
		line=$(printf '%-*s %-5s' "$W" "${LABEL[$c]}" "$dir")
		for ((r = 0; r < ROUNDS; r++)); do line+=$(printf ' %8s' "${vals[r]:--}"); done
		MED[$c,$dir]=$(median "${vals[@]}")
		# shellcheck disable=SC2086
		line+=$(printf ' %8s %8s %6s' "${MED[$c,$dir]}" "$(median ${TCPU[$c,$dir]:-})" "$(median ${HCPU[$c,$dir]:-})")
		echo "$line"
	done
done
echo
for dir in $(directions); do
	[[ " ${CONTENDERS[*]} " == *" ssh-w "* ]] || {
		echo "no ratios: ssh-w was not among BENCH_CONTENDERS"
		break
	}
	for c in "${CONTENDERS[@]}"; do
		[[ $c == ssh-w ]] && continue
		a=${MED[$c,$dir]} b=${MED[ssh-w,$dir]}
		if [[ $a != - && $b != - ]]; then
			printf 'ratio %s / ssh -w, %s: %s\n' "${LABEL[$c]}" "$dir" \
				"$(awk -v a="$a" -v b="$b" 'BEGIN { if (b > 0) printf "%.2f", a / b; else printf "-" }')"
		else
			printf 'ratio %s / ssh -w, %s: - (a contender failed)\n' "${LABEL[$c]}" "$dir"
		fi
	done
done
echo
echo "Note: this machine may be shared and noisy; the numbers are only comparable"
echo "within one run (same machine, same moment, alternating order), not across runs."

if ((FAILED)); then
	warn "some contenders failed to come up or to complete a measurement"
	exit 1
fi
