package stack

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"slices"

	"github.com/sshvpn/sshvpn/router"
)

// Routing is the stage that gives the device its addresses and routes,
// through its Router: the tunnel's addresses, the networks routed into the
// tunnel, the SSH server's route pinned outside it, and --default-route's
// blocks of the family the tunnel does not carry.
type Routing struct {
	Router router.Router
	// Routes are networks to route into the tunnel (--route); one that
	// has a route already yields to it.
	Routes []netip.Prefix
	// DefaultRoute sends everything through the tunnel: the two halves
	// of the default route for each family the tunnel has, after pinning
	// the route to the SSH server outside it. The family the tunnel has
	// no address in, while it has one in the other, is blocked:
	// unreachable routes for its two halves, so that it does not leave
	// outside the tunnel.
	DefaultRoute bool
	// AllowUntunneled leaves the family that DefaultRoute would block to
	// the routes it takes without the tunnel (--allow-untunneled).
	AllowUntunneled bool
	// HostAddrs puts this side's addresses on the device as host
	// addresses (/32, /128) with a host route to each of the peer's (a
	// pool server, whose one address is on every session's device).
	HostAddrs bool
	Bridge    string           // tap mode: join this bridge
	MAC       net.HardwareAddr // tap mode: the device's address
	Log       *slog.Logger

	blocked []netip.Prefix // what the router was last told to block
}

func (r *Routing) Up(c *Conf) error {
	t, server := c.Tunnel, c.Server
	log := r.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	rc := router.Config{MTU: t.MTU, Addrs: t.Addrs, Bridge: r.Bridge, MAC: r.MAC}
	exclusive := t.Routes // routes granted to the peer (server side)
	if r.HostAddrs {
		rc.Addrs = Hosts(t.Addrs)
		exclusive = append(Hosts(t.PeerAddrs), exclusive...)
	}
	wished := slices.Clone(r.Routes)
	if r.DefaultRoute {
		wished = append(wished, HalfDefaults(t.Addrs)...)
		if !r.AllowUntunneled {
			rc.Blocked = untunneled(t.Addrs)
		}
	}
	rc.Routes, rc.Exclusive = wished, exclusive
	c.Routes = slices.Concat(exclusive, wished)
	switch n, covers := captures(server, slices.Concat(t.Addrs, t.PeerAddrs, exclusive, wished)); {
	case r.DefaultRoute && !server.IsValid():
		return errors.New("--default-route: the SSH server's address is unknown, so its route cannot be pinned outside the tunnel")
	case r.DefaultRoute:
		rc.Pin = server
	case covers:
		rc.Pin = server
		log.Info("the tunnel's networks cover the SSH server's address; its route stays outside the tunnel", "network", n, "server", server)
	}
	if r.Router == nil {
		return nil
	}
	if err := r.Router.Set(rc); err != nil {
		if covers := rc.Pin.IsValid() && !r.DefaultRoute; covers {
			return fmt.Errorf("the tunnel would cover the SSH server's address %v, and its route could not be pinned outside it: %w", server, err)
		}
		return err
	}
	if len(rc.Blocked) > 0 && !slices.Equal(rc.Blocked, r.blocked) {
		fam := "IPv6"
		if rc.Blocked[0].Addr().Is4() {
			fam = "IPv4"
		}
		log.Warn(fmt.Sprintf("the tunnel carries no %s, so --default-route blocks %s while it is up rather than let it leave outside the tunnel; --allow-untunneled lets it go its usual way", fam, fam),
			"unreachable", rc.Blocked)
	}
	r.blocked = rc.Blocked
	return nil
}

// Down removes the routes and addresses the router added.
func (r *Routing) Down() error {
	if r.Router == nil {
		return nil
	}
	return r.Router.Close()
}

// captures returns the first of nets that covers server, if server is
// valid and one does.
func captures(server netip.Addr, nets []netip.Prefix) (netip.Prefix, bool) {
	if !server.IsValid() {
		return netip.Prefix{}, false
	}
	for _, n := range nets {
		if n.Masked().Contains(server) {
			return n, true
		}
	}
	return netip.Prefix{}, false
}

// HalfDefaults are the two halves of the default route for each family the
// tunnel has an address in: more specific than any default route, so they
// win without replacing it.
func HalfDefaults(addrs []netip.Prefix) []netip.Prefix {
	var out []netip.Prefix
	has := func(v4 bool) bool {
		return slices.ContainsFunc(addrs, func(p netip.Prefix) bool { return p.Addr().Is4() == v4 })
	}
	if has(true) {
		out = append(out, netip.MustParsePrefix("0.0.0.0/1"), netip.MustParsePrefix("128.0.0.0/1"))
	}
	if has(false) {
		out = append(out, netip.MustParsePrefix("::/1"), netip.MustParsePrefix("8000::/1"))
	}
	return out
}

// untunneled are the two halves of the default route of the family the
// tunnel has no address in, if it has one in the other: what
// --default-route blocks, so that this family does not leave outside the
// tunnel. A tunnel with both families, or none (a bridge port), has none.
func untunneled(addrs []netip.Prefix) []netip.Prefix {
	halves := HalfDefaults(addrs)
	if len(halves) != 2 {
		return nil
	}
	if halves[0].Addr().Is4() {
		return []netip.Prefix{netip.MustParsePrefix("::/1"), netip.MustParsePrefix("8000::/1")}
	}
	return []netip.Prefix{netip.MustParsePrefix("0.0.0.0/1"), netip.MustParsePrefix("128.0.0.0/1")}
}

// Hosts turns each prefix into its address alone (/32 or /128).
func Hosts(ps []netip.Prefix) []netip.Prefix {
	out := make([]netip.Prefix, len(ps))
	for i, p := range ps {
		out[i] = netip.PrefixFrom(p.Addr(), p.Addr().BitLen())
	}
	return out
}
