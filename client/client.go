// Package client runs the side of a tunnel that started the SSH
// connection: it opens the device before connecting (a missing permission
// is reported before anybody types a password), makes sure the server has
// sshvpn (--upload), records the session, and then dials, runs the tunnel
// over each connection and dials again (--reconnect) while the device, its
// tunnel.Link and the host stack (routes, DNS, hooks, the record) stay up
// in between. Everything is undone, in reverse, when the run ends.
package client

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/sshvpn/sshvpn/hook"
	"github.com/sshvpn/sshvpn/notify"
	"github.com/sshvpn/sshvpn/policy"
	"github.com/sshvpn/sshvpn/record"
	"github.com/sshvpn/sshvpn/registry"
	"github.com/sshvpn/sshvpn/router"
	"github.com/sshvpn/sshvpn/spawn"
	"github.com/sshvpn/sshvpn/stack"
	"github.com/sshvpn/sshvpn/tun"
	"github.com/sshvpn/sshvpn/tunnel"
)

// Config is one client run, as the command line checked it.
type Config struct {
	// Dialer makes each connection (the spawned ssh, or --native's
	// in-process SSH), unless Packets does.
	Dialer spawn.Dialer
	// Packets, instead of Dialer, makes connections that carry packets
	// themselves (--openssh-tun): no sshvpn on the server, no handshake.
	Packets spawn.PacketDialer
	// Upload, if set, makes sure the server has this sshvpn before the
	// first connection (see Upload).
	Upload *Upload
	// Destination names the server ("user@host"), for the log and the
	// record; Profile the profile the run was started from, if any.
	Destination string
	Profile     string
	ProfileFile string // the file the profile was read from

	Dev     string   // the device's name; empty lets the kernel choose
	Mode    tun.Mode // ModeTUN when empty
	Offload bool     // pass the kernel's offloads through (tun mode)
	MTU     int      // proposed; 0 lets the server choose
	// Addrs and PeerAddrs are the proposal for this side and the
	// server's; the server's policy may override them.
	Addrs, PeerAddrs []netip.Prefix
	RemoteDev        string
	RemoteRoutes     []netip.Prefix

	Routes          []netip.Prefix // --route
	DefaultRoute    bool
	AllowUntunneled bool
	Bridge          string
	MAC             net.HardwareAddr
	DNS             []netip.Addr
	DNSDomains      []string // --dns-domain: only these names through DNS
	Up, Down        string   // hook scripts
	HookTimeout     time.Duration
	Rehook          bool

	Reconnect Reconnect
	// Streams stripes the tunnel over this many connections (see
	// stream.go); 0 or 1: one.
	Streams   int
	Keepalive time.Duration
	DeadAfter time.Duration

	// Software names this build in the handshake ("sshvpn 1.2.3").
	Software string

	Logger  *slog.Logger
	Verbose bool // log the counters every record.CounterEvery
	// Counters (SIGUSR1) asks for the counters in the log.
	Counters <-chan os.Signal
}

// Run runs the client until ctx ends (it returns nil then) or the tunnel
// fails in a way that another connection cannot mend.
func Run(ctx context.Context, cfg Config) error {
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	defer notify.Stopping()
	mode := cfg.Mode
	if mode == "" {
		mode = tun.ModeTUN
	}
	// The device first: a missing permission is reported before anybody
	// types a password.
	dev, nets, err := open(cfg, mode, log)
	if err != nil {
		return err
	}
	var dialer transport = framed{cfg.Dialer}
	if cfg.Packets != nil {
		dialer = packets{cfg.Packets}
	}
	if cfg.Upload != nil && cfg.Packets == nil {
		d, err := cfg.Upload.wrap(ctx, cfg.Dialer, log)
		if err != nil {
			dev.Close()
			return err
		}
		dialer = framed{d}
	}
	rec := runRecord(cfg, dev, log)
	defer rec.Close()
	rec.Sweep()
	stats := new(tunnel.Stats)
	mon := record.NewMonitor(rec, stats, log, cfg.Verbose)
	mon.Counters = cfg.Counters
	mon.OnState = (&systemd{log: log}).state
	defer mon.Start()()

	// The host stack, in order: addresses and routes (with the SSH
	// server's route pinned outside the tunnel), DNS, the hooks (which
	// may rely on both), then the record that says the tunnel is up.
	var stages []stack.Stage
	stages = append(stages, &stack.Routing{
		Router: router.New(dev, router.Options{Logger: log, Record: rec.Routes, Shared: rec.Shared}),
		Routes: cfg.Routes, DefaultRoute: cfg.DefaultRoute, AllowUntunneled: cfg.AllowUntunneled,
		Bridge: cfg.Bridge, MAC: cfg.MAC, Log: log})
	if len(cfg.DNS) > 0 {
		stages = append(stages, &stack.DNS{Servers: cfg.DNS, Domains: cfg.DNSDomains, Log: log})
	}
	stages = append(stages,
		&stack.Hooks{Runner: &hook.Runner{Up: cfg.Up, Down: cfg.Down, Timeout: cfg.HookTimeout, Log: log},
			Env: hook.Env{Side: "local"}, Rehook: cfg.Rehook, Log: log},
		stack.Func{OnUp: func(c *stack.Conf) error {
			t := c.Tunnel
			rec.Tunnel(t)
			mon.Up(t, fmt.Sprintf("tunnel up: %s %s to %s, server %s", c.Dev, join(t.Addrs), join(t.PeerAddrs), cfg.Destination))
			return nil
		}})
	var stripe *tunnel.Stripe
	if cfg.Streams > 1 {
		stripe = tunnel.NewStripe(tunnel.StripeConfig{Mode: mode, Place: true})
	}
	link := tunnel.NewLink(dev, tunnel.LinkConfig{Host: stack.New(dev.Name(), log, stages...), Logger: log, Stats: stats, Queue: cfg.Streams > 1, Stripe: stripe})
	defer link.Close()

	rc := cfg.Reconnect
	rc.Retrying = mon.Retrying
	tc := tunnel.ClientConfig{
		Mode: mode, MTU: cfg.MTU, Addrs: cfg.Addrs, PeerAddrs: cfg.PeerAddrs, RemoteDev: cfg.RemoteDev, RemoteRoutes: cfg.RemoteRoutes,
		Nets: nets, Link: link, Resume: resumeToken(), Server: cfg.Destination, Software: cfg.Software,
		Routed:    tunnel.Routed{Routes: cfg.Routes, DefaultRoute: cfg.DefaultRoute},
		Keepalive: cfg.Keepalive, DeadAfter: cfg.DeadAfter, Logger: log,
	}
	if cfg.Streams > 1 {
		st := newStriped(cfg.Streams, dialer, tc, rc, stats, stripe, log)
		mon.SetStreams(st.streams)
		err = st.run(ctx)
	} else {
		err = connect(ctx, dialer, tc, rc, log)
	}
	if ctx.Err() != nil && link.Ups() == 0 {
		return ErrInterrupted
	}
	if err != nil && link.Ups() == 0 {
		return beforeUp{err}
	}
	return err
}

// beforeUp is a failure of a run whose tunnel never came up.
type beforeUp struct{ error }

func (e beforeUp) Unwrap() error { return e.error }

// BeforeUp reports whether err ended a run before its tunnel ever came up:
// with a Ctrl-C that ssh took first, that run was interrupted.
func BeforeUp(err error) bool {
	var b beforeUp
	return errors.As(err, &b)
}

// ErrInterrupted is Run's error when it was asked to stop (ctx ended)
// before the tunnel ever came up: the command line exits as interrupted.
var ErrInterrupted = errors.New("client: stopped before the tunnel came up")

// open opens the device and lists the networks this machine is on, which
// the tunnel must not take over.
func open(cfg Config, mode tun.Mode, log *slog.Logger) (tun.Device, []router.Net, error) {
	dev, err := tun.Open(tun.Config{Name: cfg.Dev, Mode: mode, Offload: cfg.Offload, MultiQueue: cfg.Streams > 1})
	if err != nil {
		return nil, nil, err
	}
	log.Debug("opened device", "dev", dev.Name())
	nets, err := localNets(dev.Name())
	if err != nil {
		dev.Close()
		return nil, nil, err
	}
	for _, a := range slices.Concat(cfg.Addrs, cfg.PeerAddrs) {
		if n, ok := policy.OverlappingNet(a, nets); ok {
			dev.Close()
			return nil, nil, fmt.Errorf("the tunnel address %v overlaps %v, a network this machine is on; choose tunnel addresses outside it (--addr, --peer-addr)", a, n)
		}
	}
	return dev, nets, nil
}

// localNets are this machine's addresses and networks, less those of the
// tunnel's own device.
func localNets(dev string) ([]router.Net, error) {
	all, err := router.Nets()
	if err != nil {
		return nil, err
	}
	var out []router.Net
	for _, n := range all {
		if n.Dev != dev && !n.Prefix.Addr().IsLoopback() && !n.Prefix.Addr().IsLinkLocalUnicast() {
			out = append(out, n)
		}
	}
	return out, nil
}

// runRecord records the client's run in the registry, if it can:
// without it, a killed session's routes are not found by the next one.
func runRecord(cfg Config, dev tun.Device, log *slog.Logger) *record.Session {
	s, err := record.Open(log)
	if err != nil {
		log.Debug("no session registry; routes of a killed session will not be found", "err", err)
		return nil
	}
	if err := s.Add(registry.Record{Side: registry.SideClient, Dev: dev.Name(), Ifindex: dev.Index(), Peer: cfg.Destination, Profile: cfg.Profile, ProfileFile: cfg.ProfileFile}); err != nil {
		log.Debug("not recording the session", "err", err)
	}
	return s
}

// resumeToken is this run's resume token: random, the same for every
// connection of the run.
func resumeToken() string {
	b := make([]byte, 16)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// systemd tells systemd, when it started sshvpn (Type=notify), how the
// tunnel is: READY once it is first up, STATUS lines after.
type systemd struct {
	log   *slog.Logger
	ready bool
}

func (s *systemd) state(state, line string) {
	var err error
	if state == registry.StateUp && !s.ready {
		s.ready = true
		err = notify.Ready(line)
	} else {
		err = notify.Status(line)
	}
	if err != nil {
		s.log.Debug("telling systemd", "err", err)
	}
}

func join(ps []netip.Prefix) string {
	s := make([]string, len(ps))
	for i, p := range ps {
		s[i] = p.String()
	}
	return strings.Join(s, ", ")
}
