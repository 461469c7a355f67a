#!/usr/bin/env bash
# nat-gateway.sh - sshvpn up/down hook for the server: let the client reach
# the networks beyond the server (and the internet), masqueraded behind the
# server's own addresses.
#
# Side: the server (SSHVPN_SIDE=remote) only; it refuses to run elsewhere.
# It must run as root there: it writes sysctls and the nftables ruleset.
#
# Use it as both the up and the down hook of the remote sshvpn, usually in
# the forced command that authorized-key prints:
#   sshvpn authorized-key --sshvpn /usr/local/bin/sshvpn \
#       --pool 198.18.8.0/24 --pool fd00:8::/64 --dev 'vpn%d' \
#       --up /usr/local/share/sshvpn/nat-gateway.sh \
#       --down /usr/local/share/sshvpn/nat-gateway.sh alice.pub
# or on a remote command line: sshvpn --remote --up .../nat-gateway.sh
# --down .../nat-gateway.sh. To send all of the client's traffic this way,
# the client connects with sshvpn --default-route.
#
# Reads:
#   SSHVPN_SIDE          must be remote
#   SSHVPN_SCRIPT_TYPE   up or down
#   SSHVPN_DEV           the session's device, such as vpn3
#   SSHVPN_PEER_ADDRS    the client's tunnel addresses (CIDRs); the host
#                        addresses are masqueraded, not their whole subnets
#   SSHVPN_STATE_DIR     where the saved sysctl values live (default
#                        /run/sshvpn)
#   SSHVPN_NAT_IPV6      set to 0 to leave IPv6 alone (no IPv6 masquerade,
#                        no IPv6 forwarding) even if the client has IPv6
#                        tunnel addresses
#
# Changes on up:
#   - net.ipv4.ip_forward=1, and net.ipv6.conf.all.forwarding=1 if the client
#     has an IPv6 tunnel address. The values they had before any sshvpn NAT
#     session are saved in $SSHVPN_STATE_DIR/nat-$SSHVPN_DEV.forwarding.
#     Careful: with IPv6 forwarding on, interfaces whose accept_ra is 1 stop
#     accepting router advertisements, so a server that gets its IPv6 default
#     route by SLAAC loses it when it expires; set accept_ra=2 on its uplink
#     (sysctl -w net.ipv6.conf.eth0.accept_ra=2) or use SSHVPN_NAT_IPV6=0.
#   - the nftables table "inet sshvpn_nat_$SSHVPN_DEV" (characters other than
#     letters, digits and _ in the device name become _), one per session so
#     that sessions don't clash:
#       postrouting (nat): the client's addresses leaving through any device
#                          other than $SSHVPN_DEV are masqueraded
#       forward (filter):  accepts the client's packets from $SSHVPN_DEV and
#                          the replies to them
#     An accept only ends its own chain: if another firewall drops forwarded
#     packets (an iptables FORWARD policy of DROP, as Docker and ufw set), add
#     an accept for the tunnel there too.
#   If up fails halfway, it undoes what it did and fails.
# Changes on down: deletes that table (a table that is already gone is not an
# error) and, once no sshvpn_nat_* table is left, restores the saved sysctl
# values. The device need not exist any more.
#
# Requires nft (apt-get install nftables) and flock (util-linux).
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
[[ ${SSHVPN_SIDE:-} == remote ]] ||
	die "SSHVPN_SIDE=${SSHVPN_SIDE:-}: this hook is for the server side; give it to sshvpn --remote (or authorized-key) as --up and --down"
[[ -n $dev ]] || die "SSHVPN_DEV is not set; run this script as an sshvpn --up/--down hook"
[[ $dev =~ ^[A-Za-z0-9_.@:-]{1,15}$ ]] || die "SSHVPN_DEV=$dev is not a device name"
command -v nft >/dev/null || die "nft not found; install nftables (apt-get install nftables)"
command -v flock >/dev/null || die "flock not found; install util-linux (apt-get install util-linux)"

table=sshvpn_nat_${dev//[^A-Za-z0-9_]/_}
state_dir=${SSHVPN_STATE_DIR:-/run/sshvpn}
state=$state_dir/nat-$dev.forwarding

# The client's host addresses, by family.
v4=() v6=()
read -r -a peers <<<"${SSHVPN_PEER_ADDRS:-}"
for p in "${peers[@]}"; do
	a=${p%/*}
	if [[ $a =~ ^[0-9]{1,3}(\.[0-9]{1,3}){3}$ ]]; then
		v4+=("$a")
	elif [[ $a == *:* && $a =~ ^[0-9A-Fa-f:.]+$ ]]; then
		v6+=("$a")
	else
		die "SSHVPN_PEER_ADDRS: \"$p\" is not an IP address"
	fi
done
if [[ ${SSHVPN_NAT_IPV6:-} == 0 ]]; then
	v6=()
fi

mkdir -p "$state_dir" || die "cannot create the state directory $state_dir (SSHVPN_STATE_DIR)"
exec 9>"$state_dir/nat.lock" || die "cannot open $state_dir/nat.lock"
flock 9 # one session at a time changes tables and sysctls

key_path() { echo "/proc/sys/${1//.//}"; }

# nat_tables: the names of every sshvpn_nat_* table.
nat_tables() {
	nft list tables inet | awk '$1 == "table" && $3 ~ /^sshvpn_nat_/ { print $3 }'
}

# saved KEY: the value KEY had before any sshvpn NAT session, as saved by one
# of them; fails if none saved it.
saved() {
	local f
	for f in "$state" "$state_dir"/nat-*.forwarding; do
		[[ -f $f ]] || continue
		awk -F= -v k="$1" '$1 == k && $2 ~ /^[0-9]+$/ { print $2; found = 1; exit } END { exit !found }' "$f" && return 0
	done
	return 1
}

# restore: put back the saved sysctl values once no sshvpn NAT table is left.
restore() {
	local others f k v
	others=$(nat_tables) || {
		warn "nft list tables failed; sysctls left as they are"
		return 1
	}
	if [[ -n $others ]]; then
		echo "other sshvpn NAT tables remain ($(echo "$others" | tr '\n' ' ' | sed 's/ $//')); forwarding stays on"
		return 0
	fi
	local -A seen=()
	for f in "$state_dir"/nat-*.forwarding; do
		[[ -f $f ]] || continue
		while IFS='=' read -r k v; do
			[[ $k =~ ^net\.ipv[46]\.[a-z_.]+$ && $v =~ ^[0-9]+$ && -z ${seen[$k]:-} ]] || continue
			seen[$k]=1
			if [[ -w $(key_path "$k") ]] && echo "$v" >"$(key_path "$k")"; then
				echo "restored $k=$v"
			else
				warn "could not restore $k=$v"
			fi
		done <"$f"
		rm -f "$f"
	done
}

delete_table() {
	local err
	nft list table inet "$table" >/dev/null 2>&1 || return 0
	if err=$(nft delete table inet "$table" 2>&1); then
		echo "deleted nftables table inet $table"
	elif nft list table inet "$table" >/dev/null 2>&1; then
		warn "nft delete table inet $table: $err"
		return 1
	fi
}

if [[ $typ == down ]]; then
	failed=0
	delete_table || failed=1
	restore || failed=1
	exit "$failed"
fi

# up
((${#v4[@]} + ${#v6[@]} > 0)) || die "SSHVPN_PEER_ADDRS has no client address to masquerade"
[[ -e /sys/class/net/$dev ]] || die "device $dev does not exist"

keys=(net.ipv4.ip_forward)
if ((${#v6[@]} > 0)); then
	if [[ -e $(key_path net.ipv6.conf.all.forwarding) ]]; then
		keys+=(net.ipv6.conf.all.forwarding)
	else
		warn "IPv6 is disabled on this host; masquerading IPv4 only"
		v6=()
	fi
fi

# Save the values from before the first sshvpn NAT session. Saved files are
# only trusted while some sshvpn NAT table exists; otherwise they are left
# over from sessions that ended without their down hook.
tables=$(nat_tables) ||
	die "nft list tables failed; is nf_tables available in this kernel?"
if [[ -z $tables ]]; then
	rm -f "$state_dir"/nat-*.forwarding
fi
for k in "${keys[@]}"; do
	if ! v=$(saved "$k"); then
		v=$(<"$(key_path "$k")") || die "cannot read $k"
	fi
	if ! grep -q "^$k=" "$state" 2>/dev/null; then
		echo "$k=$v" >>"$state" || die "cannot write $state"
	fi
done

join() {
	local IFS=,
	echo "$*"
}
rules=$(
	echo "table inet $table {}"
	echo "delete table inet $table"
	echo "table inet $table {"
	echo "	chain postrouting {"
	echo "		type nat hook postrouting priority srcnat; policy accept;"
	((${#v4[@]} == 0)) || echo "		oifname != \"$dev\" ip saddr { $(join "${v4[@]}") } masquerade"
	((${#v6[@]} == 0)) || echo "		oifname != \"$dev\" ip6 saddr { $(join "${v6[@]}") } masquerade"
	echo "	}"
	echo "	chain forward {"
	echo "		type filter hook forward priority filter; policy accept;"
	((${#v4[@]} == 0)) || echo "		iifname \"$dev\" ip saddr { $(join "${v4[@]}") } accept"
	((${#v4[@]} == 0)) || echo "		oifname \"$dev\" ip daddr { $(join "${v4[@]}") } ct state established,related accept"
	((${#v6[@]} == 0)) || echo "		iifname \"$dev\" ip6 saddr { $(join "${v6[@]}") } accept"
	((${#v6[@]} == 0)) || echo "		oifname \"$dev\" ip6 daddr { $(join "${v6[@]}") } ct state established,related accept"
	echo "	}"
	echo "}"
)
if ! err=$(nft -f - <<<"$rules" 2>&1); then
	restore >/dev/null 2>&1 || true
	die "nft could not add table inet $table: $err"
fi
echo "added nftables table inet $table: masquerading ${v4[*]} ${v6[*]} leaving through devices other than $dev"

for k in "${keys[@]}"; do
	if ! echo 1 >"$(key_path "$k")" 2>/dev/null; then
		delete_table >/dev/null 2>&1 || true
		restore >/dev/null 2>&1 || true
		die "cannot set $k=1 (read-only /proc/sys? not root?)"
	fi
	echo "set $k=1 (saved $(saved "$k"))"
done
