// Package router configures the network around a tunnel device: its
// addresses, MTU and link state, the routes into it, the route to the SSH
// server pinned outside it, a bridge and a MAC address. It is the model of
// tailscale's router.Router: a Router applies a whole Config with Set, as
// often as the tunnel changes (a reconnect that brings other addresses),
// keeps track of what it added, and takes exactly that away on Close. It
// never removes what it did not add: a route or address that was there
// before is left alone.
//
// The routes a Router adds carry RouteProtocol, so that sshvpn can tell its
// own routes (and a killed session's leftovers) from everyone else's. The
// Linux implementation uses netlink; other systems get ErrUnsupported.
// Package routertest has a fake that records what it is asked to do.
package router

import (
	"errors"
	"net"
	"net/netip"
)

// Router brings a device's network to a Config.
type Router interface {
	// Set applies cfg: it adds what is missing, removes what it added
	// earlier that cfg no longer has, and on failure takes back what this
	// call added. MAC and Bridge are applied by the first Set only.
	Set(cfg Config) error
	// Close removes everything the Router added, routes in reverse order
	// of adding.
	Close() error
}

// Config is the network around a tunnel device.
type Config struct {
	MTU   int            // 0 leaves the MTU alone
	Addrs []netip.Prefix // the device's addresses
	// Routes go into the device. One to a network that has a route
	// already yields to it (with a warning), so that the tunnel never
	// takes over what someone else routes.
	Routes []netip.Prefix
	// Exclusive routes go into the device too, but one that exists
	// already is an error: a route this session alone may have (a pooled
	// client's host route, a network behind the client).
	Exclusive []netip.Prefix
	// Blocked get unreachable routes: traffic to them fails at once
	// instead of leaving by a wider route outside the tunnel (the family
	// that --default-route's tunnel does not carry). One that has a route
	// already yields to it (with a warning), unless that is another
	// sshvpn session's block of the same network, which is shared.
	Blocked []netip.Prefix
	// Pin, if valid, is an address whose route the Router pins the way it
	// goes before the tunnel's own addresses and routes are added (the SSH
	// server's, so the connection that carries the tunnel stays outside it).
	Pin netip.Addr
	// Bridge makes a TAP device a port of this existing bridge.
	Bridge string
	// MAC is a TAP device's hardware address.
	MAC net.HardwareAddr
}

// ErrUnsupported is returned on systems without an implementation.
var ErrUnsupported = errors.New("router: configuring interfaces is supported on Linux only")

// Setup is what Configure applies to an interface: the part of a Config
// that belongs to the interface itself.
type Setup struct {
	MTU   int            // 0 leaves the MTU alone
	Addrs []netip.Prefix // addresses to add, IPv4 and IPv6
}

// Route is a route in the main table: to Dst, through Dev, via Gw if set;
// or, with Unreachable (and neither Dev nor Gw), a route that refuses what
// it would carry ("ip route add unreachable"): traffic to Dst fails at once
// with "no route to host" (EHOSTUNREACH). AddRoute marks the routes it adds
// with RouteProtocol, so that sshvpn can tell its own routes (and a killed
// session's leftovers) from everyone else's.
type Route struct {
	Dst         netip.Prefix
	Gw          netip.Addr
	Dev         string
	Unreachable bool
}

// RouteProtocol is the routing protocol number ("proto" in ip route) that
// marks the routes sshvpn adds: "ip route show proto 115" lists them.
const RouteProtocol = 115

// Net is an address an interface has, with its prefix length: the address
// and the network it is connected to.
type Net struct {
	Prefix netip.Prefix
	Dev    string
}

func (n Net) String() string { return n.Prefix.String() + " on " + n.Dev }

func (r Route) String() string {
	s := r.Dst.Masked().String()
	if r.Unreachable {
		s = "unreachable " + s
	}
	if r.Gw.IsValid() {
		s += " via " + r.Gw.String()
	}
	if r.Dev != "" {
		s += " dev " + r.Dev
	}
	return s
}
