package main

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"

	"github.com/sshvpn/sshvpn"
	"github.com/sshvpn/sshvpn/pool"
	"github.com/sshvpn/sshvpn/tun"
)

// policyFlags are the server's policy: the flags of "sshvpn --remote", which
// an admin fixes in an authorized_keys forced command. Nothing the client
// sends can change them.
type policyFlags struct {
	Dev         string   `placeholder:"NAME" help:"Device to use. An existing persistent device (ip tuntap add dev NAME mode tun user USER) is attached to without privileges; otherwise it is created. With --pool, a pattern such as vpn%d."`
	Addr        []string `placeholder:"CIDR" help:"The server's tunnel address (default: the client's proposal). On a prepared device, the addresses it must already carry."`
	PeerAddr    []string `placeholder:"CIDR" help:"The address the client must use (default: the client's proposal)."`
	MTU         int      `name:"mtu" help:"The tunnel MTU (default: the client's proposal, or 1500)."`
	Mode        string   `default:"tun" enum:"tun,tap" help:"The only mode clients may use: tun (IP) or tap (Ethernet)."`
	Pool        []string `placeholder:"CIDR" help:"Give each session its own address pair from this network (one IPv4 and/or one IPv6 --pool): the server takes the first address, each client the next free one."`
	StateDir    string   `default:"/run/sshvpn" placeholder:"DIR" help:"Where --pool keeps its leases."`
	AllowSource []string `placeholder:"CIDR" help:"Networks behind the client (site-to-site) whose packets may come through the tunnel. Packets from any other source than the client's tunnel address are dropped."`
	AllowRoute  []string `placeholder:"CIDR" help:"Networks inside which the client may ask (--remote-route) for routes on this server into its tunnel; granted routes also pass the source check. They may not overlap --pool or the tunnel addresses."`
	MaxSessions int      `placeholder:"N" help:"How many sessions of this key may run at once (default: 1 with fixed addresses, the pool's size with --pool). Sessions are counted per key when sshd's ExposeAuthInfo is on, else per account and command line."`
	Replace     bool     `help:"A new session of this key takes over from an older one that holds its addresses or exceeds --max-sessions (as after a client's reboot, before the old session is known to be dead); the old one is told and ends. Default: the new session is refused."`
	Rate        []string `placeholder:"RATE" help:"Limit each direction of a session: bits (20Mbit), bytes (2.5MB) or packets (5000pps) per second; give it twice for bytes and packets. Packets over the limit are dropped."`
}

// args renders the flags that differ from their defaults as a command line,
// for authorized-key.
func (p *policyFlags) args() []string {
	var a []string
	add := func(flag string, vals ...string) {
		for _, v := range vals {
			a = append(a, "--"+flag+"="+v)
		}
	}
	if p.Dev != "" {
		add("dev", p.Dev)
	}
	add("addr", p.Addr...)
	add("peer-addr", p.PeerAddr...)
	if p.MTU != 0 {
		add("mtu", strconv.Itoa(p.MTU))
	}
	if p.Mode != "" && p.Mode != "tun" {
		add("mode", p.Mode)
	}
	add("pool", p.Pool...)
	if p.StateDir != "" && p.StateDir != "/run/sshvpn" {
		add("state-dir", p.StateDir)
	}
	add("allow-source", p.AllowSource...)
	add("allow-route", p.AllowRoute...)
	if p.MaxSessions != 0 {
		add("max-sessions", strconv.Itoa(p.MaxSessions))
	}
	if p.Replace {
		a = append(a, "--replace")
	}
	add("rate", p.Rate...)
	return a
}

// parsed is the policy with its addresses parsed.
type parsed struct {
	addrs, peers, pool, allow, allowRoutes []netip.Prefix
	mode                                   tun.Mode
	rate                                   sshvpn.RateLimit
}

func (p *policyFlags) parse() (parsed, error) {
	var r parsed
	var err error
	if r.addrs, err = parsePrefixes("addr", p.Addr); err != nil {
		return r, err
	}
	if r.peers, err = parsePrefixes("peer-addr", p.PeerAddr); err != nil {
		return r, err
	}
	if r.pool, err = parsePrefixes("pool", p.Pool); err != nil {
		return r, err
	}
	if r.allow, err = parsePrefixes("allow-source", p.AllowSource); err != nil {
		return r, err
	}
	if r.allowRoutes, err = parsePrefixes("allow-route", p.AllowRoute); err != nil {
		return r, err
	}
	// One side given: the other is its partner in the same subnet, never
	// the client's choice (which would let it pick its own source address).
	if r.addrs, r.peers, err = sshvpn.CompletePair(r.addrs, r.peers); err != nil {
		return r, err
	}
	if len(r.pool) > 0 && (len(r.addrs) > 0 || len(r.peers) > 0) {
		return r, fmt.Errorf("--pool decides the addresses; drop --addr and --peer-addr")
	}
	if err := checkMTUFlag(p.MTU); err != nil {
		return r, err
	}
	for _, s := range p.Rate {
		if err := sshvpn.ParseRate(s, &r.rate); err != nil {
			return r, err
		}
	}
	if strings.Contains(p.Dev, "%") && len(r.pool) == 0 && strings.Count(p.Dev, "%d") != 1 {
		return r, fmt.Errorf("--dev %q: a pattern takes one %%d", p.Dev)
	}
	// The name with the largest number the kernel or the pool may give it.
	if err := tun.CheckName(strings.Replace(p.Dev, "%d", strconv.Itoa(max(pool.Size(r.pool)-1, 99)), 1)); err != nil {
		return r, fmt.Errorf("--dev: %w", err)
	}
	r.mode = tun.Mode(p.Mode)
	cfg := sshvpn.ServerConfig{Addrs: r.addrs, PeerAddrs: r.peers, Pool: r.pool, AllowRoutes: r.allowRoutes}
	if err := cfg.Validate(); err != nil {
		return r, err
	}
	return r, nil
}

// shellQuote quotes s for a POSIX shell when it needs quoting.
func shellQuote(s string) string {
	if s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_=/.,:%+@") == "" {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
