package main

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/sshvpn/sshvpn/policy"
	"github.com/sshvpn/sshvpn/record"
	"github.com/sshvpn/sshvpn/registry"
	"github.com/sshvpn/sshvpn/server"
	"github.com/sshvpn/sshvpn/spawn"
	"github.com/sshvpn/sshvpn/tun"
	"github.com/sshvpn/sshvpn/tunnel"
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
	Keepalive time.Duration `group:"keepalive" default:"10s" help:"Interval between keepalive pings."`
	DeadAfter time.Duration `group:"keepalive" default:"45s" help:"Give up on a client silent this long."`
}

func (r *remoteCmd) Run(ctx context.Context, log *slog.Logger, id server.Identity, sig signals) error {
	if term.IsTerminal(0) {
		return server.ErrNotForTerminal
	}
	conn, err := spawn.Stdio()
	if err != nil {
		return err
	}
	oneThread() // sshd encrypts
	cfg, err := r.config()
	if err != nil {
		// The client gets the reason in the protocol, as the server's,
		// and the admin in the system log.
		log.Warn("session refused", "reason", err.Error(), tunnel.AdminOnly)
		err = server.Refuse(conn, err)
	} else {
		cfg.Identity, cfg.Logger, cfg.Counters, cfg.Ended = id, log, sig.counters, sig.ended
		err = server.Run(ctx, conn, cfg)
	}
	if server.Reported(err) {
		return silentError{err}
	}
	return err
}

// config turns the flags into the session's configuration, checked.
func (r *remoteCmd) config() (server.Config, error) {
	pol, err := r.parse(r.Route)
	if err != nil {
		return server.Config{}, err
	}
	if err := checkKeepalive(r.Keepalive, r.DeadAfter); err != nil {
		return server.Config{}, err
	}
	mac, err := r.mac(pol.mode == tun.ModeTAP)
	if err != nil {
		return server.Config{}, err
	}
	switch {
	case r.NAT && pol.mode == tun.ModeTAP:
		return server.Config{}, errors.New("--nat masquerades IP addresses, and --mode tap carries Ethernet frames, whose addresses it does not check: route or bridge a tap tunnel instead")
	case r.NAT && os.Geteuid() != 0:
		// One account's view of the gateway for the whole machine:
		// its state in root's registry, which the sweep reads.
		return server.Config{}, errors.New("--nat needs root for the forced command: it changes the server's forwarding and nftables for every session")
	}
	return server.Config{
		Policy: policy.Server{Mode: pol.mode, MTU: r.MTU, Addrs: pol.addrs, PeerAddrs: pol.peers, Dev: r.Dev,
			Pool: pol.pool, AllowSources: pol.allow, AllowRoutes: pol.allowRoutes},
		Rate: pol.rate, MaxSessions: pol.maxSessions, Replace: r.Replace, Routes: prefixes(r.Route), Quota: pol.quota,
		StateDir: stateDir(r.StateDir), NAT: r.NAT,
		Offload: r.Offload, Bridge: r.Bridge, MAC: mac, Up: r.Up, Down: r.Down, HookTimeout: r.HookTimeout,
		Keepalive: r.Keepalive, DeadAfter: r.DeadAfter,
		Command:  sanitize(strings.Join(os.Args[1:], " ")),
		Software: "sshvpn " + versionString(),
	}, nil
}

// stateDir is --state-dir as given, except that an account other than root,
// which cannot write the default, gets one of its own.
func stateDir(flag string) string {
	if flag != registry.DefaultDir || os.Geteuid() == 0 {
		return flag
	}
	return record.Dir()
}
