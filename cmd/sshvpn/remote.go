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
	"github.com/sshvpn/sshvpn/pool"
	"github.com/sshvpn/sshvpn/registry"
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

func (r *remoteCmd) Run(ctx context.Context, log *slog.Logger, id identity) error {
	start := time.Now()
	err := r.serve(ctx, log, id)
	var remote *sshvpn.RemoteError
	switch {
	case errors.Is(err, io.EOF):
		log.Info("the client went away", "after", time.Since(start).Round(time.Second))
		return nil
	case errors.Is(err, errReplaced):
		log.Warn("session ended: replaced by a newer session of the same key", sshvpn.AdminOnly)
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

func (r *remoteCmd) serve(ctx context.Context, log *slog.Logger, id identity) error {
	if term.IsTerminal(0) {
		return errors.New("sshvpn --remote speaks the sshvpn protocol on stdin and stdout: sshd runs it for \"sshvpn HOST\"; it is not for a terminal")
	}
	conn, err := spawn.Stdio()
	if err != nil {
		return err
	}
	err = r.serveOn(ctx, conn, log, id)
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

func (r *remoteCmd) serveOn(ctx context.Context, conn io.ReadWriteCloser, log *slog.Logger, id identity) error {
	pol, err := r.parse()
	if err != nil {
		return setupError{err}
	}
	if err := checkKeepalive(r.Keepalive, r.DeadAfter); err != nil {
		return setupError{err}
	}
	if len(pol.pool) > 0 && len(r.Route) > 0 {
		return setupError{errors.New("--route with --pool: every session would claim the same networks; use --allow-route to let each client ask for its own")}
	}
	link, err := newLink(&r.linkFlags, pol.mode, log)
	if err != nil {
		return setupError{err}
	}
	var leases *pool.Pool
	if len(pol.pool) > 0 {
		if leases, err = pool.New(stateDir(r.StateDir), pol.pool); err != nil {
			return setupError{err}
		}
	}
	maxSessions, err := r.maxSessions(pol, leases)
	if err != nil {
		return setupError{err}
	}
	reg, err := registry.Open(stateDir(registry.DefaultDir))
	if err != nil {
		return setupError{err}
	}
	nets, err := tun.Nets()
	if err != nil {
		return setupError{err}
	}
	link.reg = reg
	link.sweep()
	log.Info("session started", "command", sanitize(strings.Join(os.Args[1:], " ")), sshvpn.AdminOnly)

	// A newer session of the same key that replaces this one (--replace)
	// says so with SIGUSR2: the client is told why, and everything is
	// cleaned up as for SIGTERM.
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	replaced := make(chan os.Signal, 1)
	signal.Notify(replaced, syscall.SIGUSR2)
	defer signal.Stop(replaced)
	go func() {
		select {
		case <-replaced:
			cancel(errReplaced)
		case <-ctx.Done():
		}
	}()

	link.env.Side = "remote"
	if f := strings.Fields(os.Getenv("SSH_CONNECTION")); len(f) > 0 {
		link.env.Peer = sanitize(f[0]) // for hooks only: the client's address
	}
	// Hooks get a clean environment on this side: what the client could
	// send (SSH_ORIGINAL_COMMAND, AcceptEnv variables) stays out of it.
	link.hooks.BaseEnv = remoteHookEnv()
	var lease *pool.Lease
	defer func() {
		link.down() // before the lease goes: its device name and addresses are the lease's until then
		if lease != nil {
			lease.Release()
		}
	}()
	cl := &claim{reg: reg, id: id, max: maxSessions, replace: r.Replace, log: log}
	cfg := sshvpn.ServerConfig{
		Mode: pol.mode, MTU: r.MTU, Addrs: pol.addrs, PeerAddrs: pol.peers, Dev: r.Dev,
		AllowSources: pol.allow, AllowRoutes: pol.allowRoutes, Pool: pol.pool, Nets: nets, Rate: pol.rate,
		Keepalive: r.Keepalive, DeadAfter: r.DeadAfter, Logger: log,
	}
	if leases != nil {
		cfg.Assign = func() ([]netip.Prefix, []netip.Prefix, error) {
			if lease, err = leases.Acquire(); err != nil {
				return nil, nil, err
			}
			log.Info("leased addresses from the pool", "lease", lease.Index, "server", lease.Server, "client", lease.Client, sshvpn.AdminOnly)
			return lease.Server, lease.Client, nil
		}
	}
	cfg.Open = func(t sshvpn.Tunnel) (tun.Device, error) {
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
		entry, err := cl.take(t, claimed, leaseNo)
		if err != nil {
			return nil, err
		}
		link.entry = entry
		dev, err := tun.Open(tun.Config{Name: name, Mode: t.Mode})
		if err != nil {
			return nil, err
		}
		entry.Update(func(rec *registry.Record) { rec.Dev = dev.Name() })
		setup := tun.Setup{MTU: t.MTU, Addrs: t.Addrs}
		routes := t.Routes // granted client requests
		if lease != nil {
			// Every session's device carries the server's one address
			// alone, with a host route to its own client.
			setup.Addrs = hosts(t.Addrs)
			routes = append(hosts(t.PeerAddrs), routes...)
		}
		if err := link.up(dev, t, setup, routes); err != nil {
			dev.Close()
			return nil, err
		}
		return dev, nil
	}
	err = sshvpn.Serve(ctx, conn, cfg)
	if err == nil && errors.Is(context.Cause(ctx), errReplaced) {
		return errReplaced
	}
	return err
}

// maxSessions is --max-sessions, or its default: one for fixed addresses,
// the pool's size for a pool, no limit where the client proposes addresses.
func (r *remoteCmd) maxSessions(pol parsed, leases *pool.Pool) (int, error) {
	if r.MaxSessions < 0 {
		return 0, fmt.Errorf("--max-sessions %d: want a positive number", r.MaxSessions)
	}
	fixed := len(pol.addrs) > 0
	switch {
	case fixed && r.MaxSessions > 1:
		return 0, fmt.Errorf("--max-sessions %d with fixed addresses (--addr, --peer-addr): every session would need the same addresses; use --pool for many sessions of one key", r.MaxSessions)
	case r.MaxSessions > 0:
		return r.MaxSessions, nil
	case fixed:
		return 1, nil
	case leases != nil:
		return leases.Size(), nil
	}
	return 0, nil
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

// hosts turns each prefix into its address alone (/32 or /128).
func hosts(ps []netip.Prefix) []netip.Prefix {
	out := make([]netip.Prefix, len(ps))
	for i, p := range ps {
		out[i] = netip.PrefixFrom(p.Addr(), p.Addr().BitLen())
	}
	return out
}
