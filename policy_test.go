package sshvpn

import (
	"errors"
	"net/netip"
	"strings"
	"testing"

	"github.com/sshvpn/sshvpn/framing"
	"github.com/sshvpn/sshvpn/pool"
	"github.com/sshvpn/sshvpn/router"
	"github.com/sshvpn/sshvpn/tun"
)

// TestDecidePolicy covers what the server's policy grants or refuses of a
// client's requests beyond the addresses: a device name, routes, and a pool
// lease in place of the configured addresses.
func TestDecidePolicy(t *testing.T) {
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
	leased := func([]netip.Prefix) ([]netip.Prefix, []netip.Prefix, error) {
		return pfx("10.77.0.1/32", "fd77::1/128"), pfx("10.77.0.2/32", "fd77::2/128"), nil
	}
	full := func([]netip.Prefix) ([]netip.Prefix, []netip.Prefix, error) { return nil, nil, pool.ErrFull }
	many := make([]string, maxAddrs+1)
	for i := range many {
		many[i] = netip.PrefixFrom(netip.AddrFrom4([4]byte{192, 168, 7, byte(i * 16)}), 28).String()
	}

	tests := []struct {
		name    string
		cfg     ServerConfig
		hello   *framing.Hello
		want    Tunnel   // when wantErr is empty
		wantErr []string // substrings of the refusal
		isErr   error    // what the refusal must wrap, if set
		leases  int      // how often Assign must run
	}{
		{name: "device as configured",
			cfg:   ServerConfig{Dev: "tun7"},
			hello: hello(func(h *framing.Hello) { h.WantDev = "tun7" }),
			want:  proposed},
		{name: "no device asked for",
			cfg:   ServerConfig{Dev: "tun7"},
			hello: hello(nil),
			want:  proposed},
		{name: "another device",
			cfg:     ServerConfig{Dev: "tun7"},
			hello:   hello(func(h *framing.Hello) { h.WantDev = "evil0" }),
			wantErr: []string{"policy", `"evil0"`}},
		{name: "a device when the server names none",
			hello:   hello(func(h *framing.Hello) { h.WantDev = "tun7" }),
			wantErr: []string{"policy", `"tun7"`}},
		{name: "routes inside allowed sources",
			cfg: ServerConfig{AllowRoutes: pfx("192.168.7.0/24", "fd07::/48")},
			hello: hello(func(h *framing.Hello) {
				h.Routes = pfx("192.168.7.0/24", "192.168.7.128/25", "192.168.7.9/32", "fd07:0:0:1::/64")
			}),
			want: withRoutes(proposed, "192.168.7.0/24", "192.168.7.128/25", "192.168.7.9/32", "fd07:0:0:1::/64")},
		{name: "route inside the second allowed network",
			cfg:   ServerConfig{AllowRoutes: pfx("192.168.7.0/24", "172.16.0.0/12")},
			hello: hello(func(h *framing.Hello) { h.Routes = pfx("172.20.0.0/16") }),
			want:  withRoutes(proposed, "172.20.0.0/16")},
		{name: "route wider than the allowed network",
			cfg:     ServerConfig{AllowRoutes: pfx("192.168.7.0/24")},
			hello:   hello(func(h *framing.Hello) { h.Routes = pfx("192.168.0.0/16") }),
			wantErr: []string{"policy", "192.168.0.0/16"}},
		{name: "route outside",
			cfg:     ServerConfig{AllowRoutes: pfx("192.168.7.0/24")},
			hello:   hello(func(h *framing.Hello) { h.Routes = pfx("192.168.7.0/24", "192.168.9.0/24") }),
			wantErr: []string{"policy", "192.168.9.0/24"}},
		{name: "route without allowed sources",
			hello:   hello(func(h *framing.Hello) { h.Routes = pfx("192.168.7.0/24") }),
			wantErr: []string{"policy", "192.168.7.0/24"}},
		{name: "v6 route, v4 allowed",
			cfg:     ServerConfig{AllowRoutes: pfx("0.0.0.0/0")},
			hello:   hello(func(h *framing.Hello) { h.Routes = pfx("fd07::/64") }),
			wantErr: []string{"policy", "fd07::/64"}},
		{name: "any route when everything is allowed",
			cfg:   ServerConfig{AllowRoutes: pfx("0.0.0.0/0", "::/0")},
			hello: hello(func(h *framing.Hello) { h.Routes = pfx("203.0.113.0/24", "172.16.0.0/12", "2001:db8::/32") }),
			want:  withRoutes(proposed, "203.0.113.0/24", "172.16.0.0/12", "2001:db8::/32")},
		{name: "a route over the tunnel's own subnet",
			cfg:     ServerConfig{AllowRoutes: pfx("0.0.0.0/0", "::/0")},
			hello:   hello(func(h *framing.Hello) { h.Routes = pfx("10.0.0.0/8") }),
			wantErr: []string{"10.0.0.0/8", "overlaps the tunnel address 10.9.0.1/24"}},
		{name: "half of everything is too wide even when allowed",
			cfg:     ServerConfig{AllowRoutes: pfx("0.0.0.0/0", "::/0")},
			hello:   hello(func(h *framing.Hello) { h.Routes = pfx("128.0.0.0/1") }),
			wantErr: []string{"too wide"}},
		{name: "an unmasked route is judged masked",
			cfg:     ServerConfig{AllowRoutes: pfx("0.0.0.0/0")},
			hello:   hello(func(h *framing.Hello) { h.Routes = pfx("0.0.0.1/1") }),
			wantErr: []string{"0.0.0.0/1"}},
		{name: "a proposed address wider than /8 is refused",
			cfg:     ServerConfig{},
			hello:   hello(func(h *framing.Hello) { h.PeerAddrs = pfx("1.2.3.4/1") }),
			wantErr: []string{"too wide"}},
		{name: "unusable route",
			cfg:     ServerConfig{AllowRoutes: pfx("0.0.0.0/0")},
			hello:   hello(func(h *framing.Hello) { h.Routes = pfx("127.0.0.0/8") }),
			wantErr: []string{"unusable requested route 127.0.0.0/8"}},
		{name: "too many routes",
			cfg:     ServerConfig{AllowRoutes: pfx("192.168.7.0/24")},
			hello:   hello(func(h *framing.Hello) { h.Routes = pfx(many...) }),
			wantErr: []string{"too many requested route"}},
		{name: "assigned addresses win",
			cfg:    ServerConfig{Addrs: pfx("10.7.0.1/24"), PeerAddrs: pfx("10.7.0.2/24"), Assign: leased},
			hello:  hello(nil),
			want:   Tunnel{Mode: tun.ModeTUN, MTU: 1400, Addrs: pfx("10.77.0.1/32", "fd77::1/128"), PeerAddrs: pfx("10.77.0.2/32", "fd77::2/128")},
			leases: 1},
		{name: "assigned addresses over the proposal",
			cfg:    ServerConfig{Assign: leased},
			hello:  hello(nil),
			want:   Tunnel{Mode: tun.ModeTUN, MTU: 1400, Addrs: pfx("10.77.0.1/32", "fd77::1/128"), PeerAddrs: pfx("10.77.0.2/32", "fd77::2/128")},
			leases: 1},
		{name: "pool full",
			cfg:     ServerConfig{Addrs: pfx("10.7.0.1/24"), PeerAddrs: pfx("10.7.0.2/24"), Assign: full},
			hello:   hello(nil),
			wantErr: []string{"pool: every address in the pool is in use"},
			isErr:   pool.ErrFull,
			leases:  1},
		// A client refused for what it asks takes no lease.
		{name: "refused device takes no lease",
			cfg:     ServerConfig{Dev: "tun7", Assign: leased},
			hello:   hello(func(h *framing.Hello) { h.WantDev = "evil0" }),
			wantErr: []string{"policy"}},
		{name: "refused route takes no lease",
			cfg:     ServerConfig{Assign: leased},
			hello:   hello(func(h *framing.Hello) { h.Routes = pfx("192.168.7.0/24") }),
			wantErr: []string{"policy"}},
		{name: "refused mode takes no lease",
			cfg:     ServerConfig{Mode: tun.ModeTUN, Assign: leased},
			hello:   hello(func(h *framing.Hello) { h.Mode = "tap" }),
			wantErr: []string{"--mode policy"}},
		// Issue 7: policy at the edges.
		{name: "allowed routes overlapping the pool",
			cfg:     ServerConfig{Pool: pfx("198.18.8.0/24"), AllowRoutes: pfx("198.18.0.0/16"), Assign: leased},
			hello:   hello(func(h *framing.Hello) { h.Routes = pfx("198.18.8.3/32") }),
			wantErr: []string{"--allow-route 198.18.0.0/16 overlaps --pool 198.18.8.0/24"}},
		{name: "allowed routes overlapping the fixed addresses",
			cfg:     ServerConfig{Addrs: pfx("198.18.77.2/30"), PeerAddrs: pfx("198.18.77.1/30"), AllowRoutes: pfx("198.18.0.0/16")},
			hello:   hello(nil),
			wantErr: []string{"--allow-route 198.18.0.0/16 overlaps the tunnel address"}},
		{name: "a route over a network of the server",
			cfg: ServerConfig{AllowRoutes: pfx("198.51.0.0/16"),
				Nets: netsOf([]router.Net{{Prefix: netip.MustParsePrefix("198.51.100.1/24"), Dev: "lan0"}})},
			hello:   hello(func(h *framing.Hello) { h.Routes = pfx("198.51.100.128/25") }),
			wantErr: []string{"198.51.100.128/25 overlaps 198.51.100.1/24", "on lan0"}},
		{name: "a route over an address of the server",
			cfg: ServerConfig{AllowRoutes: pfx("192.0.2.0/24"),
				Nets: netsOf([]router.Net{{Prefix: netip.MustParsePrefix("192.0.2.2/32"), Dev: "wan0"}})},
			hello:   hello(func(h *framing.Hello) { h.Routes = pfx("192.0.2.0/30") }),
			wantErr: []string{"192.0.2.0/30 overlaps 192.0.2.2/32"}},
		{name: "a route beside the server's networks",
			cfg: ServerConfig{AllowRoutes: pfx("198.51.0.0/16"),
				Nets: netsOf([]router.Net{{Prefix: netip.MustParsePrefix("198.51.100.1/24"), Dev: "lan0"}})},
			hello: hello(func(h *framing.Hello) { h.Routes = pfx("198.51.101.0/24") }),
			want:  withRoutes(proposed, "198.51.101.0/24")},
		{name: "a route over the SSH client's own address",
			cfg:     ServerConfig{AllowRoutes: pfx("203.0.113.0/24"), ClientAddr: mustAddr("203.0.113.7")},
			hello:   hello(func(h *framing.Hello) { h.Routes = pfx("203.0.113.0/25") }),
			wantErr: []string{"203.0.113.0/25 covers the client's own address 203.0.113.7"}},
		{name: "a proposal on the server's LAN",
			cfg:     ServerConfig{Nets: netsOf([]router.Net{{Prefix: netip.MustParsePrefix("198.51.100.1/24"), Dev: "lan0"}})},
			hello:   hello(func(h *framing.Hello) { h.Addrs, h.PeerAddrs = pfx("198.51.100.2/24"), pfx("198.51.100.1/24") }),
			wantErr: []string{"198.51.100.1/24 overlaps 198.51.100.1/24", "on lan0"}},
		{name: "a proposal on another session's device",
			cfg:     ServerConfig{Nets: netsOf([]router.Net{{Prefix: netip.MustParsePrefix("10.9.0.1/24"), Dev: "tun0"}})},
			hello:   hello(nil),
			wantErr: []string{"overlaps 10.9.0.1/24", "on tun0"}},
		{name: "fixed addresses are not judged against the server's networks",
			cfg: ServerConfig{Dev: "vpn-alice", Addrs: pfx("198.18.0.2/30"), PeerAddrs: pfx("198.18.0.1/30"),
				Nets: netsOf([]router.Net{{Prefix: netip.MustParsePrefix("198.18.0.2/30"), Dev: "vpn-alice"}})},
			hello: hello(nil),
			want:  Tunnel{Mode: tun.ModeTUN, MTU: 1400, Addrs: pfx("198.18.0.2/30"), PeerAddrs: pfx("198.18.0.1/30")}},
		{name: "both ends proposed with one address",
			hello:   hello(func(h *framing.Hello) { h.Addrs, h.PeerAddrs = pfx("10.9.0.1/24"), pfx("10.9.0.1/24") }),
			wantErr: []string{"both ends of the tunnel would have the address 10.9.0.1"}},
		{name: "a policy with one address for both ends",
			cfg:     ServerConfig{Addrs: pfx("198.18.77.2/30"), PeerAddrs: pfx("198.18.77.2/30")},
			hello:   hello(nil),
			wantErr: []string{"both ends of the tunnel would have the address 198.18.77.2"}},
		{name: "one fixed side: the other is its partner, not the proposal",
			cfg:   ServerConfig{Addrs: pfx("198.18.77.2/30")},
			hello: hello(nil),
			want:  Tunnel{Mode: tun.ModeTUN, MTU: 1400, Addrs: pfx("198.18.77.2/30"), PeerAddrs: pfx("198.18.77.1/30")}},
		{name: "one proposed side is completed",
			hello: hello(func(h *framing.Hello) { h.PeerAddrs = nil }),
			want:  Tunnel{Mode: tun.ModeTUN, MTU: 1400, Addrs: pfx("10.9.0.3/24"), PeerAddrs: pfx("10.9.0.2/24")}},
		{name: "mtu below 1280 with an IPv6 pool",
			cfg:     ServerConfig{MTU: 1000, Pool: pfx("fd77::/64"), Assign: leased},
			hello:   hello(nil),
			wantErr: []string{"below the 1280 IPv6 needs"}},
		{name: "tap mode",
			cfg:   ServerConfig{Mode: tun.ModeTAP, Dev: "tap3"},
			hello: hello(func(h *framing.Hello) { h.Mode, h.WantDev, h.Addrs, h.PeerAddrs = "tap", "tap3", nil, nil }),
			want:  Tunnel{Mode: tun.ModeTAP, MTU: 1400}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			leases := 0
			cfg := tt.cfg
			if assign := cfg.Assign; assign != nil {
				cfg.Assign = func([]netip.Prefix) ([]netip.Prefix, []netip.Prefix, error) { leases++; return assign(nil) }
			}
			got, err := decide(cfg, tt.hello)
			if leases != tt.leases {
				t.Errorf("Assign ran %d times, want %d", leases, tt.leases)
			}
			if len(tt.wantErr) == 0 {
				if err != nil {
					t.Fatalf("decide: %v, want %+v", err, tt.want)
				}
				if !sameTunnel(got, tt.want) {
					t.Errorf("decide = %+v, want %+v", got, tt.want)
				}
				return
			}
			if err == nil {
				t.Fatalf("decide = %+v, want a refusal", got)
			}
			for _, sub := range tt.wantErr {
				if !strings.Contains(err.Error(), sub) {
					t.Errorf("decide: %v, want an error containing %q", err, sub)
				}
			}
			if tt.isErr != nil && !errors.Is(err, tt.isErr) {
				t.Errorf("decide: %v, want an error wrapping %v", err, tt.isErr)
			}
		})
	}
}

// TestServerPolicyGrants: what the policy allows reaches the Openers through
// a real handshake.
func TestServerPolicyGrants(t *testing.T) {
	base := ClientConfig{Mode: tun.ModeTUN, MTU: 1400, Addrs: pfx("10.9.0.2/24"), PeerAddrs: pfx("10.9.0.1/24")}
	tests := []struct {
		name       string
		client     func(*ClientConfig)
		server     ServerConfig
		wantServer Tunnel
		wantClient Tunnel
	}{
		{name: "device and routes",
			client: func(c *ClientConfig) {
				c.RemoteDev, c.RemoteRoutes = "tun7", pfx("192.168.7.0/24", "fd07::/64")
			},
			server: ServerConfig{Dev: "tun7", AllowRoutes: pfx("192.168.0.0/16", "fd07::/48")},
			// The routes are the server's to add; the client's own
			// Tunnel has none.
			wantServer: Tunnel{Mode: tun.ModeTUN, MTU: 1400, Addrs: pfx("10.9.0.1/24"), PeerAddrs: pfx("10.9.0.2/24"),
				Routes: pfx("192.168.7.0/24", "fd07::/64")},
			wantClient: Tunnel{Mode: tun.ModeTUN, MTU: 1400, Addrs: pfx("10.9.0.2/24"), PeerAddrs: pfx("10.9.0.1/24")}},
		{name: "pool lease",
			server: ServerConfig{Addrs: pfx("10.7.0.1/24"), PeerAddrs: pfx("10.7.0.2/24"),
				Assign: func([]netip.Prefix) ([]netip.Prefix, []netip.Prefix, error) {
					return pfx("10.77.0.1/32"), pfx("10.77.0.2/32"), nil
				}},
			wantServer: Tunnel{Mode: tun.ModeTUN, MTU: 1400, Addrs: pfx("10.77.0.1/32"), PeerAddrs: pfx("10.77.0.2/32")},
			wantClient: Tunnel{Mode: tun.ModeTUN, MTU: 1400, Addrs: pfx("10.77.0.2/32"), PeerAddrs: pfx("10.77.0.1/32")}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			checkLeaks(t)
			ccfg := base
			if tt.client != nil {
				tt.client(&ccfg)
			}
			co, so, cerr, serr := handshake(t, ccfg, tt.server)
			if cerr != nil || serr != nil {
				t.Fatalf("RunClient: %v; Serve: %v", cerr, serr)
			}
			if st, _ := so.tunnel(); !sameTunnel(st, tt.wantServer) {
				t.Errorf("server opened %+v, want %+v", st, tt.wantServer)
			}
			if ct, _ := co.tunnel(); !sameTunnel(ct, tt.wantClient) {
				t.Errorf("client opened %+v, want %+v", ct, tt.wantClient)
			}
		})
	}
}

// netsOf is a ServerConfig.Nets that lists ns.
func netsOf(ns []router.Net) func() ([]router.Net, error) {
	return func() ([]router.Net, error) { return ns, nil }
}
