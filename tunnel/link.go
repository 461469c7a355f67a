package tunnel

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/sshvpn/sshvpn/framing"
	"github.com/sshvpn/sshvpn/hook"
	"github.com/sshvpn/sshvpn/router"
	"github.com/sshvpn/sshvpn/tun"
)

// LinkConfig configures a Link.
type LinkConfig struct {
	// Router applies each tunnel's addresses and routes to the device;
	// nil leaves the device's network alone (tests, or a device the admin
	// configured).
	Router router.Router
	// Routes are networks to route into the tunnel (--route); one that has
	// a route already yields to it.
	Routes []netip.Prefix
	// DefaultRoute sends everything through the tunnel: the two halves of
	// the default route for each family the tunnel has, after pinning the
	// route to the SSH server outside it. A family the tunnel has no
	// address in, while it has one in the other, is blocked: unreachable
	// routes for its two halves, so that its traffic fails at once
	// instead of leaving outside the tunnel (IPv6 past an IPv4-only
	// tunnel).
	DefaultRoute bool
	// AllowUntunneled leaves the family that DefaultRoute would block to
	// the routes it takes without the tunnel (--allow-untunneled).
	AllowUntunneled bool
	// HostAddrs puts this side's addresses on the device as host addresses
	// (/32, /128) with a host route to each of the peer's (a pool server,
	// whose one address is on every session's device).
	HostAddrs bool
	Bridge    string           // tap mode: join this bridge
	MAC       net.HardwareAddr // tap mode: the device's address
	// Hooks run the up hook when the link first comes up and the down hook
	// when it is closed; with Rehook, also around every reconnect
	// (SSHVPN_SCRIPT_CONTEXT=restart). Env carries Side and Server or Peer.
	Hooks  *hook.Runner
	Env    hook.Env
	Rehook bool
	// OnUp, if set, is told of every tunnel the link is brought to, after
	// the router and before the hooks; an error fails the bring-up.
	OnUp func(Tunnel) error
	// OnReady, if set, is told of every tunnel the link was brought up
	// to, once the up hook (if it ran) has succeeded: the tunnel is
	// usable.
	OnReady func(Tunnel)
	Logger  *slog.Logger
	Stats   *Stats // counters for the whole run; allocated when nil
}

// A Link is this side's end of the tunnel for a whole run: the device, the
// network around it (through its Router) and the hooks. Connections come
// and go beneath it: each one, after its handshake, brings the link to the
// tunnel it agreed (Up) and attaches its pump. The link reads the device
// all along; while no connection is attached, what it reads is dropped and
// counted (Stats.DroppedDetached), never queued. Only Close closes the
// device.
type Link struct {
	dev   tun.Device
	cfg   LinkConfig
	log   *slog.Logger
	stats *Stats

	vnet    bool                 // the device's packets carry a virtio-net header
	current atomic.Pointer[pump] // the attached connection's pump, if any
	// deliver is held by the device reader while it frames a packet for a
	// pump: a pump that detached waits for it, after which no packet can
	// reach it.
	deliver sync.Mutex
	dead    chan struct{} // closed when reading the device failed
	readErr error         // why, once dead is closed
	closing chan struct{}
	read    sync.WaitGroup

	mu          sync.Mutex     // Up, Detached, Close
	up          bool           // the up hook ran (hooks are due on Close)
	droppedAtUp uint64         // DroppedDetached when the link last came up
	tunnel      Tunnel         // the tunnel last brought up
	blocked     []netip.Prefix // what the router was last told to block
	closeOnce   sync.Once
	closeErr    error
}

// errLinkDead marks the end of a link whose device can no longer be read.
var errLinkDead = errors.New("sshvpn: the device failed")

// NewLink takes dev over and starts reading it.
func NewLink(dev tun.Device, cfg LinkConfig) *Link {
	l := &Link{dev: dev, cfg: cfg, log: logger(cfg.Logger), stats: cfg.Stats, vnet: dev.Offloads() != 0,
		dead: make(chan struct{}), closing: make(chan struct{})}
	if l.stats == nil {
		l.stats = new(Stats)
	}
	l.read.Add(1)
	go l.readDevice()
	return l
}

// Stats are the link's counters.
func (l *Link) Stats() *Stats { return l.stats }

// Tunnel is the tunnel the link was last brought up to.
func (l *Link) Tunnel() Tunnel {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.tunnel
}

// Up brings the link to tunnel t: the router gets t's addresses and the
// routes, with the route to server (the SSH server's address, if known)
// pinned outside the tunnel when --default-route asks for it or the tunnel
// would cover it, and --default-route's blocks of the family t does not
// carry (with a warning when they change). The first Up runs the up hook;
// later ones (a reconnect) only change what differs, and run it again only
// with Rehook.
func (l *Link) Up(t Tunnel, server netip.Addr) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	rc := router.Config{MTU: t.MTU, Addrs: t.Addrs, Bridge: l.cfg.Bridge, MAC: l.cfg.MAC}
	exclusive := t.Routes // routes granted to the peer (server side)
	if l.cfg.HostAddrs {
		rc.Addrs = hosts(t.Addrs)
		exclusive = append(hosts(t.PeerAddrs), exclusive...)
	}
	wished := slices.Clone(l.cfg.Routes)
	if l.cfg.DefaultRoute {
		wished = append(wished, halfDefaults(t.Addrs)...)
		if !l.cfg.AllowUntunneled {
			rc.Blocked = untunneled(t.Addrs)
		}
	}
	rc.Routes, rc.Exclusive = wished, exclusive
	switch n, covers := captures(server, slices.Concat(t.Addrs, t.PeerAddrs, exclusive, wished)); {
	case l.cfg.DefaultRoute && !server.IsValid():
		return errors.New("--default-route: the SSH server's address is unknown, so its route cannot be pinned outside the tunnel")
	case l.cfg.DefaultRoute:
		rc.Pin = server
	case covers:
		rc.Pin = server
		l.log.Info("the tunnel's networks cover the SSH server's address; its route stays outside the tunnel", "network", n, "server", server)
	}
	if l.cfg.Router != nil {
		if err := l.cfg.Router.Set(rc); err != nil {
			if covers := rc.Pin.IsValid() && !l.cfg.DefaultRoute; covers {
				return fmt.Errorf("the tunnel would cover the SSH server's address %v, and its route could not be pinned outside it: %w", server, err)
			}
			return err
		}
		if len(rc.Blocked) > 0 && !slices.Equal(rc.Blocked, l.blocked) {
			fam := "IPv6"
			if rc.Blocked[0].Addr().Is4() {
				fam = "IPv4"
			}
			l.log.Warn(fmt.Sprintf("the tunnel carries no %s, so --default-route blocks %s while it is up rather than let it leave outside the tunnel; --allow-untunneled lets it go its usual way", fam, fam),
				"unreachable", rc.Blocked)
		}
		l.blocked = rc.Blocked
	}
	if l.cfg.OnUp != nil {
		if err := l.cfg.OnUp(t); err != nil {
			return err
		}
	}
	env := l.cfg.Env
	env.Dev, env.Mode, env.MTU = l.dev.Name(), string(t.Mode), t.MTU
	env.Addrs, env.PeerAddrs, env.Routes = t.Addrs, t.PeerAddrs, slices.Concat(exclusive, wished)
	if server.IsValid() && env.Side == "local" {
		env.Server = server.String()
	}
	first := !l.up
	l.tunnel = t
	if d := l.stats.DroppedDetached.Load(); !first && d > l.droppedAtUp {
		l.log.Info("packets dropped while the tunnel was down", "dropped", d-l.droppedAtUp)
	}
	l.droppedAtUp = l.stats.DroppedDetached.Load()
	if l.cfg.Hooks == nil || (!first && !l.cfg.Rehook) {
		if l.cfg.Hooks != nil {
			l.cfg.Hooks.Update(env) // the down hook at the end gets the tunnel as it is then
		}
		l.up = true
		l.ready(t)
		return nil
	}
	env.Context = "init"
	if !first {
		env.Context = "restart"
	}
	if err := l.cfg.Hooks.RunUp(env); err != nil {
		return err
	}
	l.up = true
	l.ready(t)
	return nil
}

func (l *Link) ready(t Tunnel) {
	if l.cfg.OnReady != nil {
		l.cfg.OnReady(t)
	}
}

// Detached says that the connection is gone and another may follow: with
// Rehook, the down hook runs (SSHVPN_SCRIPT_CONTEXT=restart).
func (l *Link) Detached() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.cfg.Rehook && l.cfg.Hooks != nil {
		if err := l.cfg.Hooks.RunDown("restart"); err != nil {
			l.log.Error(err.Error())
		}
	}
}

// Close ends the link: the down hook (once), the router's routes and
// addresses, then the device. It waits for the device reader to stop.
func (l *Link) Close() error {
	l.closeOnce.Do(func() {
		l.mu.Lock()
		if l.cfg.Hooks != nil {
			if err := l.cfg.Hooks.RunDown("init"); err != nil {
				l.log.Error(err.Error())
			}
		}
		if l.cfg.Router != nil {
			if err := l.cfg.Router.Close(); err != nil {
				l.log.Error(err.Error())
			}
		}
		l.mu.Unlock()
		close(l.closing)
		l.closeErr = l.dev.Close()
		l.read.Wait()
	})
	return l.closeErr
}

// Err is why the device can no longer be read, once that has happened.
func (l *Link) Err() error {
	select {
	case <-l.dead:
		return l.readErr
	default:
		return nil
	}
}

// attach makes p the pump packets from the device go to.
func (l *Link) attach(p *pump) { l.current.Store(p) }

// detach stops handing packets to p; once it returns, no packet reaches
// p.
func (l *Link) detach(p *pump) {
	l.current.CompareAndSwap(p, nil)
	l.deliver.Lock()
	l.deliver.Unlock() // (only waited for a delivery in progress)
}

// readDevice reads the device until it is closed. While a pump is
// attached it reads straight into that pump's frame buffer, takes what
// else is queued without waiting, and flushes once the device has nothing
// more: one write to the transport per burst, and none of the goroutine
// handoffs that would delay a lone packet. While none is attached, what it
// reads is dropped and counted.
func (l *Link) readDevice() {
	defer l.read.Done()
	scratch := make([]byte, readSize)
	one, sizes := make([][]byte, 1), make([]int, 1)
	var held *pump // the pump whose frame buffer has frames to flush
	for {
		p := l.current.Load()
		if p != nil && !p.taking() {
			p = nil
		}
		if held != nil && held != p {
			held.flush()
			held = nil
		}
		buf := scratch
		if p != nil {
			room, err := p.dw.Next(readSize)
			if err != nil {
				p.fail(err)
				continue
			}
			buf = room
		}
		var n int
		var err error
		if held != nil {
			if n, err = l.dev.TryRead(buf); err == nil && n == 0 {
				held.flush() // the device is empty: send the burst
				held = nil
				continue
			}
		} else {
			one[0] = buf
			_, err = l.dev.Read(one, sizes, 0)
			n = sizes[0]
		}
		if err != nil {
			if held != nil {
				held.flush()
			}
			select {
			case <-l.closing:
			default:
				l.readErr = fmt.Errorf("%w: reading from %s: %w", errLinkDead, l.dev.Name(), err)
				close(l.dead)
			}
			return
		}
		if n == 0 || n > len(buf) { // nothing, or truncated: drop it
			continue
		}
		if q := l.handle(buf[:n], p); q != nil {
			held = q
		}
	}
}

// readSize is the most one device read takes: a super-packet and its
// virtio-net header, or any packet whatever the MTU is now (an admin or a
// hook may raise it later, and the kernel reports a packet longer than the
// buffer by its full length, having copied only a part).
const readSize = framing.MaxOffloadPayload

// handle frames one packet read from the device for the attached pump, if
// any, and returns that pump when it did. in is the pump whose frame
// buffer the packet was read into (nil: scratch): when another is attached
// by now, the packet is copied to it. It never writes to the transport,
// so that detach, which waits for it, never waits for the network.
func (l *Link) handle(buf []byte, in *pump) *pump {
	l.deliver.Lock()
	defer l.deliver.Unlock()
	p := l.current.Load()
	if p == nil || !p.taking() {
		l.stats.DroppedDetached.Add(1)
		return nil
	}
	typ, payload, pkt := framing.TypeData, buf, buf
	var h tun.VnetHdr // without a header, the packet is a plain one
	if l.vnet {
		var ok bool
		if h, ok = tun.ParseVnetHdr(buf); !ok || len(buf) == tun.VnetHdrLen {
			p.stats.DroppedOut.Add(1)
			return nil
		}
		pkt = buf[tun.VnetHdrLen:]
		// What the peer did not agree to take is not sent: a
		// super-packet left from offloads since turned off, say.
		if h.Needs(pkt[0]>>4 == 6)&^p.offload != 0 {
			p.stats.DroppedOut.Add(1)
			return nil
		}
		if p.offload != 0 {
			typ = framing.TypeOffload
		} else {
			payload = pkt // plain: the header stays behind
		}
	}
	if p.acceptOut != nil && !p.acceptOut(pkt) {
		p.stats.DroppedOut.Add(1)
		return nil
	}
	if p.limitOut != nil && !p.limitOut(h.Wire(pkt)) {
		p.stats.DroppedRate.Add(1)
		return nil
	}
	if p == in {
		// In place: the packet sits where the frame's payload goes,
		// unless the header it no longer needs is in front of it.
		if len(payload) != len(buf) {
			copy(buf, payload)
		}
		if err := p.dw.Commit(typ, len(payload)); err != nil {
			p.stats.DroppedOut.Add(1)
			return nil
		}
	} else {
		// Read for a pump that has gone since: copy, without flushing.
		if p.dw.Available() < framing.HeaderLen+len(payload) || p.dw.WriteFrame(typ, payload) != nil {
			l.stats.DroppedDetached.Add(1)
			return nil
		}
	}
	p.stats.PacketsOut.Add(1)
	p.stats.BytesOut.Add(uint64(len(pkt)))
	return p
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

// halfDefaults are the two halves of the default route for each family the
// tunnel has an address in: more specific than any default route, so they
// win without replacing it.
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

// untunneled are the two halves of the default route of the family the
// tunnel has no address in, if it has one in the other: what
// --default-route blocks, so that this family does not leave outside the
// tunnel. A tunnel with both families, or none (a bridge port), has none.
func untunneled(addrs []netip.Prefix) []netip.Prefix {
	halves := halfDefaults(addrs)
	if len(halves) != 2 {
		return nil
	}
	if halves[0].Addr().Is4() {
		return []netip.Prefix{netip.MustParsePrefix("::/1"), netip.MustParsePrefix("8000::/1")}
	}
	return []netip.Prefix{netip.MustParsePrefix("0.0.0.0/1"), netip.MustParsePrefix("128.0.0.0/1")}
}

// hosts turns each prefix into its address alone (/32 or /128).
func hosts(ps []netip.Prefix) []netip.Prefix {
	out := make([]netip.Prefix, len(ps))
	for i, p := range ps {
		out[i] = netip.PrefixFrom(p.Addr(), p.Addr().BitLen())
	}
	return out
}
