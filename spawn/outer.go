package spawn

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
)

// The TCP connection under the SSH connection, as this machine sees it:
// the tunnel's pacer reads its retransmissions (internal/tcpinfo) to tell
// a lossy path. Each Conn of this package names it with OuterTCP; local
// and remote are this end's address and the other's, IPv4-mapped
// addresses as IPv4.

// OuterTCP is the TCP connection the ssh child holds (with ProxyJump or a
// ProxyCommand, the first hop's, as SocketPeer finds it).
func (c *Process) OuterTCP() (local, remote netip.AddrPort, err error) {
	if c.exitedNow() {
		return local, remote, errors.New("spawn: ssh has exited")
	}
	row, err := connOfPID(c.cmd.Process.Pid)
	if err != nil {
		return local, remote, fmt.Errorf("spawn: %w", err)
	}
	return row.local, row.remote, nil
}

// OuterTCP is sshd's connection to the SSH client, from SSH_CONNECTION
// ("client-address client-port server-address server-port").
func (s *stdio) OuterTCP() (local, remote netip.AddrPort, err error) {
	return sshConnection(s.conn)
}

func sshConnection(v string) (local, remote netip.AddrPort, err error) {
	f := strings.Fields(v)
	if len(f) != 4 {
		return local, remote, fmt.Errorf("spawn: SSH_CONNECTION %q: want four fields", v)
	}
	var ap [2]netip.AddrPort
	for i := range ap {
		a, err := netip.ParseAddr(f[2*i])
		if err != nil {
			return local, remote, fmt.Errorf("spawn: SSH_CONNECTION: %w", err)
		}
		port, err := strconv.ParseUint(f[2*i+1], 10, 16)
		if err != nil {
			return local, remote, fmt.Errorf("spawn: SSH_CONNECTION: port %q", f[2*i+1])
		}
		ap[i] = netip.AddrPortFrom(a.Unmap(), uint16(port))
	}
	return ap[1], ap[0], nil
}

// OuterTCP is the connection to the first hop.
func (c *nativeConn) OuterTCP() (local, remote netip.AddrPort, err error) {
	l, ok1 := c.local.(*net.TCPAddr)
	r, ok2 := c.peer.(*net.TCPAddr)
	if !ok1 || !ok2 {
		return local, remote, fmt.Errorf("spawn: not a TCP connection (%v)", c.peer)
	}
	lp, rp := l.AddrPort(), r.AddrPort()
	return netip.AddrPortFrom(lp.Addr().Unmap(), lp.Port()), netip.AddrPortFrom(rp.Addr().Unmap(), rp.Port()), nil
}
