#!/usr/bin/env bash
# bench.sh - TCP throughput, ping RTT and CPU cost of sshvpn (with each of its
# SSH transports) next to OpenSSH's own `ssh -w` tunnel and to the bare SSH
# channel without any tunnel ("raw ssh"), measured in one run in the lab's
# network namespaces.
#
# Usage (as root, from anywhere):
#   scripts/bench.sh
#   BENCH_ROUNDS=5 BENCH_SECONDS=10 BENCH_MTU=9000 scripts/bench.sh
#   BENCH_CONTENDERS="native ssh-w raw-ssh" scripts/bench.sh
#   BENCH_OUT_MD=/tmp/bench.md BENCH_OUT_JSON=/tmp/bench.json scripts/bench.sh
#
# What it measures: iperf3 TCP throughput (the receiver's bits per second)
# through up to four tunnels between the same two namespaces, and the
# throughput of a plain `ssh server` session, all over the same lab sshd,
# keys and cipher (the BENCH_CONTENDERS name comes first):
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
#   direct       no tunnel: iperf3 and ping over the lab's own link between
#                the namespaces (192.0.2.1 -> 192.0.2.2), the reference for a
#                WAN profile (and a check that the emulator is not the limit)
#   wireguard    WireGuard, the UDP anchor users compare every VPN with:
#                wireguard-go (this kernel has no WireGuard module), built from
#                its Go module into the lab directory, configured with `wg`
#                (Debian's wireguard-tools, installed if missing);
#                198.18.3.1 -> 198.18.3.2
#   raw-ssh      no tunnel, no iperf3: the bytes of one SSH session channel.
#                Up: `ssh -F $LAB_DIR/ssh_config server 'head -c N >/dev/null'`
#                with stdin from /dev/zero; down: `ssh ... server 'head -c N
#                /dev/zero'` with stdout to /dev/null (the remote command also
#                reports on stderr when it starts and, at its end, its own CPU
#                times). Timed from the moment the remote command starts (so
#                without the key exchange and login) to ssh's exit; Mbit/s =
#                8 * N / that time. N is
#                BENCH_RAW_BYTES, or else calibrated per direction before
#                round 1 so that one run takes about BENCH_SECONDS: transfers
#                of 64 MiB, 256 MiB, 1 GiB, ... until one takes at least a
#                second give the rate; N = rate * BENCH_SECONDS, rounded to
#                MiB, at least 64 MiB. The N used is printed with the table.
# Cipher: every OpenSSH client (sshvpn's spawned ssh, ssh -w, raw ssh) gets
# `-c BENCH_CIPHER`, by default aes128-gcm@openssh.com, which is what the
# native and openssh-tun contenders negotiate anyway: sshvpn --native uses
# golang.org/x/crypto/ssh's default preference (aes128-gcm@openssh.com
# first) and does not read Ciphers from ssh_config. (Unpinned, OpenSSH's
# client would pick chacha20-poly1305@openssh.com, which is much slower on a
# machine with AES instructions.) Another BENCH_CIPHER changes only the
# OpenSSH clients, so the native ones would no longer use the same cipher;
# the script warns about that.
# All tunnels use MTU 1500 (sshvpn's default). Each round brings every
# contender up, pings the idle tunnel, runs iperf3 client->server ("up") and
# server->client ("down", iperf3 -R), and takes it down again (raw-ssh: one
# transfer each way); the order of the contenders is reversed every other
# round to spread machine noise. The table shows, per contender and
# direction:
#   roundN, median  Mbit/s of each round and their median
#   tun-cpu   CPU used by the tunnel's own processes, in cores (CPU seconds
#             per second of the run): every process in the two namespaces but
#             iperf3, i.e. ssh + sshd + sshvpn --remote for sshvpn, sshvpn +
#             sshd + sshvpn --remote for native, sshvpn + sshd for
#             openssh-tun, ssh + sshd for ssh -w; for raw-ssh the ssh client
#             and the connection's sshd processes (from the reaped processes'
#             CPU times: ssh's via this script, sshd's via the lab sshd's
#             children times minus the remote shell and its head), less the
#             CPU of a connection that moves nothing (`ssh server` running
#             just the same remote bookkeeping, median of 3, measured once),
#             so the key exchange is not counted. Kernel softirq work is not
#             included.
#   host%     how busy the whole machine was
#   cpu-s/GB  that CPU time (seconds) divided by the payload moved in the
#             run, in GB of 10^9 bytes (iperf3: the receiver's byte count;
#             raw-ssh: N)
#   rtt-ms    the median of 60 pings (ping -c 60 -i 0.05) from the client
#             namespace to the contender's server tunnel address, taken on
#             the idle tunnel just before the iperf3 runs; "-" for raw-ssh
# The last three and tun-cpu are medians over the rounds. Then each
# contender / ssh -w and each contender / raw ssh as ratios of the median
# Mbit/s (if ssh-w, raw-ssh ran).
# Numbers are only comparable within one run: the machine may be shared.
#
# Latency under load: during every iperf3 run, a ping every 100 ms through
# the same tunnel; its median and 99th percentile are reported next to the
# idle RTT.
#
# Besides the text on stdout, the raw figures go to BENCH_OUT_RAW, and
# internal/benchreport writes from them a Markdown table (per contender and
# direction: Mbit/s, ratios to direct TCP and to ssh -w, idle RTT, ping under
# load p50/p99, cpu-s/GB) and a JSON file (every figure's median and values,
# and the settings: machine, date, profile, the emulator's drops). Missing
# values are "-" in Markdown. Both are written also when a contender failed.
#
# Steps: installs iperf3 with apt-get if missing, builds ./cmd/sshvpn (unless
# SSHVPN_BIN is set), creates a lab with scripts/lab.sh (LAB_NAME=sshvpn-bench,
# LAB_PERMIT_TUNNEL=yes), measures, and always tears the lab down on exit,
# also on failure or Ctrl-C. Nothing is changed in the root network namespace,
# and the machine's own sshd and ~/.ssh are not touched.
#
# Environment:
#   BENCH_ROUNDS   rounds per contender (default 3)
#   BENCH_SECONDS  length of each iperf3 run in seconds, and the target length
#                  of a raw-ssh run (default 5)
#   BENCH_REVERSE  yes (default) also measures server->client; no skips it
#   BENCH_CONTENDERS  which contenders to run, separated by spaces or commas,
#                  in this order (default "sshvpn native openssh-tun ssh-w
#                  raw-ssh")
#   BENCH_WAN      a WAN profile for the lab's link (scripts/lab.sh LAB_WAN),
#                  e.g. "delay=20ms loss=1% rate=200mbit queue=50ms"; unset:
#                  the plain veth. scripts/bench-wan.sh runs the standard
#                  profiles one after another.
#   BENCH_OUT_RAW  file for the raw figures (one line per figure, see
#                  internal/benchreport); default: in the run's temporary
#                  directory
#   BENCH_MTU      if set, adds one more contender: sshvpn (spawned ssh) with
#                  --mtu BENCH_MTU
#   BENCH_STREAMS  numbers N (e.g. "2 4"): adds a contender streamsN per
#                  number: sshvpn (spawned ssh) with --streams N
#   BENCH_FLOWS    parallel TCP flows per iperf3 run (iperf3 -P; default 1):
#                  striping spreads flows, not one flow's packets
#   BENCH_CIPHER   cipher for the OpenSSH clients, one of `ssh -Q cipher`
#                  (default aes128-gcm@openssh.com; see "Cipher" above)
#   BENCH_RAW_BYTES  bytes per raw-ssh run, in both directions: a number,
#                  optionally with K, M or G (powers of 1024), e.g. 2G;
#                  default: calibrated to BENCH_SECONDS (see raw-ssh above).
#                  A raw-ssh run fails after 10 * BENCH_SECONDS + 120 s.
#   BENCH_OUT_MD   Markdown file to write (default bench.md in the current
#                  directory; empty: none)
#   BENCH_OUT_JSON JSON file to write (default bench.json in the current
#                  directory; empty: none)
#   SSHVPN_BIN     use this prebuilt sshvpn binary instead of building one
#
# Exit status: 0 if every contender came up and every measurement worked,
# 1 otherwise (the table and the files are still written).
set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_ROOT=$(cd "$SCRIPT_DIR/.." && pwd)
LAB=$SCRIPT_DIR/lab.sh
ME=bench
# shellcheck source=lib.sh
. "$SCRIPT_DIR/lib.sh"

export LAB_NAME=sshvpn-bench
export LAB_DIR=/tmp/$LAB_NAME
export LAB_PERMIT_TUNNEL=yes
export LAB_CLIENTS=1
unset LAB_USER

ROUNDS=${BENCH_ROUNDS:-3}
DURATION=${BENCH_SECONDS:-5}
REVERSE=${BENCH_REVERSE:-yes}
BENCH_MTU=${BENCH_MTU:-}
BENCH_STREAMS=${BENCH_STREAMS:-}
FLOWS=${BENCH_FLOWS:-1}
CIPHER=${BENCH_CIPHER:-aes128-gcm@openssh.com}
# The cipher sshvpn --native negotiates with OpenSSH's sshd: the first of
# golang.org/x/crypto/ssh's default ciphers.
NATIVE_CIPHER=aes128-gcm@openssh.com
RAW_BYTES_SET=${BENCH_RAW_BYTES:-}
OUT_MD=${BENCH_OUT_MD-bench.md}
OUT_JSON=${BENCH_OUT_JSON-bench.json}
OUT_RAW=${BENCH_OUT_RAW:-}
BENCH_WAN=${BENCH_WAN:-}
ALL_CONTENDERS=(direct sshvpn native openssh-tun ssh-w raw-ssh wireguard)
BENCH_CONTENDERS=${BENCH_CONTENDERS:-${ALL_CONTENDERS[*]}}
read -ra CONTENDERS <<<"${BENCH_CONTENDERS//,/ }"
RUN_DATE=$(date -u +%Y-%m-%dT%H:%M:%SZ)

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
WG_LOCAL=198.18.3.1
WG_PEER=198.18.3.2
WG_PORT=5204
# wireguard-go's control sockets are /var/run/wireguard/DEV.sock, one
# directory for all namespaces: the two ends need two names.
WG_DEV_CLIENT=wgc0
WG_DEV_SERVER=wgs0
DIRECT_PORT=5205
# wireguard-go's module version (the newest the Go module proxy served on
# 2026-12-01).
WIREGUARD_GO=golang.zx2c4.com/wireguard@v0.0.0-20260522210424-ecfc5a8d5446
PING_COUNT=60
PING_INTERVAL=0.05
RAW_CAL_BYTES=$((64 << 20))
RAW_CAL_MAX=$((16 << 30))
RAW_MIN_BYTES=$((64 << 20))

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
for n in $BENCH_STREAMS; do
	[[ $n =~ ^[1-9][0-9]?$ ]] && ((n <= 16)) || die "BENCH_STREAMS: $n is not a number of streams (1..16)"
done
[[ $FLOWS =~ ^[1-9][0-9]?$ ]] || die "BENCH_FLOWS must be 1..99"
if [[ -n $RAW_BYTES_SET ]]; then
	[[ $RAW_BYTES_SET =~ ^[1-9][0-9]{0,12}[KMG]?$ ]] ||
		die "BENCH_RAW_BYTES must be a number of bytes, optionally with K, M or G (e.g. 2G)"
	RAW_BYTES_SET=$(numfmt --from=iec "$RAW_BYTES_SET") || die "BENCH_RAW_BYTES: cannot parse '$BENCH_RAW_BYTES'"
	((RAW_BYTES_SET >= 1048576)) || die "BENCH_RAW_BYTES must be at least 1M"
fi
ssh -Q cipher 2>/dev/null | grep -qxF -- "$CIPHER" ||
	die "BENCH_CIPHER '$CIPHER' is not one of this ssh's ciphers (ssh -Q cipher)"
# out_path VAR FILE: FILE made absolute (relative to the current directory),
# checked to be in an existing directory; empty stays empty.
out_path() {
	local var=$1 f=$2
	[[ -n $f ]] || return 0
	[[ $f == /* ]] || f=$PWD/$f
	[[ -d $(dirname -- "$f") ]] || die "$var: directory $(dirname -- "$f") does not exist"
	[[ ! -d $f ]] || die "$var: $f is a directory"
	echo "$f"
}
OUT_MD=$(out_path BENCH_OUT_MD "$OUT_MD")
OUT_JSON=$(out_path BENCH_OUT_JSON "$OUT_JSON")
OUT_RAW=$(out_path BENCH_OUT_RAW "$OUT_RAW")
need_root "it creates network namespaces and starts sshd"
if [[ $CIPHER != "$NATIVE_CIPHER" && " ${CONTENDERS[*]} " =~ \ (native|openssh-tun)\  ]]; then
	warn "BENCH_CIPHER=$CIPHER: the OpenSSH clients use it, but native and openssh-tun still negotiate $NATIVE_CIPHER"
fi

need_tools iperf3:iperf3
if [[ " ${CONTENDERS[*]} " == *" wireguard "* ]]; then
	need_tools wg:wireguard-tools
	command -v go >/dev/null 2>&1 || die "the wireguard contender builds wireguard-go: install Go"
fi
if [[ -n $BENCH_WAN ]]; then
	export LAB_WAN=$BENCH_WAN
else
	unset LAB_WAN LAB_WAN_UP LAB_WAN_DOWN
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
WG_PIDS=
PING_PID=

cleanup() {
	local rc=$?
	trap - EXIT INT TERM
	stop_pid "$SSHVPN_PID" 5
	stop_pid "$SSHW_PID" 5
	stop_pid "$IPERF_PID" 2
	stop_pid "$PING_PID" 2
	for pid in $WG_PIDS; do stop_pid "$pid" 5; done
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
[[ -n $OUT_RAW ]] || OUT_RAW=$TMP/raw.tsv
: >"$OUT_RAW"

# raw METRIC CONTENDER DIR VALUE: one figure for the report.
raw() { printf 'val\t%s\t%s\t%s\t%s\n' "$@" >>"$OUT_RAW"; }
# setting KEY VALUE: one setting of the run for the report.
setting() { printf 'set\t%s\t%s\n' "$1" "${2//$'\t'/ }" >>"$OUT_RAW"; }

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
SSHD_PID=${LAB_SSHD_PID:?}
# Every OpenSSH client of the bench: the lab's config and the bench's cipher.
SSH_CMD=(ssh -F "$LAB_SSH_CONFIG" -c "$CIPHER")

# ---------------------------------------------------------------- helpers

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

# stream_states: the states of the client tunnel's streams, one per word
# (`sshvpn status --json` in the client namespace).
stream_states() {
	ip netns exec "$CLIENT_NS" "$LAB_BIN" status --json 2>/dev/null |
		python3 -c 'import json,sys
for r in json.load(sys.stdin):
    print(" ".join(s["state"] for s in ((r.get("status") or {}).get("streams") or [])))' 2>/dev/null
}

# wait_streams N: until N streams of the client's tunnel are up (20 s):
# a striped tunnel pings once its first stream is.
wait_streams() {
	local n=$1 deadline=$((SECONDS + 20)) states
	if ! command -v python3 >/dev/null 2>&1; then
		warn "no python3 to read the status: not waiting for the streams"
		return 0
	fi
	while ((SECONDS < deadline)); do
		states=$(stream_states)
		[[ $(grep -o -w up <<<"$states" | wc -l) -ge $n ]] && return 0
		sleep 0.2
	done
	warn "streams: ${states:-none} after 20 s, want $n up"
	return 1
}

# stream_bytes: the bytes each stream of the client's tunnel carried so
# far, "out/in" in MB per stream, for the log.
stream_bytes() {
	ip netns exec "$CLIENT_NS" "$LAB_BIN" status --json 2>/dev/null |
		python3 -c 'import json,sys
for r in json.load(sys.stdin):
    print(" ".join("%d/%d" % (s.get("bytes_out",0)//10**6, s.get("bytes_in",0)//10**6) for s in ((r.get("status") or {}).get("streams") or [])))' 2>/dev/null
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

# stat_fields PID: the fields of /proc/PID/stat after the command name, so
# that index 0 is field 3 (state), 11/12 are utime/stime (fields 14/15) and
# 13/14 cutime/cstime (fields 16/17), in clock ticks.
stat_fields() {
	local stat
	stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
	echo "${stat##*) }"
}

# tunnel_ticks: CPU ticks (user + system) used so far by the tunnel's own
# processes: everything in the client and server namespaces but iperf3.
tunnel_ticks() {
	local ns pid stat total=0
	local -a fld
	for ns in "$CLIENT_NS" "$SERVER_NS"; do
		for pid in $(ip netns pids "$ns" 2>/dev/null); do
			[[ $(cat "/proc/$pid/comm" 2>/dev/null) == iperf3 ]] && continue
			stat=$(stat_fields "$pid") || continue
			read -ra fld <<<"$stat"
			total=$((total + fld[11] + fld[12]))
		done
	done
	echo "$total"
}

# host_ticks: "busy total" jiffies of the whole machine from /proc/stat.
host_ticks() {
	awk '/^cpu / { t = 0; for (i = 2; i <= NF; i++) t += $i; print t - $5 - $6, t; exit }' /proc/stat
}

# iperf_received FILE KEY: end.sum_received.KEY (bits_per_second or bytes)
# from iperf3 -J output.
iperf_received() {
	local file=$1 key=$2
	if command -v jq >/dev/null 2>&1; then
		jq -er --arg k "$key" '.end.sum_received[$k]' "$file"
	elif command -v python3 >/dev/null 2>&1; then
		python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["end"]["sum_received"][sys.argv[2]])' "$file" "$key"
	else
		tr -d ' \t\n' <"$file" |
			sed -n 's/.*"sum_received":{[^}]*"'"$key"'":\([0-9.eE+-]*\).*/\1/p' | grep .
	fi
}

# record KEY DIR BPS BYTES TICKS SECS HBUSY HTOTAL: appends one run's figures:
# Mbit/s to MBPS[KEY,DIR], the tunnel's cores (TICKS over SECS) to TCPU, its
# CPU seconds per 10^9 bytes to CPUGB (TICKS "-": unknown), the machine's
# busy % to HCPU.
declare -A MBPS=() TCPU=() HCPU=() CPUGB=() RTT=()
record() {
	local key=$1 dir=$2 bps=$3 bytes=$4 ticks=$5 secs=$6 hbusy=$7 htotal=$8 mbps
	mbps=$(awk -v b="$bps" 'BEGIN { printf "%.0f", b / 1e6 }')
	MBPS[$key,$dir]+="$mbps "
	raw mbps "$key" "$dir" "$(awk -v b="$bps" 'BEGIN { printf "%.1f", b / 1e6 }')"
	if [[ $ticks == - ]]; then
		TCPU[$key,$dir]+="- "
		CPUGB[$key,$dir]+="- "
	else
		TCPU[$key,$dir]+="$(awk -v d="$ticks" -v hz="$CLK_TCK" -v s="$secs" \
			'BEGIN { printf "%.2f", d / hz / s }') "
		CPUGB[$key,$dir]+="$(awk -v d="$ticks" -v hz="$CLK_TCK" -v n="$bytes" \
			'BEGIN { printf "%.2f", (n > 0 ? d / hz / (n / 1e9) : 0) }') "
		raw cpu_s_per_gb "$key" "$dir" "$(awk -v d="$ticks" -v hz="$CLK_TCK" -v n="$bytes" \
			'BEGIN { printf "%.2f", (n > 0 ? d / hz / (n / 1e9) : 0) }')"
	fi
	HCPU[$key,$dir]+="$(awk -v b="$hbusy" -v w="$htotal" \
		'BEGIN { printf "%.0f", (w > 0 ? 100 * b / w : 0) }') "
	log "  $key $dir: $mbps Mbit/s"
}

# measure KEY ADDR PORT DIR: one iperf3 run from the client namespace; DIR is
# up (client -> server) or down (-R). Records its figures, or "fail".
measure() {
	local key=$1 addr=$2 port=$3 dir=$4 json t0 t1 h0 h1 w0 w1 bps bytes start end
	local -a rev=()
	[[ $dir == down ]] && rev=(-R)
	json=$TMP/iperf3-$key-$dir.json
	# A ping every 100 ms through the same path while iperf3 runs.
	ip netns exec "$CLIENT_NS" ping -n -i 0.1 -W 2 "$addr" >"$TMP/ping-load.txt" 2>&1 &
	PING_PID=$!
	t0=$(tunnel_ticks)
	read -r h0 w0 < <(host_ticks)
	start=$EPOCHREALTIME
	if timeout --foreground $((DURATION + 30)) ip netns exec "$CLIENT_NS" \
		iperf3 -c "$addr" -p "$port" -t "$DURATION" -P "$FLOWS" -J "${rev[@]}" >"$json" 2>&1 &&
		bps=$(iperf_received "$json" bits_per_second 2>/dev/null) &&
		bytes=$(iperf_received "$json" bytes 2>/dev/null); then
		end=$EPOCHREALTIME
		t1=$(tunnel_ticks)
		read -r h1 w1 < <(host_ticks)
		stop_ping
		record "$key" "$dir" "$bps" "$bytes" $((t1 - t0)) \
			"$(awk -v s="$start" -v e="$end" 'BEGIN { print e - s }')" $((h1 - h0)) $((w1 - w0))
		ping_load "$key" "$dir"
		if [[ $dir == up ]] && retr=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["end"]["sum_sent"]["retransmits"])' "$json" 2>/dev/null); then
			raw retransmits "$key" "$dir" "$retr"
		fi
	else
		stop_ping
		raw mbps "$key" "$dir" fail
		MBPS[$key,$dir]+="fail "
		FAILED=1
		warn "  $key $dir: iperf3 failed:"
		sed 's/^/    /' "$json" >&2 || true
	fi
}

# stop_ping: ends the ping under load with SIGINT, on which ping prints its
# count of packets sent (lost ones count in ping_load).
stop_ping() {
	[[ -n $PING_PID ]] || return 0
	kill -INT "$PING_PID" 2>/dev/null || true
	wait "$PING_PID" 2>/dev/null || true
	PING_PID=
}

# ping_load KEY DIR: the pings during the last iperf3 run: their median and
# 99th percentile (a lost ping counts as 2 s), appended to PLOAD[KEY,DIR].
declare -A PLOAD=()
ping_load() {
	local key=$1 dir=$2 p50 p99
	local sent
	sent=$(sed -n 's/^\([0-9]*\) packets transmitted.*/\1/p' "$TMP/ping-load.txt")
	read -r p50 p99 < <({
		sed -n 's/.* time=\([0-9.]*\) ms.*/\1/p' "$TMP/ping-load.txt"
	} | sort -g | awk -v sent="${sent:-0}" '
		{ v[++n] = $1 }
		END {
			# A ping lost counts as 2 s; the last one may still have
			# been on its way when ping was stopped.
			for (i = n + 1; i < sent; i++) v[i] = 2000
			if (sent - 1 > n) n = sent - 1
			if (n == 0) { print "- -"; exit }
			i50 = int(0.5 * n + 0.5); if (i50 < 1) i50 = 1
			i99 = int(0.99 * n + 0.5); if (i99 < 1) i99 = 1
			printf "%.2f %.2f\n", v[i50], v[i99] }')
	PLOAD[$key,$dir]+="$p50/$p99 "
	raw load_p50_ms "$key" "$dir" "$p50"
	raw load_p99_ms "$key" "$dir" "$p99"
	log "  $key $dir: ping under load p50 $p50 ms, p99 $p99 ms"
}

# ping_rtt KEY ADDR: PING_COUNT pings from the client namespace to ADDR;
# appends the median RTT in ms to RTT[KEY] (or "fail").
ping_rtt() {
	local key=$1 addr=$2 rtt p90 max
	read -r rtt p90 max < <(ip netns exec "$CLIENT_NS" ping -n -c "$PING_COUNT" -i "$PING_INTERVAL" -W 1 "$addr" 2>&1 |
		sed -n 's/.* time=\([0-9.]*\) ms.*/\1/p' | sort -g | awk '{ v[NR] = $1 } END {
			if (NR == 0) { print "- - -"; exit }
			m = NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
			i90 = int(0.9 * NR + 0.5); if (i90 < 1) i90 = 1
			printf "%.3f %.3f %.3f\n", m, v[i90], v[NR] }') || true
	if [[ $rtt =~ ^[0-9.]+$ ]]; then
		RTT[$key]+="$rtt "
		raw rtt_ms "$key" - "$rtt"
		raw rtt_p90_ms "$key" - "$p90"
		raw rtt_max_ms "$key" - "$max"
		log "  $key ping: p50 $rtt ms, p90 $p90, max $max ($PING_COUNT pings)"
	else
		RTT[$key]+="fail "
		FAILED=1
		warn "  $key: no ping to $addr was answered"
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
		raw mbps "$key" "$dir" fail
	done
	[[ $key == raw-ssh ]] || RTT[$key]+="fail "
	FAILED=1
}

# median_fmt FMT: the median of the numbers on stdin (other lines ignored)
# printed with FMT, or "-" if there are none.
median_fmt() {
	awk '/^[0-9.]+$/' | sort -g |
		awk -v f="$1" '{ v[NR] = $1 } END {
			if (NR == 0) { print "-"; exit }
			m = NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
			printf f "\n", m }'
}

# median V...: median of the numeric values ("fail" and "-" ignored), or "-";
# whole numbers print as such, others with two decimals.
median() {
	printf '%s\n' "$@" | awk '/^[0-9.]+$/' | sort -g |
		awk '{ v[NR] = $1 } END {
			if (NR == 0) { print "-"; exit }
			if (NR % 2) { print v[(NR + 1) / 2]; exit }
			m = (v[NR / 2] + v[NR / 2 + 1]) / 2
			printf (m == int(m) ? "%.0f\n" : "%.2f\n"), m }'
}

# ---------------------------------------------------------------- raw ssh

# sshd_ticks: CPU ticks of the lab sshd (the listener) and of all its
# children that it has reaped: every finished connection's sshd processes
# and what they ran.
sshd_ticks() {
	local -a fld
	read -ra fld <<<"$(stat_fields "$SSHD_PID")" || return 1
	echo $((fld[11] + fld[12] + fld[13] + fld[14]))
}

# sshd_idle: until the lab sshd has no child, i.e. no connection (also no
# ending one, whose CPU would otherwise land in sshd_ticks; 10 s).
sshd_idle() {
	local i
	for ((i = 0; i < 100; i++)); do
		pgrep -P "$SSHD_PID" >/dev/null || return 0
		sleep 0.1
	done
	warn "the lab sshd still has connections: $(pgrep -a -P "$SSHD_PID" | xargs)"
	return 1
}

# raw_ssh_run DIR BYTES: one `ssh server` session from the client namespace.
# DIR up: ssh's stdin is /dev/zero, the remote runs `head -c BYTES
# >/dev/null`; down: the remote runs `head -c BYTES /dev/zero`, ssh's stdout
# is /dev/null; none: nothing is moved (the connection's own cost). Sets
# RAW_SECS (from the remote command's start to ssh's exit), RAW_WALL (from
# starting ssh to its exit) and RAW_TICKS (CPU ticks of ssh and of the
# connection's sshd processes, without the remote shell and what it ran;
# "-" if sshd's accounting was disturbed by another connection). Fails if
# ssh failed.
RAW_SECS=0 RAW_WALL=0 RAW_TICKS=0
raw_ssh_run() {
	local dir=$1 bytes=$2 in=/dev/null work s0 s1 start out rc end remote_start shell_ticks
	local -a cl sh
	case $dir in
	up) work="head -c $bytes >/dev/null" in=/dev/zero ;;
	down) work="head -c $bytes /dev/zero" ;;
	none) work=true ;;
	esac
	# The remote shell reports when it starts and, at its end, its own and
	# its children's CPU times (/proc/$$/stat), on stderr.
	# shellcheck disable=SC2016
	local remote='date +%s.%N >&2; '"$work"'; read -r s </proc/$$/stat; echo "stat $s" >&2'
	local clean=1
	sshd_idle || clean=0
	s0=$(sshd_ticks)
	start=$EPOCHREALTIME
	# A subshell runs ssh so that its cutime/cstime are ssh's CPU times.
	out=$(
		if timeout --foreground $((DURATION * 10 + 120)) ip netns exec "$CLIENT_NS" \
			"${SSH_CMD[@]}" server "$remote" <"$in" >/dev/null 2>"$TMP/raw-ssh.err"; then
			rc=0
		else
			rc=$?
		fi
		end=$EPOCHREALTIME
		read -r s </proc/$BASHPID/stat
		echo "$rc $end ${s##*) }"
	)
	sshd_idle || clean=0
	s1=$(sshd_ticks)
	# out: ssh's status, its end, then the subshell's stat fields from field 3.
	read -ra cl <<<"$out"
	rc=${cl[0]:-?} end=${cl[1]:-}
	remote_start=$(grep -m1 -xE '[0-9]+\.[0-9]+' "$TMP/raw-ssh.err" || true)
	read -ra sh <<<"$(sed -n 's/^stat .*) //p' "$TMP/raw-ssh.err")"
	if [[ $rc != 0 || -z $remote_start || ${#sh[@]} -lt 15 || ${#cl[@]} -lt 17 ]]; then
		warn "  ssh server ($dir, $bytes bytes) failed (status $rc):"
		sed 's/^/    /' "$TMP/raw-ssh.err" >&2 || true
		return 1
	fi
	RAW_SECS=$(awk -v s="$remote_start" -v e="$end" 'BEGIN { print e - s }')
	RAW_WALL=$(awk -v s="$start" -v e="$end" 'BEGIN { print e - s }')
	shell_ticks=$((sh[11] + sh[12] + sh[13] + sh[14]))
	if ((clean)); then
		RAW_TICKS=$((cl[2 + 13] + cl[2 + 14] + s1 - s0 - shell_ticks))
	else
		RAW_TICKS=-
	fi
}

# raw_ssh_setup: the connection's own cost (RAW_SETUP_TICKS, the median of 3
# sessions that move nothing) and, unless BENCH_RAW_BYTES is set, the bytes
# per direction (RAW_BYTES[up|down]) for runs of about DURATION seconds.
declare -A RAW_BYTES=()
RAW_SETUP_TICKS=0
RAW_OK=0
raw_ssh_setup() {
	local i dir bytes cal
	local -a t=()
	log "raw ssh: measuring the cost of a connection that moves nothing"
	for ((i = 0; i < 3; i++)); do
		raw_ssh_run none 0 || return 1
		[[ $RAW_TICKS != - ]] && t+=("$RAW_TICKS")
	done
	RAW_SETUP_TICKS=$(printf '%s\n' "${t[@]}" | median_fmt %.0f)
	[[ $RAW_SETUP_TICKS != - ]] || RAW_SETUP_TICKS=0
	log "  connection: $RAW_SETUP_TICKS CPU ticks (1/$CLK_TCK s), ${RAW_WALL}s until ssh exits"
	for dir in $(directions); do
		if [[ -n $RAW_BYTES_SET ]]; then
			RAW_BYTES[$dir]=$RAW_BYTES_SET
			continue
		fi
		# Transfers of 64 MiB, 256 MiB, 1 GiB, ... until one takes a second.
		cal=$RAW_CAL_BYTES
		while :; do
			raw_ssh_run "$dir" "$cal" || return 1
			if ((cal >= RAW_CAL_MAX)) || awk -v s="$RAW_SECS" 'BEGIN { exit !(s >= 1) }'; then
				break
			fi
			cal=$((cal * 4))
		done
		bytes=$(awk -v n="$cal" -v s="$RAW_SECS" -v d="$DURATION" -v m="$RAW_MIN_BYTES" \
			'BEGIN { b = int(n / s * d / 1048576 + 0.5) * 1048576; printf "%.0f", (b < m ? m : b) }')
		RAW_BYTES[$dir]=$bytes
		log "  calibration $dir: $((cal >> 20)) MiB in ${RAW_SECS}s -> $((bytes >> 20)) MiB per run"
	done
	RAW_OK=1
}

# raw_measure KEY DIR: one raw ssh transfer of RAW_BYTES[DIR]; records its
# figures, or "fail".
raw_measure() {
	local key=$1 dir=$2 bytes=${RAW_BYTES[$2]} h0 w0 h1 w1 ticks
	read -r h0 w0 < <(host_ticks)
	if raw_ssh_run "$dir" "$bytes"; then
		read -r h1 w1 < <(host_ticks)
		ticks=$RAW_TICKS
		if [[ $ticks != - ]]; then
			ticks=$((ticks - RAW_SETUP_TICKS))
			((ticks >= 0)) || ticks=0
		fi
		record "$key" "$dir" "$(awk -v n="$bytes" -v s="$RAW_SECS" 'BEGIN { printf "%.0f", 8 * n / s }')" \
			"$bytes" "$ticks" "$RAW_SECS" $((h1 - h0)) $((w1 - w0))
	else
		MBPS[$key,$dir]+="fail "
		raw mbps "$key" "$dir" fail
		FAILED=1
	fi
}

run_raw() {
	local key=$1 dir
	if ((!RAW_OK)); then
		fail_round "$key"
		return 0
	fi
	for dir in $(directions); do
		raw_measure "$key" "$dir"
	done
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
	local key=$1 mode=$2 mtu=${3:-} streams=${4:-} dev devmtu dir ok=1 name laddr=$VPN_LOCAL peer=$VPN_PEER port=$VPN_PORT
	local -a args=()
	case $mode in
	exec)
		name=sshvpn
		args=(-e "${SSH_CMD[*]}")
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
	if [[ -n $streams ]]; then
		name="sshvpn --streams $streams"
		args+=(--streams "$streams")
	fi
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
	elif [[ -n $streams ]] && ! wait_streams "$streams"; then
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
		ping_rtt "$key" "$peer"
		for dir in $(directions); do
			measure "$key" "$peer" "$port" "$dir"
			if [[ -n $streams ]]; then log "  $key $dir: MB out/in per stream so far: $(stream_bytes)"; fi
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
	ip netns exec "$CLIENT_NS" "${SSH_CMD[@]}" -o Tunnel=point-to-point \
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
		ping_rtt "$key" "$SSHW_PEER"
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

# run_direct KEY: no tunnel: iperf3 and ping over the lab's link itself.
run_direct() {
	local key=$1 dir
	if ! start_iperf_server "$LAB_SERVER_ADDR" "$DIRECT_PORT"; then
		warn "iperf3 server on $LAB_SERVER_ADDR did not start"
		fail_round "$key"
		return 0
	fi
	LABEL[$key]="direct TCP (no tunnel)"
	ping_rtt "$key" "$LAB_SERVER_ADDR"
	for dir in $(directions); do
		measure "$key" "$LAB_SERVER_ADDR" "$DIRECT_PORT" "$dir"
	done
	stop_iperf_server
}

# wg_build: wireguard-go into the lab directory, once.
WG_BIN=
wg_build() {
	[[ -n $WG_BIN ]] && return 0
	log "building wireguard-go ($WIREGUARD_GO)"
	GOBIN=$LAB_DIR/bin go install "$WIREGUARD_GO" >"$TMP/wg-build.log" 2>&1 || {
		cat "$TMP/wg-build.log" >&2
		return 1
	}
	WG_BIN=$LAB_DIR/bin/wireguard
}

# wg_up NS DEV ADDR PRIVKEY PEERPUB [ENDPOINT]: wireguard-go's DEV in NS.
wg_up() {
	local ns=$1 dev=$2 addr=$3 key=$4 peer=$5 endpoint=${6:-} i
	WG_PROCESS_FOREGROUND=1 ip netns exec "$ns" "$WG_BIN" -f "$dev" >>"$TMP/wireguard.log" 2>&1 &
	WG_PIDS+=" $!"
	for ((i = 0; i < 50; i++)); do
		[[ -S /var/run/wireguard/$dev.sock ]] && ip -n "$ns" link show dev "$dev" >/dev/null 2>&1 && break
		sleep 0.1
	done
	local -a ep=()
	[[ -n $endpoint ]] && ep=(endpoint "$endpoint")
	ip netns exec "$ns" wg set "$dev" listen-port 51820 private-key "$key" \
		peer "$peer" allowed-ips "${WG_LOCAL%.*}.0/30" "${ep[@]}" persistent-keepalive 25 &&
		ip -n "$ns" addr add "$addr/30" dev "$dev" &&
		ip -n "$ns" link set dev "$dev" mtu 1420 up
}

run_wireguard() {
	local key=$1 dir ok=1 ck sk cpub spub
	if ! wg_build; then
		warn "$key: wireguard-go did not build"
		fail_round "$key"
		return 0
	fi
	ck=$TMP/wg-client.key sk=$TMP/wg-server.key
	(umask 077 && wg genkey >"$ck" && wg genkey >"$sk")
	cpub=$(wg pubkey <"$ck") spub=$(wg pubkey <"$sk")
	if ! wg_up "$SERVER_NS" "$WG_DEV_SERVER" "$WG_PEER" "$sk" "$cpub" ||
		! wg_up "$CLIENT_NS" "$WG_DEV_CLIENT" "$WG_LOCAL" "$ck" "$spub" "$LAB_SERVER_ADDR:51820" ||
		! wait_ping "$WG_PEER" "${WG_PIDS##* }"; then
		warn "$key did not come up:"
		sed 's/^/    /' "$TMP/wireguard.log" >&2 || true
		ok=0
	elif ! start_iperf_server "$WG_PEER" "$WG_PORT"; then
		ok=0
	fi
	if ((ok)); then
		LABEL[$key]="WireGuard (wireguard-go, mtu 1420)"
		ping_rtt "$key" "$WG_PEER"
		for dir in $(directions); do
			measure "$key" "$WG_PEER" "$WG_PORT" "$dir"
		done
	else
		fail_round "$key"
	fi
	stop_iperf_server
	local pid
	for pid in $WG_PIDS; do stop_pid "$pid" 5; done
	WG_PIDS=
}

# ---------------------------------------------------------------- rounds

[[ -n $BENCH_MTU ]] && CONTENDERS+=("sshvpn-mtu$BENCH_MTU")
for n in $BENCH_STREAMS; do CONTENDERS+=("streams$n"); done
LABEL[sshvpn]="sshvpn"
LABEL[native]="sshvpn --native"
LABEL[openssh-tun]="sshvpn --openssh-tun"
LABEL[ssh-w]="ssh -w"
LABEL[raw-ssh]="raw ssh (no tunnel)"
LABEL[direct]="direct TCP (no tunnel)"
LABEL[wireguard]="WireGuard (wireguard-go)"
[[ -n $BENCH_MTU ]] && LABEL[sshvpn-mtu$BENCH_MTU]="sshvpn (mtu $BENCH_MTU)"
for n in $BENCH_STREAMS; do LABEL[streams$n]="sshvpn --streams $n"; done
FAILED=0

has() { [[ " ${CONTENDERS[*]} " == *" $1 "* ]]; }

run_contender() {
	case $1 in
	sshvpn) run_sshvpn sshvpn exec ;;
	native) run_sshvpn native native ;;
	openssh-tun) run_sshvpn openssh-tun openssh-tun ;;
	ssh-w) run_sshw ssh-w ;;
	raw-ssh) run_raw raw-ssh ;;
	direct) run_direct direct ;;
	wireguard) run_wireguard wireguard ;;
	sshvpn-mtu*) run_sshvpn "$1" exec "$BENCH_MTU" ;;
	streams*) run_sshvpn "$1" exec "" "${1#streams}" ;;
	esac
}

if has raw-ssh; then
	raw_ssh_setup || warn "raw ssh: the calibration failed; raw-ssh is not measured"
fi
log "$ROUNDS rounds of ${DURATION}s runs; cipher $CIPHER; contenders: ${CONTENDERS[*]}"
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

# raw_bytes_text: the raw-ssh bytes per run, e.g. "3221225472 bytes up, ...".
raw_bytes_text() {
	local dir text=
	for dir in $(directions); do
		text+="${text:+, }${RAW_BYTES[$dir]:-?} bytes $dir"
	done
	echo "$text"
}

CPU_MODEL=$(awk -F': *' '$1 ~ /^(model name|Model|Hardware|cpu model)[ \t]*$/ { print $2; exit }' /proc/cpuinfo 2>/dev/null)
CPU_MODEL=${CPU_MODEL:-unknown}
NPROC=$(nproc)
KERNEL=$(uname -r)

echo
printf 'sshvpn vs ssh -w vs raw ssh: iperf3 TCP, %s s per run, %s rounds, %s CPUs; Mbit/s (receiver)\n' \
	"$DURATION" "$ROUNDS" "$NPROC"
echo "  machine: $CPU_MODEL, kernel $KERNEL, $RUN_DATE; cipher $CIPHER"
echo "  up = client -> server, down = server -> client (iperf3 -R)"
if has raw-ssh; then
	echo "  raw ssh = ssh server without a tunnel: $(raw_bytes_text) per run"
fi
echo "  tun-cpu = cores used by the tunnel's ssh/sshd/sshvpn processes, host% = whole machine busy,"
echo "  cpu-s/GB = the tunnel's CPU seconds per 10^9 bytes moved, rtt-ms = median of $PING_COUNT pings (medians)"
echo "  load-p50/p99 = pings every 100 ms during the transfer (medians over the rounds)"
echo
# The first column is as wide as the longest label (at least 22).
W=22
for c in "${CONTENDERS[@]}"; do ((${#LABEL[$c]} > W)) && W=${#LABEL[$c]}; done
hdr=$(printf '%-*s %-5s' "$W" contender dir)
for ((r = 1; r <= ROUNDS; r++)); do hdr+=$(printf ' %8s' "round$r"); done
hdr+=$(printf ' %8s %8s %6s %8s %7s %13s' median tun-cpu host% cpu-s/GB rtt-ms load-p50/p99)
echo "$hdr"
printf '%s\n' "${hdr//?/-}"
declare -A MED=() MCPUGB=() MRTT=()
for c in "${CONTENDERS[@]}"; do
	# shellcheck disable=SC2086
	MRTT[$c]=$(printf '%s\n' ${RTT[$c]:-} | median_fmt %.3f)
done
for dir in $(directions); do
	for c in "${CONTENDERS[@]}"; do
		# shellcheck disable=SC2206
		vals=(${MBPS[$c,$dir]:-})
		line=$(printf '%-*s %-5s' "$W" "${LABEL[$c]}" "$dir")
		for ((r = 0; r < ROUNDS; r++)); do line+=$(printf ' %8s' "${vals[r]:--}"); done
		MED[$c,$dir]=$(median "${vals[@]}")
		# shellcheck disable=SC2086
		MCPUGB[$c,$dir]=$(printf '%s\n' ${CPUGB[$c,$dir]:-} | median_fmt %.2f)
		# shellcheck disable=SC2086
		# shellcheck disable=SC2086
		line+=$(printf ' %8s %8s %6s %8s %7s %13s' "${MED[$c,$dir]}" "$(median ${TCPU[$c,$dir]:-})" \
			"$(median ${HCPU[$c,$dir]:-})" "${MCPUGB[$c,$dir]}" "${MRTT[$c]}" \
			"$(printf '%s\n' ${PLOAD[$c,$dir]:-} | cut -d/ -f1 | median_fmt %.1f)/$(printf '%s\n' ${PLOAD[$c,$dir]:-} | cut -d/ -f2 | median_fmt %.1f)")
		echo "$line"
	done
done

# ratio A B: A / B with two decimals, or "-".
ratio() {
	awk -v a="$1" -v b="$2" 'BEGIN {
		if (a ~ /^[0-9.]+$/ && b ~ /^[0-9.]+$/ && b > 0) printf "%.2f", a / b; else printf "-" }'
}

# ratios BASE NAME: the lines "ratio X / NAME, DIR: R" for every other contender.
ratios() {
	local base=$1 name=$2 dir c r
	if ! has "$base"; then
		echo "no ratios to $name: $base was not among BENCH_CONTENDERS"
		return 0
	fi
	for dir in $(directions); do
		for c in "${CONTENDERS[@]}"; do
			[[ $c == "$base" ]] && continue
			r=$(ratio "${MED[$c,$dir]}" "${MED[$base,$dir]}")
			if [[ $r != - ]]; then
				printf 'ratio %s / %s, %s: %s\n' "${LABEL[$c]}" "$name" "$dir" "$r"
			else
				printf 'ratio %s / %s, %s: - (a contender failed)\n' "${LABEL[$c]}" "$name" "$dir"
			fi
		done
	done
}
echo
ratios direct "direct TCP"
ratios ssh-w "ssh -w"
ratios raw-ssh "raw ssh"
echo
echo "Note: this machine may be shared and noisy; the numbers are only comparable"
echo "within one run (same machine, same moment, alternating order), not across runs."

# ---------------------------------------------------------------- files

# The settings of the run, for the report; the emulator's counters.
setting profile "${BENCH_WAN:-veth}"
setting date "$RUN_DATE"
setting machine "$NPROC CPUs, $CPU_MODEL, kernel $KERNEL"
setting rounds "$ROUNDS"
setting flows "$FLOWS"
setting seconds "$DURATION"
setting cipher "$CIPHER"
has raw-ssh && setting raw_ssh_bytes "$(raw_bytes_text)"
if [[ -n ${LAB_WAN_PID:-} ]] && kill -USR1 "$LAB_WAN_PID" 2>/dev/null; then
	sleep 0.3
	if [[ -s $LAB_WAN_STATS ]]; then
		setting wan "$(cat "$LAB_WAN_STATS")"
		echo "WAN emulator ($BENCH_WAN): $(cat "$LAB_WAN_STATS")"
	fi
fi

# The files: internal/benchreport writes them from the raw figures.
if [[ -n $OUT_MD$OUT_JSON ]]; then
	REPORT=$TMP/benchreport
	if command -v go >/dev/null 2>&1 &&
		(cd "$REPO_ROOT" && go build -o "$REPORT" ./internal/benchreport/cmd/benchreport) 2>"$TMP/report-build.log"; then
		args=()
		[[ -n $OUT_MD ]] && args+=(-md "$OUT_MD")
		[[ -n $OUT_JSON ]] && args+=(-json "$OUT_JSON")
		if "$REPORT" "${args[@]}" "$OUT_RAW" >/dev/null; then
			log "wrote ${OUT_MD:-} ${OUT_JSON:-}"
		else
			warn "could not write the report files"
			FAILED=1
		fi
	else
		cat "$TMP/report-build.log" >&2 2>/dev/null || true
		warn "the report files need Go (internal/benchreport); the raw figures are in $OUT_RAW"
		FAILED=1
	fi
fi
[[ $OUT_RAW == "$TMP"/* ]] || log "raw figures in $OUT_RAW"

if ((FAILED)); then
	warn "some contenders failed to come up or to complete a measurement"
	exit 1
fi
