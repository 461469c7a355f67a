#!/usr/bin/env bash
# test.sh - the whole test suite: formatting, vet, unit tests (with the race
# detector) and the end-to-end tests in network namespaces with a real sshd.
# Run as root on Linux with openssh-server, iproute2 and iputils-ping
# installed (.ci/run installs them). Extra arguments go to "go test", e.g.
#   scripts/test.sh -run TestTCPTransfer -v
set -euo pipefail
cd "$(dirname "$0")/.."

unformatted=$(gofmt -l .)
if [[ -n $unformatted ]]; then
	echo "gofmt would change:" >&2
	echo "$unformatted" >&2
	exit 1
fi
go vet ./...
go test -count=1 -race -timeout 20m "$@" ./...
