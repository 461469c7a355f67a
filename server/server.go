// Package server runs one session of "sshvpn --remote", as sshd starts it
// for a client: the client's identity from sshd, the pure grant of its
// Hello under the forced command's policy (package policy), then its
// admission on this machine (collisions with other sessions, takeover of
// the same client's older session, limits, a pool lease), the device and
// its tunnel.Link, the host stack (routes, NAT, hooks), the session's
// record and its monitor. Everything is undone, in reverse, however the
// session ends.
package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/sshvpn/sshvpn/framing"
	"github.com/sshvpn/sshvpn/hook"
	"github.com/sshvpn/sshvpn/nat"
	"github.com/sshvpn/sshvpn/policy"
	"github.com/sshvpn/sshvpn/pool"
	"github.com/sshvpn/sshvpn/record"
	"github.com/sshvpn/sshvpn/registry"
	"github.com/sshvpn/sshvpn/router"
	"github.com/sshvpn/sshvpn/spawn"
	"github.com/sshvpn/sshvpn/stack"
	"github.com/sshvpn/sshvpn/tun"
	"github.com/sshvpn/sshvpn/tunnel"
	"github.com/sshvpn/sshvpn/usage"
)

// Config is one server session's configuration: the forced command's
// policy and its other flags, checked by the command line.
type Config struct {
	Policy      policy.Server
	Rate        policy.RateLimit
	MaxSessions int            // sessions of one key at once; 0 for no limit
	Quota       usage.Quota    // bytes a key may move per period (--quota); zero: no cap
	Replace     bool           // a newer session of the same key replaces an older one
	Routes      []netip.Prefix // the server's own --route into the tunnel
	StateDir    string         // where a pool keeps its leases
	NAT         bool           // --nat: the server is the client's gateway

	Offload     bool
	Bridge      string
	MAC         net.HardwareAddr
	Up, Down    string // hook scripts
	HookTimeout time.Duration
	Keepalive   time.Duration
	DeadAfter   time.Duration

	// Software names this build in the handshake ("sshvpn 1.2.3").
	Software string

	Identity Identity
	// Command is the forced command's command line, for the admin's log.
	Command string
	Logger  *slog.Logger
	// Counters (SIGUSR1) asks for the counters in the log; Ended
	// (SIGUSR2) says that a newer session took over from this one.
	Counters <-chan os.Signal
	Ended    <-chan os.Signal
}

// Run serves one session over conn until it ends, and logs how it ended
// for the admin. It returns nil for an orderly end (either side closed,
// the client went away, a newer session took over) and otherwise the
// error; Reported says whether that error was told already (to the client
// in an Error frame, and to the admin's log), so that the command line
// prints it no more.
func Run(ctx context.Context, conn spawn.Conn, cfg Config) error {
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	start := time.Now()
	err := serve(ctx, conn, cfg, log)
	if errors.Is(err, errSetup) {
		// Before the handshake: the client still gets the reason in the
		// protocol, as the server's, rather than a bare exit status.
		err = tunnel.RefuseClient(conn, err)
	}
	var remote *tunnel.RemoteError
	switch {
	case errors.Is(err, io.EOF):
		log.Info("the client went away", "after", time.Since(start).Round(time.Second))
		return nil
	case errors.Is(err, errReplaced), errors.Is(err, errResumed), errors.Is(err, errQuota):
		log.Warn("session ended", "reason", err.Error(), tunnel.AdminOnly)
		return nil
	case err == nil:
		log.Info("session ended", "after", time.Since(start).Round(time.Second), tunnel.AdminOnly)
		return nil
	case errors.As(err, &remote):
		// The client gave up and said why; it knows already.
		log.Warn("session ended by the client", "reason", remote.Msg, tunnel.AdminOnly)
		return reported{err}
	case tunnel.Told(err):
		// The refusal reached the client in an Error frame: once is enough.
		log.Warn("session refused", "reason", err.Error(), tunnel.AdminOnly)
		return reported{err}
	}
	log.Error("session failed", "err", err.Error(), tunnel.AdminOnly)
	return err
}

// Refuse is the answer of a server that cannot serve at all (its own
// command line is wrong): the client gets err in the protocol, as the
// server's; the error returned is Reported if that worked.
func Refuse(conn io.Writer, err error) error {
	if err = tunnel.RefuseClient(conn, err); tunnel.Told(err) {
		return reported{err}
	}
	return err
}

// reported is an error that has been told already.
type reported struct{ error }

func (e reported) Unwrap() error { return e.error }

// Reported reports whether err was told to the client and logged already.
func Reported(err error) bool {
	var r reported
	return errors.As(err, &r)
}

// errSetup marks errors of the server's own setup (its state directory,
// its pool), found before the handshake.
var errSetup = errors.New("the server's setup")

type setupError struct{ error }

func (e setupError) Is(target error) bool { return target == errSetup }
func (e setupError) Unwrap() error        { return e.error }

// serving is one server session's state beyond the handshake: what
// admission granted it and what its device and stack hold.
type serving struct {
	// joined is what a striped session's other streams share with it
	// (see stream.go): the identity, the device itself and the guarded
	// one its first link has, the counters and the log.
	joined
	cfg    Config
	rec    *record.Session
	adm    *admission
	leases *pool.Pool
	lease  *pool.Lease
	mon    *record.Monitor
	client netip.Addr // the SSH client's address
	stop   func()     // stops the monitor

	firstLink *tunnel.Link // the session's first link
	multi     bool         // the device is multi-queue
	stripes   *stripes     // a striped session's other streams
}

func serve(ctx context.Context, conn spawn.Conn, cfg Config, log *slog.Logger) error {
	s := &serving{joined: joined{id: cfg.Identity.ID, log: log, stats: new(tunnel.Stats)}, cfg: cfg, stop: func() {}}
	if len(cfg.Policy.Pool) > 0 {
		var err error
		if s.leases, err = pool.New(cfg.StateDir, cfg.Policy.Pool); err != nil {
			return setupError{err}
		}
	}
	rec, err := record.Open(log.With(tunnel.AdminOnly)) // the machine's business, not the client's
	if err != nil {
		return setupError{err}
	}
	s.rec = rec
	defer rec.Close()
	rec.Sweep(tunnel.AdminOnly)
	log.Info("session started", "command", cfg.Command, tunnel.AdminOnly)

	// A newer session that takes over from this one (the same client
	// reconnecting, or --replace) says so on Ended (SIGUSR2): the client
	// is told why, and everything is cleaned up as for SIGTERM.
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	go func() {
		select {
		case <-cfg.Ended:
			cancel(endedBy(rec.Registry().Dir()))
		case <-ctx.Done():
		}
	}()

	s.client, _ = conn.PeerAddr(ctx)
	s.adm = &admission{reg: rec.Registry(), id: cfg.Identity, max: cfg.MaxSessions, replace: cfg.Replace, routes: cfg.Routes,
		wait: cfg.HookTimeout + 10*time.Second, log: log}
	defer func() {
		if s.lease != nil {
			s.lease.Release() // after Serve has closed the link: the device's name and addresses are the lease's until then
		}
	}()
	s.mon = record.NewMonitor(rec, s.stats, log, false)
	s.mon.Counters = cfg.Counters
	defer func() { s.stop() }()
	sc := tunnel.ServerConfig{
		Mode: cfg.Policy.Mode, MTU: cfg.Policy.MTU, Addrs: cfg.Policy.Addrs, PeerAddrs: cfg.Policy.PeerAddrs, Dev: cfg.Policy.Dev,
		AllowRoutes: cfg.Policy.AllowRoutes, Pool: cfg.Policy.Pool, Nets: router.Nets,
		ClientAddr: s.client, Keepalive: cfg.Keepalive, DeadAfter: cfg.DeadAfter, Logger: log,
		Forwarding: s.forwarding, Open: s.open, Software: cfg.Software, OwnDevice: ownDevice,
		Admit: func(t tunnel.Tunnel) error {
			// The same client reconnecting ends its older session first.
			s.adm.resume = tokenHash(t.Resume)
			if err := s.adm.resumeOld(); err != nil {
				return err
			}
			return s.account(cancel)
		},
	}
	if s.leases != nil {
		sc.Assign = s.assign
	}
	dir := rec.Registry().Dir()
	sc.Join = func(ctx context.Context, h *framing.Hello, conn io.ReadWriteCloser) (bool, error) {
		return joinSession(ctx, h, conn, dir, cfg.Identity.ID, log)
	}
	stripeSC := sc
	sc.Stripe = func(t tunnel.Tunnel, link *tunnel.Link) *framing.Join {
		if !s.multi {
			log.Warn("the client asked for streams, but the device is not multi-queue: one stream", "dev", s.dev.Name())
			return nil
		}
		var j *framing.Join
		s.stripes, j = stripe(ctx, stripeSC, t, dir, s.joined)
		if s.stripes != nil {
			first, st := s.firstLink, s.stripes
			s.mon.SetStreams(func() []record.Stream { return st.streams(first) })
		}
		return j
	}
	sc.Linger = func() {
		if s.stripes != nil {
			s.stripes.linger(s.firstLink)
		}
	}
	err = tunnel.Serve(ctx, conn, sc)
	if cause := context.Cause(ctx); err == nil && (errors.Is(cause, errReplaced) || errors.Is(cause, errResumed) || errors.Is(cause, errQuota)) {
		return cause
	}
	return err
}

// errQuota marks the end of a session whose key spent its quota.
var errQuota = errors.New("quota")

type quotaError struct{ msg string }

func (e quotaError) Error() string        { return e.msg }
func (e quotaError) Is(target error) bool { return target == errQuota }

// account counts the session in the key's accounting (see package usage)
// and refuses it when the key's quota is spent; from then on the monitor's
// refreshes add what the session carries, and end it when the quota runs
// out. Accounting that cannot be written is logged, not fatal.
func (s *serving) account(cancel context.CancelCauseFunc) error {
	dir, q, id := s.cfg.StateDir, s.cfg.Quota, s.cfg.Identity.ID
	if dir == "" {
		return nil
	}
	e, err := usage.Begin(dir, id, s.cfg.Identity.User, q, time.Now())
	if err != nil {
		s.log.Warn("accounting", "err", err.Error(), tunnel.AdminOnly)
		return nil
	}
	if why := usage.Spent(e, q); why != "" {
		return errors.New(why)
	}
	var in, out uint64 // what was added so far
	s.mon.OnRefresh = func(st registry.Status) {
		dIn, dOut := st.BytesIn-min(in, st.BytesIn), st.BytesOut-min(out, st.BytesOut)
		in, out = max(in, st.BytesIn), max(out, st.BytesOut)
		if dIn == 0 && dOut == 0 {
			return
		}
		e, err := usage.Add(dir, id, dIn, dOut, q, time.Now())
		if err != nil {
			s.log.Warn("accounting", "err", err.Error(), tunnel.AdminOnly)
			return
		}
		if why := usage.Spent(e, q); why != "" {
			cancel(quotaError{why})
		}
	}
	return nil
}

// forwarding is what the session tells its client of this machine's
// forwarding: with --nat, the sysctls; without, what is left of them for a
// session that is not a gateway's (a family sshvpn turned on for --nat
// sessions forwards nothing of others).
func (s *serving) forwarding() map[string]bool {
	if s.cfg.NAT {
		return nat.Forwarding()
	}
	return nat.ForwardingFor(s.rec.Registry().Dir())
}

// assign draws the session's pool lease, preferring the first of the
// addresses the client proposed for itself: a reconnecting client asks for
// its lease back.
func (s *serving) assign(proposed []netip.Prefix) ([]netip.Prefix, []netip.Prefix, error) {
	var prefer netip.Addr
	if len(proposed) > 0 {
		prefer = proposed[0].Addr()
	}
	var err error
	if s.lease, err = s.leases.AcquirePreferring(prefer); err != nil {
		return nil, nil, err
	}
	s.log.Info("leased addresses from the pool", "lease", s.lease.Index, "server", s.lease.Server, "client", s.lease.Client, tunnel.AdminOnly)
	return s.lease.Server, s.lease.Client, nil
}

// open admits the granted tunnel t on this machine, opens its device and
// returns the link around it with the host stack.
func (s *serving) open(t tunnel.Tunnel) (*tunnel.Link, error) {
	cfg := s.cfg
	name := t.Dev
	if s.lease != nil && strings.Contains(name, "%d") {
		// The lease's number, not the kernel's lowest free one: the name
		// stays this session's until its down hook has run.
		name = strings.Replace(name, "%d", strconv.Itoa(s.lease.Index), 1)
	}
	if name != t.Dev && tun.Exists(name) {
		name = t.Dev // another pool's device has this number: let the kernel choose
	}
	claimed := name
	if strings.Contains(claimed, "%") {
		claimed = "" // the kernel numbers it
	}
	leaseNo := 0
	if s.lease != nil {
		leaseNo = s.lease.Index + 1
	}
	entry, err := s.adm.take(t, claimed, leaseNo)
	if err != nil {
		return nil, err
	}
	s.rec.SetEntry(entry)
	tc := tun.Config{Name: name, Mode: t.Mode, Offload: cfg.Offload && t.Offload != 0, MultiQueue: t.Streams > 1}
	dev, err := tun.Open(tc)
	if errors.Is(err, fs.ErrPermission) && name == "" {
		return nil, fmt.Errorf("this server's account (%s) may not create a tun device: ask the server's admin for one made for it "+
			"(ip tuntap add dev NAME mode %s user %s), then connect with --remote-dev NAME, or have the admin name it in the forced command (--dev NAME)",
			s.cfg.Identity.User, t.Mode, s.cfg.Identity.User)
	}
	if err != nil && tc.MultiQueue {
		// An admin's device made single-queue: one stream.
		s.log.Debug("no multi-queue device for the streams", "err", err)
		tc.MultiQueue = false
		dev, err = tun.Open(tc)
	}
	if err != nil {
		return nil, err
	}
	s.dev, s.multi = dev, tc.MultiQueue
	s.rec.Update(func(r *registry.Record) { r.Dev, r.Ifindex = dev.Name(), dev.Index() })
	env := hook.Env{Side: "remote"}
	if s.client.IsValid() {
		env.Peer = s.client.String() // for hooks only: the client's address
	}
	admin := s.log.With(tunnel.AdminOnly)
	// The host stack, in order: addresses and routes, NAT, the hooks
	// (which may rely on both), then the record that says the session
	// is up.
	stages := []stack.Stage{&stack.Routing{
		Router: router.New(dev, router.Options{Logger: admin, Record: s.rec.Routes, Shared: s.rec.Shared}),
		Routes: cfg.Routes, HostAddrs: s.lease != nil, Bridge: cfg.Bridge, MAC: cfg.MAC, Log: s.log}}
	if cfg.NAT {
		// NAT state in the registry's directory, whatever --state-dir
		// says: the table and the sysctls are the namespace's, every
		// --nat session must count in one nat.json, and the sweep at each
		// session start (nat.Cleanup) looks there.
		stages = append(stages, &stack.NAT{StateDir: s.rec.Registry().Dir(), Log: s.log, Admin: []any{tunnel.AdminOnly}})
	}
	stages = append(stages,
		// Hooks get a clean environment on this side: what the client
		// could send (SSH_ORIGINAL_COMMAND, AcceptEnv variables) stays
		// out of it. Their output is the admin's business.
		&stack.Hooks{Runner: &hook.Runner{Up: cfg.Up, Down: cfg.Down, Timeout: cfg.HookTimeout, Log: admin, BaseEnv: HookEnv()},
			Env: env, Log: admin},
		s.recordStage())
	// The device as the session may use it: the client's packets from
	// its own addresses or networks behind it (anti-spoofing), each way
	// within the rate limit.
	guarded := tunnel.Guard(dev, tunnel.GuardConfig{Addresses: t.Mode == tun.ModeTUN, Peer: t.PeerAddrs,
		Behind: slices.Concat(cfg.Policy.AllowSources, t.Routes), Rate: cfg.Rate, Stats: s.stats, Logger: s.log})
	s.guarded = guarded
	if s.multi {
		s.stripe = tunnel.NewStripe(tunnel.StripeConfig{Mode: t.Mode})
	}
	s.firstLink = tunnel.NewLink(guarded, tunnel.LinkConfig{Host: stack.New(dev.Name(), admin, stages...), Logger: s.log, Stats: s.stats, Queue: s.multi,
		Stripe: s.stripe})
	return s.firstLink, nil
}

// recordStage is the last stage of the host stack: the session's record
// says what the tunnel is and that it is up, and its monitor keeps the
// record's status current until the stack goes down.
func (s *serving) recordStage() stack.Stage {
	return stack.Func{
		OnUp: func(c *stack.Conf) error {
			s.rec.Tunnel(c.Tunnel)
			s.mon.Up(c.Tunnel, "")
			s.stop()
			s.stop = s.mon.Start()
			return nil
		},
		OnDown: func() error { s.mon.Refresh(); s.stop(); s.stop = func() {}; return nil },
	}
}

// ownDevice reports whether this account, not root, owns the tun or tap
// device name: an admin made it for the account, and a client of the
// account may then ask for it by name (--remote-dev) with no forced
// command naming it. Root's clients get the device the policy names.
func ownDevice(name string) bool {
	uid := os.Getuid()
	return uid != 0 && tun.OwnedBy(name, uid)
}

// HookEnv is the environment of the server's hooks: the account's basics
// from this process, nothing the client may have set (SSH_ORIGINAL_COMMAND,
// AcceptEnv variables).
func HookEnv() []string {
	env := []string{} // not nil: nil would mean "inherit everything"
	for _, k := range []string{"PATH", "HOME", "USER", "LOGNAME", "SHELL", "TZ"} {
		if v, ok := os.LookupEnv(k); ok {
			env = append(env, k+"="+v)
		}
	}
	return env
}

// ErrNotForTerminal is Run's refusal of a terminal on stdin.
var ErrNotForTerminal = fmt.Errorf("sshvpn --remote speaks the sshvpn protocol on stdin and stdout: sshd runs it for \"sshvpn HOST\"; it is not for a terminal")
