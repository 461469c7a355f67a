package main

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"time"

	"github.com/sshvpn/sshvpn"
	"github.com/sshvpn/sshvpn/hook"
	"github.com/sshvpn/sshvpn/registry"
	"github.com/sshvpn/sshvpn/tun"
)

// linkFlags set up the device beyond its addresses; both sides have them.
type linkFlags struct {
	Route       []string      `placeholder:"CIDR" help:"Route this network into the tunnel while it is up (IPv4 or IPv6; repeatable). Removed when the tunnel goes down."`
	Bridge      string        `placeholder:"NAME" help:"tap mode: make the device a port of this existing Linux bridge."`
	MAC         string        `name:"mac" placeholder:"ADDR" help:"tap mode: the device's MAC address (default: random)."`
	Up          string        `placeholder:"SCRIPT" help:"Run SCRIPT once the link is up, with SSHVPN_* variables (see README, Hooks). If it fails, the tunnel does not come up."`
	Down        string        `placeholder:"SCRIPT" help:"Run SCRIPT once when the tunnel goes down, whatever ends it (only if the link came up)."`
	HookTimeout time.Duration `default:"30s" help:"Kill a hook that runs longer than this."`
}

// args renders the flags that differ from their defaults, for
// authorized-key.
func (f *linkFlags) args() []string {
	var a []string
	for _, r := range f.Route {
		a = append(a, "--route="+r)
	}
	for _, kv := range [][2]string{{"bridge", f.Bridge}, {"mac", f.MAC}, {"up", f.Up}, {"down", f.Down}} {
		if kv[1] != "" {
			a = append(a, "--"+kv[0]+"="+kv[1])
		}
	}
	if f.HookTimeout != 0 && f.HookTimeout != hook.DefaultTimeout {
		a = append(a, "--hook-timeout="+f.HookTimeout.String())
	}
	return a
}

// link is one side's device setup beyond the handshake: MAC, addresses and
// MTU, bridge, routes, default route and the up hook; down undoes what up
// did, once.
type link struct {
	log      *slog.Logger
	hooks    *hook.Runner
	routes   []netip.Prefix
	bridge   string
	mac      net.HardwareAddr
	defRoute bool       // client: send all traffic through the tunnel
	server   netip.Addr // client: the SSH server, pinned outside the tunnel
	env      hook.Env   // Side, Server or Peer; the rest is filled in by up

	added  []tun.Route // routes up added, removed by down in reverse
	dev    string
	device tun.Device
	addrs  []netip.Prefix // addresses up added: a persistent device keeps them

	// reg and entry, if set, record this session and the routes it adds,
	// so that a later session can remove them should this one be killed
	// before it cleans up (sweep).
	reg   *registry.Registry
	entry *registry.Entry
}

// ours reports whether the interface called dev is still this session's
// device. Once a non-persistent device is closed its name is free, and a new
// session's device may carry it: what is on that one is not ours to remove.
func (l *link) ours() bool {
	return l.device != nil && tun.Same(l.device, l.dev)
}

func newLink(f *linkFlags, mode tun.Mode, log *slog.Logger) (*link, error) {
	routes, err := parsePrefixes("route", f.Route)
	if err != nil {
		return nil, err
	}
	l := &link{log: log, routes: routes, bridge: f.Bridge,
		hooks: &hook.Runner{Up: f.Up, Down: f.Down, Timeout: f.HookTimeout, Log: log}}
	if f.MAC != "" {
		if l.mac, err = net.ParseMAC(f.MAC); err != nil || len(l.mac) != 6 {
			return nil, fmt.Errorf("--mac %q: want an Ethernet address such as 02:00:5e:10:00:01", f.MAC)
		}
	}
	if mode != tun.ModeTAP && (f.Bridge != "" || f.MAC != "") {
		return nil, errors.New("--bridge and --mac need --mode tap: a tun device carries IP packets, not Ethernet frames")
	}
	return l, nil
}

// up configures dev for tunnel t and runs the up hook. On error, what was
// done is undone.
func (l *link) up(dev tun.Device, t sshvpn.Tunnel, setup tun.Setup, extra []netip.Prefix) (err error) {
	defer func() {
		if err != nil {
			l.removeRoutes()
			l.removeAddrs()
		}
	}()
	name := dev.Name()
	l.dev, l.device = name, dev
	wished := slices.Clone(l.routes)
	if l.defRoute {
		wished = append(wished, halfDefaults(t.Addrs)...)
	}
	// Before anything of the tunnel could capture it: the route to the
	// SSH server, pinned outside the tunnel when the tunnel's networks
	// would cover the server's address.
	if l.defRoute {
		if err := l.pinServer(); err != nil {
			return fmt.Errorf("--default-route: %w", err)
		}
	} else if n, ok := l.captures(slices.Concat(t.Addrs, t.PeerAddrs, extra, wished)); ok {
		if err := l.pinServer(); err != nil {
			return fmt.Errorf("the tunnel's network %v covers the SSH server's address %v, and its route could not be pinned outside the tunnel: %w", n, l.server, err)
		}
		l.log.Info("the tunnel's networks cover the SSH server's address; its route stays outside the tunnel", "network", n, "server", l.server)
	}
	if l.mac != nil {
		if err := tun.SetMAC(name, l.mac); err != nil {
			return err
		}
	}
	added, err := tun.Configure(name, setup)
	l.addrs = added
	if err != nil {
		return err
	}
	if l.bridge != "" {
		if err := tun.SetBridge(name, l.bridge); err != nil {
			return err
		}
	}
	// extra routes (a pooled client's host route, routes granted to the
	// client) belong to this session alone; --route and the default route
	// are the user's wishes, which yield to a route that is there already.
	for _, r := range extra {
		if err := l.addRoute(tun.Route{Dst: r, Dev: name}, true); err != nil {
			return err
		}
	}
	for _, r := range wished {
		if err := l.addRoute(tun.Route{Dst: r, Dev: name}, false); err != nil {
			return err
		}
	}
	l.env.Dev, l.env.Mode, l.env.MTU = name, string(t.Mode), t.MTU
	l.env.Addrs, l.env.PeerAddrs, l.env.Routes = t.Addrs, t.PeerAddrs, slices.Concat(extra, wished)
	return l.hooks.RunUp(l.env)
}

// pinServer routes the SSH server's address the way it goes now, so that the
// default route through the tunnel does not capture the SSH connection that
// carries the tunnel.
func (l *link) pinServer() error {
	if !l.server.IsValid() {
		return errors.New("the SSH server's address is unknown, so its route cannot be pinned outside the tunnel")
	}
	r, err := tun.RouteTo(l.server)
	if err != nil {
		return err
	}
	if r.Dev == "lo" {
		return nil // the server is this machine
	}
	return l.addRoute(r, false)
}

// captures returns the first of nets that covers the SSH server's address,
// if the server is known and one does.
func (l *link) captures(nets []netip.Prefix) (netip.Prefix, bool) {
	if !l.server.IsValid() {
		return netip.Prefix{}, false
	}
	for _, n := range nets {
		if n.Masked().Contains(l.server) {
			return n, true
		}
	}
	return netip.Prefix{}, false
}

// addRoute adds r and remembers to remove it. A route to r.Dst that is there
// already is never taken over or removed: for an exclusive route (one this
// session alone may have) that is an error, otherwise a warning.
func (l *link) addRoute(r tun.Route, exclusive bool) error {
	// Recorded before it is added: a concurrent sweep must never take it
	// for a leftover.
	l.added = append(l.added, r)
	l.record()
	err := tun.AddRoute(r)
	if err != nil {
		l.added = l.added[:len(l.added)-1]
		l.record()
	}
	if errors.Is(err, fs.ErrExist) && exclusive {
		return fmt.Errorf("route %v exists already on this server (another session's or the admin's; an earlier session of this client ends after --dead-after without traffic); refusing to take it over", r.Dst)
	}
	if errors.Is(err, fs.ErrExist) {
		l.log.Warn("a route to this network exists already; leaving it alone, so this tunnel does not get its traffic", "route", r)
		return nil
	}
	if err != nil {
		return err
	}
	l.log.Debug("added route", "route", r)
	return nil
}

// record writes the routes this session added into its registry entry.
func (l *link) record() {
	if l.entry == nil {
		return
	}
	rs := make([]registry.Route, len(l.added))
	for i, r := range l.added {
		rs[i] = registry.Route{Dst: r.Dst.Masked(), Gw: r.Gw, Dev: r.Dev}
	}
	if err := l.entry.Update(func(rec *registry.Record) { rec.Added = rs }); err != nil {
		l.log.Debug("recording routes", "err", err)
	}
}

// sweep removes the routes that sshvpn sessions added (tun.RouteProtocol)
// and that no live session in this network namespace holds: what a session
// killed outright (kill -9, a crash, a power cut of its container) left
// behind, such as the pinned route to its SSH server.
func (l *link) sweep() {
	if l.reg == nil {
		return
	}
	unlock, err := l.reg.Lock()
	if err != nil {
		l.log.Debug("not looking for stale routes", "err", err)
		return
	}
	defer unlock()
	// Routes first, records second: a route added after this listing is
	// not judged, and one added before it was recorded before it.
	routes, err := tun.Routes(tun.RouteProtocol)
	if err != nil || len(routes) == 0 {
		return
	}
	recs, err := l.reg.List()
	if err != nil {
		l.log.Debug("not looking for stale routes", "err", err)
		return
	}
	owned := map[registry.Route]bool{}
	for _, rec := range recs {
		for _, r := range rec.Added {
			owned[r] = true
		}
	}
	for _, r := range routes {
		if owned[registry.Route{Dst: r.Dst.Masked(), Gw: r.Gw, Dev: r.Dev}] {
			continue
		}
		if err := tun.DelRoute(r); err != nil {
			l.log.Debug("removing a stale route", "route", r, "err", err)
			continue
		}
		l.log.Info("removed a route that an earlier sshvpn session left behind", "route", r)
	}
}

// halfDefaults are the two halves of the default route for each family the
// tunnel has an address in: more specific than any default route, so they win
// without replacing it.
func halfDefaults(addrs []netip.Prefix) []netip.Prefix {
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

// down runs the down hook (once), removes the routes and addresses up
// added, and the session's registry entry.
func (l *link) down() {
	if err := l.hooks.RunDown(); err != nil {
		l.log.Error(err.Error())
	}
	l.removeRoutes()
	l.removeAddrs()
	if l.entry != nil {
		l.entry.Remove()
		l.entry = nil
	}
}

func (l *link) removeAddrs() {
	if len(l.addrs) > 0 && l.ours() {
		if err := tun.DelAddrs(l.dev, l.addrs); err != nil {
			l.log.Error(err.Error())
		}
	}
	l.addrs = nil
}

func (l *link) removeRoutes() {
	ours := l.ours()
	for i := len(l.added) - 1; i >= 0; i-- {
		if l.added[i].Dev == l.dev && !ours {
			continue // went with the device
		}
		if err := tun.DelRoute(l.added[i]); err != nil {
			l.log.Error(err.Error())
		}
	}
	l.added = nil
	l.record()
}
