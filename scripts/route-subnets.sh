#!/usr/bin/env bash
# route-subnets.sh - sshvpn up/down hook: route extra networks through the
# tunnel, from a list kept per host in a file or in the environment.
#
# Side: either. On the client it sends networks behind the server through the
# tunnel. On the server it sends networks behind the client back through it;
# those must also be in the server's --allow-source, or anti-spoofing drops
# their packets. sshvpn's own --route flag does the same for a fixed list on
# the command line; this script is for lists kept in files.
#
# Use it as both the up and the down hook. Hooks run without arguments, so
# the list comes from the environment of sshvpn:
#   SSHVPN_SUBNETS_FILE=/etc/sshvpn/gw.subnets sshvpn \
#       --up /usr/local/share/sshvpn/route-subnets.sh \
#       --down /usr/local/share/sshvpn/route-subnets.sh gw
# On the server, in a forced command, point --up and --down at a small
# wrapper that sets the variables and execs this script:
#   sshvpn authorized-key --allow-source 10.9.0.0/16 \
#       --up /etc/sshvpn/alice-routes.sh --down /etc/sshvpn/alice-routes.sh alice.pub
#   where /etc/sshvpn/alice-routes.sh is:
#       #!/bin/sh
#       SSHVPN_SUBNETS="10.9.0.0/16" exec /usr/local/share/sshvpn/route-subnets.sh
# By hand (arguments replace SSHVPN_SUBNETS and SSHVPN_SUBNETS_FILE):
#   SSHVPN_SCRIPT_TYPE=up SSHVPN_DEV=tun0 route-subnets.sh 10.0.0.0/8 fd00:1::/48
#
# Reads:
#   SSHVPN_SCRIPT_TYPE   up or down
#   SSHVPN_DEV           the tunnel device
#   SSHVPN_SUBNETS       space-separated networks in CIDR form, IPv4 or IPv6
#   SSHVPN_SUBNETS_FILE  a file of such networks, separated by spaces or
#                        newlines; "#" starts a comment
#   At least one of the two must name a network; both may be given.
#
# Changes: on up, "ip route replace CIDR dev $SSHVPN_DEV" in the main table
# for each network. A route to exactly the same network through another
# device is replaced (a warning says so) and is not restored on down. If one
# route fails, the ones added before it are removed again and the hook fails,
# so the tunnel does not come up. On down, "ip route del CIDR dev
# $SSHVPN_DEV" for each; routes or a device that are already gone are not an
# error (the kernel drops a device's routes with the device).
set -euo pipefail

me=${0##*/}
die() {
	printf '%s: %s\n' "$me" "$*" >&2
	exit 1
}
warn() { printf '%s: %s\n' "$me" "$*" >&2; }

typ=${SSHVPN_SCRIPT_TYPE:-}
dev=${SSHVPN_DEV:-}
case $typ in
up | down) ;;
'') die "SSHVPN_SCRIPT_TYPE is not set; run this script as an sshvpn --up/--down hook" ;;
*) die "SSHVPN_SCRIPT_TYPE=$typ: want up or down" ;;
esac
[[ -n $dev ]] || die "SSHVPN_DEV is not set; run this script as an sshvpn --up/--down hook"
[[ $dev =~ ^[A-Za-z0-9_.@:-]{1,15}$ ]] || die "SSHVPN_DEV=$dev is not a device name"
command -v ip >/dev/null || die "ip not found; install iproute2 (apt-get install iproute2)"

# The networks: the arguments, or SSHVPN_SUBNETS and SSHVPN_SUBNETS_FILE.
subnets=()
if (($# > 0)); then
	subnets=("$@")
else
	read -r -a subnets <<<"${SSHVPN_SUBNETS:-}"
	if [[ -n ${SSHVPN_SUBNETS_FILE:-} ]]; then
		f=$SSHVPN_SUBNETS_FILE
		[[ -f $f && -r $f ]] || die "SSHVPN_SUBNETS_FILE=$f: no such readable file"
		while read -r -a words; do
			subnets+=("${words[@]}")
		done < <(sed 's/#.*//' "$f")
	fi
fi
((${#subnets[@]} > 0)) || die "no networks to route: set SSHVPN_SUBNETS (space-separated CIDRs) or SSHVPN_SUBNETS_FILE"

# valid_cidr CIDR: an IPv4 or IPv6 network with its prefix length. The
# kernel has the last word (host bits set, say); this catches typos early.
valid_cidr() {
	local c=$1 a l o
	[[ $c == */* ]] || return 1
	a=${c%/*} l=${c##*/}
	[[ $l =~ ^[0-9]{1,3}$ ]] || return 1
	if [[ $a =~ ^[0-9]{1,3}(\.[0-9]{1,3}){3}$ ]]; then
		((10#$l <= 32)) || return 1
		local IFS=.
		for o in $a; do
			((10#$o <= 255)) || return 1
		done
		return 0
	fi
	[[ $a == *:* && $a =~ ^[0-9A-Fa-f:.]+$ ]] && ((10#$l <= 128))
}
for c in "${subnets[@]}"; do
	valid_cidr "$c" || die "\"$c\" is not a network in CIDR form (such as 10.20.0.0/16 or fd00:20::/48)"
done

family() { if [[ $1 == *:* ]]; then echo -6; else echo -4; fi; }

if [[ $typ == up ]]; then
	[[ -e /sys/class/net/$dev ]] || die "device $dev does not exist"
	added=()
	for c in "${subnets[@]}"; do
		fam=$(family "$c")
		old=$(ip "$fam" route show exact "$c" 2>/dev/null | grep -v -E "dev $dev( |\$)" || true)
		[[ -z $old ]] || warn "replacing the existing route \"$old\" with one through $dev; down will not restore it"
		if ! err=$(ip "$fam" route replace "$c" dev "$dev" 2>&1); then
			for a in "${added[@]}"; do
				ip "$(family "$a")" route del "$a" dev "$dev" 2>/dev/null || true
			done
			die "ip route replace $c dev $dev: $err"
		fi
		added+=("$c")
		echo "routed $c through $dev"
	done
	exit 0
fi

# down
if [[ ! -e /sys/class/net/$dev ]]; then
	echo "device $dev is gone, and its routes with it"
	exit 0
fi
failed=0
for c in "${subnets[@]}"; do
	if err=$(ip "$(family "$c")" route del "$c" dev "$dev" 2>&1); then
		echo "removed the route to $c through $dev"
	elif [[ $err == *"No such process"* || $err == *"Cannot find device"* || $err == *"No such device"* ]]; then
		: # already gone
	else
		warn "ip route del $c dev $dev: $err"
		failed=1
	fi
done
exit "$failed"
