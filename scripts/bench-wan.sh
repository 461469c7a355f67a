#!/usr/bin/env bash
# bench-wan.sh - scripts/bench.sh over the standard WAN profiles, one after
# another, with one report for all of them.
#
# Usage (as root, from anywhere):
#   scripts/bench-wan.sh
#   BENCH_ROUNDS=3 BENCH_SECONDS=10 scripts/bench-wan.sh
#   BENCH_WAN_PROFILES="veth;delay=20ms loss=1% rate=500mbit queue=50ms" scripts/bench-wan.sh
#
# The profiles (each direction; delay is one way, see internal/wanem):
#   veth                                        the lab's plain veth
#   delay=20ms rate=500mbit queue=50ms          40 ms RTT
#   delay=20ms loss=1% rate=500mbit queue=50ms  40 ms RTT and 1% loss each way
#   delay=50ms rate=500mbit queue=50ms          100 ms RTT
#   delay=20ms rate=50mbit queue=100ms          a 50 Mbit/s bottleneck with a
#                                               100 ms buffer, at 40 ms RTT
# Contenders (BENCH_CONTENDERS): direct TCP over the same link first, the
# reference (the emulator must not be what limits the others), then
# sshvpn, sshvpn --native, ssh -w and WireGuard (wireguard-go). For each:
# Mbit/s up and down, the idle RTT, and the RTT under load (a ping every
# 100 ms during the transfer, p50 and p99).
#
# Environment: what scripts/bench.sh takes (BENCH_ROUNDS, BENCH_SECONDS,
# BENCH_CONTENDERS, SSHVPN_BIN, ...), and
#   BENCH_WAN_PROFILES  profiles separated by ";" ("veth" for the veth)
#   BENCH_OUT_MD        the Markdown table (default bench-wan.md)
#   BENCH_OUT_JSON      the JSON report (default bench-wan.json)
#   BENCH_OUT_DIR       where each profile's raw figures go (default: a
#                       temporary directory, removed at the end)
set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_ROOT=$(cd "$SCRIPT_DIR/.." && pwd)
ME=bench-wan
# shellcheck source=lib.sh
. "$SCRIPT_DIR/lib.sh"

need_root "it runs scripts/bench.sh"
command -v go >/dev/null 2>&1 || die "'go' is not on PATH: the report and the emulator are built from this repository"

PROFILES=${BENCH_WAN_PROFILES:-"veth;delay=20ms rate=500mbit queue=50ms;delay=20ms loss=1% rate=500mbit queue=50ms;delay=50ms rate=500mbit queue=50ms;delay=20ms rate=50mbit queue=100ms"}
export BENCH_CONTENDERS=${BENCH_CONTENDERS:-"direct sshvpn native ssh-w wireguard"}
OUT_MD=${BENCH_OUT_MD:-bench-wan.md}
OUT_JSON=${BENCH_OUT_JSON:-bench-wan.json}
[[ $OUT_MD == /* ]] || OUT_MD=$PWD/$OUT_MD
[[ $OUT_JSON == /* ]] || OUT_JSON=$PWD/$OUT_JSON
OUT_DIR=${BENCH_OUT_DIR:-}
TMP=$(mktemp -d /tmp/sshvpn-bench-wan.XXXXXX)
trap 'rm -rf -- "$TMP"' EXIT
[[ -n $OUT_DIR ]] || OUT_DIR=$TMP
mkdir -p "$OUT_DIR"

if [[ -z ${SSHVPN_BIN:-} ]]; then
	log "building ./cmd/sshvpn"
	(cd "$REPO_ROOT" && go build -o "$TMP/sshvpn" ./cmd/sshvpn)
	export SSHVPN_BIN=$TMP/sshvpn
fi

status=0
raws=()
IFS=';' read -ra list <<<"$PROFILES"
n=0
for p in "${list[@]}"; do
	n=$((n + 1))
	raw=$OUT_DIR/profile-$n.tsv
	log "profile $n/${#list[@]}: $p"
	wan=$p
	[[ $p == veth ]] && wan=
	if ! BENCH_WAN=$wan BENCH_OUT_RAW=$raw BENCH_OUT_MD= BENCH_OUT_JSON= "$SCRIPT_DIR/bench.sh"; then
		warn "profile '$p': some measurements failed"
		status=1
	fi
	raws+=("$raw")
done
(cd "$REPO_ROOT" && go build -o "$TMP/benchreport" ./internal/benchreport/cmd/benchreport)
"$TMP/benchreport" -md "$OUT_MD" -json "$OUT_JSON" "${raws[@]}"
cat "$OUT_MD"
log "wrote $OUT_MD and $OUT_JSON"
exit "$status"
