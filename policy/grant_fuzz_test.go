package policy

import (
	"encoding/json"
	"net/netip"
	"slices"
	"testing"

	"github.com/sshvpn/sshvpn/framing"
	"github.com/sshvpn/sshvpn/router"
)

// fuzzPrefixes are the networks the fuzzer draws policies from: a few that
// nest and overlap, in both families.
var fuzzPrefixes = pfx(
	"198.18.0.0/16", "198.18.8.0/24", "198.18.8.3/32", "198.18.77.0/30", "198.18.77.2/30", "198.18.77.1/30",
	"198.51.100.1/24", "198.51.100.0/25", "192.0.2.2/24", "192.0.2.0/30", "10.0.0.0/8", "10.9.0.1/24",
	"2001:db8::/32", "2001:db8:2::1/64", "fd77::/64", "fd77::1/64", "fd77::2/64", "0.0.0.0/0", "::/0",
)

// pick returns the prefixes of fuzzPrefixes whose bits are set in mask.
func pick(mask uint32) []netip.Prefix {
	var out []netip.Prefix
	for i, p := range fuzzPrefixes {
		if mask&(1<<i) != 0 {
			out = append(out, p)
		}
	}
	return out
}

// FuzzGrant throws arbitrary client hellos at arbitrary policies and checks
// what the server's decision guarantees whenever it grants a session:
// granted routes lie inside the allowed networks and outside every tunnel
// address, pool and network of the server; addresses the policy fixes (or a
// lease assigns) are never replaced by the client's proposal; the two ends
// never share an address; proposals never overlap the server's networks.
func FuzzGrant(f *testing.F) {
	f.Add([]byte(`{"role":"client","mode":"tun","addrs":["10.9.0.2/24"],"peer_addrs":["10.9.0.1/24"],"routes":["198.18.8.3/32"]}`),
		uint32(1<<0), uint32(1<<1), uint32(0), uint32(1<<6), false)
	f.Add([]byte(`{"role":"client","mode":"tun","addrs":["198.51.100.2/24"],"peer_addrs":["198.51.100.1/24"]}`),
		uint32(0), uint32(0), uint32(0), uint32(1<<6), false)
	f.Add([]byte(`{"role":"client","mode":"tun","routes":["192.0.2.0/30","10.0.0.0/8"]}`),
		uint32(1<<17), uint32(0), uint32(1<<4|1<<5), uint32(1<<8), true)
	f.Fuzz(func(t *testing.T, hello []byte, allow, poolMask, fixedMask, netsMask uint32, client bool) {
		var h framing.Hello
		if json.Unmarshal(hello, &h) != nil {
			return
		}
		cfg := Server{AllowRoutes: pick(allow), Pool: pick(poolMask)}
		var nets []router.Net
		for _, p := range pick(netsMask) {
			nets = append(nets, router.Net{Prefix: p, Dev: "eth0"})
		}
		w := Where{Nets: nets}
		fixed := pick(fixedMask)
		switch {
		case len(fixed) == 1 && fixedMask&1 == 0:
			cfg.PeerAddrs = fixed // the client's address alone
		case len(fixed) > 0:
			cfg.Addrs = fixed[:1]
			if len(fixed) > 1 {
				cfg.PeerAddrs = fixed[1:2]
			}
		}
		if client {
			w.Client = netip.MustParseAddr("192.0.2.77")
		}
		proposed := slices.Concat(h.Addrs, h.PeerAddrs)
		tn, err := Grant(&h, cfg, w)
		if err != nil {
			return
		}
		for _, r := range tn.Routes {
			if !Covered(r, cfg.AllowRoutes) {
				t.Fatalf("granted route %v outside the allowed %v", r, cfg.AllowRoutes)
			}
			for _, a := range slices.Concat(tn.Addrs, tn.PeerAddrs, cfg.Pool) {
				if r.Overlaps(a.Masked()) {
					t.Fatalf("granted route %v overlaps tunnel address or pool %v", r, a)
				}
			}
			for _, n := range nets {
				if r.Overlaps(n.Prefix.Masked()) {
					t.Fatalf("granted route %v overlaps the server's network %v", r, n)
				}
			}
			if w.Client.IsValid() && r.Contains(w.Client) {
				t.Fatalf("granted route %v covers the SSH client's address", r)
			}
		}
		switch {
		case len(cfg.Pool) > 0:
			if len(tn.Addrs) > 0 || len(tn.PeerAddrs) > 0 {
				t.Fatalf("a pooled grant took addresses %v/%v, not the lease's", tn.Addrs, tn.PeerAddrs)
			}
		case len(cfg.Addrs) == 0 && len(cfg.PeerAddrs) > 0:
			if !slices.Equal(tn.PeerAddrs, cfg.PeerAddrs) {
				t.Fatalf("the client's fixed address %v was replaced by %v", cfg.PeerAddrs, tn.PeerAddrs)
			}
		case len(cfg.Addrs) > 0:
			if !slices.Equal(tn.Addrs, cfg.Addrs) {
				t.Fatalf("the server's fixed address %v was replaced by %v", cfg.Addrs, tn.Addrs)
			}
			if len(cfg.PeerAddrs) > 0 && !slices.Equal(tn.PeerAddrs, cfg.PeerAddrs) {
				t.Fatalf("the client's fixed address %v was replaced by %v", cfg.PeerAddrs, tn.PeerAddrs)
			}
			if len(cfg.PeerAddrs) == 0 {
				// Only the server's side fixed: the client's is its partner.
				want, err := partners(cfg.Addrs)
				if err != nil || !slices.Equal(tn.PeerAddrs, want) {
					t.Fatalf("the client's address %v is not the partner of the fixed %v (proposal %v)", tn.PeerAddrs, cfg.Addrs, proposed)
				}
			}
		default:
			for _, p := range slices.Concat(tn.Addrs, tn.PeerAddrs) {
				for _, n := range nets {
					if p.Masked().Overlaps(n.Prefix.Masked()) {
						t.Fatalf("proposed address %v overlaps the server's network %v", p, n)
					}
				}
			}
		}
		if CheckPair(tn.Addrs, tn.PeerAddrs) != nil {
			t.Fatalf("both ends share an address: %v / %v", tn.Addrs, tn.PeerAddrs)
		}
	})
}
