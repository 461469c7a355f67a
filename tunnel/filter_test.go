package tunnel

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/sshvpn/sshvpn/tun"
	"github.com/sshvpn/sshvpn/tun/tuntest"
)

// withVersion returns a copy of pkt with its IP version nibble set to v.
func withVersion(pkt []byte, v byte) []byte {
	b := bytes.Clone(pkt)
	b[0] = v<<4 | b[0]&0x0f
	return b
}

func TestPacketAddr(t *testing.T) {
	v4 := packet('a', 1, 60, endsOf("10.9.0.2", "192.0.2.7"))
	v6 := packet('a', 2, 60, endsOf("fd00::2", "2001:db8::7"))
	tests := []struct {
		name string
		pkt  []byte
		dst  bool
		want string // "" for not ok
	}{
		{"v4 source", v4, false, "10.9.0.2"},
		{"v4 destination", v4, true, "192.0.2.7"},
		{"v6 source", v6, false, "fd00::2"},
		{"v6 destination", v6, true, "2001:db8::7"},
		{"v4 header only", ipv4Packet(mustAddr("10.9.0.2"), mustAddr("10.9.0.1"), nil), false, "10.9.0.2"},
		{"v6 header only", ipv6Packet(mustAddr("fd00::2"), mustAddr("fd00::1"), nil), true, "fd00::1"},
		{"v4-mapped source in v6", ipv6Packet(mustAddr("::ffff:10.9.0.2"), mustAddr("fd00::1"), nil), false, "::ffff:10.9.0.2"},
		{"empty", nil, false, ""},
		{"empty, destination", []byte{}, true, ""},
		{"one byte", []byte{0x45}, false, ""},
		{"v4 one short", v4[:19], false, ""},
		{"v4 one short, destination", v4[:19], true, ""},
		{"v6 one short", v6[:39], false, ""},
		{"v6 one short, destination", v6[:39], true, ""},
		{"v6 nibble on a v4-sized packet", withVersion(v4[:20], 6), false, ""},
		{"version 0", withVersion(v6, 0), false, ""},
		{"version 5", withVersion(v4, 5), false, ""},
		{"version 7", withVersion(v6, 7), true, ""},
		{"version 15", withVersion(v6, 15), false, ""},
		{"zeros", make([]byte, 100), false, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := packetAddr(tt.pkt, tt.dst)
			if tt.want == "" {
				if ok {
					t.Errorf("packetAddr(%x, %v) = %v, true; want not ok", tt.pkt[:min(8, len(tt.pkt))], tt.dst, got)
				}
				return
			}
			if want := mustAddr(tt.want); !ok || got != want {
				t.Errorf("packetAddr(dst=%v) = %v, %v; want %v, true", tt.dst, got, ok, want)
			}
		})
	}
}

func TestAddrFilter(t *testing.T) {
	client := pfx("10.9.0.2/24", "fd00::2/64")
	allow := pfx("192.168.7.0/24", "192.168.8.9/24", "fd07::/64") // 192.168.8.9/24 unmasked on purpose
	everything := pfx("0.0.0.0/0", "::/0")
	server := func(a string) string { // the server's address of a's family
		if mustAddr(a).Is4() {
			return "10.9.0.1"
		}
		return "fd00::1"
	}
	from := func(src string) []byte { return packet('s', 0, 64, endsOf(src, server(src))) }
	to := func(dst string) []byte { return packet('d', 0, 64, endsOf(server(dst), dst)) }
	garbage := map[string][]byte{
		"empty":     nil,
		"one byte":  {0x45},
		"v4 short":  from("10.9.0.2")[:19],
		"v6 short":  from("fd00::2")[:39],
		"version 0": withVersion(from("fd00::2"), 0),
		"version 5": withVersion(from("10.9.0.2"), 5),
		"version 7": withVersion(from("fd00::2"), 7),
	}
	type check struct {
		pkt  []byte
		want bool
	}
	tests := []struct {
		name   string
		addrs  []netip.Prefix
		nets   []netip.Prefix
		dst    bool
		checks map[string]check
	}{
		{"sources, host only", client, nil, false, map[string]check{
			"own v4":                {from("10.9.0.2"), true},
			"own v6":                {from("fd00::2"), true},
			"own v4, any dst":       {packet('x', 0, 40, endsOf("10.9.0.2", "203.0.113.9")), true},
			"v4 neighbour in /24":   {from("10.9.0.3"), false},
			"v4 network address":    {from("10.9.0.0"), false},
			"v4 broadcast":          {from("10.9.0.255"), false},
			"the server's v4":       {from("10.9.0.1"), false},
			"v6 neighbour in /64":   {from("fd00::3"), false},
			"the server's v6":       {from("fd00::1"), false},
			"v4-mapped own address": {from("::ffff:10.9.0.2"), false},
			"foreign v4":            {from("192.168.7.5"), false},
			"foreign v6":            {from("fd07::5"), false},
			"own address as dst":    {to("10.9.0.2"), false},
			// Link-scope IPv6 (router solicitations, MLD) never leaves
			// the link, so any link-local source may use it.
			"v6 link-local":              {packet('x', 0, 40, endsOf("fe80::1234", "ff02::2")), true},
			"v6 link-local, last":        {from("febf:ffff::1"), true},
			"v6 next to link-local":      {from("fec0::1"), false},
			"v6 multicast as source":     {from("ff02::1"), false},
			"v4 link-local":              {from("169.254.1.1"), false},
			"v4-mapped link-local style": {from("::ffff:169.254.1.1"), false},
		}},
		{"sources with allowed networks", client, allow, false, map[string]check{
			"own v4":                 {from("10.9.0.2"), true},
			"own v6":                 {from("fd00::2"), true},
			"allowed v4":             {from("192.168.7.5"), true},
			"allowed v4, first":      {from("192.168.7.0"), true},
			"allowed v4, last":       {from("192.168.7.255"), true},
			"allowed v4, unmasked":   {from("192.168.8.1"), true},
			"allowed v6":             {from("fd07::abcd"), true},
			"v4 next to allowed":     {from("192.168.6.255"), false},
			"v6 next to allowed":     {from("fd07:0:0:1::1"), false},
			"v4 neighbour still out": {from("10.9.0.3"), false},
		}},
		{"destinations, host only", client, nil, true, map[string]check{
			"to own v4":               {to("10.9.0.2"), true},
			"to own v6":               {to("fd00::2"), true},
			"to own v4, any src":      {packet('x', 0, 40, endsOf("203.0.113.9", "10.9.0.2")), true},
			"to v4 neighbour":         {to("10.9.0.3"), false},
			"to v4 broadcast":         {to("10.9.0.255"), false},
			"to the server's v4":      {to("10.9.0.1"), false},
			"to v6 neighbour":         {to("fd00::3"), false},
			"to foreign v4":           {to("192.168.7.5"), false},
			"own address as src only": {from("10.9.0.2"), false},
			// Link-local and link-scope multicast destinations pass;
			// wider multicast scopes do not.
			"to v6 link-local":             {to("fe80::5"), true},
			"to link-scope all nodes":      {to("ff02::1"), true},
			"to link-scope MLDv2 routers":  {packet('x', 0, 40, endsOf("fe80::1", "ff02::16")), true},
			"to site-scope multicast":      {to("ff05::2"), false},
			"to global multicast":          {to("ff0e::1"), false},
			"to interface-local multicast": {to("ff01::1"), false},
			"to v4 multicast":              {to("224.0.0.1"), false},
			"to v4 broadcast 255":          {to("255.255.255.255"), false},
		}},
		{"destinations with allowed networks", client, allow, true, map[string]check{
			"to own v4":           {to("10.9.0.2"), true},
			"to allowed v4":       {to("192.168.7.77"), true},
			"to allowed unmasked": {to("192.168.8.200"), true},
			"to allowed v6":       {to("fd07::1"), true},
			"to other v4":         {to("192.168.9.1"), false},
		}},
		{"garbage with everything allowed", client, everything, false, map[string]check{
			"any v4": {from("198.51.100.1"), true},
			"any v6": {from("2001:db8::1"), true},
		}},
		{"garbage with everything allowed, destinations", client, everything, true, map[string]check{
			"any v4": {to("198.51.100.1"), true},
		}},
		{"nothing allowed", nil, nil, false, map[string]check{
			"v4":            {from("10.9.0.2"), false},
			"v6":            {from("fd00::2"), false},
			"v6 link-local": {from("fe80::1"), true},
		}},
		{"nothing allowed, destinations", nil, nil, true, map[string]check{
			"to v4":                   {to("10.9.0.2"), false},
			"to v6 link-local":        {to("fe80::1"), true},
			"to link-scope multicast": {to("ff02::1"), true},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newAddrFilter(tt.addrs, tt.nets, tt.dst)
			for name, c := range tt.checks {
				if got := f.accept(c.pkt); got != c.want {
					src, _ := packetAddr(c.pkt, false)
					dst, _ := packetAddr(c.pkt, true)
					t.Errorf("%s (%v -> %v): accept = %v, want %v", name, src, dst, got, c.want)
				}
			}
			for name, pkt := range garbage {
				if f.accept(pkt) {
					t.Errorf("garbage %s (% x): accepted", name, pkt[:min(8, len(pkt))])
				}
			}
		})
	}
}

// TestFilterAllocs: the filter runs on every packet, so it must not
// allocate, whether it accepts or refuses.
func TestFilterAllocs(t *testing.T) {
	in := newAddrFilter(pfx("10.9.0.2/24", "fd00::2/64"), pfx("192.168.7.0/24", "fd07::/64"), false)
	out := newAddrFilter(pfx("10.9.0.2/24", "fd00::2/64"), pfx("192.168.7.0/24", "fd07::/64"), true)
	pkts := [][]byte{
		packet('a', 0, 1400, endsOf("10.9.0.2", "10.9.0.1")),
		packet('a', 0, 1400, endsOf("fd07::5", "fd00::1")),
		packet('a', 0, 1400, endsOf("10.9.0.3", "10.9.0.2")),
		packet('a', 0, 1400, endsOf("fd00::1", "fd00::2")),
		{0x45},
		make([]byte, 100),
	}
	var n int
	allocs := testing.AllocsPerRun(1000, func() {
		for _, p := range pkts {
			if in.accept(p) {
				n++
			}
			if out.accept(p) {
				n++
			}
		}
	})
	if allocs != 0 {
		t.Errorf("the filter allocates: %v allocations per run", allocs)
	}
	if n == 0 {
		t.Error("the filter accepted nothing")
	}
}

// live is a tunnel between RunClient and Serve over a socketpair, both
// devices open.
type live struct {
	t                *testing.T
	co, so           *opener
	cstats, sstats   Stats
	cancel           context.CancelFunc
	cliDone, srvDone <-chan error
}

// startLive starts a tunnel and waits until both sides have opened their
// devices. The caller ends it with stop.
func startLive(t *testing.T, ccfg ClientConfig, scfg ServerConfig) *live {
	t.Helper()
	so := newOpener("server0")
	so.guard = &GuardConfig{} // as a server's device is guarded
	return startLiveOn(t, ccfg, scfg, newOpener("client0"), so)
}

// startLiveOn is startLive with the given openers, whose devices a test
// may have set up (offloads, say).
func startLiveOn(t *testing.T, ccfg ClientConfig, scfg ServerConfig, co, so *opener) *live {
	t.Helper()
	cc, sc := socketPair(t)
	l := &live{t: t, co: co, so: so}
	co.stats, so.stats = &l.cstats, &l.sstats // (the guard's too)
	ccfg.Link, scfg.Open = l.co.Link(), l.so.Open
	t.Cleanup(func() { l.co.Link().Close() })
	ccfg.Logger = testLogger(t).With("side", "client")
	scfg.Logger = testLogger(t).With("side", "server")
	ctx, cancel := context.WithCancel(t.Context())
	l.cancel = cancel
	l.srvDone = goErr(func() error { return Serve(context.Background(), sc, scfg) })
	l.cliDone = goErr(func() error { return RunClient(ctx, cc, ccfg) })
	select {
	case <-l.co.opened:
	case err := <-l.cliDone:
		cancel()
		t.Fatalf("RunClient returned before opening its device: %v; Serve: %v", err, wait(t, "Serve", l.srvDone, 5*time.Second))
	case <-time.After(5 * time.Second):
		cancel()
		t.Fatal("no handshake within 5 s")
	}
	<-l.so.opened // the server opens before it answers
	return l
}

// stop closes the tunnel from the client's side; both must end in order.
func (l *live) stop() {
	l.t.Helper()
	l.cancel()
	if err := wait(l.t, "RunClient", l.cliDone, 5*time.Second); err != nil {
		l.t.Errorf("RunClient: %v, want nil", err)
	}
	if err := wait(l.t, "Serve", l.srvDone, 5*time.Second); err != nil {
		l.t.Errorf("Serve: %v, want nil", err)
	}
}

// through puts pkts on from.Inbound, in order, and checks that want comes
// out of to.Outbound, byte-identical and in order within each flow (the
// sender's queue may let one flow pass another). The last of pkts must
// pass and be the last of want. Packets dropped on the way are counted
// by the time the wanted ones are through only on the sending side:
// callers check the receiver's counters with eventuallyTrue.
func through(t *testing.T, what string, from, to *tuntest.Device, pkts, want [][]byte) {
	t.Helper()
	if len(want) == 0 || !bytes.Equal(pkts[len(pkts)-1], want[len(want)-1]) {
		panic("through: the last packet sent must be the last one wanted")
	}
	go func() {
		for _, p := range pkts {
			select {
			case from.Inbound <- p:
			case <-time.After(10 * time.Second):
				return
			}
		}
	}()
	var got [][]byte
	timeout := time.After(10 * time.Second)
	for len(got) < len(want) {
		select {
		case p := <-to.Outbound:
			got = append(got, p)
		case <-timeout:
			t.Fatalf("%s: %d of %d packets arrived within 10 s", what, len(got), len(want))
		}
	}
	// Per flow (the queue's own hash), the same packets in the same
	// order.
	byFlow := func(pkts [][]byte) map[uint32][][]byte {
		m := map[uint32][][]byte{}
		for _, p := range pkts {
			ip := 0 // or behind a virtio-net header
			if v := p[0] >> 4; v != 4 && v != 6 && len(p) > tun.VnetHdrLen {
				ip = tun.VnetHdrLen
			}
			h := flowHash(p, ip)
			m[h] = append(m[h], p)
		}
		return m
	}
	gotFlows, wantFlows := byFlow(got), byFlow(want)
	for h, w := range wantFlows {
		g := gotFlows[h]
		for i := range max(len(g), len(w)) {
			if i >= len(g) || i >= len(w) || !bytes.Equal(g[i], w[i]) {
				p := w[min(i, len(w)-1)]
				if i < len(g) {
					p = g[i]
				}
				src, _ := packetAddr(p, false)
				dst, _ := packetAddr(p, true)
				t.Errorf("%s: flow %v -> %v: packet %d (%d bytes) is not the one wanted (%d arrived, %d wanted)", what, src, dst, i, len(p), len(g), len(w))
				break
			}
		}
	}
	for h, g := range gotFlows {
		if _, ok := wantFlows[h]; !ok {
			src, _ := packetAddr(g[0], false)
			dst, _ := packetAddr(g[0], true)
			t.Errorf("%s: %d packets of an unwanted flow %v -> %v arrived", what, len(g), src, dst)
		}
	}
}

func TestAntiSpoofing(t *testing.T) {
	type pkt struct {
		name string
		b    []byte
		// pass: whether it passes without --allow-source; allowed:
		// with 192.168.7.0/24 and fd07::/64 as allowed sources.
		pass, allowed bool
	}
	// Garbage is dropped both ways, whatever the policy.
	legit := packet('g', 0, 100, endsOf("10.9.0.2", "10.9.0.1"))
	legit6 := packet('g', 0, 100, endsOf("fd00::2", "fd00::1"))
	garbage := []pkt{
		{"one byte", []byte{0x45}, false, false},
		{"v4 header cut short", legit[:19], false, false},
		{"v6 header cut short", legit6[:39], false, false},
		{"version 5", withVersion(legit, 5), false, false},
		{"version 0", make([]byte, 100), false, false},
		{"version 7", withVersion(legit6, 7), false, false},
	}
	up := append([]pkt{
		{"own v4", packet('u', 1, 100, endsOf("10.9.0.2", "10.9.0.1")), true, true},
		{"own v6", packet('u', 2, 100, endsOf("fd00::2", "fd00::1")), true, true},
		{"own v4 to the world", packet('u', 3, 20, endsOf("10.9.0.2", "198.51.100.1")), true, true},
		{"foreign v4", packet('u', 4, 100, endsOf("192.168.7.5", "10.9.0.1")), false, true},
		{"foreign v6", packet('u', 5, 100, endsOf("fd07::5", "fd00::1")), false, true},
		{"neighbour in the client's /24", packet('u', 6, 100, endsOf("10.9.0.3", "10.9.0.1")), false, false},
		{"neighbour in the client's /64", packet('u', 7, 100, endsOf("fd00::3", "fd00::1")), false, false},
		{"the server's own v4", packet('u', 8, 100, endsOf("10.9.0.1", "10.9.0.1")), false, false},
		{"outside the allowed networks", packet('u', 9, 100, endsOf("192.168.8.5", "10.9.0.1")), false, false},
		{"v4-mapped own address", packet('u', 10, 100, endsOf("::ffff:10.9.0.2", "fd00::1")), false, false},
		// A router solicitation from the client kernel's link-local
		// address: link-scope, harmless, admitted.
		{"link-local source", packet('u', 11, 56, endsOf("fe80::2", "ff02::2")), true, true},
		{"multicast source", packet('u', 12, 56, endsOf("ff02::2", "fd00::1")), false, false},
	}, garbage...)
	down := append([]pkt{
		{"to own v4", packet('d', 1, 100, endsOf("10.9.0.1", "10.9.0.2")), true, true},
		{"to own v6", packet('d', 2, 100, endsOf("fd00::1", "fd00::2")), true, true},
		{"to own v4 from the world", packet('d', 3, 1400, endsOf("198.51.100.1", "10.9.0.2")), true, true},
		{"to foreign v4", packet('d', 4, 100, endsOf("10.9.0.1", "192.168.7.5")), false, true},
		{"to foreign v6", packet('d', 5, 100, endsOf("fd00::1", "fd07::5")), false, true},
		{"to the neighbour in the /24", packet('d', 6, 100, endsOf("10.9.0.1", "10.9.0.3")), false, false},
		{"to the server itself", packet('d', 7, 100, endsOf("10.9.0.1", "10.9.0.1")), false, false},
		{"to site-scope multicast", packet('d', 8, 100, endsOf("fd00::1", "ff05::1")), false, false},
		{"to link-local", packet('d', 10, 100, endsOf("fe80::1", "fe80::2")), true, true},
		{"to link-scope multicast", packet('d', 11, 100, endsOf("fe80::1", "ff02::1")), true, true},
		{"to outside the allowed networks", packet('d', 9, 100, endsOf("10.9.0.1", "192.168.8.5")), false, false},
	}, garbage...)

	for _, tc := range []struct {
		name  string
		allow []netip.Prefix
	}{
		{"no allowed sources", nil},
		{"allowed sources", pfx("192.168.7.0/24", "fd07::/64")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			checkLeaks(t)
			ccfg := ClientConfig{Mode: tun.ModeTUN, Addrs: pfx("10.9.0.2/24", "fd00::2/64"), PeerAddrs: pfx("10.9.0.1/24", "fd00::1/64")}
			so := newOpener("server0")
			so.guard = &GuardConfig{Behind: tc.allow}
			l := startLiveOn(t, ccfg, ServerConfig{}, newOpener("client0"), so)
			defer l.stop()

			// Each list ends with a legitimate packet, after which
			// everything before it has been either delivered or dropped.
			run := func(what string, pkts []pkt, last []byte, from, to *tuntest.Device) (dropped uint64) {
				var send, want [][]byte
				for _, p := range slices.Concat(pkts, []pkt{{"last", last, true, true}}) {
					send = append(send, p.b)
					if (tc.allow == nil && p.pass) || (tc.allow != nil && p.allowed) {
						want = append(want, p.b)
					} else {
						dropped++
					}
				}
				through(t, what, from, to, send, want)
				return dropped
			}
			wantDropped := run("client to server", up, packet('z', 0, 60, endsOf("10.9.0.2", "10.9.0.1")), l.co.dev, l.so.dev)
			if got := l.sstats.Dropped.Load(); !eventuallyTrue(5*time.Second, func() bool { return l.sstats.Dropped.Load() == wantDropped }) {
				t.Errorf("server Stats.Dropped = %d, want %d", got, wantDropped)
			}
			wantDroppedOut := run("server to client", down, packet('z', 1, 60, endsOf("fd00::1", "fd00::2")), l.so.dev, l.co.dev)
			if got := l.sstats.DroppedOut.Load(); got != wantDroppedOut {
				t.Errorf("server Stats.DroppedOut = %d, want %d", got, wantDroppedOut)
			}
			// The pump counts a packet just after the device took it,
			// so the last one may still be on its way to the counter.
			wantIn := uint64(len(up)+1) - wantDropped
			for deadline := time.Now().Add(2 * time.Second); l.sstats.PacketsIn.Load() != wantIn && time.Now().Before(deadline); {
				time.Sleep(time.Millisecond)
			}
			if got := l.sstats.PacketsIn.Load(); got != wantIn {
				t.Errorf("server Stats.PacketsIn = %d, want %d", got, wantIn)
			}
			if got := l.sstats.PacketsOut.Load(); got != uint64(len(down)+1)-wantDroppedOut {
				t.Errorf("server Stats.PacketsOut = %d, want %d", got, uint64(len(down)+1)-wantDroppedOut)
			}
			// The client does not filter; what it got was all legitimate.
			if d, do := l.cstats.Dropped.Load(), l.cstats.DroppedOut.Load(); d != 0 || do != 0 {
				t.Errorf("client dropped %d in, %d out; want none", d, do)
			}
			if tc.allow == nil && wantDropped < 10 {
				t.Fatalf("the test drops only %d packets from the client", wantDropped)
			}
		})
	}
}

// TestAntiSpoofingAssigned: with a pool lease, the filter follows the
// addresses the server assigned, not those the client proposed.
func TestAntiSpoofingAssigned(t *testing.T) {
	checkLeaks(t)
	ccfg := ClientConfig{Mode: tun.ModeTUN, Addrs: pfx("10.9.0.2/24"), PeerAddrs: pfx("10.9.0.1/24")}
	scfg := ServerConfig{Addrs: pfx("10.8.0.1/24"), PeerAddrs: pfx("10.8.0.2/24"),
		Assign: func([]netip.Prefix) ([]netip.Prefix, []netip.Prefix, error) {
			return pfx("10.77.0.1/32"), pfx("10.77.0.2/32"), nil
		}}
	l := startLive(t, ccfg, scfg)
	defer l.stop()
	if ct, _ := l.co.tunnel(); !sameTunnel(ct, Tunnel{Mode: tun.ModeTUN, MTU: tun.DefaultMTU, Addrs: pfx("10.77.0.2/32"), PeerAddrs: pfx("10.77.0.1/32")}) {
		t.Errorf("client opened %+v, want the assigned addresses", ct)
	}
	assigned := packet('a', 1, 100, endsOf("10.77.0.2", "10.77.0.1"))
	send := [][]byte{
		packet('a', 2, 100, endsOf("10.9.0.2", "10.77.0.1")), // proposed, not assigned
		packet('a', 3, 100, endsOf("10.8.0.2", "10.77.0.1")), // the server's overridden PeerAddrs
		assigned,
	}
	through(t, "client to server", l.co.dev, l.so.dev, send, [][]byte{assigned})
	if got := l.sstats.Dropped.Load(); !eventuallyTrue(5*time.Second, func() bool { return l.sstats.Dropped.Load() == 2 }) {
		t.Errorf("server Stats.Dropped = %d, want 2", got)
	}
	answer := packet('a', 4, 100, endsOf("10.77.0.1", "10.77.0.2"))
	send = [][]byte{packet('a', 5, 100, endsOf("10.77.0.1", "10.9.0.2")), answer}
	through(t, "server to client", l.so.dev, l.co.dev, send, [][]byte{answer})
	if got := l.sstats.DroppedOut.Load(); got != 1 {
		t.Errorf("server Stats.DroppedOut = %d, want 1", got)
	}
}

// TestTapNotFiltered: tap mode carries Ethernet frames, whose bytes are not
// IP packets; the server passes them without looking at addresses.
func TestTapNotFiltered(t *testing.T) {
	checkLeaks(t)
	ccfg := ClientConfig{Mode: tun.ModeTAP, Addrs: pfx("10.9.0.2/24"), PeerAddrs: pfx("10.9.0.1/24")}
	l := startLive(t, ccfg, ServerConfig{Mode: tun.ModeTAP})
	defer l.stop()
	if st, _ := l.so.tunnel(); st.Mode != tun.ModeTAP {
		t.Fatalf("server opened %+v, want tap mode", st)
	}
	frames := func(dir byte) [][]byte {
		var fs [][]byte
		for i, size := range []int{1, 14, 19, 60, 1514} {
			f := make([]byte, size)
			for j := range f {
				f[j] = byte(i*31+j*7) ^ dir
			}
			fs = append(fs, f)
		}
		// Bytes that would be a spoofed IP packet in tun mode.
		return append(fs,
			packet(dir, 1, 100, endsOf("192.168.7.5", "10.9.0.1")),
			packet(dir, 2, 100, endsOf("10.9.0.1", "192.168.7.5")),
			[]byte{dir, 'l', 'a', 's', 't'})
	}
	up, down := frames('u'), frames('d')
	through(t, "client to server", l.co.dev, l.so.dev, up, up)
	through(t, "server to client", l.so.dev, l.co.dev, down, down)
	if d, do := l.sstats.Dropped.Load(), l.sstats.DroppedOut.Load(); d != 0 || do != 0 {
		t.Errorf("server dropped %d in, %d out; want none in tap mode", d, do)
	}
}

// TestIPHelpers checks the test packets themselves: lengths and the IPv4
// header checksum are what a kernel would write.
func TestIPHelpers(t *testing.T) {
	for _, size := range []int{20, 21, 84, 1500, 9018} {
		p := packet('h', 1, size, endsOf("10.9.0.2", "10.9.0.1"))
		if len(p) != size || int(binary.BigEndian.Uint16(p[2:])) != size || p[0] != 0x45 {
			t.Errorf("IPv4 packet of %d bytes: length %d, header % x", size, len(p), p[:4])
		}
		var sum uint32
		for i := 0; i < 20; i += 2 {
			sum += uint32(binary.BigEndian.Uint16(p[i:]))
		}
		for sum > 0xffff {
			sum = sum>>16 + sum&0xffff
		}
		if sum != 0xffff {
			t.Errorf("IPv4 packet of %d bytes: header checksum does not verify (%#x)", size, sum)
		}
	}
	for _, size := range []int{40, 41, 1500, 9018} {
		p := packet('h', 1, size, endsOf("fd00::2", "fd00::1"))
		if len(p) != size || int(binary.BigEndian.Uint16(p[4:]))+40 != size || p[0] != 0x60 {
			t.Errorf("IPv6 packet of %d bytes: length %d, header % x", size, len(p), p[:8])
		}
	}
}

// TestGuard: the guard around a server's device, on its own. What the
// client may not send is refused on Write with ErrDropped and counted,
// and never reaches the kernel; what the device reads for another
// destination comes back with size 0 from Read, and TryRead skips it; a
// packet the client may have passes both ways.
func TestGuard(t *testing.T) {
	dev := tuntest.New("tun0", 1500)
	stats := new(Stats)
	g := Guard(dev, GuardConfig{Addresses: true, Peer: pfx("10.9.0.2/24"), Behind: pfx("192.168.7.0/24"), Stats: stats})
	client, lan, other := mustAddr("10.9.0.2"), mustAddr("192.168.7.9"), mustAddr("203.0.113.9")
	server := mustAddr("10.9.0.1")
	if _, err := g.Write([][]byte{ipPacket(other, server, []byte("spoof"))}, 0); !errors.Is(err, ErrDropped) {
		t.Errorf("Write of a spoofed packet: %v, want ErrDropped", err)
	}
	for _, src := range []netip.Addr{client, lan} {
		if _, err := g.Write([][]byte{ipPacket(src, server, []byte("ok"))}, 0); err != nil {
			t.Errorf("Write from %v: %v", src, err)
		}
	}
	for range 2 {
		select {
		case <-dev.Outbound:
		case <-time.After(5 * time.Second):
			t.Fatal("an allowed packet did not reach the device")
		}
	}
	select {
	case p := <-dev.Outbound:
		t.Errorf("a third packet reached the device: %x", p)
	default:
	}
	if stats.Dropped.Load() != 1 {
		t.Errorf("Dropped = %d, want 1", stats.Dropped.Load())
	}

	dev.Inbound <- ipPacket(server, other, []byte("elsewhere"))
	dev.Inbound <- ipPacket(server, client, []byte("to the client"))
	bufs, sizes := [][]byte{make([]byte, 2000)}, make([]int, 1)
	if n, err := g.Read(bufs, sizes, 0); err != nil || n != 1 || sizes[0] != 0 {
		t.Errorf("Read of a packet for elsewhere: %d, %v, size %d; want it skipped (size 0)", n, err, sizes[0])
	}
	if n, err := g.Read(bufs, sizes, 0); err != nil || n != 1 || sizes[0] == 0 {
		t.Errorf("Read of a packet for the client: %d, %v, size %d", n, err, sizes[0])
	}
	dev.Inbound <- ipPacket(server, other, []byte("elsewhere"))
	dev.Inbound <- ipPacket(server, lan, []byte("behind the client"))
	deadline := time.Now().Add(5 * time.Second)
	n := 0
	for n == 0 && time.Now().Before(deadline) {
		var err error
		if n, err = g.TryRead(bufs[0]); err != nil {
			t.Fatal(err)
		}
	}
	if got, _ := packetAddr(bufs[0][:n], true); got != lan {
		t.Errorf("TryRead gave a packet to %v, want the one to %v past the other", got, lan)
	}
	if stats.DroppedOut.Load() != 2 {
		t.Errorf("DroppedOut = %d, want 2", stats.DroppedOut.Load())
	}
}
