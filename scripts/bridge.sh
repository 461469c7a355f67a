#!/usr/bin/env bash
# bridge.sh - sshvpn up/down hook for tap mode: make the tunnel's tap device a
# port of a Linux bridge, creating the bridge if asked to, so that the two
# sides share one Ethernet segment.
#
# sshvpn's own --bridge NAME flag does the common case, an existing bridge;
# use this hook when the bridge should be created on demand and deleted again
# when its last port leaves.
#
# Side: either, in tap mode (sshvpn --mode tap on the client; the server's
# sshvpn --remote needs --mode tap as well). It refuses tun devices.
#
# Use it as both the up and the down hook. Hooks run without arguments, so the
# settings come from the environment of sshvpn:
#   SSHVPN_BRIDGE=br-vpn SSHVPN_BRIDGE_CREATE=1 sshvpn --mode tap \
#       --up /usr/local/share/sshvpn/bridge.sh --down /usr/local/share/sshvpn/bridge.sh gw
# On the server, in a forced command, point --up and --down at a small wrapper
# that sets the variables and execs this script:
#   sshvpn authorized-key --mode tap --up /etc/sshvpn/bridge-lan.sh \
#       --down /etc/sshvpn/bridge-lan.sh alice.pub
#   where /etc/sshvpn/bridge-lan.sh is:
#       #!/bin/sh
#       SSHVPN_BRIDGE=br-lan exec /usr/local/share/sshvpn/bridge.sh
#
# Reads:
#   SSHVPN_SCRIPT_TYPE    up or down
#   SSHVPN_DEV            the tap device
#   SSHVPN_MODE           must be tap
#   SSHVPN_BRIDGE         the bridge's name
#   SSHVPN_BRIDGE_CREATE  1: create the bridge on up if it does not exist
#   SSHVPN_STATE_DIR      where the record of a created bridge lives
#                         (default /run/sshvpn)
#
# Changes on up: creates the bridge if SSHVPN_BRIDGE_CREATE=1 and it is missing
# (recorded in $SSHVPN_STATE_DIR/bridge-$SSHVPN_BRIDGE.created), then
# "ip link set $SSHVPN_DEV master $SSHVPN_BRIDGE" and sets both up. If a step
# fails, it undoes the earlier ones and fails.
# Changes on down: takes the device out of the bridge if it still exists and
# is still a port of it, then deletes the bridge if this hook created it and
# it has no ports left, so that several sessions can share one bridge. A
# device or bridge that is already gone is not an error.
#
# The bridge does not get the tunnel's IP addresses: give it its own, or
# bridge an Ethernet device that leads to the LAN into it as well.
set -euo pipefail

me=${0##*/}
die() {
	printf '%s: %s\n' "$me" "$*" >&2
	exit 1
}
warn() { printf '%s: %s\n' "$me" "$*" >&2; }

typ=${SSHVPN_SCRIPT_TYPE:-}
dev=${SSHVPN_DEV:-}
br=${SSHVPN_BRIDGE:-}
case $typ in
up | down) ;;
'') die "SSHVPN_SCRIPT_TYPE is not set; run this script as an sshvpn --up/--down hook" ;;
*) die "SSHVPN_SCRIPT_TYPE=$typ: want up or down" ;;
esac
[[ ${SSHVPN_MODE:-} == tap ]] ||
	die "SSHVPN_MODE=${SSHVPN_MODE:-}: a bridge carries Ethernet frames, so this hook needs a tap device; run sshvpn with --mode tap"
[[ -n $dev ]] || die "SSHVPN_DEV is not set; run this script as an sshvpn --up/--down hook"
[[ $dev =~ ^[A-Za-z0-9_.@:-]{1,15}$ ]] || die "SSHVPN_DEV=$dev is not a device name"
[[ -n $br ]] || die "SSHVPN_BRIDGE is not set: name the bridge, such as SSHVPN_BRIDGE=br0"
[[ $br =~ ^[A-Za-z0-9_.@:-]{1,15}$ ]] || die "SSHVPN_BRIDGE=$br is not a device name (at most 15 letters, digits and _.@:-)"
[[ $br != "$dev" ]] || die "SSHVPN_BRIDGE=$br is the tunnel device itself"
case ${SSHVPN_BRIDGE_CREATE:-0} in
0 | 1) ;;
*) die "SSHVPN_BRIDGE_CREATE=${SSHVPN_BRIDGE_CREATE}: want 1 (create the bridge if missing) or 0" ;;
esac
command -v ip >/dev/null || die "ip not found; install iproute2 (apt-get install iproute2)"
command -v flock >/dev/null || die "flock not found; install util-linux (apt-get install util-linux)"

state_dir=${SSHVPN_STATE_DIR:-/run/sshvpn}
record=$state_dir/bridge-$br.created
mkdir -p "$state_dir" || die "cannot create the state directory $state_dir (SSHVPN_STATE_DIR)"
exec 9>"$state_dir/bridge.lock" || die "cannot open $state_dir/bridge.lock"
flock 9 # sessions sharing a bridge take turns

exists() { [[ -e /sys/class/net/$1 ]]; }
is_bridge() { [[ -d /sys/class/net/$1/bridge ]]; }
master_of() {
	local m
	m=$(readlink "/sys/class/net/$1/master" 2>/dev/null) || return 0
	echo "${m##*/}"
}
ports() { ls "/sys/class/net/$1/brif" 2>/dev/null || true; }

# delete_if_created: delete the bridge if this hook created it and no port is
# left; forget the record once the bridge is gone.
delete_if_created() {
	[[ -f $record ]] || return 0
	if ! exists "$br"; then
		rm -f "$record"
		return 0
	fi
	local p
	p=$(ports "$br")
	if [[ -n $p ]]; then
		echo "bridge $br still has ports ($(echo "$p" | tr '\n' ' ' | sed 's/ $//')); keeping it"
		return 0
	fi
	local err
	if err=$(ip link del dev "$br" 2>&1) || ! exists "$br"; then
		rm -f "$record"
		echo "deleted bridge $br"
	else
		warn "ip link del dev $br: $err"
		return 1
	fi
}

if [[ $typ == down ]]; then
	failed=0
	if exists "$dev" && [[ $(master_of "$dev") == "$br" ]]; then
		if err=$(ip link set dev "$dev" nomaster 2>&1); then
			echo "took $dev out of bridge $br"
		elif exists "$dev"; then
			warn "ip link set dev $dev nomaster: $err"
			failed=1
		fi
	fi
	delete_if_created || failed=1
	exit "$failed"
fi

# up
exists "$dev" || die "device $dev does not exist"
if exists "$br"; then
	is_bridge "$br" || die "$br exists but is not a bridge"
elif [[ ${SSHVPN_BRIDGE_CREATE:-0} == 1 ]]; then
	rm -f "$record" # a record left over from a bridge that is gone
	err=$(ip link add name "$br" type bridge 2>&1) || die "ip link add name $br type bridge: $err"
	touch "$record" || {
		ip link del dev "$br" 2>/dev/null || true
		die "cannot write $record"
	}
	echo "created bridge $br"
else
	rm -f "$record"
	die "bridge $br does not exist: create it (ip link add name $br type bridge) or set SSHVPN_BRIDGE_CREATE=1"
fi

# undo: take the device out again and delete the bridge if we created it.
undo() {
	if [[ $(master_of "$dev") == "$br" ]]; then
		ip link set dev "$dev" nomaster 2>/dev/null || true
	fi
	delete_if_created >/dev/null 2>&1 || true
}
for cmd in "ip link set dev $dev master $br" "ip link set dev $br up" "ip link set dev $dev up"; do
	read -r -a argv <<<"$cmd"
	if ! err=$("${argv[@]}" 2>&1); then
		undo
		die "$cmd: $err"
	fi
done
echo "$dev is a port of bridge $br"
