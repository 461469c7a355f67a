#!/usr/bin/env bash
# demo.sh - one-command sshvpn demo for a fresh Debian/Ubuntu machine.
#
# Usage (as root, from anywhere):
#   scripts/demo.sh
#
# What it does:
#   1. installs openssh-server, iproute2 and iputils-ping if missing (apt-get),
#   2. builds ./cmd/sshvpn with the local Go toolchain into a temp dir,
#   3. creates a throw-away lab (scripts/lab.sh, LAB_NAME=sshvpn-demo): network
#      namespaces sshvpn-demo-{client,server,lan} and a private sshd inside
#      the server namespace. Nothing is changed in the root network namespace,
#      and the machine's own sshd and ssh configuration are not touched,
#   4. starts the sshvpn client in the client namespace, waits for the tunnel,
#      shows the tun device and pings across it in both directions,
#   5. stops the client with SIGTERM and shows that the tun device is gone.
# The lab is always torn down on exit (also on failure or Ctrl-C).
#
# Environment:
#   SSHVPN_BIN  use this prebuilt sshvpn binary instead of building one.
# The lab lives in /tmp/sshvpn-demo (LAB_NAME/LAB_DIR from the environment
# are ignored so that the demo never touches another lab).
set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_ROOT=$(cd "$SCRIPT_DIR/.." && pwd)
LAB=$SCRIPT_DIR/lab.sh
ME=demo
# shellcheck source=lib.sh
. "$SCRIPT_DIR/lib.sh"

export LAB_NAME=sshvpn-demo
export LAB_DIR=/tmp/$LAB_NAME
CLIENT_NS=$LAB_NAME-client
SERVER_NS=$LAB_NAME-server
LOCAL_ADDR=198.18.0.1
PEER_ADDR=198.18.0.2

step() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }
say() { printf '    %s\n' "$*"; }
run() { printf '    $ %s\n' "$*"; "$@" 2>&1 | sed 's/^/      /'; }

TMP=
CLIENT_PID=
LAB_STARTED=0
cleanup() {
	local rc=$?
	trap - EXIT INT TERM
	stop_pid "$CLIENT_PID" 3
	if ((LAB_STARTED)); then
		step "Tearing down the lab"
		"$LAB" down 2>&1 | sed 's/^/    /' || true
	fi
	[[ -n $TMP ]] && rm -rf -- "$TMP"
	exit "$rc"
}

# ---------------------------------------------------------------- checks

need_root "e.g. sudo $0: the demo creates network namespaces and starts sshd"

step "Checking required packages"
need_tools ip:iproute2 ping:iputils-ping ssh:openssh-client ssh-keygen:openssh-client /usr/sbin/sshd:openssh-server
say "openssh-server, iproute2 and iputils-ping are present"

if [[ -z ${SSHVPN_BIN:-} ]]; then
	command -v go >/dev/null 2>&1 || die "the Go toolchain ('go') was not found on PATH.
    Install Go (https://go.dev/doc/install, or 'apt-get install golang-go' if
    your distribution's version is recent enough for go.mod), then re-run
    this script. Alternatively set SSHVPN_BIN to a prebuilt sshvpn binary."
fi

trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
TMP=$(mktemp -d /tmp/sshvpn-demo-build.XXXXXX)
CLIENT_LOG=$TMP/client.log

# ---------------------------------------------------------------- build

if [[ -n ${SSHVPN_BIN:-} ]]; then
	step "Using prebuilt sshvpn: $SSHVPN_BIN"
	BIN=$SSHVPN_BIN
else
	step "Building sshvpn ($(go version | awk '{print $3}'))"
	BIN=$TMP/sshvpn
	(cd "$REPO_ROOT" && go build -o "$BIN" ./cmd/sshvpn) || die "go build ./cmd/sshvpn failed"
	say "built $BIN"
fi

# ---------------------------------------------------------------- lab

step "Creating the lab (network namespaces + private sshd)"
# Clear leftovers of an interrupted earlier demo run; the demo lab is ours.
"$LAB" down >/dev/null 2>&1 || true
LAB_STARTED=1
SSHVPN_BIN=$BIN "$LAB" up | sed 's/^/    /'
# shellcheck source=/dev/null
source "$LAB_DIR/env"

# ---------------------------------------------------------------- tunnel

step "Starting the sshvpn client in namespace $CLIENT_NS"
say "\$ ip netns exec $CLIENT_NS $LAB_BIN -v -e \"ssh -F $LAB_SSH_CONFIG\" --addr $LOCAL_ADDR/30 --peer-addr $PEER_ADDR/30 root@server"
# `ip netns exec` execs the command, so $! is the sshvpn process itself.
ip netns exec "$CLIENT_NS" "$LAB_BIN" -v -e "ssh -F $LAB_SSH_CONFIG" \
	--addr "$LOCAL_ADDR/30" --peer-addr "$PEER_ADDR/30" root@server \
	</dev/null >"$CLIENT_LOG" 2>&1 &
CLIENT_PID=$!
say "client pid $CLIENT_PID, log $CLIENT_LOG"

say "waiting for the tunnel (up to 15 s) ..."
up=0
deadline=$((SECONDS + 15))
while ((SECONDS < deadline)); do
	if ! kill -0 "$CLIENT_PID" 2>/dev/null; then
		say "the client exited early"
		break
	fi
	if ip netns exec "$CLIENT_NS" ping -c1 -W1 "$PEER_ADDR" >/dev/null 2>&1; then
		up=1
		break
	fi
	sleep 0.5
done
if ((!up)); then
	printf '\n---- client log (%s) ----\n' "$CLIENT_LOG" >&2
	cat "$CLIENT_LOG" >&2 || true
	printf -- '---- end of client log ----\n' >&2
	die "the tunnel did not come up within 15 s"
fi
say "tunnel is up"

DEVS=$(tun_devs "$CLIENT_NS")
[[ -n $DEVS ]] || die "tunnel answers pings but no tun device found in $CLIENT_NS"

step "Tunnel device in the client namespace"
for d in $DEVS; do
	run ip -n "$CLIENT_NS" addr show dev "$d"
done

step "Ping the server end of the tunnel from the client"
run ip netns exec "$CLIENT_NS" ping -c3 "$PEER_ADDR" || die "ping $PEER_ADDR from the client failed"

step "Ping the client end of the tunnel from the server"
run ip netns exec "$SERVER_NS" ping -c3 "$LOCAL_ADDR" || die "ping $LOCAL_ADDR from the server failed"

# ---------------------------------------------------------------- stop

step "Stopping the client with SIGTERM"
kill -TERM "$CLIENT_PID"
for _ in $(seq 100); do
	kill -0 "$CLIENT_PID" 2>/dev/null || break
	sleep 0.1
done
if kill -0 "$CLIENT_PID" 2>/dev/null; then
	cat "$CLIENT_LOG" >&2 || true
	die "the client did not exit within 10 s of SIGTERM"
fi
rc=0
wait "$CLIENT_PID" || rc=$?
CLIENT_PID=
say "client exited with status $rc"

fail=0
if ((rc != 0)); then
	say "expected exit status 0 after SIGTERM"
	fail=1
fi
for d in $DEVS; do
	if ip -n "$CLIENT_NS" link show dev "$d" >/dev/null 2>&1; then
		say "tun device $d still exists in $CLIENT_NS"
		fail=1
	else
		say "tun device $d is gone"
	fi
done
say "devices left in $CLIENT_NS:"
run ip -n "$CLIENT_NS" -br link show
# The server side should follow shortly once the ssh session closes.
for _ in $(seq 30); do
	[[ -z $(tun_devs "$SERVER_NS") ]] && break
	sleep 0.1
done
left=$(tun_devs "$SERVER_NS")
if [[ -n $left ]]; then
	say "server namespace still has: $left"
	fail=1
else
	say "server side tun device is gone too"
fi

if ((fail)); then
	printf '\n---- client log (%s) ----\n' "$CLIENT_LOG" >&2
	cat "$CLIENT_LOG" >&2 || true
	die "teardown was not clean"
fi

step "Demo finished successfully"
say "To experiment yourself: scripts/lab.sh up, then run the command it prints."
