package tunnel

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/sshvpn/sshvpn/tun/tuntest"
)

// fakePackets is an in-memory PacketConn: what the client writes comes out
// on sent, what the test puts on recv is read.
type fakePackets struct {
	sent, recv chan []byte
	pings      chan struct{} // a keepalive waits for one, unless answer
	answer     bool
	closed     chan struct{}
	once       sync.Once
}

func newFakePackets() *fakePackets {
	return &fakePackets{sent: make(chan []byte, 16), recv: make(chan []byte, 16), pings: make(chan struct{}), answer: true, closed: make(chan struct{})}
}

func (f *fakePackets) ReadPacket(p []byte) (int, error) {
	select {
	case b, ok := <-f.recv:
		if !ok {
			return 0, io.EOF
		}
		return copy(p, b), nil
	case <-f.closed:
		return 0, errors.New("closed")
	}
}

func (f *fakePackets) WritePacket(p []byte) error {
	select {
	case f.sent <- append([]byte(nil), p...):
		return nil
	case <-f.closed:
		return errors.New("closed")
	}
}

func (f *fakePackets) Keepalive() error {
	if f.answer {
		return nil
	}
	select {
	case <-f.pings:
		return nil
	case <-f.closed:
		return errors.New("closed")
	}
}

func (f *fakePackets) MaxMTU() int  { return 16000 }
func (f *fakePackets) Close() error { f.once.Do(func() { close(f.closed) }); return nil }

// TestRunPackets: over a packet transport the client decides the tunnel
// itself (its proposal, the MTU capped at the transport's), and packets
// cross both ways, unframed.
func TestRunPackets(t *testing.T) {
	checkLeaks(t)
	dev := tuntest.New("pk0", 1500)
	up := make(chan Tunnel, 1)
	link := NewLink(dev, LinkConfig{Host: HostFunc(func(tn Tunnel, _ netip.Addr) error { up <- tn; return nil })})
	defer link.Close()
	conn := newFakePackets()
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	addrs, peers := []netip.Prefix{netip.MustParsePrefix("198.18.0.1/30")}, []netip.Prefix{netip.MustParsePrefix("198.18.0.2/30")}
	go func() {
		done <- RunPackets(ctx, conn, ClientConfig{MTU: 30000, Addrs: addrs, PeerAddrs: peers, Link: link, Logger: testLogger(t)})
	}()
	got := <-up
	out := ipv4Packet(netip.MustParseAddr("198.18.0.1"), netip.MustParseAddr("198.18.0.2"), make([]byte, 80))
	dev.Inbound <- out
	select {
	case b := <-conn.sent:
		if !bytes.Equal(b, out) {
			t.Errorf("sent %d bytes, want the packet's %d", len(b), len(out))
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no packet reached the transport")
	}
	in := ipv4Packet(netip.MustParseAddr("198.18.0.2"), netip.MustParseAddr("198.18.0.1"), make([]byte, 1380))
	conn.recv <- in
	select {
	case b := <-dev.Outbound:
		if !bytes.Equal(b, in) {
			t.Errorf("the device got %d bytes, want the packet's %d", len(b), len(in))
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no packet reached the device")
	}
	if got.MTU != 16000 || got.Addrs[0] != addrs[0] || got.PeerAddrs[0] != peers[0] {
		t.Errorf("tunnel %+v: want the proposal with the MTU capped at 16000", got)
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("an orderly end returned %v", err)
	}
}

// TestRunPacketsEnds: the peer closing, and a peer silent past DeadAfter,
// end the run with what happened.
func TestRunPacketsEnds(t *testing.T) {
	checkLeaks(t)
	run := func(conn *fakePackets, dead time.Duration) error {
		link := NewLink(tuntest.New("pk1", 1500), LinkConfig{})
		defer link.Close()
		return RunPackets(t.Context(), conn, ClientConfig{Link: link, Keepalive: dead / 4, DeadAfter: dead,
			Addrs: []netip.Prefix{netip.MustParsePrefix("198.18.0.1/30")}, PeerAddrs: []netip.Prefix{netip.MustParsePrefix("198.18.0.2/30")}})
	}
	conn := newFakePackets()
	close(conn.recv)
	if err := run(conn, time.Minute); err == nil || err.Error() != "tunnel: the server closed the tunnel" {
		t.Errorf("peer closed: %v", err)
	}
	conn = newFakePackets()
	conn.answer = false
	var dead *DeadPeerError
	if err := run(conn, 200*time.Millisecond); !errors.As(err, &dead) {
		t.Errorf("silent peer: %v, want a DeadPeerError", err)
	}
	link := NewLink(tuntest.New("pk2", 1500), LinkConfig{})
	defer link.Close()
	if err := RunPackets(t.Context(), newFakePackets(), ClientConfig{Mode: "tap", Link: link}); err == nil {
		t.Error("tap mode over a packet transport was not refused")
	}
}
