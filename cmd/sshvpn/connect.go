package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"os/user"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/sshvpn/sshvpn/client"
	"github.com/sshvpn/sshvpn/dns"
	"github.com/sshvpn/sshvpn/framing"
	"github.com/sshvpn/sshvpn/logs"
	"github.com/sshvpn/sshvpn/policy"
	"github.com/sshvpn/sshvpn/spawn"
	"github.com/sshvpn/sshvpn/tun"
	"golang.org/x/term"
)

type connectCmd struct {
	SSHCmd       string `group:"ssh" short:"e" name:"ssh-cmd" default:"ssh" placeholder:"CMD" help:"The ssh command and its options, split like a shell would (e.g. \"ssh -p 2222 -F ./ssh_config\")."`
	RemoteCmd    string `group:"ssh" default:"sshvpn --remote" placeholder:"CMD" help:"The command ssh runs on the server."`
	Native       bool   `group:"ssh" help:"Speak SSH in this process (golang.org/x/crypto/ssh) instead of running ssh. It reads the same configuration (HostName, User, Port, IdentityFile, ProxyJump, ServerAlive*, known_hosts, StrictHostKeyChecking, HostKeyAlias, ConnectTimeout), uses the ssh-agent first, then the identity files."`
	SSHConfig    string `group:"ssh" short:"F" name:"ssh-config" placeholder:"FILE" help:"The ssh configuration file instead of ~/.ssh/config and /etc/ssh/ssh_config (passed on to a spawned ssh as -F)."`
	AcceptNew    bool   `group:"ssh" help:"With --native: record an unknown server's host key and connect (like StrictHostKeyChecking=accept-new). A changed host key is always refused."`
	Subsystem    string `group:"ssh" placeholder:"NAME" help:"With --native: ask sshd for this Subsystem instead of running --remote-cmd (sshd_config: \"Subsystem sshvpn /usr/local/bin/sshvpn --remote\"): no shell, so no startup files and no banners."`
	OpenSSHTun   bool   `group:"ssh" name:"openssh-tun" help:"With --native: the server has no sshvpn; use OpenSSH's own tun@openssh.com channel (what ssh -w uses; the server needs PermitTunnel). --remote-dev N picks its tunN; its addresses are the server admin's business."`
	Upload       bool   `group:"ssh" help:"Copy this sshvpn to the server over ssh (to ~/.cache/sshvpn/sshvpn-VERSION, checked by size and SHA-256, skipped when an identical copy is there) and run that copy in place of the sshvpn that --remote-cmd names (so \"sudo sshvpn --remote\" runs the copy with sudo): nothing to install on the server. Works with the ssh binary and --native. The server's system and architecture must match the binary's."`
	AsRootSSH    bool   `group:"ssh" name:"as-root-ssh" help:"Under sudo, use root's ssh keys, configuration and known_hosts; by default ssh runs as the user who ran sudo (SUDO_UID), with that user's, while the device and routes stay root's."`
	UploadBinary string `group:"ssh" placeholder:"FILE" help:"With --upload: copy FILE instead of this sshvpn (a build for the server's architecture: CGO_ENABLED=0 GOOS=linux GOARCH=arm64 go build ./cmd/sshvpn)."`
	tunnelFlags
	Mode        string `group:"device" default:"tun" enum:"tun,tap" help:"tun carries IP packets; tap carries Ethernet frames (the server must allow it)."`
	RemoteDev   string `group:"device" placeholder:"NAME" help:"Ask the server for this device: granted if its policy names the same, or, where the policy names none, if the server's account (not root) owns it (a device its admin made for it: ip tuntap add dev NAME mode tun user USER)."`
	RemoteRoute []cidr `placeholder:"CIDR" help:"Ask the server to route this network, which is behind this machine, into the tunnel (granted only inside the server's --allow-route networks)."`
	linkFlags
	DNS            []netip.Addr  `name:"dns" placeholder:"ADDR" help:"Use this DNS server (reached through the tunnel, say a resolver on the server's network) while the tunnel is up, for all names: through systemd-resolved when it runs, else resolvconf; undone on exit. Repeatable."`
	DNSDomain      []string      `name:"dns-domain" placeholder:"DOMAIN" help:"With --dns, send only names under DOMAIN to the DNS servers of --dns (split DNS), through systemd-resolved's per-device domains; ~DOMAIN routes without searching it. Repeatable. Without it, every name goes to them."`
	DefaultRoute   bool          `help:"Send all traffic through the tunnel: the two half-default routes for each family the tunnel has, after pinning the route to the SSH server outside it. A family the tunnel has no address in is blocked meanwhile (see --allow-untunneled). All removed on exit; with --reconnect they stay while the tunnel is down, so nothing leaks past it."`
	Untunneled     bool          `name:"allow-untunneled" help:"With --default-route, let the address family the tunnel does not carry (IPv6 past an IPv4-only tunnel, IPv4 past an IPv6-only one) go outside the tunnel, the way it goes without it. By default it is blocked while the tunnel is up (unreachable routes for its two halves), so that it fails at once instead of leaking past the tunnel."`
	Reconnect      bool          `help:"When the connection dies (ssh exits, the server stops answering or restarts), dial again with backoff (1s doubling to 60s), keeping the device, its addresses and routes, and open TCP connections. SIGHUP reconnects at once."`
	ReconnectTries int           `placeholder:"N" help:"Give up after N failed attempts in a row (implies --reconnect; default: no limit)."`
	Streams        int           `default:"1" placeholder:"N" help:"Stripe the tunnel over N SSH connections (N ssh processes, or N in-process connections with --native) joined to one device: each new flow goes to the connection that carries the fewest and stays there, in order, so that N connections lift what caps one (ssh's 2 MiB channel window per round trip, one core per direction, one connection's loss recovery stalling every flow); pings and DNS ride the quietest connection, clear of a download's stalls. Each connection runs the server's sshvpn (its forced command) and proves it belongs to the session; with --reconnect a connection that dies is dialled again while the others carry its flows, without, the tunnel goes on with fewer. Not with --openssh-tun."`
	Rehook         bool          `group:"hooks" help:"With --reconnect, run the down and up hooks around every reconnect too (SSHVPN_SCRIPT_CONTEXT=restart); by default they run once, when the link first comes up and at the end."`
	Keepalive      time.Duration `group:"keepalive" default:"10s" help:"Interval between keepalive pings."`
	DeadAfter      time.Duration `group:"keepalive" default:"45s" help:"Give up on a peer silent this long."`

	Destination string `arg:"" help:"[user@]host, as ssh takes it (a Host alias from ssh_config works)."`

	profile     string // the profile it was started from (sshvpn up)
	profileFile string // and the file it was read from
	verb        verbosity
	as          *spawn.User // under sudo: the account ssh runs as
}

func (c *connectCmd) Run(ctx context.Context, log *slog.Logger, sig signals, v verbosity) error {
	c.verb = v
	relay := &logs.Relay{Log: log, Raw: os.Stderr}
	defer relay.Flush()
	p, err := c.plan()
	if err != nil {
		return err
	}
	if c.as, err = invokingUser(c.AsRootSSH); err != nil {
		return err
	}
	if c.as != nil {
		log.Debug("under sudo: ssh runs as the invoking user", "user", c.as.Name, "home", c.as.Home)
	}
	dialer, packets, err := c.dialer(log, relay)
	if err != nil {
		return err
	}
	if !c.Native {
		oneThread()
	}
	cfg := client.Config{
		Dialer: dialer, Packets: packets, Destination: c.Destination, Profile: c.profile, ProfileFile: c.profileFile,
		Dev: c.Dev, Mode: p.mode, Offload: c.Offload && !c.OpenSSHTun, MTU: c.MTU, Addrs: p.addrs, PeerAddrs: p.peers,
		RemoteDev: c.RemoteDev, RemoteRoutes: prefixes(c.RemoteRoute),
		Routes: prefixes(c.Route), DefaultRoute: c.DefaultRoute, AllowUntunneled: c.Untunneled, Bridge: c.Bridge, MAC: p.mac,
		DNS: c.DNS, DNSDomains: c.DNSDomain, Up: c.Up, Down: c.Down, HookTimeout: c.HookTimeout, Rehook: c.Rehook,
		Reconnect: client.Reconnect{Enabled: c.Reconnect || c.ReconnectTries > 0, Tries: c.ReconnectTries, Hangup: sig.hangup}, Streams: c.Streams,
		Keepalive: c.Keepalive, DeadAfter: c.DeadAfter,
		Logger: log, Verbose: v.verbose, Counters: sig.counters, Software: "sshvpn " + versionString(),
	}
	if c.Upload || c.UploadBinary != "" {
		cfg.Upload = &client.Upload{Binary: c.UploadBinary, Version: versionString()}
		if c.as != nil {
			cfg.Upload.Prepare = c.as.Apply
		}
	}
	return client.Run(ctx, cfg)
}

// plan is what the client's flags ask for, checked.
type plan struct {
	mode         tun.Mode
	addrs, peers []netip.Prefix // the proposal
	mac          net.HardwareAddr
}

func (c *connectCmd) plan() (plan, error) {
	p := plan{mode: tun.Mode(c.Mode), addrs: prefixes(c.Addr), peers: prefixes(c.PeerAddr)}
	if err := checkMTUFlag(c.MTU); err != nil {
		return p, err
	}
	if err := checkKeepalive(c.Keepalive, c.DeadAfter); err != nil {
		return p, err
	}
	for _, d := range c.DNSDomain {
		if err := dns.CheckDomain(d); err != nil {
			return p, fmt.Errorf("--dns-domain: %w", err)
		}
	}
	if len(c.DNSDomain) > 0 && len(c.DNS) == 0 {
		return p, errors.New("--dns-domain names the domains for the servers of --dns: give --dns ADDR too")
	}
	if c.Streams < 1 || c.Streams > framing.MaxStreams {
		return p, fmt.Errorf("--streams %d: want 1 to %d", c.Streams, framing.MaxStreams)
	}
	if c.Streams > 1 && c.OpenSSHTun {
		return p, errors.New("--streams with --openssh-tun: sshd's tun channel cannot join several connections to one tunnel; run sshvpn on the server (drop --openssh-tun) to stripe")
	}
	if c.ReconnectTries < 0 {
		return p, fmt.Errorf("--reconnect-tries %d: want a positive number", c.ReconnectTries)
	}
	if p.mode == tun.ModeTUN || len(p.addrs) > 0 || len(p.peers) > 0 {
		// tap mode may run without addresses (a bridge port).
		var err error
		if p.addrs, p.peers, err = proposal(p.addrs, p.peers); err != nil {
			return p, err
		}
	}
	if err := tun.CheckName(c.Dev); err != nil {
		return p, fmt.Errorf("--dev: %w", err)
	}
	if !c.OpenSSHTun {
		if err := tun.CheckName(c.RemoteDev); err != nil {
			return p, fmt.Errorf("--remote-dev: %w", err)
		}
	}
	if err := policy.CheckMTU6(c.MTU, p.addrs, p.peers); c.MTU != 0 && err != nil {
		return p, fmt.Errorf("--mtu: %w, and the tunnel has IPv6 addresses: raise --mtu, or give IPv4 --addr/--peer-addr only", err)
	}
	var err error
	p.mac, err = c.mac(p.mode == tun.ModeTAP)
	return p, err
}

// dialer is the transport the flags ask for: the spawned ssh, or the
// in-process SSH client running sshvpn --remote (or a Subsystem), or
// OpenSSH's own tunnel channel, which carries packets.
func (c *connectCmd) dialer(log *slog.Logger, relay *logs.Relay) (spawn.Dialer, spawn.PacketDialer, error) {
	logf := func(f string, a ...any) { log.Debug(fmt.Sprintf(f, a...)) }
	if !c.Native {
		sshArgv, err := spawn.SplitCommand(c.SSHCmd)
		if err != nil {
			return nil, nil, fmt.Errorf("--ssh-cmd: %w", err)
		}
		if len(sshArgv) == 0 {
			return nil, nil, fmt.Errorf("--ssh-cmd is empty")
		}
		if c.AcceptNew || c.Subsystem != "" || c.OpenSSHTun {
			return nil, nil, fmt.Errorf("--accept-new, --subsystem and --openssh-tun go with --native (with ssh, use its own options: -e \"ssh -o StrictHostKeyChecking=accept-new\")")
		}
		if c.SSHConfig != "" {
			sshArgv = append(slices.Clone(sshArgv), "-F", c.SSHConfig)
		}
		return spawn.Options{SSH: sshArgv, Destination: c.Destination, RemoteCommand: c.remoteCmd(), Logf: logf, As: c.as, Stderr: relay}, nil, nil
	}
	if c.SSHCmd != "ssh" {
		return nil, nil, fmt.Errorf("--ssh-cmd goes with the ssh binary, not --native: put its options in the ssh configuration (-F FILE)")
	}
	n := spawn.Native{ConfigFile: c.SSHConfig, Destination: c.Destination, RemoteCommand: c.remoteCmd(), Stderr: relay,
		Subsystem: c.Subsystem, AcceptNew: c.AcceptNew, Logf: logf, Prompt: terminalPrompt(), As: c.as}
	if !c.OpenSSHTun {
		return &n, nil, nil
	}
	if c.Mode != "tun" {
		return nil, nil, fmt.Errorf("--openssh-tun carries IP packets only (tun mode); tap mode needs sshvpn on the server")
	}
	unit := -1
	if c.RemoteDev != "" {
		u, err := strconv.Atoi(strings.TrimPrefix(c.RemoteDev, "tun"))
		if err != nil || u < 0 {
			return nil, nil, fmt.Errorf("--remote-dev %q: with --openssh-tun, the server's tun unit: a number such as 0, or tun0", c.RemoteDev)
		}
		unit = u
	}
	return nil, &spawn.OpenSSHTun{Native: n, Unit: unit}, nil
}

// terminalPrompt asks on the terminal without echo, or is nil without one:
// a passphrase or password is never taken from the command line.
func terminalPrompt() func(string) (string, error) {
	tty, err := os.OpenFile("/dev/tty", os.O_RDWR, 0)
	if err != nil {
		return nil
	}
	tty.Close()
	return func(prompt string) (string, error) {
		tty, err := os.OpenFile("/dev/tty", os.O_RDWR, 0)
		if err != nil {
			return "", err
		}
		defer tty.Close()
		fmt.Fprint(tty, prompt)
		b, err := term.ReadPassword(int(tty.Fd()))
		fmt.Fprintln(tty)
		return string(b), err
	}
}

// invokingUser is the user who ran sshvpn through sudo (SUDO_UID), whose
// ssh keys, configuration and known_hosts the connection should use; nil
// when not under sudo, for root itself, or with --as-root-ssh.
func invokingUser(asRoot bool) (*spawn.User, error) {
	id := os.Getenv("SUDO_UID")
	if asRoot || os.Geteuid() != 0 || id == "" || id == "0" {
		return nil, nil
	}
	u, err := user.LookupId(id)
	if err != nil {
		return nil, fmt.Errorf("under sudo, the invoking user (SUDO_UID=%s) is unknown: %w (--as-root-ssh uses root's ssh setup instead)", id, err)
	}
	uid, err1 := strconv.ParseUint(u.Uid, 10, 32)
	gid, err2 := strconv.ParseUint(u.Gid, 10, 32)
	if err1 != nil || err2 != nil {
		return nil, fmt.Errorf("under sudo: user %s has a uid or gid that is not a number", u.Username)
	}
	a := &spawn.User{Name: u.Username, UID: uint32(uid), GID: uint32(gid), Home: u.HomeDir}
	ids, _ := u.GroupIds()
	for _, g := range ids {
		if n, err := strconv.ParseUint(g, 10, 32); err == nil {
			a.Groups = append(a.Groups, uint32(n))
		}
	}
	return a, nil
}

// remoteCmd is --remote-cmd with -v or -q added when given here: the
// server's log lines the client sees follow the client's verbosity (a
// forced command's own -v or -q wins on the server).
func (c *connectCmd) remoteCmd() string {
	switch {
	case c.verb.verbose:
		return c.RemoteCmd + " -v"
	case c.verb.quiet:
		return c.RemoteCmd + " -q"
	}
	return c.RemoteCmd
}
