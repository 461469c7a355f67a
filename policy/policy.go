// Package policy decides what a tunnel may be, with no I/O: the grant a
// server gives a client's Hello under its policy (the flags of its forced
// command), the client's check of the server's answer, the two ends of an
// address pair, the MTU range and rate limits. Each rule is written once,
// here; the sides call it with what they know (their own networks, the
// SSH client's address) and act on the answer.
package policy

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"

	"github.com/sshvpn/sshvpn/framing"
	"github.com/sshvpn/sshvpn/internal/text"
	"github.com/sshvpn/sshvpn/router"
	"github.com/sshvpn/sshvpn/tun"
)

// Tunnel is what the handshake decided, from one side's point of view.
type Tunnel struct {
	Mode      tun.Mode
	MTU       int
	Addrs     []netip.Prefix // this side's tunnel addresses
	PeerAddrs []netip.Prefix // the other side's
	Routes    []netip.Prefix // networks the peer said are behind it (server side: routes granted to the client)
	// Resume is the client's resume token (server side): a new session
	// with the token of the one that holds its addresses takes over.
	Resume string
	// Offload are the offloads in use, once the link is up; on the
	// server before its device is opened, what the client offered: the
	// device is opened for them only then.
	Offload tun.Offload
	// Streams is how many connections the tunnel is striped over, as
	// the client asked (at most framing.MaxStreams); 0 or 1: one.
	Streams int
	// Dev is the server's device as the policy names it (server side):
	// its --dev, or the device of the account's own that the client
	// asked for (see Server.Dev); empty lets the server choose.
	Dev string
}

// Server is a server's policy: the flags of its "sshvpn --remote", which
// an admin fixes in a forced command. A client's proposal is used only
// where the policy leaves a field empty.
type Server struct {
	Mode      tun.Mode       // ModeTUN when empty
	MTU       int            // when 0, the client's proposal or tun.DefaultMTU
	Addrs     []netip.Prefix // this side's addresses; when empty, the client's proposal
	PeerAddrs []netip.Prefix // the client's addresses; when empty, the client's proposal
	Dev       string         // the device the policy names, if any
	// Pool are the networks a lease is drawn from: with a pool, Grant
	// leaves the addresses to the lease, and no client's route may
	// overlap it.
	Pool []netip.Prefix
	// AllowSources are networks behind the client whose packets may come
	// through the tunnel (besides its tunnel address).
	AllowSources []netip.Prefix
	// AllowRoutes are the networks inside which the client may ask the
	// server to route networks behind it into the tunnel.
	AllowRoutes []netip.Prefix
}

// Where is what the server knows of its surroundings when it grants.
type Where struct {
	// Nets are the server's own addresses and connected networks (see
	// router.Nets), which no proposed address and no granted route may
	// overlap.
	Nets []router.Net
	// Client is the SSH client's address: no route granted to the
	// client may cover it, or the server's answers to the client would
	// go into the tunnel.
	Client netip.Addr
}

// Validate refuses a policy that contradicts itself: the same address on
// both ends, or routes the client may ask for that overlap the pool or the
// tunnel's own addresses (a client could claim another's lease).
func (p Server) Validate() error {
	if err := CheckPair(p.Addrs, p.PeerAddrs); err != nil {
		return err
	}
	for _, r := range p.AllowRoutes {
		if n, ok := Overlapping(r, p.Pool); ok {
			return fmt.Errorf("--allow-route %v overlaps --pool %v: a client could claim another client's lease; keep the networks behind clients outside the pool", r, n)
		}
		if n, ok := Overlapping(r, slices.Concat(p.Addrs, p.PeerAddrs)); ok {
			return fmt.Errorf("--allow-route %v overlaps the tunnel address %v: a client could route the tunnel's own addresses; keep the networks behind clients outside the tunnel's subnets", r, n)
		}
	}
	return nil
}

// Check is the part of Grant that needs nothing of the server's
// surroundings: who the peer says it is, the mode, the shape of what it
// proposes, the device it asks for and its resume token. A server checks
// it before acting on the token (ending the same client's older session)
// and then grants with its networks as they are after that.
func Check(h *framing.Hello, p Server) error {
	_, err := check(h, p)
	return err
}

func check(h *framing.Hello, p Server) (Tunnel, error) {
	if h.Role != "client" {
		return Tunnel{}, fmt.Errorf("protocol error: the peer introduced itself as %q, not as a client", h.Role)
	}
	if err := p.Validate(); err != nil {
		return Tunnel{}, fmt.Errorf("this server's policy is inconsistent (tell its admin): %w", err)
	}
	mode := p.Mode
	if mode == "" {
		mode = tun.ModeTUN
	}
	if h.Mode != "" && tun.Mode(h.Mode) != mode {
		return Tunnel{}, fmt.Errorf("this server serves %s mode only (its --mode policy); the client asked for %s", mode, Printable([]byte(h.Mode)))
	}
	if err := CheckPrefixes("proposed address", h.Addrs); err != nil {
		return Tunnel{}, err
	}
	if err := CheckPrefixes("proposed address", h.PeerAddrs); err != nil {
		return Tunnel{}, err
	}
	routes := make([]netip.Prefix, len(h.Routes))
	for i, r := range h.Routes {
		routes[i] = r.Masked() // judge the network the kernel would route
	}
	if err := CheckPrefixes("requested route", routes); err != nil {
		return Tunnel{}, err
	}
	if h.WantDev != "" && h.WantDev != p.Dev {
		return Tunnel{}, fmt.Errorf("this server's policy (the command line of its sshvpn --remote) chooses the device; the client may not ask for %q", Printable([]byte(h.WantDev)))
	}
	if len(h.Resume) > framing.MaxResume || (h.Resume != "" && len(h.Resume) < framing.MinResume) {
		return Tunnel{}, fmt.Errorf("protocol error: a resume token of %d bytes (%d to %d)", len(h.Resume), framing.MinResume, framing.MaxResume)
	}
	if h.Streams < 0 || h.Streams > framing.MaxStreams {
		return Tunnel{}, fmt.Errorf("the client asked for %d streams; a tunnel has 1 to %d", h.Streams, framing.MaxStreams)
	}
	if h.Join != nil && !h.Join.Valid() {
		return Tunnel{}, errors.New("protocol error: a malformed join of a striped session")
	}
	return Tunnel{Mode: mode, MTU: p.MTU, Routes: routes, Resume: h.Resume, Streams: h.Streams, Dev: p.Dev}, nil
}

// Grant decides the tunnel a client's Hello h gets under policy p, on a
// server whose surroundings are w, or refuses it and says why. With a
// pool, the addresses are left to the lease the server draws after the
// grant.
func Grant(h *framing.Hello, p Server, w Where) (Tunnel, error) {
	t, err := check(h, p)
	if err != nil {
		return Tunnel{}, err
	}
	pooled := len(p.Pool) > 0
	switch {
	case pooled:
	case len(p.Addrs) > 0 || len(p.PeerAddrs) > 0:
		if t.Addrs, t.PeerAddrs, err = CompletePair(p.Addrs, p.PeerAddrs); err != nil {
			return Tunnel{}, fmt.Errorf("this server's policy is incomplete (tell its admin): %w", err)
		}
	default:
		if t.Addrs, t.PeerAddrs, err = CompletePair(h.PeerAddrs, h.Addrs); err != nil {
			return Tunnel{}, fmt.Errorf("the client's proposal: %w", err)
		}
		if err := CheckPair(t.Addrs, t.PeerAddrs); err != nil {
			return Tunnel{}, fmt.Errorf("the client's proposal: %w", err)
		}
		for _, a := range slices.Concat(t.Addrs, t.PeerAddrs) {
			if n, ok := OverlappingNet(a, w.Nets); ok {
				return Tunnel{}, fmt.Errorf("the proposed tunnel address %v overlaps %v, which this server has (%s); propose addresses outside the server's networks (--addr and --peer-addr)", a, n.Prefix, InUse(n))
			}
		}
	}
	if t.Mode == tun.ModeTUN && !pooled && (len(t.Addrs) == 0 || len(t.PeerAddrs) == 0) {
		return Tunnel{}, errors.New("no tunnel addresses: neither the client's proposal nor the server's --addr/--peer-addr name any")
	}
	for _, r := range t.Routes {
		if !Covered(r, p.AllowRoutes) {
			return Tunnel{}, fmt.Errorf("this server's policy does not route %v to the client: it is not inside any --allow-route network of the server's command line", r)
		}
		if n, ok := Overlapping(r, slices.Concat(t.Addrs, t.PeerAddrs)); ok {
			return Tunnel{}, fmt.Errorf("the requested route %v overlaps the tunnel address %v", r, n)
		}
		if n, ok := Overlapping(r, p.Pool); ok {
			return Tunnel{}, fmt.Errorf("the requested route %v overlaps the server's address pool %v, which other clients use", r, n)
		}
		if n, ok := OverlappingNet(r, w.Nets); ok {
			return Tunnel{}, fmt.Errorf("the requested route %v overlaps %v, which this server has (%s)", r, n.Prefix, InUse(n))
		}
		if w.Client.IsValid() && r.Contains(w.Client) {
			return Tunnel{}, fmt.Errorf("the requested route %v covers the client's own address %v, where the SSH connection comes from", r, w.Client)
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
	if err := CheckMTU6(t.MTU, t.Addrs, t.PeerAddrs, p.Pool); err != nil {
		return Tunnel{}, fmt.Errorf("%w; raise the MTU (the server's --mtu if it sets one, else the client's) or use IPv4 tunnel addresses only", err)
	}
	return t, nil
}

// Proposal is what a client asks of the server: the mode and the
// addresses it proposes for each end.
type Proposal struct {
	Mode      tun.Mode // ModeTUN when empty
	Addrs     []netip.Prefix
	PeerAddrs []netip.Prefix
}

// Accept checks the server's answer h to a client's proposal, on a client
// whose own networks are nets, and returns the tunnel from the client's
// side; an error says why the client refuses it.
func Accept(h *framing.Hello, p Proposal, nets []router.Net) (Tunnel, error) {
	mode := p.Mode
	if mode == "" {
		mode = tun.ModeTUN
	}
	if h.Role != "server" {
		return Tunnel{}, fmt.Errorf("protocol error: the remote answered as %q, not as a server", h.Role)
	}
	if err := CheckPrefixes("address", h.Addrs); err != nil {
		return Tunnel{}, fmt.Errorf("the server's answer: %v", err)
	}
	if err := CheckPrefixes("address", h.PeerAddrs); err != nil {
		return Tunnel{}, fmt.Errorf("the server's answer: %v", err)
	}
	if err := CheckPair(h.Addrs, h.PeerAddrs); err != nil {
		return Tunnel{}, fmt.Errorf("the server's answer: %v", err)
	}
	for _, a := range slices.Concat(h.PeerAddrs, h.Addrs) {
		if n, ok := OverlappingNet(a, nets); ok {
			return Tunnel{}, fmt.Errorf("the server assigned the tunnel address %v, which overlaps %v, a network this machine is on (%s): "+
				"the tunnel would take that network's traffic (and perhaps the SSH connection itself); ask the server's admin for addresses outside it", a, n.Prefix, InUse(n))
		}
	}
	if tun.Mode(h.Mode) != mode {
		return Tunnel{}, fmt.Errorf("the server runs the tunnel in %s mode, but %s mode was asked for", Printable([]byte(h.Mode)), mode)
	}
	if len(h.PeerAddrs) == 0 && len(h.Addrs) == 0 && mode == tun.ModeTUN {
		return Tunnel{}, errors.New("the server decided no addresses for the tunnel")
	}
	t := Tunnel{Mode: mode, MTU: h.MTU, Addrs: h.PeerAddrs, PeerAddrs: h.Addrs}
	if CheckMTU(t.MTU) != nil {
		return Tunnel{}, fmt.Errorf("the server chose an unusable MTU %d (%d to %d)", t.MTU, MinMTU, MaxMTU)
	}
	return t, nil
}

// Assigned reports whether the server assigned other addresses than the
// client proposed.
func (p Proposal) Assigned(t Tunnel) bool {
	return !sameSet(t.Addrs, p.Addrs) || !sameSet(t.PeerAddrs, p.PeerAddrs)
}

// The MTU range both sides accept: a device needs at least 576 (the IPv4
// minimum; IPv6 needs MinMTU6), and a frame must hold the largest packet
// plus a tap device's Ethernet header.
const (
	MinMTU  = 576
	MinMTU6 = 1280
	MaxMTU  = framing.MaxPayload - tun.Overhead
)

// CheckMTU reports whether mtu is in the range both sides accept.
func CheckMTU(mtu int) error {
	if mtu < MinMTU || mtu > MaxMTU {
		return fmt.Errorf("MTU %d is out of range (%d to %d)", mtu, MinMTU, MaxMTU)
	}
	return nil
}

// CheckMTU6 refuses an MTU below what IPv6 needs for a tunnel that has
// IPv6 addresses among ps.
func CheckMTU6(mtu int, ps ...[]netip.Prefix) error {
	if mtu < MinMTU6 && slices.ContainsFunc(ps, HasIPv6) {
		return fmt.Errorf("MTU %d is below the %d IPv6 needs", mtu, MinMTU6)
	}
	return nil
}

// HasIPv6 reports whether any of ps is an IPv6 prefix.
func HasIPv6(ps []netip.Prefix) bool {
	return slices.ContainsFunc(ps, func(p netip.Prefix) bool { return p.Addr().Is6() })
}

// MaxAddrs caps how many addresses of each kind a Hello may carry.
const MaxAddrs = 8

// minBits are the shortest prefixes a peer may propose for tunnel
// addresses: anything wider would claim a large share of the other side's
// routing.
var minBits = map[bool]int{true: 8, false: 32} // IPv4: /8, IPv6: /32

// CheckPrefixes validates addresses (what names them, such as "proposed
// address") from the wire.
func CheckPrefixes(what string, ps []netip.Prefix) error {
	if len(ps) > MaxAddrs {
		return fmt.Errorf("too many %s (%d, at most %d)", plural(what), len(ps), MaxAddrs)
	}
	for _, p := range ps {
		a := p.Addr()
		if !p.IsValid() || a.IsUnspecified() || a.IsLoopback() || a.IsMulticast() || a.Is4In6() || a.Zone() != "" ||
			a == netip.AddrFrom4([4]byte{255, 255, 255, 255}) {
			return fmt.Errorf("unusable %s %v", what, p)
		}
		if p.Bits() < minBits[a.Is4()] {
			return fmt.Errorf("%s %v is too wide (at most /%d)", what, p, minBits[a.Is4()])
		}
	}
	return nil
}

// plural makes the plural of an English noun phrase such as "address" or
// "requested route".
func plural(s string) string {
	if strings.HasSuffix(s, "s") {
		return s + "es"
	}
	return s + "s"
}

// Printable trims and sanitises text from the peer for logs and errors:
// one line of at most 1024 bytes.
func Printable(b []byte) string {
	if len(b) > 1024 {
		b = b[:1024]
	}
	return text.Clean(string(b), false)
}

// sameSet reports whether a and b hold the same prefixes in any order.
func sameSet(a, b []netip.Prefix) bool {
	if len(a) != len(b) {
		return false
	}
	for _, p := range a {
		if !slices.Contains(b, p) {
			return false
		}
	}
	return true
}

// OverlappingNet returns the first of nets that overlaps p, if any.
func OverlappingNet(p netip.Prefix, nets []router.Net) (router.Net, bool) {
	for _, n := range nets {
		if p.Masked().Overlaps(n.Prefix.Masked()) {
			return n, true
		}
	}
	return router.Net{}, false
}

// InUse says where a network of this machine is: "on DEV", or "in use".
func InUse(n router.Net) string {
	if n.Dev == "" {
		return "in use"
	}
	return "on " + n.Dev
}
