#!/usr/bin/env bash
# lab.sh - throw-away network lab for sshvpn: three network namespaces and a
# private OpenSSH sshd, nothing touched in the root namespace.
#
# Usage (as root):
#   scripts/lab.sh up       create the lab (fails if it already exists)
#   scripts/lab.sh down     remove everything `up` created (always safe to run)
#   scripts/lab.sh status   show namespaces and whether the lab sshd is alive
#   scripts/lab.sh restart-sshd  end sshd and all its sessions, then start it
#                           again (what a server's restart does to a tunnel)
#   scripts/lab.sh env      print the sourceable env file ($LAB_DIR/env)
#
# Topology:
#
#   [$LAB_NAME-client]            [$LAB_NAME-server]             [$LAB_NAME-lan]
#    wan0 192.0.2.1/24  <-veth->   wan0 192.0.2.2/24   (with LAB_WAN: <-wanem->)
#         2001:db8:1::1/64              2001:db8:1::2/64
#                                  sshd on port 22
#                                  lan0 198.51.100.1/24  <-veth-> lan0 198.51.100.2/24
#                                       2001:db8:2::1/64               2001:db8:2::2/64
#                                                                 (default routes via server)
#
# Forwarding is NOT enabled anywhere; the client namespace has no default route.
#
# Environment:
#   LAB_NAME    prefix for namespace names (default: sshvpn-lab)
#   LAB_DIR     directory for all lab files (default: /tmp/$LAB_NAME)
#   SSHVPN_BIN  prebuilt sshvpn binary to install as $LAB_DIR/bin/sshvpn; if
#               unset, `up` runs `go build ./cmd/sshvpn` from the repo root.
#   LAB_CLIENTS number of client namespaces, 1..250 (default 1). Client
#               k >= 2 is $LAB_NAME-client$k, joined to the server by its own
#               veth (wan0 in the client, wan$k in the server) with a default
#               route through the server, so it reaches sshd at 192.0.2.2.
#               Its /30: for k <= 63, 203.0.113.(4k+1)/30, server side
#               .(4k+2); for k >= 64, 198.19.(k/64).(4(k%64)+1)/30, server
#               side .(4(k%64)+2) (e.g. client64 198.19.1.1, server 198.19.1.2).
#   LAB_WAN     if set, a WAN profile for the client-server link, e.g.
#               "delay=20ms loss=1% rate=200mbit queue=50ms" (each direction;
#               delay is one way, so that is 40 ms RTT; also jitter=, limit=;
#               see internal/wanem). The link is then the project's own
#               emulator (this kernel has no sch_netem) between two tun
#               devices named wan0, instead of the veth. LAB_WAN_UP and
#               LAB_WAN_DOWN, if set, override it for client->server and
#               server->client. The emulator's counters (packets, drops by
#               reason) go to $LAB_DIR/wan.json on SIGUSR1 to $LAB_WAN_PID.
#               WANEM_BIN is a prebuilt emulator; else `go build` makes it.
#   LAB_USER    if set, an unprivileged account of that name is created for
#               the lab (home under $LAB_DIR, shell /bin/sh) and removed by
#               `down`; its keys go in $LAB_DIR/authorized_keys.$LAB_USER.
#   LAB_LAN_SSHD  yes or no (default no). With yes, a second sshd runs on the
#               LAN host, which the client reaches as "lanhost" in
#               $LAB_DIR/ssh_config, through the server (ProxyJump server).
#   LAB_PERMIT_TUNNEL  yes or no (default no). With yes, the lab sshd gets
#               `PermitTunnel point-to-point` instead of `PermitTunnel no`,
#               so OpenSSH's own `ssh -w` tunnel works (scripts/bench.sh
#               uses it for comparison). sshvpn itself never needs it.
#   LAB_MAX_STARTUPS  if set, the lab sshd gets `MaxStartups $LAB_MAX_STARTUPS`
#               (start:rate:full or a plain number, e.g. 300:30:600), for runs
#               that open many connections at once (scripts/scale.sh).
#   LAB_SYSLOG_SOCKET  if set, the absolute path of a unix datagram socket a
#               test already listens on (not under /run). sshd and all its
#               sessions then see a private tmpfs on /run holding /run/sshd
#               and a symlink /run/syslog -> the socket (also reached as
#               /var/run/syslog); a /dev/log there is redirected to it too.
#               So syslog(3) and Go's log/syslog in the remote sshvpn log to
#               the test's socket. The socket must be writable by the remote
#               account (LAB_USER too, if used). Unset: /run is left alone.
#
# The lab sshd always has `ExposeAuthInfo yes`, so sessions can read
# $SSH_USER_AUTH (the key that authenticated them).
#
# Keys: sshd reads $LAB_DIR/authorized_keys.%u (authorized_keys.root for
# root), so tests can give each account its own forced commands.
#
# The lab's sshd runs in a private mount namespace where /dev/net/tun is
# world read-writable (mode 0666, as Debian's udev rules make it), so an
# unprivileged account can attach to a device an admin made for it, even on
# a machine whose own /dev/net/tun is root-only. Nothing outside changes.
#
# After `up`, `source "$LAB_DIR/env"` gives LAB_CLIENT_NS, LAB_SERVER_NS,
# LAB_LAN_NS, LAB_SSH_CONFIG, LAB_BIN, LAB_SERVER_ADDR(6), LAB_LAN_HOST(6),
# LAB_SSHD_PID. Connect with e.g.
#   ip netns exec "$LAB_CLIENT_NS" ssh -F "$LAB_SSH_CONFIG" server   (or server6)
# The lab sshd sets PATH=$LAB_DIR/bin:<system dirs> (sshd_config SetEnv), so
# the server side finds the lab's sshvpn binary. The remote user's shell rc
# files (e.g. root's ~/.bashrc) still run and may prepend directories; `up`
# checks that `command -v sshvpn` on the server is $LAB_DIR/bin/sshvpn and
# fails otherwise (e.g. if an older sshvpn sits in /root/go/bin).
set -euo pipefail

LAB_NAME=${LAB_NAME:-sshvpn-lab}
LAB_DIR=${LAB_DIR:-/tmp/$LAB_NAME}

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ME=lab
# shellcheck source=lib.sh
. "$SCRIPT_DIR/lib.sh"
REPO_ROOT=$(cd "$SCRIPT_DIR/.." && pwd)

LAB_CLIENTS=${LAB_CLIENTS:-1}
if ! [[ $LAB_CLIENTS =~ ^[1-9][0-9]{0,2}$ ]] || ((LAB_CLIENTS > 250)); then
	die "LAB_CLIENTS must be 1..250"
fi
LAB_MAX_STARTUPS=${LAB_MAX_STARTUPS:-}
[[ -z $LAB_MAX_STARTUPS || $LAB_MAX_STARTUPS =~ ^[1-9][0-9]*(:[0-9]+:[1-9][0-9]*)?$ ]] ||
	die "LAB_MAX_STARTUPS must be N or START:RATE:FULL (e.g. 300:30:600)"
LAB_SYSLOG_SOCKET=${LAB_SYSLOG_SOCKET:-}
LAB_PERMIT_TUNNEL=${LAB_PERMIT_TUNNEL:-no}
case $LAB_PERMIT_TUNNEL in
yes) PERMIT_TUNNEL=point-to-point ;;
no) PERMIT_TUNNEL=no ;;
*) die "LAB_PERMIT_TUNNEL must be yes or no" ;;
esac
CLIENT_NS=$LAB_NAME-client
SERVER_NS=$LAB_NAME-server
LAN_NS=$LAB_NAME-lan
ALL_NS=("$CLIENT_NS" "$SERVER_NS" "$LAN_NS")
# Extra clients: those asked for, and (for `down`) those that exist.
for ((k = 2; k <= LAB_CLIENTS; k++)); do ALL_NS+=("$CLIENT_NS$k"); done
while read -r ns _; do
	[[ $ns =~ ^$LAB_NAME-client[0-9]+$ && ! " ${ALL_NS[*]} " =~ \ $ns\  ]] && ALL_NS+=("$ns")
done < <(ip netns list 2>/dev/null || true)

MARKER=.sshvpn-lab          # marks $LAB_DIR as ours, so `down` may rm -rf it
SERVER_ADDR=192.0.2.2
SERVER_ADDR6=2001:db8:1::2
LAN_HOST=198.51.100.2
LAN_HOST6=2001:db8:2::2
SYS_PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin


usage() {
	sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed -e '$d' -e 's/^# \{0,1\}//'
}

check_config() {
	[[ $LAB_NAME =~ ^[A-Za-z0-9][A-Za-z0-9_.-]*$ ]] ||
		die "LAB_NAME '$LAB_NAME' must match [A-Za-z0-9][A-Za-z0-9_.-]*"
	[[ $LAB_DIR == /* && $LAB_DIR =~ ^[A-Za-z0-9_./+-]+$ ]] ||
		die "LAB_DIR '$LAB_DIR' must be an absolute path without spaces or special characters"
	local d
	d=$(realpath -m -- "$LAB_DIR")
	case $d in
	/ | /tmp | /root | /home | /etc | /usr | /var | /run | /bin | /sbin | /lib | /opt | /srv | /boot | /proc | /sys | /dev)
		die "refusing to use LAB_DIR=$LAB_DIR" ;;
	esac
	LAB_DIR=$d
}

# check_syslog_socket validates LAB_SYSLOG_SOCKET for `up`.
check_syslog_socket() {
	[[ -n $LAB_SYSLOG_SOCKET ]] || return 0
	[[ $LAB_SYSLOG_SOCKET == /* && $LAB_SYSLOG_SOCKET =~ ^[A-Za-z0-9_./+-]+$ ]] ||
		die "LAB_SYSLOG_SOCKET '$LAB_SYSLOG_SOCKET' must be an absolute path without spaces or special characters"
	local real
	real=$(realpath -m -- "$LAB_SYSLOG_SOCKET")
	case $real in
	/run/* | /var/run/*)
		die "LAB_SYSLOG_SOCKET '$LAB_SYSLOG_SOCKET' is under /run, which the lab sshd sees as an empty tmpfs; put it elsewhere (e.g. under /tmp)" ;;
	esac
	[[ -S $real ]] || die "LAB_SYSLOG_SOCKET '$LAB_SYSLOG_SOCKET' is not a socket (start the listener before 'up')"
	LAB_SYSLOG_SOCKET=$real
}

ns_exists() { [[ -e /run/netns/$1 ]]; }

in_ns() { local ns=$1; shift; ip netns exec "$ns" "$@"; }

ensure_packages() {
	need_tools ip:iproute2 ping:iputils-ping ssh:openssh-client ssh-keygen:openssh-client /usr/sbin/sshd:openssh-server
}

# sshd_pid prints the pid from the pidfile if it is alive and is our sshd.
sshd_pid() {
	local pid
	[[ -r $LAB_DIR/sshd.pid ]] || return 1
	pid=$(<"$LAB_DIR/sshd.pid")
	[[ $pid =~ ^[0-9]+$ ]] || return 1
	kill -0 "$pid" 2>/dev/null || return 1
	tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF -- "$LAB_DIR/sshd_config" || return 1
	echo "$pid"
}

lab_present() {
	local ns
	for ns in "${ALL_NS[@]}"; do
		ns_exists "$ns" && return 0
	done
	[[ -e $LAB_DIR ]]
}

# ---------------------------------------------------------------- down

# existing_ns prints those of ALL_NS that exist.
existing_ns() {
	local ns
	for ns in "${ALL_NS[@]}"; do
		if ns_exists "$ns"; then echo "$ns"; fi
	done
}

# ns_pids prints the pids of all processes in the given namespaces, with one
# `ip -batch` for all of them however many clients the lab has.
ns_pids() {
	(($#)) || return 0
	printf 'netns pids %s\n' "$@" | ip -force -batch - 2>/dev/null || true
}

do_down() {
	local pid ns _ pids
	local -a present

	if pid=$(sshd_pid); then
		log "stopping sshd (pid $pid)"
		kill "$pid" 2>/dev/null || true
	fi

	mapfile -t present < <(existing_ns)
	pids=$(ns_pids "${present[@]}")
	if [[ -n $pids ]]; then
		# shellcheck disable=SC2086
		kill -s TERM $pids 2>/dev/null || true
		for _ in $(seq 20); do
			pids=$(ns_pids "${present[@]}")
			[[ -n $pids ]] || break
			sleep 0.1
		done
		if [[ -n $pids ]]; then
			log "killing remaining processes with SIGKILL"
			# shellcheck disable=SC2086
			kill -s KILL $pids 2>/dev/null || true
			sleep 0.2
		fi
	fi

	if ((${#present[@]})); then
		if ((${#present[@]} <= 6)); then
			for ns in "${present[@]}"; do log "deleting namespace $ns"; done
		else
			log "deleting ${#present[@]} namespaces $LAB_NAME-*"
		fi
		printf 'netns del %s\n' "${present[@]}" | ip -force -batch - 2>/dev/null || true
		for ns in "${present[@]}"; do
			if ns_exists "$ns"; then
				ip netns del "$ns" || log "warning: could not delete namespace $ns"
			fi
		done
	fi

	if [[ -f $LAB_DIR/lab_user ]]; then
		local user
		user=$(<"$LAB_DIR/lab_user")
		if [[ -n $user ]] && id "$user" >/dev/null 2>&1; then
			pkill -KILL -u "$user" 2>/dev/null || true
			# (Its session registry, ~/.local/state/sshvpn, is in its home
			# under $LAB_DIR, removed with it.)
			log "removing user $user"
			userdel "$user" 2>/dev/null || log "warning: could not remove user $user"
		fi
	fi

	if [[ -d $LAB_DIR ]]; then
		if [[ -e $LAB_DIR/$MARKER ]]; then
			log "removing $LAB_DIR"
			rm -rf -- "$LAB_DIR"
		else
			log "warning: $LAB_DIR exists but was not created by lab.sh; leaving it alone"
		fi
	fi

	local left
	left=$(pgrep -af -- "$LAB_DIR/" 2>/dev/null | grep -v "^$$ " || true)
	[[ -z $left ]] || log "warning: processes still referencing $LAB_DIR:"$'\n'"$left"
	return 0
}

# ---------------------------------------------------------------- up

install_binary() {
	mkdir -p "$LAB_DIR/bin"
	if [[ -n ${SSHVPN_BIN:-} ]]; then
		[[ -f $SSHVPN_BIN && -x $SSHVPN_BIN ]] || die "SSHVPN_BIN=$SSHVPN_BIN is not an executable file"
		log "installing $SSHVPN_BIN as $LAB_DIR/bin/sshvpn"
		cp -- "$SSHVPN_BIN" "$LAB_DIR/bin/sshvpn"
	else
		command -v go >/dev/null 2>&1 ||
			die "SSHVPN_BIN is not set and 'go' is not on PATH; install Go or set SSHVPN_BIN"
		log "building ./cmd/sshvpn into $LAB_DIR/bin/sshvpn"
		(cd "$REPO_ROOT" && go build -o "$LAB_DIR/bin/sshvpn" ./cmd/sshvpn)
	fi
	chmod 0755 "$LAB_DIR" "$LAB_DIR/bin" "$LAB_DIR/bin/sshvpn"
	[[ -n ${LAB_WAN:-}${LAB_WAN_UP:-}${LAB_WAN_DOWN:-} ]] || return 0
	if [[ -n ${WANEM_BIN:-} ]]; then
		cp -- "$WANEM_BIN" "$LAB_DIR/bin/wanem"
	else
		command -v go >/dev/null 2>&1 || die "LAB_WAN needs the emulator: install Go or set WANEM_BIN"
		log "building ./internal/wanem/cmd/wanem into $LAB_DIR/bin/wanem"
		(cd "$REPO_ROOT" && go build -o "$LAB_DIR/bin/wanem" ./internal/wanem/cmd/wanem)
	fi
}

# start_wan joins the client and server namespaces through the emulator:
# it runs in the client's namespace and makes wan0 there and in the
# server's.
start_wan() {
	local i
	rm -f "$LAB_DIR/wan.ready"
	ip netns exec "$CLIENT_NS" "$LAB_DIR/bin/wanem" -netns "/run/netns/$SERVER_NS" -dev wan0 \
		-profile "${LAB_WAN:-}" -up "${LAB_WAN_UP:-}" -down "${LAB_WAN_DOWN:-}" \
		-stats "$LAB_DIR/wan.json" -ready "$LAB_DIR/wan.ready" \
		</dev/null >>"$LAB_DIR/wanem.log" 2>&1 &
	echo $! >"$LAB_DIR/wanem.pid"
	for ((i = 0; i < 100; i++)); do
		[[ -e $LAB_DIR/wan.ready ]] && break
		kill -0 "$(<"$LAB_DIR/wanem.pid")" 2>/dev/null || die "the WAN emulator failed: $(cat "$LAB_DIR/wanem.log")"
		sleep 0.05
	done
	[[ -e $LAB_DIR/wan.ready ]] || die "the WAN emulator did not come up"
	# A long queue in the kernel, so that it drops nothing while the
	# emulator catches up: the profile's queue is the link's.
	ip -n "$CLIENT_NS" link set wan0 txqueuelen 10000
	ip -n "$SERVER_NS" link set wan0 txqueuelen 10000
	log "WAN: ${LAB_WAN:-} (up: ${LAB_WAN_UP:-same}, down: ${LAB_WAN_DOWN:-same})"
}

# client_link K sets CLI_ADDR and SRV_ADDR, the two ends of extra client K's
# /30: in 203.0.113.0/24 for K <= 63 (as always), in 198.19.0.0/16 above.
client_link() {
	local k=$1
	if ((k <= 63)); then
		CLI_ADDR=203.0.113.$((4 * k + 1))
		SRV_ADDR=203.0.113.$((4 * k + 2))
	else
		CLI_ADDR=198.19.$((k / 64)).$((4 * (k % 64) + 1))
		SRV_ADDR=198.19.$((k / 64)).$((4 * (k % 64) + 2))
	fi
}

setup_netns() {
	local ns
	# One `ip -batch` per step rather than one `ip` per command, so that
	# hundreds of clients come up in about a second.
	printf 'netns add %s\n' "${ALL_NS[@]}" | ip -batch -
	for ns in "$CLIENT_NS" "$SERVER_NS" "$LAN_NS"; do
		ip -n "$ns" link set lo up
	done

	# wan: client <-> server. Both ends are created directly inside the
	# namespaces, so no interface ever appears in the root namespace.
	if [[ -n ${LAB_WAN:-}${LAB_WAN_UP:-}${LAB_WAN_DOWN:-} ]]; then
		start_wan
	else
		ip link add wan0 netns "$CLIENT_NS" type veth peer name wan0 netns "$SERVER_NS"
	fi
	ip -n "$CLIENT_NS" addr add 192.0.2.1/24 dev wan0
	ip -n "$CLIENT_NS" addr add 2001:db8:1::1/64 dev wan0 nodad
	ip -n "$SERVER_NS" addr add 192.0.2.2/24 dev wan0
	ip -n "$SERVER_NS" addr add 2001:db8:1::2/64 dev wan0 nodad
	ip -n "$CLIENT_NS" link set wan0 up
	ip -n "$SERVER_NS" link set wan0 up

	# lan: server <-> lan host
	ip link add lan0 netns "$SERVER_NS" type veth peer name lan0 netns "$LAN_NS"
	ip -n "$SERVER_NS" addr add 198.51.100.1/24 dev lan0
	ip -n "$SERVER_NS" addr add 2001:db8:2::1/64 dev lan0 nodad
	ip -n "$LAN_NS" addr add 198.51.100.2/24 dev lan0
	ip -n "$LAN_NS" addr add 2001:db8:2::2/64 dev lan0 nodad
	ip -n "$SERVER_NS" link set lan0 up
	ip -n "$LAN_NS" link set lan0 up
	ip -n "$LAN_NS" route add default via 198.51.100.1
	ip -n "$LAN_NS" -6 route add default via 2001:db8:2::1

	# extra clients, each on its own /30 to the server
	((LAB_CLIENTS >= 2)) || return 0
	local k
	for ((k = 2; k <= LAB_CLIENTS; k++)); do
		printf 'link add wan0 netns %s type veth peer name wan%d netns %s\n' "$CLIENT_NS$k" "$k" "$SERVER_NS"
	done | ip -batch -
	for ((k = 2; k <= LAB_CLIENTS; k++)); do
		client_link "$k"
		printf 'addr add %s/30 dev wan%d\nlink set wan%d up\n' "$SRV_ADDR" "$k" "$k"
	done | ip -n "$SERVER_NS" -batch -
	for ((k = 2; k <= LAB_CLIENTS; k++)); do
		client_link "$k"
		printf 'link set lo up\naddr add %s/30 dev wan0\nlink set wan0 up\nroute add default via %s\n' \
			"$CLI_ADDR" "$SRV_ADDR" | ip -n "$CLIENT_NS$k" -batch -
	done
}

create_user() {
	[[ -n ${LAB_USER:-} ]] || return 0
	[[ $LAB_USER =~ ^[a-z][a-z0-9-]{0,30}$ ]] || die "LAB_USER '$LAB_USER' is not a valid user name"
	id "$LAB_USER" >/dev/null 2>&1 && die "user $LAB_USER already exists; choose another LAB_USER"
	mkdir -p "$LAB_DIR/home"
	# "*": no password, but not locked (sshd refuses locked accounts without PAM)
	useradd --password "*" --no-create-home --home-dir "$LAB_DIR/home/$LAB_USER" --shell /bin/sh --user-group "$LAB_USER"
	echo "$LAB_USER" >"$LAB_DIR/lab_user"
	install -d -o "$LAB_USER" -m 0700 "$LAB_DIR/home/$LAB_USER"
	install -o "$LAB_USER" -m 0600 "$LAB_DIR/id_ed25519.pub" "$LAB_DIR/authorized_keys.$LAB_USER"
	log "created user $LAB_USER"
}

write_ssh_files() {
	ssh-keygen -q -t ed25519 -N '' -C "sshvpn-lab-host" -f "$LAB_DIR/ssh_host_ed25519_key"
	# A second host key of another type: known_hosts holds the ed25519 one,
	# and a test checks that a client knowing only this one still connects.
	ssh-keygen -q -t ecdsa -N '' -C "sshvpn-lab-host" -f "$LAB_DIR/ssh_host_ecdsa_key"
	ssh-keygen -q -t ed25519 -N '' -C "sshvpn-lab-client" -f "$LAB_DIR/id_ed25519"
	install -m 0600 "$LAB_DIR/id_ed25519.pub" "$LAB_DIR/authorized_keys.root"

	local hostkey
	hostkey=$(cut -d' ' -f1,2 "$LAB_DIR/ssh_host_ed25519_key.pub")
	printf 'server,%s,%s %s\n' "$SERVER_ADDR" "$SERVER_ADDR6" "$hostkey" >"$LAB_DIR/known_hosts"
	printf 'lanhost,%s %s\n' "$LAN_HOST" "$hostkey" >>"$LAB_DIR/known_hosts"

	cat >"$LAB_DIR/sshd_config" <<EOF
# sshd for the sshvpn lab (namespace $SERVER_NS); generated by scripts/lab.sh
Port 22
ListenAddress $SERVER_ADDR
ListenAddress $SERVER_ADDR6
HostKey $LAB_DIR/ssh_host_ed25519_key
HostKey $LAB_DIR/ssh_host_ecdsa_key
PidFile $LAB_DIR/sshd.pid
AuthorizedKeysFile $LAB_DIR/authorized_keys.%u
PermitRootLogin prohibit-password
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
LogLevel VERBOSE
PermitUserEnvironment no
SetEnv PATH=$LAB_DIR/bin:$SYS_PATH
PermitTunnel $PERMIT_TUNNEL
X11Forwarding no
PrintMotd no
PrintLastLog no
ExposeAuthInfo yes
# sshvpn as an sshd subsystem (sshvpn --native --subsystem sshvpn): no shell
Subsystem sshvpn $LAB_DIR/bin/sshvpn --remote
# no AcceptEnv
EOF
	if [[ -n $LAB_MAX_STARTUPS ]]; then
		echo "MaxStartups $LAB_MAX_STARTUPS" >>"$LAB_DIR/sshd_config"
	fi

	local h addr
	cat >"$LAB_DIR/ssh_config" <<EOF
# The LAN host, behind the server (its sshd runs with LAB_LAN_SSHD=yes).
Host lanhost
	HostName $LAN_HOST
	ProxyJump server
	User root
	IdentityFile $LAB_DIR/id_ed25519
	IdentitiesOnly yes
	UserKnownHostsFile $LAB_DIR/known_hosts
	GlobalKnownHostsFile /dev/null
	StrictHostKeyChecking yes
	BatchMode yes
	LogLevel ERROR
	ConnectTimeout 5

EOF
	for h in server server6; do
		addr=$SERVER_ADDR
		[[ $h == server6 ]] && addr=$SERVER_ADDR6
		cat >>"$LAB_DIR/ssh_config" <<EOF
Host $h
	HostName $addr
	User root
	IdentityFile $LAB_DIR/id_ed25519
	IdentitiesOnly yes
	UserKnownHostsFile $LAB_DIR/known_hosts
	GlobalKnownHostsFile /dev/null
	StrictHostKeyChecking yes
	HostKeyAlias server
	BatchMode yes
	LogLevel ERROR
	ConnectTimeout 5

EOF
	done
}

start_sshd() {
	mkdir -p /run/sshd
	chmod 0755 /run/sshd
	/usr/sbin/sshd -t -f "$LAB_DIR/sshd_config" || die "sshd config test failed"
	log "starting sshd in $SERVER_NS"
	[[ -e $LAB_DIR/dev-net-tun ]] || mknod -m 0666 "$LAB_DIR/dev-net-tun" c 10 200
	# ip netns exec runs its command in a private mount namespace; the bind
	# mount is seen by sshd and its sessions only.
	if [[ -z $LAB_SYSLOG_SOCKET ]]; then
		# shellcheck disable=SC2016
		in_ns "$SERVER_NS" sh -c 'mount --bind "$1" /dev/net/tun && exec /usr/sbin/sshd -f "$2" -E "$3"' \
			sh "$LAB_DIR/dev-net-tun" "$LAB_DIR/sshd_config" "$LAB_DIR/sshd.log"
	else
		log "sshd's /run is a private tmpfs; /run/syslog -> $LAB_SYSLOG_SOCKET"
		# Also private to that mount namespace: a tmpfs on /run with sshd's
		# privilege-separation directory and the syslog socket. A /dev/log
		# symlink into /run (systemd) gets its target recreated in the
		# tmpfs; a real /dev/log (rsyslog) gets the socket bind-mounted on.
		# shellcheck disable=SC2016
		in_ns "$SERVER_NS" sh -c '
			set -e
			mount --bind "$1" /dev/net/tun
			mount -t tmpfs -o mode=0755,nosuid,nodev sshvpn-lab-run /run
			mkdir -m 0755 /run/sshd
			ln -s "$4" /run/syslog
			if [ "$(readlink -f /var/run)" != /run ]; then
				mount -t tmpfs -o mode=0755,nosuid,nodev sshvpn-lab-run /var/run
				ln -s "$4" /var/run/syslog
			fi
			if [ -L /dev/log ]; then
				t=$(readlink /dev/log)
				case $t in
				/run/* | /var/run/*)
					t=/run/${t#*/run/}
					mkdir -p "${t%/*}"
					ln -sfn "$4" "$t" ;;
				esac
			elif [ -e /dev/log ]; then
				mount --bind "$4" /dev/log
			fi
			exec /usr/sbin/sshd -f "$2" -E "$3"' \
			sh "$LAB_DIR/dev-net-tun" "$LAB_DIR/sshd_config" "$LAB_DIR/sshd.log" "$LAB_SYSLOG_SOCKET"
	fi

	# Up to 20 s: over an emulated lossy link a SYN may be lost, and on a
	# busy machine the emulator may take a while to forward (50 quick
	# tries, about 5 s, once fell short in CI).
	local deadline=$((SECONDS + 20)) err=
	while ((SECONDS < deadline)); do
		if err=$(in_ns "$CLIENT_NS" timeout 2 bash -c "exec 3<>/dev/tcp/$SERVER_ADDR/22" 2>&1); then
			sshd_pid >/dev/null && return 0
		fi
		sleep 0.1
	done
	cat "$LAB_DIR/sshd.log" >&2 2>/dev/null || true
	die "sshd did not start accepting connections on $SERVER_ADDR:22 within 20 s${err:+ (last try: $err)}"
}

verify_ssh() {
	local h got
	for h in server server6; do
		got=$(in_ns "$CLIENT_NS" ssh -F "$LAB_DIR/ssh_config" "$h" 'command -v sshvpn' </dev/null) ||
			die "ssh to $h from $CLIENT_NS failed (see $LAB_DIR/sshd.log)"
		[[ $got == "$LAB_DIR/bin/sshvpn" ]] ||
			die "remote 'command -v sshvpn' via $h gave '$got', expected $LAB_DIR/bin/sshvpn"
	done
}

write_env() {
	local pid
	pid=$(sshd_pid)
	{
		echo "# sshvpn lab environment; source this file"
		printf 'LAB_NAME=%q\n' "$LAB_NAME"
		printf 'LAB_DIR=%q\n' "$LAB_DIR"
		printf 'LAB_CLIENT_NS=%q\n' "$CLIENT_NS"
		printf 'LAB_SERVER_NS=%q\n' "$SERVER_NS"
		printf 'LAB_LAN_NS=%q\n' "$LAN_NS"
		printf 'LAB_SSH_CONFIG=%q\n' "$LAB_DIR/ssh_config"
		printf 'LAB_BIN=%q\n' "$LAB_DIR/bin/sshvpn"
		printf 'LAB_SERVER_ADDR=%q\n' "$SERVER_ADDR"
		printf 'LAB_SERVER_ADDR6=%q\n' "$SERVER_ADDR6"
		printf 'LAB_LAN_HOST=%q\n' "$LAN_HOST"
		printf 'LAB_LAN_HOST6=%q\n' "$LAN_HOST6"
		printf 'LAB_USER=%q\n' "${LAB_USER:-}"
		printf 'LAB_CLIENTS=%q\n' "$LAB_CLIENTS"
		printf 'LAB_SSHD_PID=%q\n' "$pid"
		printf 'LAB_WAN_PID=%q\n' "$(cat "$LAB_DIR/wanem.pid" 2>/dev/null)"
		printf 'LAB_WAN_STATS=%q\n' "$LAB_DIR/wan.json"
		echo "export LAB_NAME LAB_DIR LAB_CLIENT_NS LAB_SERVER_NS LAB_LAN_NS LAB_SSH_CONFIG LAB_BIN"
		echo "export LAB_SERVER_ADDR LAB_SERVER_ADDR6 LAB_LAN_HOST LAB_LAN_HOST6 LAB_SSHD_PID LAB_WAN_PID LAB_WAN_STATS"
	} >"$LAB_DIR/env"
}

UP_DONE=0
up_cleanup() {
	local rc=$?
	if ((!UP_DONE)); then
		trap - EXIT INT TERM
		log "'up' failed (exit $rc); cleaning up what was created" >&2
		do_down >&2 || true
		exit $((rc ? rc : 1))
	fi
}

do_up() {
	if lab_present; then
		die "lab '$LAB_NAME' already exists (namespaces or $LAB_DIR); run '$(down_command)' first"
	fi
	ensure_packages
	check_syslog_socket

	trap up_cleanup EXIT
	trap 'exit 130' INT
	trap 'exit 143' TERM

	mkdir -p "$LAB_DIR"
	touch "$LAB_DIR/$MARKER"
	install_binary
	setup_netns
	write_ssh_files
	create_user
	start_sshd
	start_lan_sshd
	verify_ssh
	write_env
	UP_DONE=1
	trap - EXIT INT TERM

	cat <<EOF

sshvpn lab '$LAB_NAME' is up.
  namespaces: $CLIENT_NS (192.0.2.1)  $SERVER_NS (192.0.2.2, sshd)  $LAN_NS ($LAN_HOST)
  files:      $LAB_DIR   (source $LAB_DIR/env for variables)
  ssh:        ip netns exec $CLIENT_NS ssh -F $LAB_DIR/ssh_config server

Connect the two namespaces with sshvpn:
  ip netns exec $CLIENT_NS $LAB_DIR/bin/sshvpn -e "ssh -F $LAB_DIR/ssh_config" --addr 198.18.0.1/30 --peer-addr 198.18.0.2/30 root@server

Then, from another terminal, ping across the tunnel:
  ip netns exec $CLIENT_NS ping 198.18.0.2

Tear everything down with:
  $(down_command)
EOF
}

# down_command: the command that tears this lab down, as a person can paste
# it from any directory: this script's own path, and the lab's name and
# directory (a LAB_DIR that is not the default would otherwise be missed).
down_command() {
	printf 'LAB_NAME=%q LAB_DIR=%q %q down' "$LAB_NAME" "$LAB_DIR" "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/$(basename "${BASH_SOURCE[0]}")"
}

# ---------------------------------------------------------------- status/env

do_status() {
	local ns up=1 pid
	echo "lab '$LAB_NAME' (dir $LAB_DIR)"
	for ns in "${ALL_NS[@]}"; do
		if ns_exists "$ns"; then
			echo "  namespace $ns: present"
		else
			echo "  namespace $ns: absent"
			up=0
		fi
	done
	if pid=$(sshd_pid); then
		echo "  sshd: running (pid $pid)"
	else
		echo "  sshd: not running"
		up=0
	fi
	if [[ -f $LAB_DIR/env ]]; then
		echo "  env file: $LAB_DIR/env"
	else
		echo "  env file: absent"
		up=0
	fi
	if ((up)); then
		echo "  state: up"
	else
		echo "  state: down or incomplete"
	fi
	((up))
}

# do_restart_sshd is what a server restart does to sshd: the listener and
# every session (and so every remote sshvpn) end, then sshd starts again.
do_restart_sshd() {
	sshd_pid >/dev/null || die "the lab's sshd is not running (is the lab up?)"
	local pid comm
	for pid in $(ip netns pids "$SERVER_NS"); do
		comm=$(cat "/proc/$pid/comm" 2>/dev/null) || continue
		[[ $comm == sshd || $comm == sshd-session ]] && kill "$pid" 2>/dev/null
	done
	for _ in $(seq 50); do
		sshd_pid >/dev/null || break
		sleep 0.1
	done
	rm -f "$LAB_DIR/sshd.pid"
	start_sshd
}

# start_lan_sshd runs a second sshd on the LAN host, reached from the
# client only through the server (ProxyJump), with LAB_LAN_SSHD=yes.
start_lan_sshd() {
	[[ ${LAB_LAN_SSHD:-no} == yes ]] || return 0
	sed -e "s|^ListenAddress .*||" -e "s|^PidFile .*|PidFile $LAB_DIR/sshd-lan.pid|" "$LAB_DIR/sshd_config" >"$LAB_DIR/sshd_lan_config"
	echo "ListenAddress $LAN_HOST" >>"$LAB_DIR/sshd_lan_config"
	/usr/sbin/sshd -t -f "$LAB_DIR/sshd_lan_config" || die "LAN sshd config test failed"
	log "starting a second sshd in $LAN_NS"
	in_ns "$LAN_NS" /usr/sbin/sshd -f "$LAB_DIR/sshd_lan_config" -E "$LAB_DIR/sshd-lan.log"
	for _ in $(seq 50); do
		in_ns "$LAN_NS" timeout 1 bash -c "exec 3<>/dev/tcp/$LAN_HOST/22" 2>/dev/null && return 0
		sleep 0.1
	done
	die "the LAN sshd did not start accepting connections on $LAN_HOST:22"
}

do_env() {
	[[ -f $LAB_DIR/env ]] || die "no env file at $LAB_DIR/env (is the lab up?)"
	cat "$LAB_DIR/env"
}

main() {
	local cmd=${1:-}
	check_config
	case $cmd in
	up) need_root; do_up ;;
	down) need_root; do_down ;;
	status) do_status ;;
	restart-sshd) need_root; do_restart_sshd ;;
	env) do_env ;;
	-h | --help | help) usage ;;
	*) usage >&2; exit 2 ;;
	esac
}

main "$@"
