// Package tcpinfo reads the kernel's counters of a TCP connection that
// may belong to another process (ssh's, sshd's), found by its addresses
// in the socket diagnostics of the caller's network namespace
// (NETLINK_INET_DIAG), as "ss -ti" does. sshvpn's pacer reads how often
// the connection under the tunnel retransmits.
package tcpinfo

import (
	"errors"
	"time"
)

// Info is what the kernel counts of one TCP connection, from the side of
// the socket named by Get's local address.
type Info struct {
	SegsOut uint32        // segments sent, retransmissions included
	Retrans uint32        // segments retransmitted, in all
	RTT     time.Duration // the smoothed round trip
}

// ErrNotFound is returned, wrapped, by Get when no TCP connection has
// those addresses in this network namespace.
var ErrNotFound = errors.New("tcpinfo: no such TCP connection")
