package stack

import (
	"fmt"
	"log/slog"
	"net/netip"

	"github.com/sshvpn/sshvpn/dns"
	"github.com/sshvpn/sshvpn/nat"
)

// NAT is the server's --nat stage: forwarding for the client's packets
// and their replies, and the client's addresses masqueraded (see package
// nat). It comes up once, with the first tunnel.
type NAT struct {
	// StateDir is where the NAT sessions of this machine keep their
	// shared state: the registry's directory, which the sweep at every
	// session start reads.
	StateDir string
	Log      *slog.Logger // the admin's log
	// Admin are attributes that keep its lines for the admin alone.
	Admin []any

	gw *nat.Gateway
}

func (n *NAT) Up(c *Conf) error {
	if n.gw != nil {
		return nil
	}
	gw, err := nat.Enable(nat.Config{Dev: c.Dev, Clients: Hosts(c.Tunnel.PeerAddrs), StateDir: n.StateDir,
		Logf: func(f string, a ...any) { n.Log.Info(fmt.Sprintf(f, a...), n.Admin...) }})
	if err != nil {
		return err
	}
	n.gw = gw
	n.Log.Info("gateway for the client: forwarding its packets and their replies, masquerading its addresses", "client", c.Tunnel.PeerAddrs)
	return nil
}

func (n *NAT) Down() error {
	gw := n.gw
	n.gw = nil
	if gw == nil {
		return nil
	}
	return gw.Close()
}

// DNS is the client's --dns stage: names resolve through Servers while the
// tunnel is up (see package dns). It comes up once; a failure is logged,
// not fatal: the tunnel works without it.
type DNS struct {
	Servers []netip.Addr
	Domains []string // only names under these (--dns-domain); none: every name
	Log     *slog.Logger

	undo func() error
}

func (d *DNS) Up(c *Conf) error {
	if d.undo != nil || len(d.Servers) == 0 {
		return nil
	}
	undo, err := dns.Apply(c.Dev, d.Servers, d.Domains, func(f string, a ...any) { d.Log.Debug(fmt.Sprintf(f, a...)) })
	if err != nil {
		d.Log.Error(err.Error())
		return nil
	}
	d.undo = undo
	d.Log.Info("DNS through the tunnel", "servers", d.Servers)
	return nil
}

func (d *DNS) Down() error {
	undo := d.undo
	d.undo = nil
	if undo == nil {
		return nil
	}
	return undo()
}
