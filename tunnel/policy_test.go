package tunnel

import (
	"net/netip"
	"testing"

	"github.com/sshvpn/sshvpn/router"
	"github.com/sshvpn/sshvpn/tun"
)

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
				Routes: pfx("192.168.7.0/24", "fd07::/64"), Dev: "tun7"},
			wantClient: Tunnel{Mode: tun.ModeTUN, MTU: 1400, Addrs: pfx("10.9.0.2/24"), PeerAddrs: pfx("10.9.0.1/24")}},
		{name: "the account's own device",
			client:     func(c *ClientConfig) { c.RemoteDev = "svpn0" },
			server:     ServerConfig{OwnDevice: func(name string) bool { return name == "svpn0" }},
			wantServer: Tunnel{Mode: tun.ModeTUN, MTU: 1400, Addrs: pfx("10.9.0.1/24"), PeerAddrs: pfx("10.9.0.2/24"), Dev: "svpn0"},
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
