package tunnel

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sshvpn/sshvpn/framing"
	"github.com/sshvpn/sshvpn/tun"
	"github.com/sshvpn/sshvpn/tun/tuntest"
)

// startAgainstFake starts RunClient with cfg against a hand-crafted server
// over a socketpair and returns once the client has opened its device.
func startAgainstFake(t *testing.T, ctx context.Context, cfg ClientConfig, o *opener) (*fakePeer, <-chan error) {
	t.Helper()
	cc, sc := socketPair(t)
	cliDone := goErr(func() error { return RunClient(ctx, cc, cfg) })
	p := acceptClient(t, sc)
	select {
	case <-o.opened:
	case err := <-cliDone:
		t.Fatalf("RunClient ended before opening its device: %v", err)
	case <-time.After(5 * time.Second):
		t.Fatal("the client did not open its device within 5 s")
	}
	return p, cliDone
}

// clientUp is the addresses of packets from the client of clientConfig to
// the server; clientUp.reversed() of the server's answers.
var clientUp = endsOf("10.9.0.2", "10.9.0.1")

// flood puts pkt on dev.Inbound again and again until the device is closed.
func flood(dev *tuntest.Device, pkt []byte) (stop func()) {
	var wg sync.WaitGroup
	quit := make(chan struct{})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for !dev.Closed() {
			select {
			case dev.Inbound <- pkt:
			case <-quit:
				return
			case <-time.After(time.Millisecond):
			}
		}
	}()
	return func() { close(quit); wg.Wait() }
}

func TestDeadPeer(t *testing.T) {
	tests := []struct {
		name string
		// reading says whether the fake server reads what the client
		// sends; sending whether the client has traffic to send.
		reading, sending bool
	}{
		{"idle, peer reads", true, false},
		{"busy, peer reads", true, true},
		// The peer stops reading as well: the client's writes block once
		// the socket buffers are full. The silence must still be noticed.
		{"busy, peer wedged", false, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			checkLeaks(t)
			o := newOpener("client0")
			cfg := clientConfig(t, o)
			cfg.Keepalive, cfg.DeadAfter = 20*time.Millisecond, 100*time.Millisecond
			start := time.Now()
			p, cliDone := startAgainstFake(t, t.Context(), cfg, o)
			if tt.reading {
				drained := p.drain()
				defer func() { p.conn.Close(); <-drained }()
			}
			if tt.sending {
				defer flood(o.dev, packet('f', 0, 1400, clientUp))()
			}
			err := wait(t, "RunClient", cliDone, 5*time.Second)
			var de *DeadPeerError
			if !errors.As(err, &de) {
				t.Fatalf("RunClient: %v (%T), want a *DeadPeerError", err, err)
			}
			t.Logf("gave up after %v: %v", time.Since(start), err)
			if de.Silent < cfg.DeadAfter {
				t.Errorf("DeadPeerError.Silent = %v, less than DeadAfter %v", de.Silent, cfg.DeadAfter)
			}
			if o.dev.Closed() {
				t.Errorf("the device was closed with the connection; the link must outlive it")
			}
		})
	}
}

// TestPingKeepsAlive: a peer that only answers pings is alive.
func TestPingKeepsAlive(t *testing.T) {
	checkLeaks(t)
	o := newOpener("client0")
	cfg := clientConfig(t, o)
	cfg.Keepalive, cfg.DeadAfter = 20*time.Millisecond, 250*time.Millisecond
	ctx, cancel := context.WithCancel(t.Context())
	p, cliDone := startAgainstFake(t, ctx, cfg, o)
	var pings atomic.Int32
	answering := goErr(func() error {
		for {
			typ, payload, err := p.r.ReadFrame()
			if err != nil {
				return err
			}
			if typ == framing.TypePing {
				pings.Add(1)
				p.w.WriteFrame(framing.TypePong, payload)
				p.w.Flush()
			}
		}
	})
	time.Sleep(4 * cfg.DeadAfter)
	cancel()
	if err := wait(t, "RunClient", cliDone, 5*time.Second); err != nil {
		t.Errorf("RunClient: %v, want nil", err)
	}
	wait(t, "fake server", answering, 5*time.Second)
	if n := pings.Load(); n < 5 {
		t.Errorf("%d pings in %v at a %v keepalive", n, 4*cfg.DeadAfter, cfg.Keepalive)
	}
}

func TestPingAnswered(t *testing.T) {
	for _, payload := range []string{"abc", "", strings.Repeat("x", framing.MaxPingPayload)} {
		t.Run(fmt.Sprintf("len%d", len(payload)), func(t *testing.T) {
			checkLeaks(t)
			o := newOpener("client0")
			ctx, cancel := context.WithCancel(t.Context())
			p, cliDone := startAgainstFake(t, ctx, clientConfig(t, o), o)
			p.send(framing.TypePing, []byte(payload), nil)
			for {
				typ, got, err := p.r.ReadFrame()
				if err != nil {
					t.Fatalf("fake server: waiting for a pong: %v", err)
				}
				if typ == framing.TypePong {
					if string(got) != payload {
						t.Errorf("pong %q, want %q", got, payload)
					}
					break
				}
				t.Logf("fake server: skipping a %v frame", typ)
			}
			cancel()
			// The client says goodbye with a Close frame.
			for {
				typ, got, err := p.r.ReadFrame()
				if err != nil {
					t.Fatalf("fake server: waiting for close: %v", err)
				}
				if typ == framing.TypeClose {
					t.Logf("close reason %q", got)
					break
				}
			}
			drained := p.drain()
			if err := wait(t, "RunClient", cliDone, 5*time.Second); err != nil {
				t.Errorf("RunClient: %v, want nil", err)
			}
			<-drained
		})
	}
}

// TestPeerFrames: what the peer sends mid-session, and how the session ends.
func TestPeerFrames(t *testing.T) {
	type frame struct {
		typ     framing.Type
		payload string
	}
	tests := []struct {
		name    string
		frames  []frame
		wantPkt []string // packets the client's device must get, in order
		check   func(t *testing.T, err error)
	}{
		{"close", []frame{{framing.TypeClose, "server shutting down"}}, nil, wantNil},
		{"close without reason", []frame{{framing.TypeClose, ""}}, nil, wantNil},
		{"error", []frame{{framing.TypeError, "tun: device tun0 vanished"}}, nil,
			wantRemote("tun: device tun0 vanished")},
		{"error with control characters", []frame{{framing.TypeError, "bad\x1b[31m\x00news"}}, nil,
			wantRemote("bad?[31m?news")},
		{"data then close", []frame{{framing.TypeData, "one"}, {framing.TypeData, "two"}, {framing.TypeClose, "bye"}},
			[]string{"one", "two"}, wantNil},
		// The client does not filter: even a one-byte packet, which the
		// server would drop as no IP packet, reaches its device.
		{"one-byte data", []frame{{framing.TypeData, "x"}, {framing.TypeClose, ""}}, []string{"x"}, wantNil},
		{"unknown frame types are skipped",
			[]frame{{99, "from the future"}, {framing.TypeData, "after 99"}, {8, ""}, {255, strings.Repeat("z", 1000)},
				{framing.TypeData, "after 255"}, {framing.TypeClose, ""}},
			[]string{"after 99", "after 255"}, wantNil},
		{"unsolicited pong", []frame{{framing.TypePong, "x"}, {framing.TypeData, "still here"}, {framing.TypeClose, ""}},
			[]string{"still here"}, wantNil},
		{"second hello", []frame{{framing.TypeHello, `{"role":"server","mode":"tun"}`}}, nil,
			wantErr("second hello")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			checkLeaks(t)
			o := newOpener("client0")
			p, cliDone := startAgainstFake(t, t.Context(), clientConfig(t, o), o)
			drained := p.drain()
			for _, f := range tt.frames {
				p.send(f.typ, []byte(f.payload), nil)
			}
			for i, want := range tt.wantPkt {
				select {
				case got := <-o.dev.Outbound:
					if string(got) != want {
						t.Errorf("packet %d: %q, want %q", i, got, want)
					}
				case <-time.After(5 * time.Second):
					t.Fatalf("packet %d (%q) did not arrive", i, want)
				}
			}
			tt.check(t, wait(t, "RunClient", cliDone, 5*time.Second))
			if o.dev.Closed() {
				t.Errorf("the device was closed with the connection; the link must outlive it")
			}
			select {
			case got := <-o.dev.Outbound:
				t.Errorf("unexpected packet %q", got)
			default:
			}
			p.conn.Close()
			<-drained
		})
	}
}

func wantNil(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Errorf("RunClient: %v, want nil", err)
	}
}

func wantRemote(msg string) func(*testing.T, error) {
	return func(t *testing.T, err error) {
		t.Helper()
		var re *RemoteError
		if !errors.As(err, &re) || re.Msg != msg {
			t.Errorf("RunClient: %v (%T), want a *RemoteError with %q", err, err, msg)
		}
	}
}

func wantErr(sub string) func(*testing.T, error) {
	return func(t *testing.T, err error) {
		t.Helper()
		if !errContains(err, sub) {
			t.Errorf("RunClient: %v, want an error containing %q", err, sub)
		}
	}
}

// TestMalformedFrames: a corrupt stream ends the session with an error that
// says what was wrong, without panicking or allocating what the header asks.
func TestMalformedFrames(t *testing.T) {
	tests := []struct {
		name  string
		raw   []byte
		close bool // close the stream after raw
		want  []string
	}{
		{"oversized data", []byte{byte(framing.TypeData), 0xff, 0xff, 0xff}, false, []string{"limit", "65536"}},
		{"data one over", []byte{byte(framing.TypeData), 0x01, 0x00, 0x01}, false, []string{"limit", "65536"}},
		{"oversized ping", []byte{byte(framing.TypePing), 0, 0, 65}, false, []string{"limit", "64"}},
		{"oversized pong", []byte{byte(framing.TypePong), 0, 1, 0}, false, []string{"limit", "64"}},
		{"oversized error", []byte{byte(framing.TypeError), 0, 0x40, 0}, false, []string{"limit"}},
		{"oversized close", []byte{byte(framing.TypeClose), 0x01, 0, 0}, false, []string{"limit"}},
		{"type zero", []byte{0, 0, 0, 1, 'x'}, false, []string{"type 0"}},
		{"truncated frame", []byte{byte(framing.TypeData), 0, 0, 100, 1, 2, 3}, true, []string{io.ErrUnexpectedEOF.Error()}},
		{"truncated header", []byte{byte(framing.TypeData), 0}, true, []string{io.ErrUnexpectedEOF.Error()}},
		{"clean end without goodbye", nil, true, []string{"without a goodbye", "EOF"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			checkLeaks(t)
			o := newOpener("client0")
			p, cliDone := startAgainstFake(t, t.Context(), clientConfig(t, o), o)
			drained := p.drain()
			p.conn.Write(tt.raw)
			if tt.close {
				p.conn.(interface{ CloseWrite() error }).CloseWrite()
			}
			err := wait(t, "RunClient", cliDone, 5*time.Second)
			for _, sub := range tt.want {
				if !errContains(err, sub) {
					t.Errorf("RunClient: %v, want an error containing %q", err, sub)
				}
			}
			p.conn.Close()
			<-drained
		})
	}
}

// TestCloseUnderLoad cancels the client while packets flow both ways: both
// sides must still see an orderly close, whichever of the many racing
// reads and writes notices first.
func TestCloseUnderLoad(t *testing.T) {
	for _, tr := range transports {
		t.Run(tr.name, func(t *testing.T) {
			for i := range 20 {
				closeUnderLoad(t, tr, i)
				if t.Failed() {
					return
				}
			}
		})
	}
}

func closeUnderLoad(t *testing.T, tr transport, i int) {
	checkLeaks(t)
	cc, sc := tr.make(t)
	co, so := newOpener("client0"), newOpener("server0")
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	ccfg := clientConfig(t, co)
	ccfg.Keepalive = 5 * time.Millisecond // pings race with the close as well
	var sstats Stats
	so.stats = &sstats
	srvDone := goErr(func() error {
		return Serve(context.Background(), sc, ServerConfig{Open: so.Open, Keepalive: 5 * time.Millisecond,
			Logger: testLogger(t).With("side", "server")})
	})
	cliDone := goErr(func() error { return RunClient(ctx, cc, ccfg) })
	var wg sync.WaitGroup
	for _, f := range []struct {
		dev *tuntest.Device
		pkt []byte
	}{{co.dev, packet('f', 0, 1000, clientUp)}, {so.dev, packet('f', 0, 1000, clientUp.reversed())}} {
		d := f.dev
		stop := flood(d, f.pkt)
		defer stop()
		wg.Add(1)
		go func() { // a reader that keeps up, like a kernel
			defer wg.Done()
			for !d.Closed() {
				select {
				case <-d.Outbound:
				case <-time.After(time.Millisecond):
				}
			}
		}()
	}
	<-co.opened
	time.Sleep(time.Duration(i%5) * time.Millisecond)
	cancel()
	cerr := wait(t, "RunClient", cliDone, 5*time.Second)
	serr := wait(t, "Serve", srvDone, 5*time.Second)
	if cerr != nil || serr != nil {
		t.Errorf("round %d: RunClient: %v; Serve: %v; want both nil", i, cerr, serr)
	}
	co.Link().Close() // the client's link outlives the connection; end it too
	wg.Wait()
	// The flood is legitimate traffic: the server's filters pass it all.
	if d, do := sstats.Dropped.Load(), sstats.DroppedOut.Load(); d != 0 || do != 0 {
		t.Errorf("round %d: the server dropped %d packets from the client and %d to it", i, d, do)
	}
}

// TestCancelWedgedPeer: cancelling must end the session even when the peer
// no longer reads, so that the Close frame cannot be written.
func TestCancelWedgedPeer(t *testing.T) {
	checkLeaks(t)
	o := newOpener("client0")
	ctx, cancel := context.WithCancel(t.Context())
	p, cliDone := startAgainstFake(t, ctx, clientConfig(t, o), o)
	defer p.conn.Close()
	stop := flood(o.dev, packet('f', 0, 1400, clientUp))
	defer stop()
	// Wait until the client's writes block: nothing is read, so the packets
	// pile up in the queue once the socket buffers are full.
	deadline := time.Now().Add(5 * time.Second)
	for len(o.dev.Inbound) < cap(o.dev.Inbound) && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	if err := wait(t, "RunClient", cliDone, 10*time.Second); err != nil {
		t.Errorf("RunClient: %v, want nil", err)
	}
}

// benchDevice is a tun.Device that allocates nothing: Read hands out the
// same packet n times, Write counts.
type benchDevice struct {
	pkt     []byte
	offload tun.Offload   // with a virtio-net header: pkt has one
	reads   chan struct{} // one token per packet to read
	written chan struct{} // one token per packet written
	closed  chan struct{}
	once    sync.Once
}

func newBenchDevice(pkt []byte) *benchDevice {
	return &benchDevice{pkt: pkt, reads: make(chan struct{}, 1024), written: make(chan struct{}, 1024),
		closed: make(chan struct{})}
}

func (d *benchDevice) Read(bufs [][]byte, sizes []int, offset int) (int, error) {
	select {
	case <-d.reads:
		sizes[0] = copy(bufs[0][offset:], d.pkt)
		return 1, nil
	case <-d.closed:
		return 0, errClosedDevice
	}
}

func (d *benchDevice) TryRead(buf []byte) (int, error) {
	select {
	case <-d.reads:
		return copy(buf, d.pkt), nil
	case <-d.closed:
		return 0, errClosedDevice
	default:
		return 0, nil
	}
}

func (d *benchDevice) Offloads() tun.Offload { return d.offload }

func (d *benchDevice) SetOffload(tun.Offload) error { return nil }

func (d *benchDevice) Write(bufs [][]byte, offset int) (int, error) {
	for i := range bufs {
		select {
		case d.written <- struct{}{}:
		case <-d.closed:
			return i, errClosedDevice
		}
	}
	return len(bufs), nil
}

func (d *benchDevice) BatchSize() int   { return 1 }
func (d *benchDevice) Index() int       { return 0 }
func (d *benchDevice) Persistent() bool { return false }

var errClosedDevice = errors.New("bench device closed")

func (d *benchDevice) Name() string { return "bench" }
func (d *benchDevice) MTU() int     { return 1500 }
func (d *benchDevice) Close() error { d.once.Do(func() { close(d.closed) }); return nil }

var _ tun.Device = (*benchDevice)(nil)

// benchTunnel runs a client and a server over cc and sc with benchDevices
// (the client's hands out packets of 1400 bytes from the client's address,
// which the server's anti-spoofing filter checks and passes), waits until the
// tunnel carries packets, and returns the devices and a stop function that
// ends both sides and reports their errors.
func benchTunnel(tb testing.TB, cc, sc net.Conn, offload tun.Offload) (cdev, sdev *benchDevice, pktLen int, stop func()) {
	pkt := packet('b', 0, 1400, clientUp)
	if offload != 0 {
		pkt = superPacket(clientUp, 60000)
	}
	cdev, sdev = newBenchDevice(pkt), newBenchDevice(nil)
	cdev.offload, sdev.offload = offload, offload
	ctx, cancel := context.WithCancel(context.Background())
	srvDone := goErr(func() error {
		return Serve(context.Background(), sc, ServerConfig{
			Open: func(Tunnel) (*Link, error) { return NewLink(sdev, LinkConfig{}), nil }})
	})
	clink := NewLink(cdev, LinkConfig{})
	cliDone := goErr(func() error {
		return RunClient(ctx, cc, ClientConfig{Addrs: pfx("10.9.0.2/24"), PeerAddrs: pfx("10.9.0.1/24"), Link: clink})
	})
	// Warm up: the handshake and the first buffers.
	waitUp(cdev, sdev)
	for range 100 {
		cdev.reads <- struct{}{}
		<-sdev.written
	}
	return cdev, sdev, len(pkt), func() {
		cancel()
		if err := <-cliDone; err != nil {
			tb.Errorf("RunClient: %v", err)
		}
		if err := <-srvDone; err != nil {
			tb.Errorf("Serve: %v", err)
		}
		clink.Close()
	}
}

// BenchmarkPump measures packets of 1400 bytes (and, with offloads,
// super-packets of 60000) from the client's device through both links and
// pumps to the server's device. Allocations are the pumps' own: the devices
// allocate nothing.
func BenchmarkPump(b *testing.B) {
	for _, tr := range transports {
		for _, o := range []tun.Offload{0, allOffloads} {
			name := tr.name
			if o != 0 {
				name += "/offload"
			}
			b.Run(name, func(b *testing.B) { benchPump(b, tr.make, o) })
		}
	}
}

func benchPump(b *testing.B, pair func(testing.TB) (net.Conn, net.Conn), o tun.Offload) {
	cc, sc := pair(b)
	cdev, sdev, n, stop := benchTunnel(b, cc, sc, o)
	b.SetBytes(int64(n))
	b.ReportAllocs()
	credit := make(chan struct{}, 256)
	b.ResetTimer()
	// At most window packets on their way: the device reader is faster
	// than the transport, and what it reads beyond what sshvpn's queue
	// holds is dropped (a TCP sender would slow down; this one does not).
	window := min(256, (queueLimit/2)/n)
	go func() {
		for i := range b.N {
			if i >= window {
				<-credit
			}
			cdev.reads <- struct{}{}
		}
	}()
	for range b.N {
		<-sdev.written
		select {
		case credit <- struct{}{}:
		default:
		}
	}
	b.StopTimer()
	stop()
}

// TestPumpAllocs: the data path allocates nothing per packet, from the
// client's device through both links and pumps to the server's device,
// whether packets are plain or super-packets.
func TestPumpAllocs(t *testing.T) {
	for _, o := range []tun.Offload{0, allOffloads} {
		cc, sc := socketPair(t)
		cdev, sdev, _, stop := benchTunnel(t, cc, sc, o)
		allocs := testing.AllocsPerRun(20, func() {
			for range 100 {
				cdev.reads <- struct{}{}
				<-sdev.written
			}
		})
		if allocs > 1 { // per 100 packets: a timer's rare allocation at most
			t.Errorf("offloads %v: %v allocations per 100 packets, want none", o, allocs)
		}
		stop()
	}
}

// waitUp sends packets from cdev until one reaches sdev: what the client's
// link reads before its connection is attached is dropped.
func waitUp(cdev, sdev *benchDevice) {
	for {
		cdev.reads <- struct{}{}
		select {
		case <-sdev.written:
			return
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// TestKeepaliveRTT: the keepalive's round trip is measured on both sides.
func TestKeepaliveRTT(t *testing.T) {
	checkLeaks(t)
	l := startLive(t, ClientConfig{Addrs: pfx("10.9.0.2/24"), PeerAddrs: pfx("10.9.0.1/24"), Keepalive: 20 * time.Millisecond},
		ServerConfig{Keepalive: 20 * time.Millisecond})
	defer l.stop()
	if !eventuallyTrue(5*time.Second, func() bool { return l.cstats.RTT.Load() > 0 && l.sstats.RTT.Load() > 0 }) {
		t.Errorf("RTT client %v, server %v after keepalives", time.Duration(l.cstats.RTT.Load()), time.Duration(l.sstats.RTT.Load()))
	}
	if rtt := time.Duration(l.cstats.RTT.Load()); rtt > time.Second {
		t.Errorf("RTT %v over an in-memory pair", rtt)
	}
}
