package tunnel_test

import (
	"context"
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"

	"github.com/sshvpn/sshvpn/tun/tuntest"
	"github.com/sshvpn/sshvpn/tunnel"
)

// Example runs both ends of a tunnel in one process: net.Pipe stands in for
// ssh, and in-memory devices for the kernel's TUN devices. Each side's Link
// owns its device; a real one would also have a host stack (package stack)
// for the addresses, routes and hooks.
func Example() {
	clientConn, serverConn := net.Pipe()
	clientDev, serverDev := tuntest.New("client0", 1500), tuntest.New("server0", 1500)

	// The server side, as "sshvpn --remote" runs it under sshd. Its policy
	// is empty, so it takes the client's proposal.
	served := make(chan error, 1)
	go func() {
		served <- tunnel.Serve(context.Background(), serverConn, tunnel.ServerConfig{
			Open: func(t tunnel.Tunnel) (*tunnel.Link, error) {
				return tunnel.NewLink(serverDev, tunnel.LinkConfig{Host: tunnel.HostFunc(func(t tunnel.Tunnel, _ netip.Addr) error {
					fmt.Println("server up", t.Mode, t.Addrs, "peer", t.PeerAddrs, "mtu", t.MTU)
					return nil
				})}), nil
			},
		})
	}()

	// The client side, which would have started ssh. Its link outlives
	// the connection: a reconnect would attach to it again.
	up := make(chan struct{})
	clientLink := tunnel.NewLink(clientDev, tunnel.LinkConfig{Host: tunnel.HostFunc(func(t tunnel.Tunnel, _ netip.Addr) error {
		fmt.Println("client up", t.Mode, t.Addrs, "peer", t.PeerAddrs, "mtu", t.MTU)
		close(up)
		return nil
	})})
	defer clientLink.Close()
	ctx, cancel := context.WithCancel(context.Background())
	ran := make(chan error, 1)
	go func() {
		ran <- tunnel.RunClient(ctx, clientConn, tunnel.ClientConfig{
			MTU:       1400,
			Addrs:     []netip.Prefix{netip.MustParsePrefix("10.9.0.2/24")},
			PeerAddrs: []netip.Prefix{netip.MustParsePrefix("10.9.0.1/24")},
			Link:      clientLink,
		})
	}()

	// Once the tunnel is up (what the link reads while no connection is
	// attached is dropped), the client's kernel sends a packet into it: an IPv4 header
	// and 64 bytes of payload, from the client's tunnel address (the server
	// drops packets from any other source)...
	<-up
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
	// server up tun [10.9.0.1/24] peer [10.9.0.2/24] mtu 1400
	// client up tun [10.9.0.2/24] peer [10.9.0.1/24] mtu 1400
	// server received a packet of 84 bytes
	// client: <nil>
	// server: <nil>
}
