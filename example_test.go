package sshvpn_test

import (
	"context"
	"fmt"
	"net"
	"net/netip"

	"github.com/sshvpn/sshvpn"
	"github.com/sshvpn/sshvpn/tun"
	"github.com/sshvpn/sshvpn/tun/tuntest"
)

// Example runs both ends of a tunnel in one process: net.Pipe stands in for
// ssh, and in-memory devices for the kernel's TUN devices.
func Example() {
	clientConn, serverConn := net.Pipe()
	clientDev, serverDev := tuntest.New("client0", 1500), tuntest.New("server0", 1500)

	// The server side, as "sshvpn --remote" runs it under sshd. Its policy
	// is empty, so it takes the client's proposal.
	served := make(chan error, 1)
	go func() {
		served <- sshvpn.Serve(context.Background(), serverConn, sshvpn.ServerConfig{
			Open: func(t sshvpn.Tunnel) (tun.Device, error) {
				fmt.Println("server opens", t.Mode, t.Addrs, "peer", t.PeerAddrs, "mtu", t.MTU)
				return serverDev, nil
			},
		})
	}()

	// The client side, which would have started ssh.
	ctx, cancel := context.WithCancel(context.Background())
	ran := make(chan error, 1)
	go func() {
		ran <- sshvpn.RunClient(ctx, clientConn, sshvpn.ClientConfig{
			MTU:       1400,
			Addrs:     []netip.Prefix{netip.MustParsePrefix("10.9.0.2/24")},
			PeerAddrs: []netip.Prefix{netip.MustParsePrefix("10.9.0.1/24")},
			Open: func(t sshvpn.Tunnel) (tun.Device, error) {
				fmt.Println("client opens", t.Mode, t.Addrs, "peer", t.PeerAddrs, "mtu", t.MTU)
				return clientDev, nil
			},
		})
	}()

	// The client's kernel sends a packet into the tunnel...
	clientDev.Inbound <- make([]byte, 84)
	// ...and the server's kernel receives it.
	pkt := <-serverDev.Outbound
	fmt.Println("server received a packet of", len(pkt), "bytes")

	// Ctrl-C on the client: both sides end in order.
	cancel()
	fmt.Println("client:", <-ran)
	fmt.Println("server:", <-served)
	// Output:
	// server opens tun [10.9.0.1/24] peer [10.9.0.2/24] mtu 1400
	// client opens tun [10.9.0.2/24] peer [10.9.0.1/24] mtu 1400
	// server received a packet of 84 bytes
	// client: <nil>
	// server: <nil>
}
