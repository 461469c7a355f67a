package main

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"time"

	"github.com/sshvpn/sshvpn"
	"github.com/sshvpn/sshvpn/registry"
	"github.com/sshvpn/sshvpn/spawn"
	"github.com/sshvpn/sshvpn/tun"
)

type connectCmd struct {
	SSHCmd    string `short:"e" name:"ssh-cmd" default:"ssh" placeholder:"CMD" help:"The ssh command and its options, split like a shell would (e.g. \"ssh -p 2222 -F ./ssh_config\")."`
	RemoteCmd string `default:"sshvpn --remote" placeholder:"CMD" help:"The command ssh runs on the server."`
	tunnelFlags
	Mode        string   `default:"tun" enum:"tun,tap" help:"tun carries IP packets; tap carries Ethernet frames (the server must allow it)."`
	RemoteDev   string   `placeholder:"NAME" help:"Ask the server for this device name (granted only if its policy names the same)."`
	RemoteRoute []string `placeholder:"CIDR" help:"Ask the server to route this network, which is behind this machine, into the tunnel (granted only inside the server's --allow-route networks)."`
	linkFlags
	DefaultRoute bool          `help:"Send all traffic through the tunnel: the two half-default routes for each family the tunnel has, after pinning the route to the SSH server outside it. All removed on exit."`
	Keepalive    time.Duration `default:"10s" help:"Interval between keepalive pings."`
	DeadAfter    time.Duration `default:"45s" help:"Give up on a peer silent this long."`

	Destination string `arg:"" help:"[user@]host, as ssh takes it (a Host alias from ssh_config works)."`
}

func (c *connectCmd) Run(ctx context.Context, log *slog.Logger) error {
	addrs, peers, err := c.prefixes()
	if err != nil {
		return err
	}
	if err := checkKeepalive(c.Keepalive, c.DeadAfter); err != nil {
		return err
	}
	mode := tun.Mode(c.Mode)
	if mode == tun.ModeTUN || len(addrs) > 0 || len(peers) > 0 {
		// tap mode may run without addresses (a bridge port).
		if addrs, peers, err = proposal(addrs, peers); err != nil {
			return err
		}
	}
	remoteRoutes, err := parsePrefixes("remote-route", c.RemoteRoute)
	if err != nil {
		return err
	}
	if err := tun.CheckName(c.Dev); err != nil {
		return fmt.Errorf("--dev: %w", err)
	}
	if err := tun.CheckName(c.RemoteDev); err != nil {
		return fmt.Errorf("--remote-dev: %w", err)
	}
	if c.MTU != 0 && c.MTU < 1280 && slices.ContainsFunc(slices.Concat(addrs, peers), func(p netip.Prefix) bool { return p.Addr().Is6() }) {
		return fmt.Errorf("--mtu %d is below the 1280 IPv6 needs, and the tunnel has IPv6 addresses: raise --mtu, or give IPv4 --addr/--peer-addr only", c.MTU)
	}
	link, err := newLink(&c.linkFlags, mode, log)
	if err != nil {
		return err
	}
	link.defRoute = c.DefaultRoute
	link.env.Side = "local"
	sshArgv, err := spawn.SplitCommand(c.SSHCmd)
	if err != nil {
		return fmt.Errorf("--ssh-cmd: %w", err)
	}
	if len(sshArgv) == 0 {
		return fmt.Errorf("--ssh-cmd is empty")
	}
	// Open the device before connecting: a missing permission is reported
	// before anybody types a password.
	dev, err := tun.Open(tun.Config{Name: c.Dev, Mode: mode})
	if err != nil {
		return err
	}
	defer dev.Close()
	log.Debug("opened device", "dev", dev.Name())
	// The networks this machine is on: the tunnel must not take them over.
	nets, err := localNets(dev.Name())
	if err != nil {
		return err
	}
	for _, p := range slices.Concat(addrs, peers) {
		for _, n := range nets {
			if p.Masked().Overlaps(n.Prefix.Masked()) {
				return fmt.Errorf("the tunnel address %v overlaps %v, a network this machine is on; choose tunnel addresses outside it (--addr, --peer-addr)", p, n)
			}
		}
	}
	if reg, err := registry.Open(stateDir(registry.DefaultDir)); err != nil {
		log.Debug("no session registry; routes of a killed session will not be found", "err", err)
	} else {
		link.reg = reg
		link.sweep()
	}

	opts := spawn.Options{
		SSH: sshArgv, Destination: c.Destination, RemoteCommand: c.RemoteCmd,
		Logf: func(f string, a ...any) { log.Debug(fmt.Sprintf(f, a...)) },
	}
	conn, err := spawn.Start(opts)
	if err != nil {
		return err
	}
	defer link.down()
	return sshvpn.RunClient(ctx, conn, sshvpn.ClientConfig{
		Mode: mode, MTU: c.MTU, Addrs: addrs, PeerAddrs: peers, RemoteDev: c.RemoteDev, RemoteRoutes: remoteRoutes,
		Nets: nets,
		Open: func(t sshvpn.Tunnel) (tun.Device, error) {
			// Where the SSH connection goes: pinned outside the tunnel
			// by --default-route or when the tunnel would cover it,
			// SSHVPN_SERVER for hooks.
			server, err := serverAddr(ctx, conn, opts, log)
			if err != nil && c.DefaultRoute {
				return nil, fmt.Errorf("--default-route: %w", err)
			}
			if err == nil {
				link.server, link.env.Server = server, server.String()
			}
			if link.reg != nil {
				entry, err := link.reg.Add(registry.Record{Side: registry.SideClient, Dev: dev.Name(),
					Addrs: t.Addrs, PeerAddrs: t.PeerAddrs, Peer: link.env.Server})
				if err != nil {
					log.Debug("not recording the session", "err", err)
				}
				link.entry = entry
			}
			if err := link.up(dev, t, tun.Setup{MTU: t.MTU, Addrs: t.Addrs}, nil); err != nil {
				return nil, err
			}
			return dev, nil
		},
		Keepalive: c.Keepalive, DeadAfter: c.DeadAfter, Logger: log,
	})
}

// serverAddr is the SSH server's address as ssh connected to it (with
// ProxyJump, the first hop's): read from ssh's socket, or else from ssh -G.
func serverAddr(ctx context.Context, conn *spawn.Conn, opts spawn.Options, log *slog.Logger) (netip.Addr, error) {
	ap, err := conn.PeerAddr()
	if err == nil && ap.Addr().IsLoopback() {
		// A local proxy (ProxyCommand nc -x 127.0.0.1:1080 ...): the
		// real server is beyond it; ssh -G knows more, or refuses.
		err = fmt.Errorf("ssh connects through a local proxy at %v", ap)
	}
	if err == nil {
		log.Debug("SSH server address, from ssh's connection", "addr", ap)
		return ap.Addr(), nil
	}
	log.Debug("SSH server address unknown from ssh's connection; asking ssh -G", "err", err)
	a, err2 := opts.ServerAddr(ctx)
	if err2 != nil {
		return netip.Addr{}, fmt.Errorf("%v; %v", err, err2)
	}
	log.Debug("SSH server address, from ssh -G", "addr", a)
	return a, nil
}

// localNets are this machine's addresses and networks, less those of the
// tunnel's own device.
func localNets(dev string) ([]tun.Net, error) {
	all, err := tun.Nets()
	if err != nil {
		return nil, err
	}
	var out []tun.Net
	for _, n := range all {
		if n.Dev != dev && !n.Prefix.Addr().IsLoopback() && !n.Prefix.Addr().IsLinkLocalUnicast() {
			out = append(out, n)
		}
	}
	return out, nil
}
