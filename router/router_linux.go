package router

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/netip"
	"slices"

	"github.com/sshvpn/sshvpn/tun"
)

// Options configure New.
type Options struct {
	Logger *slog.Logger // nil discards
	// Record, if set, is called with every route the Router holds whenever
	// that changes, before a route is added (so that a concurrent cleanup
	// never takes it for a leftover) and after one is removed.
	Record func([]Route)
	// Shared, if set, reports whether another live session holds a route
	// too: such a route (the pinned route to an SSH server that two
	// tunnels use) is shared, not removed, by the Router that goes first.
	Shared func(Route) bool
}

// New returns the Router of dev.
func New(dev tun.Device, o Options) Router {
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &linuxRouter{dev: dev, name: dev.Name(), log: log, record: o.Record, shared: o.Shared}
}

type linuxRouter struct {
	dev    tun.Device
	name   string
	log    *slog.Logger
	record func([]Route)
	shared func(Route) bool

	set    bool           // the first Set has run (MAC and bridge are done)
	added  []Route        // routes added, in order
	addrs  []netip.Prefix // addresses added: a persistent device keeps them
	pinned netip.Addr
}

// ours reports whether the interface is still this Router's device. Once a
// non-persistent device is closed its name is free, and another session's
// device may carry it: what is on that one is not ours to remove.
func (r *linuxRouter) ours() bool { return tun.Same(r.dev, r.name) }

func (r *linuxRouter) Set(cfg Config) (err error) {
	wanted := r.wanted(cfg)
	// A route whose kind changes (a reconnect's tunnel carries a family
	// that was blocked, or no longer carries one) goes first: its
	// replacement, to the same network, could not be added beside it.
	for i := len(r.added) - 1; i >= 0; i-- {
		rt := r.added[i]
		if !r.pin(rt) && !slices.Contains(wanted, rt) && slices.ContainsFunc(wanted, func(w Route) bool { return w.Dst == rt.Dst }) {
			r.delRoute(i)
		}
	}
	nRoutes, nAddrs := len(r.added), len(r.addrs)
	first := !r.set
	defer func() {
		if err != nil { // take back what this call added
			for i := len(r.added) - 1; i >= nRoutes; i-- {
				r.delRoute(i)
			}
			if len(r.addrs) > nAddrs && r.ours() {
				DelAddrs(r.name, r.addrs[nAddrs:])
			}
			r.addrs = r.addrs[:nAddrs]
		}
	}()
	// First the pin, before the tunnel's addresses and routes could
	// capture the address.
	if cfg.Pin.IsValid() && cfg.Pin != r.pinned {
		route, err := RouteTo(cfg.Pin)
		if err != nil {
			return err
		}
		if route.Dev != r.name && route.Dev != "lo" { // lo: the address is this machine's
			if err := r.addPin(route); err != nil {
				return err
			}
		}
	}
	if first && cfg.MAC != nil {
		if err := SetMAC(r.name, cfg.MAC); err != nil {
			return err
		}
	}
	added, err := Configure(r.name, Setup{MTU: cfg.MTU, Addrs: cfg.Addrs})
	r.addrs = append(r.addrs, added...)
	if err != nil {
		return err
	}
	if first && cfg.Bridge != "" {
		if err := SetBridge(r.name, cfg.Bridge); err != nil {
			return err
		}
	}
	for _, dst := range cfg.Exclusive {
		if err := r.addRoute(Route{Dst: dst.Masked(), Dev: r.name}, true); err != nil {
			return err
		}
	}
	for _, dst := range cfg.Routes {
		if err := r.addRoute(Route{Dst: dst.Masked(), Dev: r.name}, false); err != nil {
			return err
		}
	}
	for _, dst := range cfg.Blocked {
		if err := r.addShared(Route{Dst: dst.Masked(), Unreachable: true},
			"a route to a network that --default-route would block exists already; leaving it alone, so traffic to it goes where that route takes it"); err != nil {
			return err
		}
	}
	// What an earlier Set added that this one no longer has.
	for i := len(r.added) - 1; i >= 0; i-- {
		rt := r.added[i]
		keep := slices.Contains(wanted, rt)
		if r.pin(rt) {
			keep = cfg.Pin.IsValid() && rt.Dst == netip.PrefixFrom(cfg.Pin, cfg.Pin.BitLen())
		}
		if !keep {
			r.delRoute(i)
		}
	}
	var gone []netip.Prefix
	r.addrs = slices.DeleteFunc(r.addrs, func(a netip.Prefix) bool {
		if slices.Contains(cfg.Addrs, a) {
			return false
		}
		gone = append(gone, a)
		return true
	})
	if len(gone) > 0 {
		if err := DelAddrs(r.name, gone); err != nil {
			r.log.Warn(err.Error())
		}
	}
	if cfg.Pin.IsValid() {
		r.pinned = cfg.Pin
	}
	r.set = true
	return nil
}

// wanted are the routes, pins aside, that cfg asks for.
func (r *linuxRouter) wanted(cfg Config) []Route {
	var out []Route
	for _, dst := range slices.Concat(cfg.Exclusive, cfg.Routes) {
		out = append(out, Route{Dst: dst.Masked(), Dev: r.name})
	}
	for _, dst := range cfg.Blocked {
		out = append(out, Route{Dst: dst.Masked(), Unreachable: true})
	}
	return out
}

// pin reports whether rt, one of the routes added, is a pinned route: not
// into the device, and not a block.
func (r *linuxRouter) pin(rt Route) bool {
	return !rt.Unreachable && (rt.Dev != r.name || rt.Gw.IsValid())
}

// addRoute adds rt and remembers it. A route to rt.Dst that is there
// already is never taken over or removed: for an exclusive route (one this
// session alone may have) that is an error, otherwise a warning. A route
// this Router holds already is kept as it is.
func (r *linuxRouter) addRoute(rt Route, exclusive bool) error {
	return r.add(rt, exclusive, false)
}

func (r *linuxRouter) add(rt Route, exclusive, shared bool) error {
	if slices.Contains(r.added, rt) {
		return nil
	}
	r.added = append(r.added, rt)
	r.recordRoutes()
	err := AddRoute(rt)
	if err != nil {
		r.added = r.added[:len(r.added)-1]
		r.recordRoutes()
	}
	switch {
	case errors.Is(err, fs.ErrExist) && exclusive:
		return fmt.Errorf("route %v exists already on this server (another session's or the admin's; an earlier session of this client ends after --dead-after without traffic); refusing to take it over", rt.Dst)
	case errors.Is(err, fs.ErrExist) && shared:
		return err
	case errors.Is(err, fs.ErrExist):
		r.log.Warn("a route to this network exists already; leaving it alone, so this tunnel does not get its traffic", "route", rt)
		return nil
	case err != nil:
		return err
	}
	r.log.Debug("added route", "route", rt)
	return nil
}

// addPin adds a pinned route. One that another sshvpn session pinned
// already (the same SSH server) is shared: recorded as this Router's too, so
// that it stays while either session needs it.
func (r *linuxRouter) addPin(rt Route) error {
	return r.addShared(rt, "a route to the SSH server exists already; leaving it as it is")
}

// addShared adds a route that sessions share: one that another sshvpn
// session added already, the same, is recorded as this Router's too, so
// that it stays while either session needs it. Another route to rt.Dst is
// left alone, with warning exists.
func (r *linuxRouter) addShared(rt Route, exists string) error {
	err := r.add(rt, false, true)
	if !errors.Is(err, fs.ErrExist) {
		return err
	}
	if ours, _ := ListRoutes(RouteProtocol); slices.Contains(ours, rt) {
		r.added = append(r.added, rt)
		r.recordRoutes()
		r.log.Debug("sharing the route another sshvpn session added", "route", rt)
		return nil
	}
	r.log.Warn(exists, "route", rt)
	return nil
}

// delRoute removes the i-th route it added, unless another live session
// holds it too.
func (r *linuxRouter) delRoute(i int) {
	rt := r.added[i]
	if r.shared != nil && r.shared(rt) {
		r.added = slices.Delete(r.added, i, i+1)
		r.recordRoutes()
		return
	}
	if rt.Dev != r.name || r.ours() { // else it went with the device
		if err := DelRoute(rt); err != nil {
			r.log.Error(err.Error())
		}
	}
	r.added = slices.Delete(r.added, i, i+1)
	r.recordRoutes()
}

func (r *linuxRouter) recordRoutes() {
	if r.record != nil {
		r.record(slices.Clone(r.added))
	}
}

func (r *linuxRouter) Close() error {
	for i := len(r.added) - 1; i >= 0; i-- {
		r.delRoute(i)
	}
	var err error
	if len(r.addrs) > 0 && r.ours() {
		err = DelAddrs(r.name, r.addrs)
	}
	r.addrs = nil
	r.pinned = netip.Addr{}
	return err
}
