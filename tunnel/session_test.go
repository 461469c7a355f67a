package tunnel

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sshvpn/sshvpn/framing"
	"github.com/sshvpn/sshvpn/policy"
	"github.com/sshvpn/sshvpn/pool"
	"github.com/sshvpn/sshvpn/router"
	"github.com/sshvpn/sshvpn/tun"
	"github.com/sshvpn/sshvpn/tun/tuntest"
)

// ends are the source and destination addresses of a packet.
type ends struct{ src, dst netip.Addr }

func endsOf(src, dst string) ends { return ends{mustAddr(src), mustAddr(dst)} }

// reversed returns the ends of the answer.
func (e ends) reversed() ends { return ends{e.dst, e.src} }

// packet returns packet number i of the given size from e.src to e.dst: an
// IPv4 or IPv6 packet (by the addresses' family) whose payload differs
// between packets and directions. size must be at least the header's, 20
// or 40 bytes.
func packet(dir byte, i, size int, e ends) []byte {
	n := size - ipHeaderLen(e.src)
	if n < 0 {
		panic(fmt.Sprintf("packet: %d bytes is less than an IP header from %v", size, e.src))
	}
	b := make([]byte, n)
	for j := range b {
		b[j] = byte(i*7+j) ^ dir
	}
	if n >= 3 {
		b[0], b[1], b[2] = dir, byte(i>>8), byte(i)
	}
	return ipPacket(e.src, e.dst, b)
}

// flow puts n packets on from.Inbound and checks that they come out of
// to.Outbound byte-identical, and in order within each flow (a pair of
// addresses): the sender's queue may let one flow's packets pass
// another's. Packet i has size sizes[i%len(sizes)] and addresses
// addrs[i%len(addrs)].
func flow(t *testing.T, dir byte, from, to *tuntest.Device, n int, sizes []int, addrs ...ends) {
	t.Helper()
	pkt := func(i int) []byte { return packet(dir, i, sizes[i%len(sizes)], addrs[i%len(addrs)]) }
	next := make([]int, len(addrs)) // each flow's next packet
	for k := range next {
		next[k] = k
	}
	flowOf := func(b []byte) int {
		src, _ := packetAddr(b, false)
		dst, _ := packetAddr(b, true)
		for k, e := range addrs {
			if e.src == src && e.dst == dst {
				return k
			}
		}
		return -1
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := range n {
			from.Inbound <- pkt(i)
		}
	}()
	defer wg.Wait()
	timeout := time.After(10 * time.Second)
	for i := range n {
		select {
		case got := <-to.Outbound:
			k := flowOf(got)
			if k < 0 || next[k] >= n {
				t.Errorf("direction %c: packet %d: got %d bytes % x... of no flow sent", dir, i, len(got), got[:min(8, len(got))])
				return
			}
			want := pkt(next[k])
			next[k] += len(addrs)
			if !bytes.Equal(got, want) {
				t.Errorf("direction %c: packet %d: got %d bytes % x..., want %d bytes % x...",
					dir, i, len(got), got[:min(8, len(got))], len(want), want[:min(8, len(want))])
				return
			}
		case <-timeout:
			t.Errorf("direction %c: packet %d of %d did not arrive", dir, i, n)
			return
		}
	}
}

func TestHappyPath(t *testing.T) {
	const mtu = 9000
	// Packets alternate between IPv4 and IPv6 (even and odd i), so the sizes
	// at even indexes may be as small as an IPv4 header, those at odd ones
	// as an IPv6 header. The server only passes IP packets from and to the
	// client's tunnel addresses, so the smallest is 20 bytes, the smallest
	// IPv4 packet, where this test used to send a single byte; TestPeerFrames
	// still sends tiny packets to the client, which has no filter.
	sizes := []int{20, 60, 1500, mtu, mtu + tun.Overhead, 576}
	up := []ends{endsOf("10.9.0.2", "10.9.0.1"), endsOf("fd00::2", "fd00::1")}
	down := []ends{up[0].reversed(), up[1].reversed()}
	const n = 300
	for _, tr := range transports {
		t.Run(tr.name, func(t *testing.T) {
			checkLeaks(t)
			cc, sc := tr.make(t)
			co, so := newOpener("client0"), newOpener("server0")
			var cstats, sstats Stats
			co.stats, so.stats = &cstats, &sstats

			ccfg := ClientConfig{Mode: tun.ModeTUN, MTU: mtu,
				Addrs: pfx("10.9.0.2/24", "fd00::2/64"), PeerAddrs: pfx("10.9.0.1/24", "fd00::1/64"),
				Link: co.Link(), Logger: testLogger(t).With("side", "client")}
			t.Cleanup(func() { co.Link().Close() })
			scfg := ServerConfig{Open: so.Open, Logger: testLogger(t).With("side", "server")}

			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			srvDone := goErr(func() error { return Serve(context.Background(), sc, scfg) })
			cliDone := goErr(func() error { return RunClient(ctx, cc, ccfg) })

			select {
			case <-co.opened:
			case err := <-cliDone:
				t.Fatalf("RunClient returned before opening its device: %v", err)
			case <-time.After(5 * time.Second):
				t.Fatal("no handshake within 5 s")
			}
			<-so.opened // the server opens before it answers

			st, _ := so.tunnel()
			wantS := Tunnel{Mode: tun.ModeTUN, MTU: mtu, Addrs: ccfg.PeerAddrs, PeerAddrs: ccfg.Addrs}
			if !sameTunnel(st, wantS) {
				t.Errorf("server opened %+v, want %+v", st, wantS)
			}
			ct, _ := co.tunnel()
			wantC := Tunnel{Mode: tun.ModeTUN, MTU: mtu, Addrs: ccfg.Addrs, PeerAddrs: ccfg.PeerAddrs}
			if !sameTunnel(ct, wantC) {
				t.Errorf("client opened %+v, want %+v", ct, wantC)
			}

			var wg sync.WaitGroup
			wg.Add(2)
			go func() { defer wg.Done(); flow(t, 'c', co.dev, so.dev, n, sizes, up...) }()
			go func() { defer wg.Done(); flow(t, 's', so.dev, co.dev, n, sizes, down...) }()
			wg.Wait()

			cancel()
			if err := wait(t, "RunClient", cliDone, 5*time.Second); err != nil {
				t.Errorf("RunClient after cancel: %v, want nil", err)
			}
			if err := wait(t, "Serve", srvDone, 5*time.Second); err != nil {
				t.Errorf("Serve after the client's close: %v, want nil", err)
			}
			// The server's device ends with its session; the client's
			// link outlives the connection.
			if co.dev.Closed() || !so.dev.Closed() {
				t.Errorf("devices closed: client %v, server %v; want the server's only", co.dev.Closed(), so.dev.Closed())
			}
			if got := cstats.PacketsOut.Load(); got != n {
				t.Errorf("client PacketsOut = %d, want %d", got, n)
			}
			if got := sstats.PacketsIn.Load(); got != n {
				t.Errorf("server PacketsIn = %d, want %d", got, n)
			}
			if got, want := cstats.BytesIn.Load(), sstats.BytesOut.Load(); got != want || got == 0 {
				t.Errorf("client BytesIn = %d, server BytesOut = %d", got, want)
			}
			if d := cstats.Dropped.Load() + sstats.Dropped.Load() + cstats.DroppedOut.Load() + sstats.DroppedOut.Load(); d != 0 {
				t.Errorf("%d packets dropped", d)
			}
		})
	}
}

func sameTunnel(a, b Tunnel) bool {
	return a.Mode == b.Mode && a.MTU == b.MTU && slices.Equal(a.Addrs, b.Addrs) &&
		slices.Equal(a.PeerAddrs, b.PeerAddrs) && slices.Equal(a.Routes, b.Routes) && a.Dev == b.Dev
}

// handshake runs RunClient and Serve over a socketpair until both have opened
// their devices, then closes the tunnel from the client side. It returns what
// the two Openers saw, or the errors when the handshake fails.
func handshake(t *testing.T, ccfg ClientConfig, scfg ServerConfig) (client, server *opener, cerr, serr error) {
	t.Helper()
	cc, sc := socketPair(t)
	co, so := newOpener("client0"), newOpener("server0")
	if ccfg.Link == nil {
		ccfg.Link = co.Link()
	}
	t.Cleanup(func() { co.Link().Close() })
	if scfg.Open == nil {
		scfg.Open = so.Open
	}
	ccfg.Logger = testLogger(t).With("side", "client")
	scfg.Logger = testLogger(t).With("side", "server")
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	srvDone := goErr(func() error { return Serve(context.Background(), sc, scfg) })
	cliDone := goErr(func() error { return RunClient(ctx, cc, ccfg) })
	select {
	case <-co.opened:
		cancel()
	case err := <-cliDone:
		return co, so, err, wait(t, "Serve", srvDone, 5*time.Second)
	case <-time.After(5 * time.Second):
		t.Fatal("no handshake within 5 s")
	}
	return co, so, wait(t, "RunClient", cliDone, 5*time.Second), wait(t, "Serve", srvDone, 5*time.Second)
}

func TestServerPolicyWins(t *testing.T) {
	proposal := ClientConfig{Mode: tun.ModeTUN, MTU: 9000,
		Addrs: pfx("10.9.0.2/24"), PeerAddrs: pfx("10.9.0.1/24")}
	tests := []struct {
		name       string
		server     ServerConfig
		wantClient Tunnel // what the client's Opener must get
	}{
		{"everything",
			ServerConfig{MTU: 1300, Addrs: pfx("10.7.0.1/24", "fd07::1/64"), PeerAddrs: pfx("10.7.0.2/24", "fd07::2/64")},
			Tunnel{Mode: tun.ModeTUN, MTU: 1300, Addrs: pfx("10.7.0.2/24", "fd07::2/64"), PeerAddrs: pfx("10.7.0.1/24", "fd07::1/64")}},
		{"mtu only",
			ServerConfig{MTU: 1280},
			Tunnel{Mode: tun.ModeTUN, MTU: 1280, Addrs: pfx("10.9.0.2/24"), PeerAddrs: pfx("10.9.0.1/24")}},
		// One side fixed: the other is its partner, never the client's
		// proposal (which would let the client pick its own address).
		{"own address only",
			ServerConfig{Addrs: pfx("10.7.0.1/24")},
			Tunnel{Mode: tun.ModeTUN, MTU: 9000, Addrs: pfx("10.7.0.2/24"), PeerAddrs: pfx("10.7.0.1/24")}},
		{"client address only",
			ServerConfig{PeerAddrs: pfx("10.7.0.99/24")},
			Tunnel{Mode: tun.ModeTUN, MTU: 9000, Addrs: pfx("10.7.0.99/24"), PeerAddrs: pfx("10.7.0.100/24")}},
		{"explicit tun mode",
			ServerConfig{Mode: tun.ModeTUN},
			Tunnel{Mode: tun.ModeTUN, MTU: 9000, Addrs: pfx("10.9.0.2/24"), PeerAddrs: pfx("10.9.0.1/24")}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			checkLeaks(t)
			co, so, cerr, serr := handshake(t, proposal, tt.server)
			if cerr != nil || serr != nil {
				t.Fatalf("RunClient: %v; Serve: %v", cerr, serr)
			}
			ct, _ := co.tunnel()
			if !sameTunnel(ct, tt.wantClient) {
				t.Errorf("client opened %+v, want %+v", ct, tt.wantClient)
			}
			st, _ := so.tunnel()
			wantS := Tunnel{Mode: ct.Mode, MTU: ct.MTU, Addrs: ct.PeerAddrs, PeerAddrs: ct.Addrs}
			if !sameTunnel(st, wantS) {
				t.Errorf("server opened %+v, want the mirror of the client's, %+v", st, wantS)
			}
		})
	}
}

func TestRefusals(t *testing.T) {
	many := make([]netip.Prefix, policy.MaxAddrs+1)
	for i := range many {
		many[i] = netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 9, 0, byte(i + 2)}), 24)
	}
	tests := []struct {
		name       string
		client     func(*ClientConfig)
		server     func(*ServerConfig)
		want       string // in the client's *RemoteError and Serve's error
		serverOpen bool   // whether the server's Opener runs
	}{
		{name: "mode policy",
			client: func(c *ClientConfig) { c.Mode = tun.ModeTAP },
			server: func(s *ServerConfig) { s.Mode = tun.ModeTUN },
			want:   "serves tun mode only (its --mode policy); the client asked for tap"},
		{name: "server cannot open its device",
			server: func(s *ServerConfig) {
				s.Open = failOpen("tun: no permission to create tun devices (need CAP_NET_ADMIN)")
			},
			want:       "tun: no permission to create tun devices (need CAP_NET_ADMIN)",
			serverOpen: true},
		{name: "no addresses anywhere",
			client: func(c *ClientConfig) { c.Addrs, c.PeerAddrs = nil, nil },
			want:   "no tunnel addresses"},
		{name: "loopback",
			client: func(c *ClientConfig) { c.Addrs = pfx("127.0.0.2/8") },
			want:   "unusable proposed address 127.0.0.2/8"},
		{name: "ipv6 loopback",
			client: func(c *ClientConfig) { c.PeerAddrs = pfx("::1/128") },
			want:   "unusable proposed address ::1/128"},
		{name: "multicast",
			client: func(c *ClientConfig) { c.PeerAddrs = pfx("224.0.0.1/32") },
			want:   "unusable proposed address 224.0.0.1/32"},
		{name: "unspecified",
			client: func(c *ClientConfig) { c.Addrs = pfx("0.0.0.0/0") },
			want:   "unusable proposed address 0.0.0.0/0"},
		{name: "v4 in v6",
			client: func(c *ClientConfig) { c.Addrs = pfx("::ffff:10.9.0.2/120") },
			want:   "unusable proposed address ::ffff:10.9.0.2/120"},
		{name: "too many addresses",
			client: func(c *ClientConfig) { c.Addrs = many },
			want:   fmt.Sprintf("(%d, at most %d)", policy.MaxAddrs+1, policy.MaxAddrs)},
		{name: "mtu too small",
			client: func(c *ClientConfig) { c.MTU = 100 },
			want:   "proposed MTU 100 is out of range"},
		{name: "mtu too large",
			client: func(c *ClientConfig) { c.MTU = framing.MaxPayload },
			want:   fmt.Sprintf("proposed MTU %d is out of range", framing.MaxPayload)},
		{name: "device policy",
			client: func(c *ClientConfig) { c.RemoteDev = "evil0" },
			server: func(s *ServerConfig) { s.Dev = "tun7" },
			want:   `chooses the device; the client may not ask for "evil0"`},
		{name: "device when the server names none",
			client: func(c *ClientConfig) { c.RemoteDev = "tun7" },
			want:   `may not ask for "tun7"`},
		{name: "a device the account does not own",
			client: func(c *ClientConfig) { c.RemoteDev = "tun7" },
			server: func(s *ServerConfig) { s.OwnDevice = func(name string) bool { return name == "svpn0" } },
			want:   `may not ask for "tun7"`},
		{name: "route policy",
			client: func(c *ClientConfig) { c.RemoteRoutes = pfx("192.168.7.0/24", "192.168.9.0/24") },
			server: func(s *ServerConfig) { s.AllowRoutes = pfx("192.168.7.0/24") },
			want:   "policy does not route 192.168.9.0/24"},
		{name: "route without allowed sources",
			client: func(c *ClientConfig) { c.RemoteRoutes = pfx("192.168.7.0/24") },
			want:   "does not route 192.168.7.0/24"},
		{name: "pool full",
			server: func(s *ServerConfig) {
				s.Assign = func([]netip.Prefix) ([]netip.Prefix, []netip.Prefix, error) { return nil, nil, pool.ErrFull }
			},
			want: "pool: every address in the pool is in use"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			checkLeaks(t)
			cc, sc := socketPair(t)
			co, so := newOpener("client0"), newOpener("server0")
			ccfg := clientConfig(t, co)
			scfg := ServerConfig{Open: so.Open, Logger: testLogger(t).With("side", "server")}
			if tt.client != nil {
				tt.client(&ccfg)
			}
			if tt.server != nil {
				tt.server(&scfg)
			}
			srvDone := goErr(func() error { return Serve(t.Context(), sc, scfg) })
			cerr := wait(t, "RunClient", goErr(func() error { return RunClient(t.Context(), cc, ccfg) }), 5*time.Second)
			serr := wait(t, "Serve", srvDone, 5*time.Second)

			var re *RemoteError
			if !errors.As(cerr, &re) {
				t.Fatalf("RunClient: %v (%T), want a *RemoteError", cerr, cerr)
			}
			if !strings.Contains(re.Msg, tt.want) {
				t.Errorf("RunClient: %q, want it to contain %q", re.Msg, tt.want)
			}
			if !errContains(serr, tt.want) {
				t.Errorf("Serve: %v, want an error containing %q", serr, tt.want)
			}
			if _, n := co.tunnel(); n != 0 {
				t.Errorf("the client's Opener ran %d times after a refusal", n)
			}
			if _, n := so.tunnel(); n != 0 && !tt.serverOpen {
				t.Errorf("the server's Opener ran %d times", n)
			}
		})
	}
}

func failOpen(msg string) Opener {
	return func(Tunnel) (*Link, error) { return nil, errors.New(msg) }
}

// TestClientRejectsAnswer covers answers a broken or hostile server might
// give: the client must not open its device.
func TestClientRejectsAnswer(t *testing.T) {
	tests := []struct {
		name   string
		answer framing.Hello
		want   string
	}{
		{"not a server", framing.Hello{Role: "client", Mode: "tun", MTU: 1400, Addrs: pfx("10.9.0.1/24"), PeerAddrs: pfx("10.9.0.2/24")}, `answered as "client"`},
		{"other mode", framing.Hello{Role: "server", Mode: "tap", MTU: 1400, Addrs: pfx("10.9.0.1/24"), PeerAddrs: pfx("10.9.0.2/24")}, "runs the tunnel in tap mode"},
		{"no mtu", framing.Hello{Role: "server", Mode: "tun", Addrs: pfx("10.9.0.1/24"), PeerAddrs: pfx("10.9.0.2/24")}, "unusable MTU 0"},
		{"huge mtu", framing.Hello{Role: "server", Mode: "tun", MTU: 1 << 20, Addrs: pfx("10.9.0.1/24"), PeerAddrs: pfx("10.9.0.2/24")}, "unusable MTU"},
		{"no addresses", framing.Hello{Role: "server", Mode: "tun", MTU: 1400}, "decided no addresses"},
		{"loopback", framing.Hello{Role: "server", Mode: "tun", MTU: 1400, Addrs: pfx("10.9.0.1/24"), PeerAddrs: pfx("127.0.0.1/8")}, "unusable address 127.0.0.1/8"},
		{"too many", framing.Hello{Role: "server", Mode: "tun", MTU: 1400, Addrs: pfx("10.9.0.1/24"), PeerAddrs: pfx(manyAddrs()...)},
			"the server's answer: too many addresses (9, at most 8)"},
		// Issue 7: both ends on one address, and an address that would
		// take over a network this machine is on (its WAN, where the SSH
		// server is).
		{"one address for both ends", framing.Hello{Role: "server", Mode: "tun", MTU: 1400, Addrs: pfx("10.9.0.1/24"), PeerAddrs: pfx("10.9.0.1/24")},
			"both ends of the tunnel would have the address 10.9.0.1"},
		{"captures the WAN", framing.Hello{Role: "server", Mode: "tun", MTU: 1400, Addrs: pfx("192.0.2.4/25"), PeerAddrs: pfx("192.0.2.3/25")},
			"the server assigned the tunnel address 192.0.2.3/25, which overlaps 192.0.2.1/24, a network this machine is on (on wan0)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			checkLeaks(t)
			cc, sc := socketPair(t)
			co := newOpener("client0")
			cfg := clientConfig(t, co)
			cfg.Nets = []router.Net{{Prefix: netip.MustParsePrefix("192.0.2.1/24"), Dev: "wan0"}}
			cliDone := goErr(func() error { return RunClient(t.Context(), cc, cfg) })
			p := &fakePeer{t: t, conn: sc, r: framing.NewReader(sc), w: framing.NewWriter(sc)}
			p.w.WritePreamble()
			p.send(framing.TypeHello, nil, &tt.answer)
			err := wait(t, "RunClient", cliDone, 5*time.Second)
			if !errContains(err, tt.want) {
				t.Errorf("RunClient: %v, want an error containing %q", err, tt.want)
			}
			if _, n := co.tunnel(); n != 0 {
				t.Errorf("the client opened its device after a bad answer")
			}
			// The server is told why.
			if _, err := p.r.ReadPreamble(); err != nil {
				t.Fatal(err)
			}
			var typ framing.Type
			var payload []byte
			var rerr error
			for rerr == nil && typ != framing.TypeError {
				typ, payload, rerr = p.r.ReadFrame()
			}
			if !strings.Contains(string(payload), tt.want) {
				t.Errorf("the server got %v %q, %v; want an error frame containing %q", typ, payload, rerr, tt.want)
			}
		})
	}
}

func TestBanner(t *testing.T) {
	const banner = "Last login: Tue Nov 25 10:00:00 2025 from 192.0.2.1\n"
	for _, tr := range transports {
		t.Run(tr.name, func(t *testing.T) {
			checkLeaks(t)
			cc, sc := tr.make(t)
			co := newOpener("client0")
			cliDone := goErr(func() error { return RunClient(t.Context(), cc, clientConfig(t, co)) })
			drained := goErr(func() error { _, err := io.Copy(io.Discard, sc); return err })
			go func() {
				w := framing.NewWriter(sc)
				sc.Write([]byte(banner))
				w.WritePreamble()
				w.Flush()
			}()
			err := wait(t, "RunClient", cliDone, 5*time.Second)
			var pe *framing.PreambleError
			if !errors.As(err, &pe) {
				t.Fatalf("RunClient: %v (%T), want a *framing.PreambleError", err, err)
			}
			if !strings.HasPrefix(string(pe.Got), "Last login") || !strings.Contains(err.Error(), `"Last login: Tue`) {
				t.Errorf("RunClient: %v; want it to quote the banner", err)
			}
			if _, n := co.tunnel(); n != 0 {
				t.Errorf("the client opened its device")
			}
			sc.Close()
			wait(t, "drain", drained, 5*time.Second)
		})
	}
}

func TestVersionMismatch(t *testing.T) {
	checkLeaks(t)
	cc, sc := socketPair(t)
	co := newOpener("client0")
	cliDone := goErr(func() error { return RunClient(t.Context(), cc, clientConfig(t, co)) })
	sc.Write([]byte("SSHVPN/2\n"))
	err := wait(t, "RunClient", cliDone, 5*time.Second)
	var ve *framing.VersionError
	if !errors.As(err, &ve) || ve.Peer != 2 {
		t.Errorf("RunClient: %v, want a *framing.VersionError for version 2", err)
	}
}

// TestEmptyStream: the remote end goes away without a byte, as when the
// remote command does not exist. RunClient says so with an error wrapping
// io.EOF (the transport's own error, such as spawn's exit status, in real
// use), whether or not its hello could still be written.
func TestEmptyStream(t *testing.T) {
	tests := []struct {
		name  string
		make  func(testing.TB) (net.Conn, net.Conn)
		close func(net.Conn)
	}{
		{"socketpair close", socketPair, func(c net.Conn) { c.Close() }},
		{"socketpair close write", socketPair, func(c net.Conn) {
			c.(interface{ CloseWrite() error }).CloseWrite()
			go io.Copy(io.Discard, c)
		}},
		{"net.Pipe close", pipePair, func(c net.Conn) { c.Close() }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			checkLeaks(t)
			cc, sc := tt.make(t)
			tt.close(sc) // before the client starts: it will write into a closed stream
			co := newOpener("client0")
			err := wait(t, "RunClient", goErr(func() error { return RunClient(t.Context(), cc, clientConfig(t, co)) }), 5*time.Second)
			if !errors.Is(err, io.EOF) {
				t.Errorf("RunClient: %v, want an error wrapping io.EOF", err)
			}
			sc.Close()
		})
	}
}

// TestCancelDuringHandshake: ssh may sit at a password prompt; cancelling
// then is an orderly end.
func TestCancelDuringHandshake(t *testing.T) {
	for _, tr := range transports {
		t.Run(tr.name, func(t *testing.T) {
			checkLeaks(t)
			cc, sc := tr.make(t)
			// The server never answers; its first read of the client's
			// hello says the client waits for the answer by now.
			heard := make(chan struct{})
			drained := goErr(func() error {
				var b [1]byte
				if _, err := io.ReadFull(sc, b[:]); err != nil {
					return err
				}
				close(heard)
				_, err := io.Copy(io.Discard, sc)
				return err
			})
			ctx, cancel := context.WithCancel(t.Context())
			co := newOpener("client0")
			cliDone := goErr(func() error { return RunClient(ctx, cc, clientConfig(t, co)) })
			select {
			case <-heard:
			case <-time.After(5 * time.Second):
				t.Fatal("the client sent no hello")
			}
			cancel()
			if err := wait(t, "RunClient", cliDone, 5*time.Second); err != nil {
				t.Errorf("RunClient: %v, want nil", err)
			}
			wait(t, "drain", drained, 5*time.Second)
		})
	}
}

// TestServeClientVanishes: a client that goes away without a Close frame
// ends Serve with an error wrapping io.EOF, which the command treats as
// "the client went away".
func TestServeClientVanishes(t *testing.T) {
	checkLeaks(t)
	cc, sc := socketPair(t)
	so := newOpener("server0")
	srvDone := goErr(func() error {
		return Serve(t.Context(), sc, ServerConfig{Open: so.Open, Logger: testLogger(t).With("side", "server")})
	})
	rawClient(t, cc)
	cc.Close()
	err := wait(t, "Serve", srvDone, 5*time.Second)
	if !errors.Is(err, io.EOF) {
		t.Errorf("Serve: %v, want an error wrapping io.EOF", err)
	}
	if !so.dev.Closed() {
		t.Errorf("server device not closed")
	}
}

// TestServeRejectsNonClient: the first frame must be a client's hello.
func TestServeRejectsBadHello(t *testing.T) {
	tests := []struct {
		name  string
		frame func(w *framing.Writer)
		want  string
	}{
		{"server role", func(w *framing.Writer) {
			w.WriteHello(&framing.Hello{Role: "server", Mode: "tun", Addrs: pfx("10.9.0.2/24"), PeerAddrs: pfx("10.9.0.1/24")})
		}, `introduced itself as "server"`},
		{"data first", func(w *framing.Writer) { w.WriteFrame(framing.TypeData, []byte{0x45}) }, "expected a hello frame first"},
		{"bad json", func(w *framing.Writer) { w.WriteFrame(framing.TypeHello, []byte("{")) }, "malformed hello"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			checkLeaks(t)
			cc, sc := socketPair(t)
			so := newOpener("server0")
			srvDone := goErr(func() error {
				return Serve(t.Context(), sc, ServerConfig{Open: so.Open, Logger: testLogger(t).With("side", "server")})
			})
			r, w := framing.NewReader(cc), framing.NewWriter(cc)
			w.WritePreamble()
			tt.frame(w)
			w.Flush()
			serr := wait(t, "Serve", srvDone, 5*time.Second)
			if !errContains(serr, tt.want) {
				t.Errorf("Serve: %v, want an error containing %q", serr, tt.want)
			}
			if _, err := r.ReadPreamble(); err != nil {
				t.Fatal(err)
			}
			typ, payload, err := r.ReadFrame()
			if typ != framing.TypeError || err != nil || !strings.Contains(string(payload), tt.want) {
				t.Errorf("server sent %v %q, %v; want an error frame containing %q", typ, payload, err, tt.want)
			}
			if _, n := so.tunnel(); n != 0 {
				t.Errorf("server opened its device")
			}
		})
	}
}

// TestClientOpenFails: the server has opened its device when the client
// fails to; the client says why instead of just hanging up.
func TestClientOpenFails(t *testing.T) {
	checkLeaks(t)
	const msg = "tun: no permission to create tun devices (need CAP_NET_ADMIN)"
	openErr := errors.New(msg)
	cc, sc := socketPair(t)
	so := newOpener("server0")
	srvDone := goErr(func() error {
		return Serve(t.Context(), sc, ServerConfig{Open: so.Open, Logger: testLogger(t).With("side", "server")})
	})
	co := newOpener("client0")
	co.err = openErr
	ccfg := clientConfig(t, co)
	cerr := wait(t, "RunClient", goErr(func() error { return RunClient(t.Context(), cc, ccfg) }), 5*time.Second)
	if !errors.Is(cerr, openErr) {
		t.Errorf("RunClient: %v, want the Opener's error", cerr)
	}
	serr := wait(t, "Serve", srvDone, 5*time.Second)
	var re *RemoteError
	if !errors.As(serr, &re) || !strings.Contains(re.Msg, msg) {
		t.Errorf("Serve: %v (%T), want a *RemoteError containing %q", serr, serr, msg)
	}
	if !so.dev.Closed() {
		t.Errorf("server device not closed")
	}
}

// TestServerCloses: cancelling Serve's context closes the tunnel in order
// from the server's side.
func TestServerCloses(t *testing.T) {
	for _, tr := range transports {
		t.Run(tr.name, func(t *testing.T) {
			checkLeaks(t)
			cc, sc := tr.make(t)
			co, so := newOpener("client0"), newOpener("server0")
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			srvDone := goErr(func() error {
				return Serve(ctx, sc, ServerConfig{Open: so.Open, Logger: testLogger(t).With("side", "server")})
			})
			cliDone := goErr(func() error { return RunClient(context.Background(), cc, clientConfig(t, co)) })
			<-co.opened
			up := endsOf("10.9.0.2", "10.9.0.1") // clientConfig's addresses
			flow(t, 'c', co.dev, so.dev, 10, []int{100}, up)
			flow(t, 's', so.dev, co.dev, 10, []int{100}, up.reversed())
			cancel()
			if err := wait(t, "Serve", srvDone, 5*time.Second); err != nil {
				t.Errorf("Serve: %v, want nil", err)
			}
			if err := wait(t, "RunClient", cliDone, 5*time.Second); err != nil {
				t.Errorf("RunClient: %v, want nil", err)
			}
			// The server's device ends with its session; the client's
			// link outlives the connection.
			if co.dev.Closed() || !so.dev.Closed() {
				t.Errorf("devices closed: client %v, server %v; want the server's only", co.dev.Closed(), so.dev.Closed())
			}
		})
	}
}

func manyAddrs() []string {
	out := make([]string, policy.MaxAddrs+1)
	for i := range out {
		out[i] = netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 9, 1, byte(i)}), 24).String()
	}
	return out
}

// TestServeNotAClient: a peer that is no sshvpn client (a person's "ssh
// host id" on a key that runs only sshvpn) gets the preamble and one
// readable line, no frame.
func TestServeNotAClient(t *testing.T) {
	for _, sent := range []string{"id\n", ""} {
		cc, sc := socketPair(t)
		errc := make(chan error, 1)
		go func() { errc <- Serve(context.Background(), sc, ServerConfig{}) }()
		cc.Write([]byte(sent))
		if c, ok := cc.(interface{ CloseWrite() error }); ok {
			c.CloseWrite()
		}
		out, _ := io.ReadAll(cc)
		if err := <-errc; err == nil {
			t.Errorf("%q: Serve returned no error", sent)
		}
		want := framing.Magic + "1\n\r\n" + NotAClient + "\r\n"
		if string(out) != want {
			t.Errorf("%q: the peer read %q, want %q", sent, out, want)
		}
		cc.Close()
	}
}
