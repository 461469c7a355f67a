package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/sshvpn/sshvpn"
	"github.com/sshvpn/sshvpn/hook"
	"github.com/sshvpn/sshvpn/nat"
	"github.com/sshvpn/sshvpn/pool"
	"github.com/sshvpn/sshvpn/record"
	"github.com/sshvpn/sshvpn/registry"
	"github.com/sshvpn/sshvpn/router"
	"github.com/sshvpn/sshvpn/spawn"
	"github.com/sshvpn/sshvpn/tun"
	"golang.org/x/term"
)

// remoteCmd is "sshvpn --remote". It obeys its own command line only: the
// client's handshake is a proposal that the policy flags override or refuse,
// and nothing in the environment (SSH_ORIGINAL_COMMAND included) is read as
// policy. sshd's SSH_CONNECTION and SSH_USER_AUTH only name the session in
// the server's log.
type remoteCmd struct {
	policyFlags
	linkFlags
	Keepalive time.Duration `default:"10s" help:"Interval between keepalive pings."`
	DeadAfter time.Duration `default:"45s" help:"Give up on a client silent this long."`
}

func (r *remoteCmd) Run(ctx context.Context, log *slog.Logger, id identity, usr1 counters) error {
	start := time.Now()
	err := r.serve(ctx, log, id, usr1)
	var remote *sshvpn.RemoteError
	switch {
	case errors.Is(err, io.EOF):
		log.Info("the client went away", "after", time.Since(start).Round(time.Second))
		return nil
	case errors.Is(err, errReplaced), errors.Is(err, errResumed):
		log.Warn("session ended", "reason", err.Error(), sshvpn.AdminOnly)
		return nil
	case err == nil:
		log.Info("session ended", "after", time.Since(start).Round(time.Second), sshvpn.AdminOnly)
		return nil
	case errors.As(err, &remote):
		// The client gave up and said why; it knows already.
		log.Warn("session ended by the client", "reason", remote.Msg, sshvpn.AdminOnly)
		return silentError{err}
	case sshvpn.Told(err):
		// The refusal reached the client in an Error frame: once is enough.
		log.Warn("session refused", "reason", err.Error(), sshvpn.AdminOnly)
		return silentError{err}
	}
	log.Error("session failed", "err", err.Error(), sshvpn.AdminOnly)
	return err
}

func (r *remoteCmd) serve(ctx context.Context, log *slog.Logger, id identity, usr1 counters) error {
	if term.IsTerminal(0) {
		return errors.New("sshvpn --remote speaks the sshvpn protocol on stdin and stdout: sshd runs it for \"sshvpn HOST\"; it is not for a terminal")
	}
	conn, err := spawn.Stdio()
	if err != nil {
		return err
	}
	err = r.serveOn(ctx, conn, log, id, usr1)
	if errors.Is(err, errSetup) {
		// Before the handshake: the client still gets the reason in the
		// protocol, as the server's, rather than a bare exit status.
		return sshvpn.RefuseClient(conn, err)
	}
	return err
}

// errSetup marks errors of the server's own setup (its command line, its
// state directory), found before the handshake.
var errSetup = errors.New("the server's setup")

type setupError struct{ error }

func (e setupError) Is(target error) bool { return target == errSetup }
func (e setupError) Unwrap() error        { return e.error }

func (r *remoteCmd) serveOn(ctx context.Context, conn spawn.Conn, log *slog.Logger, id identity, usr1 counters) error {
	pol, err := r.parse(r.Route)
	if err != nil {
		return setupError{err}
	}
	if err := checkKeepalive(r.Keepalive, r.DeadAfter); err != nil {
		return setupError{err}
	}
	mac, err := r.mac(pol.mode == tun.ModeTAP)
	if err != nil {
		return setupError{err}
	}
	var leases *pool.Pool
	if len(pol.pool) > 0 {
		if leases, err = pool.New(stateDir(r.StateDir), pol.pool); err != nil {
			return setupError{err}
		}
	}
	s, err := record.Open(log.With(sshvpn.AdminOnly)) // the machine's business, not the client's
	if err != nil {
		return setupError{err}
	}
	reg := s.Registry()
	defer s.Close()
	s.Sweep(sshvpn.AdminOnly)
	log.Info("session started", "command", sanitize(strings.Join(os.Args[1:], " ")), sshvpn.AdminOnly)

	// A newer session that takes over from this one (the same client
	// reconnecting, or --replace) says so with SIGUSR2: the client is
	// told why, and everything is cleaned up as for SIGTERM.
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	ended := make(chan os.Signal, 1)
	signal.Notify(ended, syscall.SIGUSR2)
	defer signal.Stop(ended)
	go func() {
		select {
		case <-ended:
			cancel(endedBy(reg.Dir()))
		case <-ctx.Done():
		}
	}()

	client, _ := conn.PeerAddr(ctx)
	cl := &claim{reg: reg, id: id, max: pol.maxSessions, replace: r.Replace, routes: prefixes(r.Route),
		wait: r.HookTimeout + 10*time.Second, log: log}
	var lease *pool.Lease
	defer func() {
		if lease != nil {
			lease.Release() // after Serve has closed the link: the device's name and addresses are the lease's until then
		}
	}()
	stats := new(sshvpn.Stats)
	m := record.NewMonitor(s, stats, log, false)
	m.Counters = usr1
	var gw *nat.Gateway
	defer func() {
		if gw != nil {
			if err := gw.Close(); err != nil {
				log.Error(err.Error(), sshvpn.AdminOnly)
			}
		}
	}()
	stopMonitor := func() {}
	defer func() { stopMonitor() }()
	cfg := sshvpn.ServerConfig{
		Mode: pol.mode, MTU: r.MTU, Addrs: pol.addrs, PeerAddrs: pol.peers, Dev: r.Dev,
		AllowSources: pol.allow, AllowRoutes: pol.allowRoutes, Pool: pol.pool, Nets: router.Nets, ClientAddr: client, Rate: pol.rate,
		Keepalive: r.Keepalive, DeadAfter: r.DeadAfter, Logger: log, Stats: stats, Forwarding: nat.Forwarding,
	}
	cfg.Admit = func(t sshvpn.Tunnel) error {
		// The same client reconnecting ends its older session first.
		cl.resume = tokenHash(t.Resume)
		return cl.resumeOld()
	}
	if leases != nil {
		cfg.Assign = func(proposed []netip.Prefix) ([]netip.Prefix, []netip.Prefix, error) {
			var prefer netip.Addr
			if len(proposed) > 0 {
				prefer = proposed[0].Addr() // a reconnecting client asks for its lease
			}
			if lease, err = leases.AcquirePreferring(prefer); err != nil {
				return nil, nil, err
			}
			log.Info("leased addresses from the pool", "lease", lease.Index, "server", lease.Server, "client", lease.Client, sshvpn.AdminOnly)
			return lease.Server, lease.Client, nil
		}
	}
	cfg.Open = func(t sshvpn.Tunnel) (*sshvpn.Link, error) {
		name := r.Dev
		if lease != nil && strings.Contains(name, "%d") {
			// The lease's number, not the kernel's lowest free one: the
			// name stays this session's until its down hook has run.
			name = strings.Replace(name, "%d", strconv.Itoa(lease.Index), 1)
		}
		if name != r.Dev && tun.Exists(name) {
			name = r.Dev // another pool's device has this number: let the kernel choose
		}
		claimed := name
		if strings.Contains(claimed, "%") {
			claimed = "" // the kernel numbers it
		}
		leaseNo := 0
		if lease != nil {
			leaseNo = lease.Index + 1
		}
		var err error
		entry, err := cl.take(t, claimed, leaseNo)
		if err != nil {
			return nil, err
		}
		s.SetEntry(entry)
		dev, err := tun.Open(tun.Config{Name: name, Mode: t.Mode, Offload: r.Offload && t.Offload != 0})
		if err != nil {
			return nil, err
		}
		s.Update(func(rec *registry.Record) { rec.Dev, rec.Ifindex = dev.Name(), dev.Index() })
		env := hook.Env{Side: "remote"}
		if client.IsValid() {
			env.Peer = client.String() // for hooks only: the client's address
		}
		return sshvpn.NewLink(dev, sshvpn.LinkConfig{
			Router: router.New(dev, router.Options{Logger: log.With(sshvpn.AdminOnly), Record: s.Routes, Shared: s.Shared}),
			Routes: prefixes(r.Route), HostAddrs: lease != nil, Bridge: r.Bridge, MAC: mac,
			// Hooks get a clean environment on this side: what the client
			// could send (SSH_ORIGINAL_COMMAND, AcceptEnv variables) stays
			// out of it. Their output is the admin's business.
			Hooks: &hook.Runner{Up: r.Up, Down: r.Down, Timeout: r.HookTimeout, Log: log.With(sshvpn.AdminOnly), BaseEnv: remoteHookEnv()},
			Env:   env,
			OnUp: func(t sshvpn.Tunnel) error {
				s.Tunnel(t)
				if r.NAT && gw == nil {
					var err error
					// NAT state in the registry's directory, whatever
					// --state-dir says: the table and the sysctls are the
					// namespace's, every --nat session must count in one
					// nat.json, and the sweep at each session start
					// (nat.Cleanup) looks there.
					gw, err = nat.Enable(nat.Config{Dev: dev.Name(), Clients: hosts(t.PeerAddrs), StateDir: reg.Dir(),
						Logf: func(f string, a ...any) { log.Info(fmt.Sprintf(f, a...), sshvpn.AdminOnly) }})
					if err != nil {
						return err
					}
					log.Info("gateway for the client: forwarding its packets and their replies, masquerading its addresses", "client", t.PeerAddrs)
				}
				return nil
			},
			OnReady: func(t sshvpn.Tunnel) {
				m.Up(t, "")
				stopMonitor = m.Start() // the record exists by now
			},
			Logger: log, Stats: stats,
		}), nil
	}
	err = sshvpn.Serve(ctx, conn, cfg)
	if cause := context.Cause(ctx); err == nil && (errors.Is(cause, errReplaced) || errors.Is(cause, errResumed)) {
		return cause
	}
	return err
}

// remoteHookEnv is the environment of the remote side's hooks: the
// account's basics from this process, nothing the client may have set.
func remoteHookEnv() []string {
	env := []string{} // not nil: nil would mean "inherit everything"
	for _, k := range []string{"PATH", "HOME", "USER", "LOGNAME", "SHELL", "TZ"} {
		if v, ok := os.LookupEnv(k); ok {
			env = append(env, k+"="+v)
		}
	}
	return env
}

// stateDir is --state-dir as given, except that an account other than root,
// which cannot write the default, gets one of its own.
func stateDir(flag string) string {
	if flag != registry.DefaultDir || os.Geteuid() == 0 {
		return flag
	}
	return record.Dir()
}

// hosts turns each prefix into its address alone.
func hosts(ps []netip.Prefix) []netip.Prefix {
	out := make([]netip.Prefix, len(ps))
	for i, p := range ps {
		out[i] = netip.PrefixFrom(p.Addr(), p.Addr().BitLen())
	}
	return out
}
