// Package nat makes the server of `sshvpn --remote --nat` a gateway for its
// client: the client's tunnel addresses are masqueraded behind the server's
// own address on the interface of its default route, and the kernel is set
// to forward.
//
// The rules live in an nftables table of sshvpn's own, "inet sshvpn",
// written over netlink: a chain "postrouting" (type nat, hook postrouting,
// priority srcnat) holds, per session, "ip saddr CLIENT oifname UPLINK
// masquerade" (ip6 saddr for IPv6 clients), and a chain "forward" (type
// filter, hook forward, priority filter, policy accept) accepts what comes
// in from the session's device and what goes out to it as part of a
// connection already established. Every rule carries a comment naming its
// session (process id, process start time, device), so a session removes
// exactly its own rules, and the rules of a session whose process is gone
// are removed by the next session that comes or goes. The last rule out
// deletes the table.
//
// Forwarding (net.ipv4.ip_forward, net.ipv6.conf.all.forwarding, for the
// families of the client's addresses) is turned on where it is off. The
// values found by the first session are kept in a JSON file in the state
// directory (nat.json), with the sessions that need them, per network
// namespace; when no live session needs a family any more, its value is put
// back. A lock file in the state directory (nat.lock) serialises sessions.
//
// Everything happens in the network namespace of the thread that calls
// Enable.
package nat

import (
	"net/netip"

	"github.com/sshvpn/sshvpn/internal/proc"
)

// Table is the name of sshvpn's nftables table (family inet).
const Table = "sshvpn"

// Config describes the session to make a gateway for.
type Config struct {
	// Dev is the session's tun device.
	Dev string
	// Clients are the client's tunnel addresses, IPv4 and/or IPv6: what
	// is masqueraded.
	Clients []netip.Prefix
	// StateDir holds the shared state and its lock, such as /run/sshvpn.
	StateDir string
	// Logf, if not nil, receives what Enable and Close do.
	Logf func(format string, args ...any)
	// Holder is the process the session lives in; the zero Holder means
	// the calling process. Holder and Dev together identify the session.
	Holder proc.Holder
}
