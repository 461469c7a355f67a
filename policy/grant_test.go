package policy

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/sshvpn/sshvpn/framing"
	"github.com/sshvpn/sshvpn/router"
	"github.com/sshvpn/sshvpn/tun"
)

func pfx(s ...string) []netip.Prefix {
	out := make([]netip.Prefix, len(s))
	for i, x := range s {
		out[i] = netip.MustParsePrefix(x)
	}
	return out
}

func errContains(err error, sub string) bool {
	return err != nil && strings.Contains(err.Error(), sub)
}

func mustAddr(s string) netip.Addr { return netip.MustParseAddr(s) }

// server is a policy with the surroundings Grant is told of: the old
// ServerConfig's shape, which keeps the cases below short.
type server struct {
	Mode              tun.Mode
	MTU               int
	Addrs, PeerAddrs  []netip.Prefix
	Dev               string
	Pool, AllowRoutes []netip.Prefix
	Nets              []router.Net
	ClientAddr        netip.Addr
}

// grant runs Grant as a server does: the policy, then its surroundings.
func grant(s server, h *framing.Hello) (Tunnel, error) {
	return Grant(h, Server{Mode: s.Mode, MTU: s.MTU, Addrs: s.Addrs, PeerAddrs: s.PeerAddrs, Dev: s.Dev, Pool: s.Pool, AllowRoutes: s.AllowRoutes},
		Where{Nets: s.Nets, Client: s.ClientAddr})
}

func sameTunnel(a, b Tunnel) bool {
	return a.Mode == b.Mode && a.MTU == b.MTU && sameSet(a.Addrs, b.Addrs) && sameSet(a.PeerAddrs, b.PeerAddrs) &&
		sameSet(a.Routes, b.Routes)
}

// TestGrant covers what the server's policy grants or refuses of a
// client's requests beyond the addresses: a device name, routes, and a pool
// lease in place of the configured addresses.
func TestGrant(t *testing.T) {
	hello := func(f func(*framing.Hello)) *framing.Hello {
		h := &framing.Hello{Role: "client", Mode: "tun", MTU: 1400,
			Addrs: pfx("10.9.0.2/24"), PeerAddrs: pfx("10.9.0.1/24")}
		if f != nil {
			f(h)
		}
		return h
	}
	// proposed is the tunnel the server opens for hello(nil) when its
	// policy leaves everything to the client.
	proposed := Tunnel{Mode: tun.ModeTUN, MTU: 1400, Addrs: pfx("10.9.0.1/24"), PeerAddrs: pfx("10.9.0.2/24")}
	withRoutes := func(tn Tunnel, routes ...string) Tunnel { tn.Routes = pfx(routes...); return tn }
	many := make([]string, MaxAddrs+1)
	for i := range many {
		many[i] = netip.PrefixFrom(netip.AddrFrom4([4]byte{192, 168, 7, byte(i * 16)}), 28).String()
	}

	tests := []struct {
		name    string
		cfg     server
		hello   *framing.Hello
		want    Tunnel   // when wantErr is empty
		wantErr []string // substrings of the refusal
	}{
		{name: "device as configured",
			cfg:   server{Dev: "tun7"},
			hello: hello(func(h *framing.Hello) { h.WantDev = "tun7" }),
			want:  proposed},
		{name: "no device asked for",
			cfg:   server{Dev: "tun7"},
			hello: hello(nil),
			want:  proposed},
		{name: "another device",
			cfg:     server{Dev: "tun7"},
			hello:   hello(func(h *framing.Hello) { h.WantDev = "evil0" }),
			wantErr: []string{`chooses the device; the client may not ask for "evil0"`}},
		{name: "a device when the server names none",
			hello:   hello(func(h *framing.Hello) { h.WantDev = "tun7" }),
			wantErr: []string{`the client may not ask for "tun7"`}},
		{name: "routes inside allowed sources",
			cfg: server{AllowRoutes: pfx("192.168.7.0/24", "fd07::/48")},
			hello: hello(func(h *framing.Hello) {
				h.Routes = pfx("192.168.7.0/24", "192.168.7.128/25", "192.168.7.9/32", "fd07:0:0:1::/64")
			}),
			want: withRoutes(proposed, "192.168.7.0/24", "192.168.7.128/25", "192.168.7.9/32", "fd07:0:0:1::/64")},
		{name: "route inside the second allowed network",
			cfg:   server{AllowRoutes: pfx("192.168.7.0/24", "172.16.0.0/12")},
			hello: hello(func(h *framing.Hello) { h.Routes = pfx("172.20.0.0/16") }),
			want:  withRoutes(proposed, "172.20.0.0/16")},
		{name: "route wider than the allowed network",
			cfg:     server{AllowRoutes: pfx("192.168.7.0/24")},
			hello:   hello(func(h *framing.Hello) { h.Routes = pfx("192.168.0.0/16") }),
			wantErr: []string{"does not route 192.168.0.0/16"}},
		{name: "route outside",
			cfg:     server{AllowRoutes: pfx("192.168.7.0/24")},
			hello:   hello(func(h *framing.Hello) { h.Routes = pfx("192.168.7.0/24", "192.168.9.0/24") }),
			wantErr: []string{"does not route 192.168.9.0/24"}},
		{name: "route without allowed sources",
			hello:   hello(func(h *framing.Hello) { h.Routes = pfx("192.168.7.0/24") }),
			wantErr: []string{"does not route 192.168.7.0/24"}},
		{name: "v6 route, v4 allowed",
			cfg:     server{AllowRoutes: pfx("0.0.0.0/0")},
			hello:   hello(func(h *framing.Hello) { h.Routes = pfx("fd07::/64") }),
			wantErr: []string{"does not route fd07::/64"}},
		{name: "any route when everything is allowed",
			cfg:   server{AllowRoutes: pfx("0.0.0.0/0", "::/0")},
			hello: hello(func(h *framing.Hello) { h.Routes = pfx("203.0.113.0/24", "172.16.0.0/12", "2001:db8::/32") }),
			want:  withRoutes(proposed, "203.0.113.0/24", "172.16.0.0/12", "2001:db8::/32")},
		{name: "a route over the tunnel's own subnet",
			cfg:     server{AllowRoutes: pfx("0.0.0.0/0", "::/0")},
			hello:   hello(func(h *framing.Hello) { h.Routes = pfx("10.0.0.0/8") }),
			wantErr: []string{"10.0.0.0/8", "overlaps the tunnel address 10.9.0.1/24"}},
		{name: "half of everything is too wide even when allowed",
			cfg:     server{AllowRoutes: pfx("0.0.0.0/0", "::/0")},
			hello:   hello(func(h *framing.Hello) { h.Routes = pfx("128.0.0.0/1") }),
			wantErr: []string{"too wide"}},
		{name: "an unmasked route is judged masked",
			cfg:     server{AllowRoutes: pfx("0.0.0.0/0")},
			hello:   hello(func(h *framing.Hello) { h.Routes = pfx("0.0.0.1/1") }),
			wantErr: []string{"0.0.0.0/1"}},
		{name: "a proposed address wider than /8 is refused",
			cfg:     server{},
			hello:   hello(func(h *framing.Hello) { h.PeerAddrs = pfx("1.2.3.4/1") }),
			wantErr: []string{"too wide"}},
		{name: "unusable route",
			cfg:     server{AllowRoutes: pfx("0.0.0.0/0")},
			hello:   hello(func(h *framing.Hello) { h.Routes = pfx("127.0.0.0/8") }),
			wantErr: []string{"unusable requested route 127.0.0.0/8"}},
		{name: "too many routes",
			cfg:     server{AllowRoutes: pfx("192.168.7.0/24")},
			hello:   hello(func(h *framing.Hello) { h.Routes = pfx(many...) }),
			wantErr: []string{"too many requested route"}},
		{name: "a pool leaves the addresses to the lease",
			cfg:   server{Pool: pfx("10.77.0.0/24", "fd77::/64")},
			hello: hello(nil),
			want:  Tunnel{Mode: tun.ModeTUN, MTU: 1400}},
		// A pooled client refused for what it asks is refused before
		// the server draws a lease.
		{name: "pooled, refused device",
			cfg:     server{Dev: "tun7", Pool: pfx("10.77.0.0/24")},
			hello:   hello(func(h *framing.Hello) { h.WantDev = "evil0" }),
			wantErr: []string{`may not ask for "evil0"`}},
		{name: "pooled, refused route",
			cfg:     server{Pool: pfx("10.77.0.0/24")},
			hello:   hello(func(h *framing.Hello) { h.Routes = pfx("192.168.7.0/24") }),
			wantErr: []string{"does not route 192.168.7.0/24"}},
		{name: "pooled, refused mode",
			cfg:     server{Mode: tun.ModeTUN, Pool: pfx("10.77.0.0/24")},
			hello:   hello(func(h *framing.Hello) { h.Mode = "tap" }),
			wantErr: []string{"--mode policy"}},
		// Issue 7: policy at the edges.
		{name: "allowed routes overlapping the pool",
			cfg:     server{Pool: pfx("198.18.8.0/24"), AllowRoutes: pfx("198.18.0.0/16")},
			hello:   hello(func(h *framing.Hello) { h.Routes = pfx("198.18.8.3/32") }),
			wantErr: []string{"--allow-route 198.18.0.0/16 overlaps --pool 198.18.8.0/24"}},
		{name: "allowed routes overlapping the fixed addresses",
			cfg:     server{Addrs: pfx("198.18.77.2/30"), PeerAddrs: pfx("198.18.77.1/30"), AllowRoutes: pfx("198.18.0.0/16")},
			hello:   hello(nil),
			wantErr: []string{"--allow-route 198.18.0.0/16 overlaps the tunnel address"}},
		{name: "a route over a network of the server",
			cfg: server{AllowRoutes: pfx("198.51.0.0/16"),
				Nets: []router.Net{{Prefix: netip.MustParsePrefix("198.51.100.1/24"), Dev: "lan0"}}},
			hello:   hello(func(h *framing.Hello) { h.Routes = pfx("198.51.100.128/25") }),
			wantErr: []string{"198.51.100.128/25 overlaps 198.51.100.1/24", "on lan0"}},
		{name: "a route over an address of the server",
			cfg: server{AllowRoutes: pfx("192.0.2.0/24"),
				Nets: []router.Net{{Prefix: netip.MustParsePrefix("192.0.2.2/32"), Dev: "wan0"}}},
			hello:   hello(func(h *framing.Hello) { h.Routes = pfx("192.0.2.0/30") }),
			wantErr: []string{"192.0.2.0/30 overlaps 192.0.2.2/32"}},
		{name: "a route beside the server's networks",
			cfg: server{AllowRoutes: pfx("198.51.0.0/16"),
				Nets: []router.Net{{Prefix: netip.MustParsePrefix("198.51.100.1/24"), Dev: "lan0"}}},
			hello: hello(func(h *framing.Hello) { h.Routes = pfx("198.51.101.0/24") }),
			want:  withRoutes(proposed, "198.51.101.0/24")},
		{name: "a route over the SSH client's own address",
			cfg:     server{AllowRoutes: pfx("203.0.113.0/24"), ClientAddr: mustAddr("203.0.113.7")},
			hello:   hello(func(h *framing.Hello) { h.Routes = pfx("203.0.113.0/25") }),
			wantErr: []string{"203.0.113.0/25 covers the client's own address 203.0.113.7"}},
		{name: "a proposal on the server's LAN",
			cfg:     server{Nets: []router.Net{{Prefix: netip.MustParsePrefix("198.51.100.1/24"), Dev: "lan0"}}},
			hello:   hello(func(h *framing.Hello) { h.Addrs, h.PeerAddrs = pfx("198.51.100.2/24"), pfx("198.51.100.1/24") }),
			wantErr: []string{"198.51.100.1/24 overlaps 198.51.100.1/24", "on lan0"}},
		{name: "a proposal on another session's device",
			cfg:     server{Nets: []router.Net{{Prefix: netip.MustParsePrefix("10.9.0.1/24"), Dev: "tun0"}}},
			hello:   hello(nil),
			wantErr: []string{"overlaps 10.9.0.1/24", "on tun0"}},
		{name: "fixed addresses are not judged against the server's networks",
			cfg: server{Dev: "vpn-alice", Addrs: pfx("198.18.0.2/30"), PeerAddrs: pfx("198.18.0.1/30"),
				Nets: []router.Net{{Prefix: netip.MustParsePrefix("198.18.0.2/30"), Dev: "vpn-alice"}}},
			hello: hello(nil),
			want:  Tunnel{Mode: tun.ModeTUN, MTU: 1400, Addrs: pfx("198.18.0.2/30"), PeerAddrs: pfx("198.18.0.1/30")}},
		{name: "both ends proposed with one address",
			hello:   hello(func(h *framing.Hello) { h.Addrs, h.PeerAddrs = pfx("10.9.0.1/24"), pfx("10.9.0.1/24") }),
			wantErr: []string{"both ends of the tunnel would have the address 10.9.0.1"}},
		{name: "a policy with one address for both ends",
			cfg:     server{Addrs: pfx("198.18.77.2/30"), PeerAddrs: pfx("198.18.77.2/30")},
			hello:   hello(nil),
			wantErr: []string{"both ends of the tunnel would have the address 198.18.77.2"}},
		{name: "one fixed side: the other is its partner, not the proposal",
			cfg:   server{Addrs: pfx("198.18.77.2/30")},
			hello: hello(nil),
			want:  Tunnel{Mode: tun.ModeTUN, MTU: 1400, Addrs: pfx("198.18.77.2/30"), PeerAddrs: pfx("198.18.77.1/30")}},
		{name: "one proposed side is completed",
			hello: hello(func(h *framing.Hello) { h.PeerAddrs = nil }),
			want:  Tunnel{Mode: tun.ModeTUN, MTU: 1400, Addrs: pfx("10.9.0.3/24"), PeerAddrs: pfx("10.9.0.2/24")}},
		{name: "mtu below 1280 with an IPv6 pool",
			cfg:     server{MTU: 1000, Pool: pfx("fd77::/64")},
			hello:   hello(nil),
			wantErr: []string{"below the 1280 IPv6 needs"}},
		{name: "tap mode",
			cfg:   server{Mode: tun.ModeTAP, Dev: "tap3"},
			hello: hello(func(h *framing.Hello) { h.Mode, h.WantDev, h.Addrs, h.PeerAddrs = "tap", "tap3", nil, nil }),
			want:  Tunnel{Mode: tun.ModeTAP, MTU: 1400}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := tt.cfg
			got, err := grant(cfg, tt.hello)
			if len(tt.wantErr) == 0 {
				if err != nil {
					t.Fatalf("Grant: %v, want %+v", err, tt.want)
				}
				if !sameTunnel(got, tt.want) {
					t.Errorf("Grant = %+v, want %+v", got, tt.want)
				}
				return
			}
			if err == nil {
				t.Fatalf("Grant = %+v, want a refusal", got)
			}
			for _, sub := range tt.wantErr {
				if !strings.Contains(err.Error(), sub) {
					t.Errorf("Grant: %v, want an error containing %q", err, sub)
				}
			}
		})
	}
}

// TestCheckStreams: a client may ask for 1 to framing.MaxStreams streams,
// and a join must be well formed.
func TestCheckStreams(t *testing.T) {
	ok := framing.Join{Session: strings.Repeat("a", framing.SessionLen), Secret: strings.Repeat("b", framing.SecretLen)}
	for _, tt := range []struct {
		h    framing.Hello
		want string
	}{
		{framing.Hello{Role: "client", Streams: 4}, ""},
		{framing.Hello{Role: "client", Streams: framing.MaxStreams + 1}, "streams"},
		{framing.Hello{Role: "client", Streams: -1}, "streams"},
		{framing.Hello{Role: "client", Join: &ok}, ""},
		{framing.Hello{Role: "client", Join: &framing.Join{Session: ok.Session, Secret: "short"}}, "malformed join"},
		{framing.Hello{Role: "client", Join: &framing.Join{Session: strings.Repeat("A", framing.SessionLen), Secret: ok.Secret}}, "malformed join"},
	} {
		err := Check(&tt.h, Server{})
		if (err == nil) != (tt.want == "") || err != nil && !strings.Contains(err.Error(), tt.want) {
			t.Errorf("Check(streams %d, join %+v) = %v, want %q", tt.h.Streams, tt.h.Join, err, tt.want)
		}
	}
}
