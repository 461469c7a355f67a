#!/usr/bin/env bash
# test.sh - the whole test suite: formatting, vet, unit tests (with the race
# detector) and the end-to-end tests in network namespaces with a real sshd.
# Run as root on Linux with openssh-server, iproute2 and iputils-ping
# installed (.ci/run installs them). Extra arguments go to "go test", e.g.
#   scripts/test.sh -run TestTCPTransfer -v
set -euo pipefail
cd "$(dirname "$0")/.."

# What the end-to-end tests use; installed when missing (as root, with apt).
need=()
for tool in /usr/sbin/sshd:openssh-server ssh:openssh-client ip:iproute2 ping:iputils-ping \
	iperf3:iperf3 pgrep:procps nft:nftables; do
	command -v "${tool%%:*}" >/dev/null 2>&1 || need+=("${tool#*:}")
done
if ((${#need[@]})); then
	if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null 2>&1; then
		echo "test.sh: installing ${need[*]}"
		DEBIAN_FRONTEND=noninteractive apt-get update -qq
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
	else
		echo "test.sh: missing ${need[*]}; the end-to-end tests will skip (run as root to install them)" >&2
	fi
fi

unformatted=$(gofmt -l .)
if [[ -n $unformatted ]]; then
	echo "gofmt would change:" >&2
	echo "$unformatted" >&2
	exit 1
fi
go vet ./...
# sshvpn runs on Linux; elsewhere it must still build (and say so at run
# time).
for os in darwin freebsd; do
	GOOS=$os go build ./...
done
go test -count=1 -race -timeout 20m "$@" ./...
# Every benchmark once, so that they keep compiling and running; speed is
# scripts/bench.sh's business, not CI's.
go test -count=1 -run '^$' -bench . -benchtime 1x ./...
