#!/usr/bin/env bash
# install.sh - install sshvpn with its man page, shell completions and
# systemd unit, all made from the binary's own command line (sshvpn man,
# sshvpn completion SHELL), so they match the flags it takes.
#
# Usage (as root, from anywhere):
#   scripts/install.sh                 build with scripts/build.sh, install
#   scripts/install.sh ./sshvpn        install this binary
#   PREFIX=/usr DESTDIR=/tmp/pkg scripts/install.sh   (for a package)
#
# Installs:
#   $PREFIX/bin/sshvpn                                    (PREFIX=/usr/local)
#   $PREFIX/share/man/man1/sshvpn.1
#   $PREFIX/share/bash-completion/completions/sshvpn
#   $PREFIX/share/zsh/site-functions/_sshvpn
#   $PREFIX/share/fish/vendor_completions.d/sshvpn.fish
#   /etc/systemd/system/sshvpn@.service (with ExecStart on $PREFIX/bin)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
PREFIX=${PREFIX:-/usr/local}
DESTDIR=${DESTDIR:-}
bin=${1:-}
if [[ -z $bin ]]; then
	bin=$(mktemp -d)/sshvpn
	"$here/build.sh" "$bin" >/dev/null
fi
root=$DESTDIR$PREFIX
install -D -m 0755 "$bin" "$root/bin/sshvpn"
"$bin" man >"$bin.1"
install -D -m 0644 "$bin.1" "$root/share/man/man1/sshvpn.1"
"$bin" completion bash >"$bin.bash"
install -D -m 0644 "$bin.bash" "$root/share/bash-completion/completions/sshvpn"
"$bin" completion zsh >"$bin.zsh"
install -D -m 0644 "$bin.zsh" "$root/share/zsh/site-functions/_sshvpn"
"$bin" completion fish >"$bin.fish"
install -D -m 0644 "$bin.fish" "$root/share/fish/vendor_completions.d/sshvpn.fish"
rm -f "$bin.1" "$bin.bash" "$bin.zsh" "$bin.fish"
sed "s|/usr/local/bin/sshvpn|$PREFIX/bin/sshvpn|" "$here/sshvpn@.service" >"${TMPDIR:-/tmp}/sshvpn@.service.$$"
install -D -m 0644 "${TMPDIR:-/tmp}/sshvpn@.service.$$" "$DESTDIR/etc/systemd/system/sshvpn@.service"
rm -f "${TMPDIR:-/tmp}/sshvpn@.service.$$"
echo "installed $("$root/bin/sshvpn" --version) under ${DESTDIR:-}$PREFIX, and the systemd unit sshvpn@.service"
