package sshvpn_test

import (
	"context"
	"encoding/binary"
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

	// The client's kernel sends a packet into the tunnel: an IPv4 header
	// and 64 bytes of payload, from the client's tunnel address (the server
	// drops packets from any other source)...
	ping := make([]byte, 84)
	ping[0] = 0x45 // version 4, header length 20
	binary.BigEndian.PutUint16(ping[2:], uint16(len(ping)))
	ping[8], ping[9] = 64, 1 // TTL, ICMP
	src, dst := netip.MustParseAddr("10.9.0.2").As4(), netip.MustParseAddr("10.9.0.1").As4()
	copy(ping[12:], src[:])
	copy(ping[16:], dst[:])
	clientDev.Inbound <- ping
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
