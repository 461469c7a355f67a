package sshvpn

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"

	"github.com/sshvpn/sshvpn/framing"
	"github.com/sshvpn/sshvpn/router"
	"github.com/sshvpn/sshvpn/tun"
)

// This file is the server's policy decision: what of a client's proposal
// the server grants. Everything the client sends is a proposal; the
// ServerConfig is the admin's word and wins.
//
// The decision guarantees, for every client and every proposal:
//   - addresses the policy fixes (Addrs, PeerAddrs, or a lease from Assign)
//     are used as they are, never replaced by the client's;
//   - where the policy leaves the addresses open, a proposal is used only
//     if it overlaps none of the server's own addresses and connected
//     networks (Nets), and the two ends differ;
//   - a granted route lies inside an AllowRoutes network and outside every
//     tunnel address of the session, every pool network (Pool) and every
//     network of the server (Nets);
//   - other modes and device names than the policy's are refused.

// Validate refuses a policy that contradicts itself: a route the client may
// ask for could then cover another client's lease, the server's tunnel
// address, or the client's own. Serve checks it too; a command line should
// call it at startup, so the admin hears of it before any client does.
func (cfg *ServerConfig) Validate() error {
	if err := CheckPair(cfg.Addrs, cfg.PeerAddrs); err != nil {
		return err
	}
	for _, r := range cfg.AllowRoutes {
		if n, ok := overlapping(r, cfg.Pool); ok {
			return fmt.Errorf("--allow-route %v overlaps --pool %v: a client could claim another client's lease; keep the networks behind clients outside the pool", r, n)
		}
		if n, ok := overlapping(r, slices.Concat(cfg.Addrs, cfg.PeerAddrs)); ok {
			return fmt.Errorf("--allow-route %v overlaps the tunnel address %v: a client could route the tunnel's own addresses; keep the networks behind clients outside the tunnel's subnets", r, n)
		}
	}
	return nil
}

// decide applies the server's policy to the client's proposal.
func decide(cfg ServerConfig, h *framing.Hello) (Tunnel, error) {
	if h.Role != "client" {
		return Tunnel{}, fmt.Errorf("protocol error: the peer introduced itself as %q, not as a client", h.Role)
	}
	if err := cfg.Validate(); err != nil {
		return Tunnel{}, fmt.Errorf("this server's policy is inconsistent (tell its admin): %w", err)
	}
	mode := cfg.Mode
	if mode == "" {
		mode = tun.ModeTUN
	}
	if h.Mode != "" && tun.Mode(h.Mode) != mode {
		return Tunnel{}, fmt.Errorf("this server serves %s mode only (its --mode policy); the client asked for %s", mode, printable([]byte(h.Mode)))
	}
	if err := checkPrefixes("proposed address", h.Addrs); err != nil {
		return Tunnel{}, err
	}
	if err := checkPrefixes("proposed address", h.PeerAddrs); err != nil {
		return Tunnel{}, err
	}
	routes := make([]netip.Prefix, len(h.Routes))
	for i, r := range h.Routes {
		routes[i] = r.Masked() // judge the network the kernel would route
	}
	if err := checkPrefixes("requested route", routes); err != nil {
		return Tunnel{}, err
	}
	if h.WantDev != "" && h.WantDev != cfg.Dev {
		return Tunnel{}, fmt.Errorf("this server's policy (the command line of its sshvpn --remote) chooses the device; the client may not ask for %q", printable([]byte(h.WantDev)))
	}

	if len(h.Resume) > framing.MaxResume || (h.Resume != "" && len(h.Resume) < framing.MinResume) {
		return Tunnel{}, fmt.Errorf("protocol error: a resume token of %d bytes (%d to %d)", len(h.Resume), framing.MinResume, framing.MaxResume)
	}
	t := Tunnel{Mode: mode, MTU: cfg.MTU, Routes: routes, Resume: h.Resume}
	if cfg.Admit != nil {
		if err := cfg.Admit(t); err != nil {
			return Tunnel{}, err
		}
	}
	var nets []router.Net
	if cfg.Nets != nil {
		var err error
		if nets, err = cfg.Nets(); err != nil {
			return Tunnel{}, err
		}
	}
	// The addresses: the policy's, a lease (below), or the proposal.
	fixed := cfg.Assign != nil || len(cfg.Addrs) > 0 || len(cfg.PeerAddrs) > 0
	var err error
	switch {
	case cfg.Assign != nil:
	case fixed:
		if t.Addrs, t.PeerAddrs, err = CompletePair(cfg.Addrs, cfg.PeerAddrs); err != nil {
			return Tunnel{}, fmt.Errorf("this server's policy is incomplete (tell its admin): %w", err)
		}
	default:
		if t.Addrs, t.PeerAddrs, err = CompletePair(h.PeerAddrs, h.Addrs); err != nil {
			return Tunnel{}, fmt.Errorf("the client's proposal: %w", err)
		}
		if err := CheckPair(t.Addrs, t.PeerAddrs); err != nil {
			return Tunnel{}, fmt.Errorf("the client's proposal: %w", err)
		}
		for _, p := range slices.Concat(t.Addrs, t.PeerAddrs) {
			if n, ok := overlappingNet(p, nets); ok {
				return Tunnel{}, fmt.Errorf("the proposed tunnel address %v overlaps %v, which this server has (%s); propose addresses outside the server's networks (--addr and --peer-addr)", p, n.Prefix, inUse(n))
			}
		}
	}
	if mode == tun.ModeTUN && cfg.Assign == nil && (len(t.Addrs) == 0 || len(t.PeerAddrs) == 0) {
		return Tunnel{}, errors.New("no tunnel addresses: neither the client's proposal nor the server's --addr/--peer-addr name any")
	}

	// The routes the client asks for, behind it: inside what the policy
	// allows, and clear of every address the server or its clients use.
	for _, r := range routes {
		if !covered(r, cfg.AllowRoutes) {
			return Tunnel{}, fmt.Errorf("this server's policy does not route %v to the client: it is not inside any --allow-route network of the server's command line", r)
		}
		if n, ok := overlapping(r, slices.Concat(t.Addrs, t.PeerAddrs)); ok {
			return Tunnel{}, fmt.Errorf("the requested route %v overlaps the tunnel address %v", r, n)
		}
		if n, ok := overlapping(r, cfg.Pool); ok {
			return Tunnel{}, fmt.Errorf("the requested route %v overlaps the server's address pool %v, which other clients use", r, n)
		}
		if n, ok := overlappingNet(r, nets); ok {
			return Tunnel{}, fmt.Errorf("the requested route %v overlaps %v, which this server has (%s)", r, n.Prefix, inUse(n))
		}
		if cfg.ClientAddr.IsValid() && r.Contains(cfg.ClientAddr) {
			return Tunnel{}, fmt.Errorf("the requested route %v covers the client's own address %v, where the SSH connection comes from", r, cfg.ClientAddr)
		}
	}

	if t.MTU == 0 {
		t.MTU = h.MTU
		if t.MTU == 0 {
			t.MTU = tun.DefaultMTU
		}
		if err := CheckMTU(t.MTU); err != nil {
			return Tunnel{}, fmt.Errorf("proposed %w", err)
		}
	}
	hasV6 := func(ps []netip.Prefix) bool {
		return slices.ContainsFunc(ps, func(p netip.Prefix) bool { return p.Addr().Is6() })
	}
	if t.MTU < 1280 && (hasV6(t.Addrs) || hasV6(t.PeerAddrs) || hasV6(cfg.Pool)) {
		return Tunnel{}, fmt.Errorf("MTU %d is below the 1280 IPv6 needs; raise the MTU (the server's --mtu if it sets one, else the client's) or use IPv4 tunnel addresses only", t.MTU)
	}
	if cfg.Assign != nil {
		// Last: a lease is claimed only for a session that is granted.
		if t.Addrs, t.PeerAddrs, err = cfg.Assign(h.Addrs); err != nil {
			return Tunnel{}, err
		}
	}
	return t, nil
}

// overlappingNet returns the first of nets that overlaps p.
func overlappingNet(p netip.Prefix, nets []router.Net) (router.Net, bool) {
	for _, n := range nets {
		if p.Masked().Overlaps(n.Prefix.Masked()) {
			return n, true
		}
	}
	return router.Net{}, false
}

// inUse says where a network of the server is.
func inUse(n router.Net) string {
	if n.Dev == "" {
		return "in use"
	}
	return "on " + n.Dev
}
