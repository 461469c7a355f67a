package spawn

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
)

// SocketPeer returns the remote address of the TCP connection the running ssh
// child holds: the address ssh actually connected to, after its
// configuration, name resolution and address family were applied. When ssh
// itself holds no TCP socket (ProxyJump, a ProxyCommand such as nc, a
// backgrounded ControlPersist master), the first established TCP connection
// among its child processes (up to three generations down) is taken, which is
// the first hop's address. IPv4-mapped IPv6 addresses are returned as IPv4. A
// loopback address means ssh goes through a local proxy.
//
// SocketPeer does not wait: it is meaningful once data has flowed through the
// Conn (after the sshvpn handshake, say), when ssh is known to have
// connected. Before that it may fail, or see a connection ssh is about to
// abandon. It fails after ssh has exited, with an error wrapping
// ErrPeerUnknown when no connection is found, and with one wrapping
// errors.ErrUnsupported where /proc is not available (other than Linux).
func (c *Process) SocketPeer() (netip.AddrPort, error) {
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

func (c *Process) exitedNow() bool {
	select {
	case <-c.exited:
		return true
	default:
		return false
	}
}

// PeerAddr is the SSH server's address as ssh connected to it (with
// ProxyJump, the first hop's): read from ssh's socket (see SocketPeer), or
// else from "ssh -G" (see Options.ServerAddr). A connection through a local
// proxy (ProxyCommand nc -x 127.0.0.1:1080 ...) is answered from ssh -G,
// which knows the real server, or refuses.
func (c *Process) PeerAddr(ctx context.Context) (netip.Addr, error) {
	ap, err := c.SocketPeer()
	if err == nil && ap.Addr().IsLoopback() {
		err = fmt.Errorf("spawn: ssh connects through a local proxy at %v", ap)
	}
	if err == nil {
		c.logf("spawn: SSH server address %v, from ssh's connection", ap)
		return ap.Addr(), nil
	}
	c.logf("spawn: SSH server address unknown from ssh's connection (%v); asking ssh -G", err)
	a, err2 := c.opts.ServerAddr(ctx)
	if err2 != nil {
		return netip.Addr{}, fmt.Errorf("%v; %v", err, err2)
	}
	c.logf("spawn: SSH server address %v, from ssh -G", a)
	return a, nil
}
