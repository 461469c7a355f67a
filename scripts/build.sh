#!/usr/bin/env bash
# build.sh - the release build of sshvpn: static (CGO_ENABLED=0, so that
# --upload's copy runs on any Linux of its architecture), stripped, and
# stamped with its version and commit, which "sshvpn --version" prints
# even where Go records no repository (-buildvcs=false, a tarball).
#
# Usage: scripts/build.sh [OUTPUT]        (default: ./sshvpn)
#        GOARCH=arm64 scripts/build.sh sshvpn-arm64
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-sshvpn}
version=$(git describe --tags --always --dirty 2>/dev/null || echo dev)
commit=$(git rev-parse HEAD 2>/dev/null || echo unknown)
if [[ -n $(git status --porcelain 2>/dev/null) ]]; then
	commit+=-dirty
fi
CGO_ENABLED=0 go build -trimpath -buildvcs=false \
	-ldflags "-s -w -X main.version=$version -X main.commit=$commit" -o "$out" ./cmd/sshvpn
echo "built $out: $("./$out" --version 2>/dev/null || "$out" --version)"
