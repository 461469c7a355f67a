#!/usr/bin/env bash
# dns-resolvectl.sh - sshvpn up/down hook for the client: split DNS with
# systemd-resolved. Names under the given domains are resolved by DNS servers
# reached through the tunnel; everything else keeps using the usual servers.
#
# Side: the client (SSHVPN_SIDE=local), on a machine whose resolver is
# systemd-resolved (/etc/resolv.conf pointing at 127.0.0.53). It works on the
# server side too, for names in the client's network.
#
# Use it as both the up and the down hook; the settings come from the
# environment of sshvpn, since hooks run without arguments:
#   SSHVPN_DNS="10.20.0.53 fd00:20::53" SSHVPN_DNS_DOMAINS="~corp.example ~20.10.in-addr.arpa" \
#   sshvpn --route 10.20.0.0/16 --up /usr/local/share/sshvpn/dns-resolvectl.sh \
#       --down /usr/local/share/sshvpn/dns-resolvectl.sh gw
# The DNS servers must be reachable through the tunnel: the server's tunnel
# address, or a network sent through it with --route.
#
# Reads:
#   SSHVPN_SCRIPT_TYPE   up or down
#   SSHVPN_DEV           the tunnel device
#   SSHVPN_DNS           (up) space-separated DNS server addresses, IPv4 or
#                        IPv6, in any form "resolvectl dns" accepts
#                        (192.0.2.53, 192.0.2.53:5353, [2001:db8::53]:53,
#                        192.0.2.53#dns.corp.example)
#   SSHVPN_DNS_DOMAINS   (up) space-separated domains. "~corp.example" is a
#                        routing-only domain: names under it go to SSHVPN_DNS.
#                        "corp.example" also becomes a search domain, so that
#                        "wiki" means wiki.corp.example. "~." sends every name
#                        to SSHVPN_DNS. Empty: systemd-resolved decides.
#
# Changes on up (and undoes them if one step fails):
#   resolvectl dns $SSHVPN_DEV $SSHVPN_DNS
#   resolvectl domain $SSHVPN_DEV $SSHVPN_DNS_DOMAINS   (if any domains)
#   resolvectl default-route $SSHVPN_DEV yes|no          (if any domains: yes
#       only with "~.", so that names outside the domains never go to the
#       tunnel's servers)
# Changes on down: resolvectl revert $SSHVPN_DEV, which drops all of the
# link's DNS settings. Nothing to do if the device is already gone: resolved
# forgets a link's settings with the link.
#
# Requires resolvectl and a running systemd-resolved (systemd 240 or later).
# As a user other than root, resolvectl asks polkit for permission, so run
# sshvpn as root (a binary with only CAP_NET_ADMIN is not enough).
set -euo pipefail

me=${0##*/}
die() {
	printf '%s: %s\n' "$me" "$*" >&2
	exit 1
}

typ=${SSHVPN_SCRIPT_TYPE:-}
dev=${SSHVPN_DEV:-}
case $typ in
up | down) ;;
'') die "SSHVPN_SCRIPT_TYPE is not set; run this script as an sshvpn --up/--down hook" ;;
*) die "SSHVPN_SCRIPT_TYPE=$typ: want up or down" ;;
esac
[[ -n $dev ]] || die "SSHVPN_DEV is not set; run this script as an sshvpn --up/--down hook"
[[ $dev =~ ^[A-Za-z0-9_.@:-]{1,15}$ ]] || die "SSHVPN_DEV=$dev is not a device name"

if [[ $typ == down ]]; then
	if [[ ! -e /sys/class/net/$dev ]]; then
		echo "device $dev is gone, and its DNS settings with it"
		exit 0
	fi
	command -v resolvectl >/dev/null || die "resolvectl not found; install systemd-resolved (apt-get install systemd-resolved)"
	if ! err=$(resolvectl revert "$dev" 2>&1); then
		# The device may have gone in the meantime.
		[[ -e /sys/class/net/$dev ]] || exit 0
		die "resolvectl revert $dev: $err"
	fi
	echo "reverted the DNS settings of $dev"
	exit 0
fi

# up
read -r -a servers <<<"${SSHVPN_DNS:-}"
read -r -a domains <<<"${SSHVPN_DNS_DOMAINS:-}"
((${#servers[@]} > 0)) || die "SSHVPN_DNS is empty: give the DNS servers to use through $dev, such as SSHVPN_DNS=\"10.20.0.53\""

# valid_server: ADDR, ADDR:PORT (IPv4), [ADDR]:PORT (IPv6), each optionally
# followed by %IFNAME and #SERVERNAME, as resolvectl dns takes them.
valid_server() {
	local s=${1%%#*} a
	s=${s%%%*}
	if [[ $s =~ ^\[([0-9A-Fa-f:.]+)\](:[0-9]{1,5})?$ ]]; then
		a=${BASH_REMATCH[1]}
	elif [[ $s =~ ^([0-9.]+)(:[0-9]{1,5})?$ ]]; then
		a=${BASH_REMATCH[1]}
	else
		a=$s
	fi
	if [[ $a =~ ^[0-9]{1,3}(\.[0-9]{1,3}){3}$ ]]; then
		local IFS=. o
		for o in $a; do
			((10#$o <= 255)) || return 1
		done
		return 0
	fi
	[[ $a == *:*:* && $a =~ ^[0-9A-Fa-f:.]+$ ]]
}
for s in "${servers[@]}"; do
	valid_server "$s" || die "SSHVPN_DNS: \"$s\" is not a DNS server address (such as 10.20.0.53 or fd00:20::53)"
done
default_route=no
for d in "${domains[@]}"; do
	[[ $d == "~." ]] && default_route=yes && continue
	[[ $d =~ ^~?[A-Za-z0-9_]([A-Za-z0-9_.-]*[A-Za-z0-9_.])?$ && $d != *..* ]] ||
		die "SSHVPN_DNS_DOMAINS: \"$d\" is not a domain (such as corp.example, ~corp.example or ~.)"
done

command -v resolvectl >/dev/null || die "resolvectl not found; install systemd-resolved (apt-get install systemd-resolved)"
[[ -e /sys/class/net/$dev ]] || die "device $dev does not exist"

# run CMD...: run a resolvectl command; on failure undo the earlier ones.
run() {
	local err
	if ! err=$("$@" 2>&1); then
		resolvectl revert "$dev" >/dev/null 2>&1 || true
		die "$*: $err"
	fi
}
run resolvectl dns "$dev" "${servers[@]}"
echo "DNS servers of $dev: ${servers[*]}"
if ((${#domains[@]} > 0)); then
	run resolvectl domain "$dev" "${domains[@]}"
	run resolvectl default-route "$dev" "$default_route"
	echo "DNS domains of $dev: ${domains[*]} (default route: $default_route)"
fi
