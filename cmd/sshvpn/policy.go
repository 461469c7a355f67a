package main

import (
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"

	"github.com/sshvpn/sshvpn/policy"
	"github.com/sshvpn/sshvpn/pool"
	"github.com/sshvpn/sshvpn/registry"
	"github.com/sshvpn/sshvpn/tun"
	"github.com/sshvpn/sshvpn/usage"
)

// policyFlags are the server's policy: the flags of "sshvpn --remote", which
// an admin fixes in an authorized_keys forced command. Nothing the client
// sends can change them.
type policyFlags struct {
	Dev         string   `placeholder:"NAME" help:"Device to use. An existing persistent device (ip tuntap add dev NAME mode tun user USER) is attached to without privileges; otherwise it is created. With --pool, a pattern such as vpn%d."`
	Addr        []cidr   `placeholder:"CIDR" help:"The server's tunnel address (default: the client's proposal). On a prepared device, the addresses it must already carry."`
	PeerAddr    []cidr   `placeholder:"CIDR" help:"The address the client must use (default: the client's proposal)."`
	MTU         int      `name:"mtu" help:"The tunnel MTU (default: the client's proposal, or 1500)."`
	Mode        string   `default:"tun" enum:"tun,tap" help:"The only mode clients may use: tun (IP) or tap (Ethernet)."`
	Pool        []cidr   `placeholder:"CIDR" help:"Give each session its own address pair from this network (one IPv4 and/or one IPv6 --pool): the server takes the first address, each client the next free one."`
	StateDir    string   `default:"/run/sshvpn" placeholder:"DIR" help:"Where --pool keeps its leases."`
	AllowSource []cidr   `placeholder:"CIDR" help:"Networks behind the client (site-to-site) whose packets may come through the tunnel. Packets from any other source than the client's tunnel address are dropped."`
	AllowRoute  []cidr   `placeholder:"CIDR" help:"Networks inside which the client may ask (--remote-route) for routes on this server into its tunnel; granted routes also pass the source check. They may not overlap --pool or the tunnel addresses."`
	MaxSessions int      `placeholder:"N" help:"How many sessions of this key may run at once (default: 1 with fixed addresses, the pool's size with --pool, no limit when the client proposes the addresses). Sessions are counted per key when sshd's ExposeAuthInfo is on, else per account and command line."`
	Replace     bool     `help:"A new session of this key takes over from an older one that holds its addresses or exceeds --max-sessions (as after a client's reboot, before the old session is known to be dead); the old one is told and ends. Default: the new session is refused. (The same client reconnecting always takes over from its own older session.)"`
	NAT         bool     `name:"nat" help:"Make this server the client's gateway: forward the client's packets and their replies, and masquerade its tunnel addresses out of whatever interface the route to each destination takes (never into another tunnel), IPv4 and IPv6. Where sshvpn turns forwarding on, it forwards nothing else (other tunnels, hosts routing through the server). The nftables rules (table inet sshvpn) go when the session ends, and the forwarding sysctls are put back when the last session that needed them ends."`
	Quota       string   `placeholder:"SIZE/PERIOD" help:"Cap what a key moves, both ways, per period (50GB/30d, 500MiB/1w): a new session is refused once it is spent, and a running one ends when it runs out, telling the client why. Counted in --state-dir's usage.json (sshvpn usage); use a --state-dir that survives reboots (/var/lib/sshvpn) for quotas that do."`
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
	strs := func(cs []cidr) []string {
		out := make([]string, len(cs))
		for i, c := range cs {
			out[i] = c.String()
		}
		return out
	}
	if p.Dev != "" {
		add("dev", p.Dev)
	}
	add("addr", strs(p.Addr)...)
	add("peer-addr", strs(p.PeerAddr)...)
	if p.MTU != 0 {
		add("mtu", strconv.Itoa(p.MTU))
	}
	if p.Mode != "" && p.Mode != "tun" {
		add("mode", p.Mode)
	}
	add("pool", strs(p.Pool)...)
	if p.StateDir != "" && p.StateDir != registry.DefaultDir {
		add("state-dir", p.StateDir)
	}
	add("allow-source", strs(p.AllowSource)...)
	add("allow-route", strs(p.AllowRoute)...)
	if p.MaxSessions != 0 {
		add("max-sessions", strconv.Itoa(p.MaxSessions))
	}
	if p.Replace {
		a = append(a, "--replace")
	}
	if p.NAT {
		a = append(a, "--nat")
	}
	add("rate", p.Rate...)
	if p.Quota != "" {
		add("quota", p.Quota)
	}
	return a
}

// parsed is the policy, checked.
type parsed struct {
	addrs, peers, pool, allow, allowRoutes []netip.Prefix
	mode                                   tun.Mode
	rate                                   policy.RateLimit
	maxSessions                            int
	quota                                  usage.Quota
}

// parse checks the policy as a whole: what authorized-key refuses to print
// is what --remote refuses to run.
func (p *policyFlags) parse(routes []cidr) (parsed, error) {
	r := parsed{addrs: prefixes(p.Addr), peers: prefixes(p.PeerAddr), pool: prefixes(p.Pool),
		allow: prefixes(p.AllowSource), allowRoutes: prefixes(p.AllowRoute), mode: tun.Mode(p.Mode)}
	var err error
	// One side given: the other is its partner in the same subnet, never
	// the client's choice (which would let it pick its own source address).
	if r.addrs, r.peers, err = policy.CompletePair(r.addrs, r.peers); err != nil {
		return r, err
	}
	if len(r.pool) > 0 && (len(r.addrs) > 0 || len(r.peers) > 0) {
		return r, fmt.Errorf("--pool decides the addresses; drop --addr and --peer-addr")
	}
	if len(r.pool) > 0 && len(routes) > 0 {
		return r, errors.New("--route with --pool: every session would claim the same networks; use --allow-route to let each client ask for its own")
	}
	if err := checkMTUFlag(p.MTU); err != nil {
		return r, err
	}
	for _, s := range p.Rate {
		if err := policy.ParseRate(s, &r.rate); err != nil {
			return r, fmt.Errorf("--%w", err) // "--rate \"20x\": ..."
		}
	}
	if p.Quota != "" {
		if r.quota, err = usage.ParseQuota(p.Quota); err != nil {
			return r, fmt.Errorf("--quota: %w", err)
		}
	}
	size := 0
	if len(r.pool) > 0 {
		if size = pool.Size(r.pool); size < 1 {
			return r, fmt.Errorf("--pool %v has no room for a client", r.pool)
		}
	}
	if strings.Contains(p.Dev, "%") && strings.Count(p.Dev, "%d") != 1 {
		return r, fmt.Errorf("--dev %q: a pattern takes one %%d", p.Dev)
	}
	// The name with the largest number the pool (or the kernel) may give.
	if err := tun.CheckName(strings.Replace(p.Dev, "%d", strconv.Itoa(max(size-1, 99)), 1)); err != nil {
		return r, fmt.Errorf("--dev: %w", err)
	}
	if err := (policy.Server{Addrs: r.addrs, PeerAddrs: r.peers, Pool: r.pool, AllowRoutes: r.allowRoutes}).Validate(); err != nil {
		return r, err
	}
	fixed := len(r.addrs) > 0
	switch {
	case p.MaxSessions < 0:
		return r, fmt.Errorf("--max-sessions %d: want a positive number", p.MaxSessions)
	case fixed && p.MaxSessions > 1:
		return r, fmt.Errorf("--max-sessions %d with fixed addresses (--addr, --peer-addr): every session would need the same addresses; use --pool for many sessions of one key", p.MaxSessions)
	case p.MaxSessions > 0:
		r.maxSessions = p.MaxSessions
	case fixed:
		r.maxSessions = 1
	default:
		r.maxSessions = size // 0 (no limit) without a pool
	}
	return r, nil
}
