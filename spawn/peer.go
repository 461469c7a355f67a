package spawn

import (
	"errors"
	"fmt"
	"net/netip"
)

// ErrPeerUnknown is returned, wrapped, by PeerAddr when neither ssh nor its
// child processes hold an established TCP connection, as when a ProxyCommand
// relays the session some other way or ssh shares a ControlMaster's
// connection.
var ErrPeerUnknown = errors.New("the SSH server's address is unknown")

// PeerAddr returns the remote address of the TCP connection the running ssh
// child holds: the address ssh actually connected to, after its
// configuration, name resolution and address family were applied. When ssh
// itself holds no TCP socket (ProxyJump, a ProxyCommand such as nc, a
// backgrounded ControlPersist master), the first established TCP connection
// among its child processes (up to three generations down) is taken, which is
// the first hop's address. IPv4-mapped IPv6 addresses are returned as IPv4. A
// loopback address means ssh goes through a local proxy.
//
// PeerAddr does not wait: it is meaningful once data has flowed through the
// Conn (after the sshvpn handshake, say), when ssh is known to have
// connected. Before that it may fail, or see a connection ssh is about to
// abandon. It fails after ssh has exited, with an error wrapping
// ErrPeerUnknown when no connection is found, and with one wrapping
// errors.ErrUnsupported where /proc is not available (other than Linux).
func (c *Conn) PeerAddr() (netip.AddrPort, error) {
	if c.exitedNow() {
		return netip.AddrPort{}, errors.New("spawn: ssh has exited; the SSH server's address is unknown")
	}
	ap, err := peerOfPID(c.cmd.Process.Pid)
	// The pid may have been reaped, and reused, while /proc was read.
	if c.exitedNow() {
		return netip.AddrPort{}, errors.New("spawn: ssh has exited; the SSH server's address is unknown")
	}
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("spawn: %w", err)
	}
	return ap, nil
}

func (c *Conn) exitedNow() bool {
	select {
	case <-c.exited:
		return true
	default:
		return false
	}
}
