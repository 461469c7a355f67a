// Package nat makes the server of `sshvpn --remote --nat` a gateway for its
// client: the client's tunnel addresses are masqueraded behind the server's
// own address on whatever interface the route to each destination takes
// (the default route or any other, but never a tunnel device), and the
// kernel is set to forward, for those sessions only.
//
// The rules live in an nftables table of sshvpn's own, "inet sshvpn",
// written over netlink. With one session on tun0 for client 198.18.0.1,
// in a namespace that did not forward IPv4 before:
//
//	table inet sshvpn {
//		chain postrouting {
//			type nat hook postrouting priority srcnat; policy accept;
//			ip saddr 198.18.0.1 meta oifkind "tun" counter return comment "sshvpn nat PID START tun0"
//			ip saddr 198.18.0.1 counter masquerade comment "sshvpn nat PID START tun0"
//		}
//		chain forward {
//			type filter hook forward priority filter; policy accept;
//			jump sessions
//			meta nfproto ipv4 counter drop comment "sshvpn nat guard ipv4"
//		}
//		chain sessions {
//			iifname "tun0" meta oifkind "tun" counter return comment "sshvpn nat PID START tun0"
//			iifname "tun0" counter accept comment "sshvpn nat PID START tun0"
//			oifname "tun0" ct state established,related counter accept comment "sshvpn nat PID START tun0"
//		}
//	}
//
// (ip6 saddr, and a guard "meta nfproto ipv6 drop", for IPv6 clients.) The
// kind "tun" is that of every tun and tap device, sshvpn's or not. The
// rules test for it and return rather than match "oifkind != tun": on a
// device with no kind, such as a physical NIC, the kernel ends the rule as
// not matching whatever the comparison.
//
// So what is forwarded, in a family whose forwarding sshvpn turned on:
// packets that come in from a --nat session's device and leave by any
// interface but a tunnel device, and packets out to that device of
// connections it started (ct state established or related). Nothing else:
// not other sessions' tunnels (without --nat), not hosts that route
// through the server, not one tunnel to another; the guard drops them. In
// a family whose forwarding was on before the first session came (its
// saved value is "1"), there is no guard: the admin's own rules decide what
// is forwarded, and this table only adds its accepts (which cannot
// override a drop of another table: every base chain on the hook runs) and
// the masquerade.
//
// Every rule of a session carries a comment naming it (process id,
// process start time, device), so a session removes exactly its own
// rules. The rules of a session whose process is gone are removed by the
// next Enable, Close or Cleanup in the same namespace and state
// directory; the guards are worked out again each time, in the same
// nftables transaction. The last rule out deletes the table.
//
// Forwarding (net.ipv4.ip_forward, net.ipv6.conf.all.forwarding, for the
// families of the client's addresses) is turned on where it is off, after
// the guard is in place. The values found by the first session are kept in
// a JSON file in the state directory (nat.json), with the sessions that
// need them, per network namespace; when no live session needs a family
// any more, its value is put back, and then its guard goes. A lock file in
// the state directory (nat.lock) serialises sessions; sessions count
// together per state directory, so every --nat session of a namespace must
// use the same one.
//
// Everything happens in the network namespace of the thread that calls
// Enable.
package nat

import (
	"fmt"
	"net/netip"
	"sync"

	"github.com/sshvpn/sshvpn/internal/proc"
	"github.com/vishvananda/netns"
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

// Gateway is one session's share of the gateway: its rules, and its claim
// on the forwarding sysctls.
type Gateway struct {
	id      session
	clients []netip.Prefix
	dir     string
	logf    func(string, ...any)
	ns      netns.NsHandle // the network namespace it changed
	nsKey   string         // that namespace as proc.NetNS names it

	mu     sync.Mutex
	closed bool
}

// session identifies a session: its process and its device.
type session struct {
	PID   int    `json:"pid"`
	Start string `json:"start"`
	Dev   string `json:"dev"`
}

func (s session) alive() bool { return proc.Holder{PID: s.PID, Start: s.Start}.Alive() }

func (s session) String() string { return fmt.Sprintf("%s (pid %d)", s.Dev, s.PID) }
