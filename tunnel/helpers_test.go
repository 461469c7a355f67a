package tunnel

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"runtime"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/sshvpn/sshvpn/framing"
	"github.com/sshvpn/sshvpn/tun"
	"github.com/sshvpn/sshvpn/tun/tuntest"
)

// The pump's tests check that every packet arrives, from senders that
// never slow down: on a loaded machine CoDel would drop some, rightly.
// CoDel has tests of its own (queue_test.go), over newFQCodel.
func init() { pumpQueueTarget = time.Hour }

// testLogger returns a logger writing to t.Logf. Lines logged after the test
// has finished (by a leaked goroutine) are dropped instead of panicking.
func testLogger(t testing.TB) *slog.Logger {
	w := &tbWriter{t: t}
	t.Cleanup(w.stop)
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type tbWriter struct {
	mu   sync.Mutex
	t    testing.TB
	done bool
}

func (w *tbWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.done {
		w.t.Helper()
		w.t.Logf("%s", bytes.TrimRight(p, "\n"))
	}
	return len(p), nil
}

func (w *tbWriter) stop() {
	w.mu.Lock()
	w.done = true
	w.mu.Unlock()
}

// checkLeaks records the number of goroutines and, when the test ends (after
// the cleanups registered later have run), waits up to 2 s for it to drop
// back, dumping all stacks if it does not. Tests using it must not be
// parallel.
func checkLeaks(t testing.TB) {
	before := runtime.NumGoroutine()
	t.Cleanup(func() {
		deadline := time.Now().Add(2 * time.Second)
		for {
			now := runtime.NumGoroutine()
			if now <= before {
				return
			}
			if time.Now().After(deadline) {
				buf := make([]byte, 1<<20)
				buf = buf[:runtime.Stack(buf, true)]
				t.Errorf("goroutine leak: %d goroutines before the test, %d after; stacks:\n%s", before, now, buf)
				return
			}
			time.Sleep(5 * time.Millisecond)
		}
	})
}

// transport makes the two ends of an in-memory duplex byte stream.
type transport struct {
	name string
	make func(testing.TB) (client, server net.Conn)
}

var transports = []transport{
	{"socketpair", socketPair},
	{"net.Pipe", pipePair},
}

func pipePair(t testing.TB) (net.Conn, net.Conn) {
	c, s := net.Pipe()
	t.Cleanup(func() { c.Close(); s.Close() })
	return c, s
}

// socketPair returns the two ends of a Unix stream socketpair: buffered by
// the kernel like the pipes to ssh, and closing one end gives the other EOF.
func socketPair(t testing.TB) (net.Conn, net.Conn) {
	t.Helper()
	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatalf("socketpair: %v", err)
	}
	conns := make([]net.Conn, 2)
	for i, fd := range fds {
		f := os.NewFile(uintptr(fd), "socketpair")
		c, err := net.FileConn(f) // dups fd
		f.Close()
		if err != nil {
			t.Fatalf("FileConn: %v", err)
		}
		conns[i] = c
	}
	t.Cleanup(func() { conns[0].Close(); conns[1].Close() })
	return conns[0], conns[1]
}

func pfx(s ...string) []netip.Prefix {
	out := make([]netip.Prefix, len(s))
	for i, x := range s {
		out[i] = netip.MustParsePrefix(x)
	}
	return out
}

// opener stands for one side's device and its setup: its Link, over a
// tuntest device, records every Tunnel it is brought up to and fails with
// err when set. As a server's Opener, Open returns that Link.
type opener struct {
	mu      sync.Mutex
	called  int
	got     Tunnel
	dev     *tuntest.Device
	err     error         // what bringing the link up returns
	openErr error         // what Open returns
	opened  chan struct{} // closed on the first successful bring-up
	link    *Link
	// guard, if set, is what a server opener's link lets through: Open
	// guards the device with it, its Peer and Behind completed from the
	// tunnel as a server's are, and its Stats the link's.
	guard *GuardConfig
	// stats, if set, are the link's counters (its connections' too).
	stats *Stats
}

func newOpener(name string) *opener {
	return &opener{dev: tuntest.New(name, 1500), opened: make(chan struct{})}
}

// Link returns the opener's Link, made on first use.
func (o *opener) Link() *Link { return o.linkOn(o.dev) }

func (o *opener) linkOn(dev tun.Device) *Link {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.link == nil {
		o.link = NewLink(dev, LinkConfig{Host: HostFunc(func(t Tunnel, _ netip.Addr) error { return o.up(t) }), Stats: o.stats})
	}
	return o.link
}

// Open is a server's Opener.
func (o *opener) Open(t Tunnel) (*Link, error) {
	if o.guard == nil {
		return o.Link(), nil
	}
	g := *o.guard
	g.Addresses, g.Peer, g.Behind = t.Mode == tun.ModeTUN, t.PeerAddrs, slices.Concat(g.Behind, t.Routes)
	if g.Stats == nil {
		g.Stats = o.stats
	}
	return o.linkOn(Guard(o.dev, g)), nil
}

func (o *opener) up(tn Tunnel) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.called++
	o.got = tn
	if o.err != nil {
		return o.err
	}
	if o.called == 1 {
		close(o.opened)
	}
	return nil
}

func (o *opener) tunnel() (Tunnel, int) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.got, o.called
}

// goErr runs f in a goroutine and returns a channel with its result.
func goErr(f func() error) <-chan error {
	c := make(chan error, 1)
	go func() { c <- f() }()
	return c
}

// wait returns what c delivers, failing the test after d.
func wait(t testing.TB, what string, c <-chan error, d time.Duration) error {
	t.Helper()
	select {
	case err := <-c:
		return err
	case <-time.After(d):
		buf := make([]byte, 1<<20)
		buf = buf[:runtime.Stack(buf, true)]
		t.Fatalf("%s did not return within %v; stacks:\n%s", what, d, buf)
		return nil
	}
}

// fakePeer is a hand-crafted server: it speaks the handshake with
// framing.Reader/Writer directly, so tests control every frame after it.
type fakePeer struct {
	t     testing.TB
	conn  net.Conn
	r     *framing.Reader
	w     *framing.Writer
	hello *framing.Hello // the client's hello
}

// acceptClient reads the client's preamble and hello and answers with a
// server hello deciding server 10.9.0.1/24, client 10.9.0.2/24, MTU 1400.
func acceptClient(t testing.TB, conn net.Conn) *fakePeer {
	t.Helper()
	p := &fakePeer{t: t, conn: conn, r: framing.NewReader(conn), w: framing.NewWriter(conn)}
	if err := p.w.WritePreamble(); err != nil {
		t.Fatal(err)
	}
	if err := p.w.Flush(); err != nil {
		t.Fatalf("fake server: writing preamble: %v", err)
	}
	if _, err := p.r.ReadPreamble(); err != nil {
		t.Fatalf("fake server: reading preamble: %v", err)
	}
	typ, payload, err := p.r.ReadFrame()
	if err != nil || typ != framing.TypeHello {
		t.Fatalf("fake server: reading hello: %v, %v", typ, err)
	}
	if p.hello, err = framing.ParseHello(payload); err != nil {
		t.Fatal(err)
	}
	p.send(framing.TypeHello, nil, &framing.Hello{Role: "server", Mode: "tun", MTU: 1400,
		Addrs: pfx("10.9.0.1/24"), PeerAddrs: pfx("10.9.0.2/24"), Dev: "fake0"})
	return p
}

// send writes one frame (a Hello when h is set) and flushes.
func (p *fakePeer) send(typ framing.Type, payload []byte, h *framing.Hello) {
	p.t.Helper()
	var err error
	if h != nil {
		err = p.w.WriteHello(h)
	} else {
		err = p.w.WriteFrame(typ, payload)
	}
	if err == nil {
		err = p.w.Flush()
	}
	if err != nil {
		p.t.Errorf("fake server: sending %v: %v", typ, err)
	}
}

// drain reads and discards frames until the stream ends, in a goroutine,
// so that the client never blocks writing to the fake server. The returned
// channel is closed when it stops.
func (p *fakePeer) drain() <-chan struct{} {
	done := make(chan struct{})
	go func() {
		defer close(done)
		io.Copy(io.Discard, p.conn)
	}()
	return done
}

// clientConfig returns a client proposing itself 10.9.0.2/24 and the server
// 10.9.0.1/24, opening o.
func clientConfig(t testing.TB, o *opener) ClientConfig {
	link := o.Link()
	t.Cleanup(func() { link.Close() })
	return ClientConfig{Mode: tun.ModeTUN, Addrs: pfx("10.9.0.2/24"), PeerAddrs: pfx("10.9.0.1/24"),
		Link: link, Logger: testLogger(t).With("side", "client")}
}

func errContains(err error, sub string) bool {
	return err != nil && strings.Contains(err.Error(), sub)
}

func mustAddr(s string) netip.Addr { return netip.MustParseAddr(s) }

// ipProto is the protocol number of the test packets: 253, reserved for
// experimentation and testing (RFC 3692).
const ipProto = 253

// ipv4Packet returns an IPv4 packet from src to dst: a 20-byte header
// (version 4, IHL 5, total length, TTL 64, header checksum) followed by
// payload, which may be empty.
func ipv4Packet(src, dst netip.Addr, payload []byte) []byte {
	if !src.Is4() || !dst.Is4() {
		panic(fmt.Sprintf("ipv4Packet(%v, %v): not IPv4 addresses", src, dst))
	}
	b := make([]byte, 20+len(payload))
	if len(b) > 0xffff {
		panic(fmt.Sprintf("ipv4Packet: %d bytes is too long for an IPv4 packet", len(b)))
	}
	b[0] = 4<<4 | 5
	binary.BigEndian.PutUint16(b[2:], uint16(len(b)))
	b[8] = 64
	b[9] = ipProto
	s, d := src.As4(), dst.As4()
	copy(b[12:16], s[:])
	copy(b[16:20], d[:])
	var sum uint32
	for i := 0; i < 20; i += 2 {
		sum += uint32(binary.BigEndian.Uint16(b[i:]))
	}
	for sum > 0xffff {
		sum = sum>>16 + sum&0xffff
	}
	binary.BigEndian.PutUint16(b[10:], ^uint16(sum))
	copy(b[20:], payload)
	return b
}

// ipv6Packet returns an IPv6 packet from src to dst: a 40-byte header
// (version 6, payload length, next header, hop limit 64) followed by
// payload, which may be empty.
func ipv6Packet(src, dst netip.Addr, payload []byte) []byte {
	if !src.Is6() || !dst.Is6() {
		panic(fmt.Sprintf("ipv6Packet(%v, %v): not IPv6 addresses", src, dst))
	}
	if len(payload) > 0xffff {
		panic(fmt.Sprintf("ipv6Packet: a payload of %d bytes needs a jumbogram", len(payload)))
	}
	b := make([]byte, 40+len(payload))
	b[0] = 6 << 4
	binary.BigEndian.PutUint16(b[4:], uint16(len(payload)))
	b[6] = ipProto
	b[7] = 64
	s, d := src.As16(), dst.As16()
	copy(b[8:24], s[:])
	copy(b[24:40], d[:])
	copy(b[40:], payload)
	return b
}

// ipPacket returns an IPv4 or IPv6 packet from src to dst, by their family.
func ipPacket(src, dst netip.Addr, payload []byte) []byte {
	if src.Is4() {
		return ipv4Packet(src, dst, payload)
	}
	return ipv6Packet(src, dst, payload)
}

// ipHeaderLen is the size of the header ipPacket writes for src's family:
// the smallest packet it makes.
func ipHeaderLen(src netip.Addr) int {
	if src.Is4() {
		return 20
	}
	return 40
}

// rawClient speaks the client's side of the handshake by hand over conn:
// the preamble and a hello proposing 10.9.0.2/24 for itself and 10.9.0.1/24
// for the server; then it reads the server's preamble and answer, failing
// the test unless that is a Hello. Tests then send frames as they like.
func rawClient(t testing.TB, conn net.Conn) (*framing.Reader, *framing.Writer) {
	t.Helper()
	r, w := framing.NewReader(conn), framing.NewWriter(conn)
	w.WritePreamble()
	w.WriteHello(&framing.Hello{Role: "client", Mode: "tun", Addrs: pfx("10.9.0.2/24"), PeerAddrs: pfx("10.9.0.1/24")})
	w.Flush()
	if _, err := r.ReadPreamble(); err != nil {
		t.Fatal(err)
	}
	if typ, _, err := r.ReadFrame(); typ != framing.TypeHello || err != nil {
		t.Fatalf("server answered %v, %v", typ, err)
	}
	return r, w
}

// eventuallyTrue polls cond until it holds or d passes.
func eventuallyTrue(d time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if cond() {
			return true
		}
		time.Sleep(10 * time.Millisecond)
	}
	return cond()
}

// syncBuf is a strings.Builder safe for a logger and a test at once.
type syncBuf struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuf) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
