package main

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/sshvpn/sshvpn"
	"github.com/sshvpn/sshvpn/pool"
	"github.com/sshvpn/sshvpn/spawn"
	"github.com/sshvpn/sshvpn/tun"
	"golang.org/x/term"
)

// remoteCmd is "sshvpn --remote". It obeys its own command line only: the
// client's handshake is a proposal that the policy flags override or refuse,
// and nothing in the environment (SSH_ORIGINAL_COMMAND included) is read.
type remoteCmd struct {
	policyFlags
	linkFlags
	Keepalive time.Duration `default:"10s" help:"Interval between keepalive pings."`
	DeadAfter time.Duration `default:"45s" help:"Give up on a client silent this long."`
}

func (r *remoteCmd) Run(ctx context.Context, log *slog.Logger) error {
	pol, err := r.parse()
	if err != nil {
		return err
	}
	if err := checkKeepalive(r.Keepalive, r.DeadAfter); err != nil {
		return err
	}
	if len(pol.pool) > 0 && len(r.Route) > 0 {
		return errors.New("--route with --pool: every session would claim the same networks; use --allow-route to let each client ask for its own")
	}
	if term.IsTerminal(0) {
		return errors.New("sshvpn --remote speaks the sshvpn protocol on stdin and stdout: sshd runs it for \"sshvpn HOST\"; it is not for a terminal")
	}
	link, err := newLink(&r.linkFlags, pol.mode, log)
	if err != nil {
		return err
	}
	link.env.Side = "remote"
	if f := strings.Fields(os.Getenv("SSH_CONNECTION")); len(f) > 0 {
		link.env.Peer = f[0] // for hooks only: the client's address
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
	conn, err := spawn.Stdio()
	if err != nil {
		return err
	}
	cfg := sshvpn.ServerConfig{
		Mode: pol.mode, MTU: r.MTU, Addrs: pol.addrs, PeerAddrs: pol.peers, Dev: r.Dev,
		AllowSources: pol.allow, AllowRoutes: pol.allowRoutes,
		Keepalive: r.Keepalive, DeadAfter: r.DeadAfter, Logger: log,
	}
	if len(pol.pool) > 0 {
		cfg.Assign = func() ([]netip.Prefix, []netip.Prefix, error) {
			p, err := pool.New(r.StateDir, pol.pool)
			if err != nil {
				return nil, nil, err
			}
			if lease, err = p.Acquire(); err != nil {
				return nil, nil, err
			}
			log.Info("leased addresses from the pool", "lease", lease.Index, "server", lease.Server, "client", lease.Client)
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
		dev, err := tun.Open(tun.Config{Name: name, Mode: t.Mode})
		if err != nil {
			return nil, err
		}
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
	if errors.Is(err, io.EOF) {
		log.Info("the client went away")
		return nil
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

// hosts turns each prefix into its address alone (/32 or /128).
func hosts(ps []netip.Prefix) []netip.Prefix {
	out := make([]netip.Prefix, len(ps))
	for i, p := range ps {
		out[i] = netip.PrefixFrom(p.Addr(), p.Addr().BitLen())
	}
	return out
}
