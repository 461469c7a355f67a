package tunnel

import (
	"encoding/binary"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/sshvpn/sshvpn/framing"
	"github.com/sshvpn/sshvpn/tun"
	"github.com/sshvpn/sshvpn/tun/tuntest"
)

// recordingSink takes what a link frames for it and passes each packet
// on, tagged with the sink's stream.
type recordingSink struct {
	i   int
	out chan<- routed
	buf []byte
}

type routed struct {
	stream int
	pkt    []byte
}

func (r *recordingSink) taking() bool { return true }
func (r *recordingSink) next(n int) ([]byte, error) {
	if len(r.buf) < n {
		r.buf = make([]byte, n)
	}
	return r.buf[:n], nil
}
func (r *recordingSink) commit(_ framing.Type, n int) error {
	r.out <- routed{r.i, append([]byte(nil), r.buf[:n]...)}
	return nil
}
func (r *recordingSink) put(_ framing.Type, p []byte) bool {
	r.out <- routed{r.i, append([]byte(nil), p...)}
	return true
}
func (r *recordingSink) putCopy(_ framing.Type, p []byte) bool {
	r.out <- routed{r.i, append([]byte(nil), p...)}
	return true
}
func (r *recordingSink) flush()                {}
func (r *recordingSink) fail(error)            {}
func (r *recordingSink) offloads() tun.Offload { return 0 }
func (r *recordingSink) sent([]byte)           {}
func (r *recordingSink) droppedOut()           {}

// tcpPacket is an IPv4 TCP packet from port sport to 80, for a flow of
// its own per port.
func tcpPacket(sport uint16) []byte {
	tcp := make([]byte, 20)
	binary.BigEndian.PutUint16(tcp[0:], sport)
	binary.BigEndian.PutUint16(tcp[2:], 80)
	p := ipv4Packet(mustAddr("198.18.0.1"), mustAddr("198.18.0.2"), tcp)
	p[9] = 6
	return p
}

// TestStripePlacesFlows: new flows go to the stream with the fewest
// flows, whatever queue the kernel read them from; a flow stays on its
// stream from any queue; a flow whose stream is down moves; pings ride
// the stream that carried the least; what is not IP stays where it was
// read.
func TestStripePlacesFlows(t *testing.T) {
	checkLeaks(t)
	s := NewStripe(StripeConfig{Mode: tun.ModeTUN, Place: true})
	out := make(chan routed, 16)
	var devs []*tuntest.Device
	var links []*Link
	for i := range 3 {
		dev := tuntest.New("tun0", 1500)
		l := NewLink(dev, LinkConfig{Stripe: s})
		defer l.Close()
		l.attach(&recordingSink{i: i, out: out})
		devs, links = append(devs, dev), append(links, l)
	}
	// read feeds pkt to queue q and says which stream carried it.
	read := func(q int, pkt []byte) int {
		t.Helper()
		devs[q].Inbound <- pkt
		select {
		case r := <-out:
			if string(r.pkt) != string(pkt) {
				t.Fatalf("stream %d got another packet", r.stream)
			}
			return r.stream
		case <-time.After(5 * time.Second):
			t.Fatal("no stream carried the packet")
		}
		return -1
	}
	// The kernel put four new flows on queue 2: one per stream, then
	// the first stream again.
	for i, want := range []int{0, 1, 2, 0} {
		if got := read(2, tcpPacket(1000+uint16(i))); got != want {
			t.Fatalf("flow %d rode stream %d, want %d", 1000+i, got, want)
		}
	}
	// A flow stays on its stream, read from any queue.
	for q := range 3 {
		if got := read(q, tcpPacket(1001)); got != 1 {
			t.Fatalf("flow 1001 read from queue %d rode stream %d, want 1", q, got)
		}
	}
	// Stream 1 goes down: its flow moves to the emptiest stream that is
	// up, 2.
	links[1].detach(links[1].attached())
	if got := read(1, tcpPacket(1001)); got != 2 {
		t.Fatalf("flow 1001, whose stream is down, rode stream %d, want 2", got)
	}
	if got := read(0, tcpPacket(1001)); got != 2 {
		t.Fatalf("flow 1001 rode stream %d, want 2", got)
	}
	// A ping rides the stream that carried the fewest bytes: stream 0
	// carries a download.
	links[0].stats.BytesOut.Add(10 << 20)
	ping := ipv4Packet(mustAddr("198.18.0.1"), mustAddr("198.18.0.2"), make([]byte, 64))
	ping[9] = 1
	if got := read(0, ping); got != 2 {
		t.Fatalf("a ping rode stream %d, want 2", got)
	}
	// Not IP: where it was read.
	if got := read(0, []byte{0x00, 1, 2, 3}); got != 0 {
		t.Fatalf("a packet that is not IP rode stream %d, want 0, where it was read", got)
	}
	if got := read(2, []byte{0x00, 1, 2, 3}); got != 2 {
		t.Fatalf("a packet that is not IP rode stream %d, want 2, where it was read", got)
	}
}

// TestSparse: pings and DNS datagrams are sparse; other flows, DNS over
// TCP and large datagrams on port 53 are not.
func TestSparse(t *testing.T) {
	udp := func(src, dst netip.Addr, sport, dport uint16) []byte {
		h := make([]byte, 8)
		binary.BigEndian.PutUint16(h[0:], sport)
		binary.BigEndian.PutUint16(h[2:], dport)
		p := ipPacket(src, dst, h)
		if src.Is4() {
			p[9] = 17
		} else {
			p[6] = 17
		}
		return p
	}
	v4, v6 := mustAddr("198.18.0.1"), mustAddr("2001:db8::1")
	icmp6 := ipPacket(v6, v6, make([]byte, 8))
	icmp6[6] = 58
	for _, c := range []struct {
		name string
		pkt  []byte
		want bool
	}{
		{"dns query", udp(v4, v4, 40000, 53), true},
		{"dns answer", udp(v4, v4, 53, 40000), true},
		{"dns over ipv6", udp(v6, v6, 40000, 53), true},
		{"icmpv6", icmp6, true},
		{"quic", udp(v4, v4, 40000, 443), false},
		{"tcp", tcpPacket(1000), false},
		{"dns over tcp", tcpPacket(53), false},
		{"a large datagram on port 53", slices.Concat(udp(v4, v4, 40000, 53), make([]byte, 1000)), false},
		{"short", []byte{0x45, 0}, false},
	} {
		if got := sparse(c.pkt, 0); got != c.want {
			t.Errorf("%s: sparse %v, want %v", c.name, got, c.want)
		}
	}
}

// stripeLinks makes a stripe of n links over in-memory devices, each
// with a sink that passes on what it gets, tagged with its index, and a
// function that feeds a packet to queue q and returns the streams that
// carried it once nothing more comes.
func stripeLinks(t *testing.T, cfg StripeConfig, n int) (*Stripe, []*Link, func(q int, pkt []byte) []int) {
	s := NewStripe(cfg)
	out := make(chan routed, 16)
	var devs []*tuntest.Device
	var links []*Link
	for i := range n {
		dev := tuntest.New("tun0", 1500)
		l := NewLink(dev, LinkConfig{Stripe: s})
		t.Cleanup(func() { l.Close() })
		l.attach(&recordingSink{i: i, out: out})
		devs, links = append(devs, dev), append(links, l)
	}
	return s, links, func(q int, pkt []byte) []int {
		t.Helper()
		devs[q].Inbound <- pkt
		var got []int
		for wait := 5 * time.Second; ; wait = 100 * time.Millisecond {
			select {
			case r := <-out:
				if string(r.pkt) != string(pkt) {
					t.Fatalf("stream %d got another packet", r.stream)
				}
				got = append(got, r.stream)
				continue
			case <-time.After(wait):
			}
			slices.Sort(got)
			return got
		}
	}
}

// TestStripeTwice: once the peer drops second copies, a ping and a DNS
// datagram go over the two quietest streams; DNS over TCP, and anything
// before the peer said so, once. The server's stripe places nothing: a
// packet rides the stream it was read from, a ping's copy the quietest
// other.
func TestStripeTwice(t *testing.T) {
	checkLeaks(t)
	s, links, read := stripeLinks(t, StripeConfig{Mode: tun.ModeTUN, Place: true}, 3)
	ping := ipv4Packet(mustAddr("198.18.0.1"), mustAddr("198.18.0.2"), make([]byte, 64))
	ping[9] = 1
	links[0].stats.BytesOut.Add(10 << 20) // a download on stream 0
	if got := read(0, ping); !slices.Equal(got, []int{1}) {
		t.Fatalf("before the peer drops copies, a ping rode streams %v, want [1]", got)
	}
	s.twice.Store(true)
	links[0].stats.BytesOut.Add(10 << 20) // the download goes on
	if got := read(0, ping); !slices.Equal(got, []int{1, 2}) {
		t.Fatalf("a ping rode streams %v, want [1 2]: the two quiet ones", got)
	}
	dns := tcpPacket(53)
	if got := read(0, dns); len(got) != 1 {
		t.Fatalf("DNS over TCP rode streams %v, want one", got)
	}

	srv, slinks, sread := stripeLinks(t, StripeConfig{Mode: tun.ModeTUN}, 3)
	srv.twice.Store(true)
	slinks[1].stats.BytesOut.Add(10 << 20)
	if got := sread(2, tcpPacket(1000)); !slices.Equal(got, []int{2}) {
		t.Fatalf("on the server, a flow read from queue 2 rode streams %v, want [2]", got)
	}
	if got := sread(1, ping); !slices.Equal(got, []int{0, 1}) {
		t.Fatalf("on the server, a ping read from queue 1 rode streams %v, want [0 1]", got)
	}
}

// TestStripeAgain: of a packet that comes as a first copy and as a
// second (a Copy frame), in either order, the later is dropped, within a
// second; a ping's own repetition, another ping and a later copy are
// not.
func TestStripeAgain(t *testing.T) {
	s := NewStripe(StripeConfig{Mode: tun.ModeTUN})
	ping := ipv4Packet(mustAddr("198.18.0.1"), mustAddr("198.18.0.2"), make([]byte, 64))
	ping[9] = 1
	other := slices.Clone(ping)
	other[len(other)-1] = 1
	for i, c := range []struct {
		pkt    []byte
		second bool
		want   bool
	}{
		{ping, false, false}, {ping, true, true}, // the copy after the first
		{ping, false, false},                       // the ping again: written
		{other, true, false}, {other, false, true}, // the first after the copy
		{other, true, false}, // a third: another packet
		{tcpPacket(53), false, false}, {tcpPacket(53), false, false},
	} {
		if got := s.again(c.pkt, c.second); got != c.want {
			t.Errorf("packet %d: again %v, want %v", i, got, c.want)
		}
	}
	s.start = s.start.Add(-2 * stripeTwice)
	if s.again(ping, true) {
		t.Errorf("a copy %v later was dropped", 2*stripeTwice)
	}
}
