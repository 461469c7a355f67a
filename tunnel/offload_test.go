package tunnel

import (
	"bytes"
	"encoding/binary"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/sshvpn/sshvpn/framing"
	"github.com/sshvpn/sshvpn/tun"
)

const allOffloads = tun.OffloadCSUM | tun.OffloadTSO4 | tun.OffloadTSO6 | tun.OffloadUSO4 | tun.OffloadUSO6

// withVnet puts a virtio-net header in front of pkt.
func withVnet(h tun.VnetHdr, pkt []byte) []byte {
	b := make([]byte, tun.VnetHdrLen+len(pkt))
	h.Encode(b)
	copy(b[tun.VnetHdrLen:], pkt)
	return b
}

// superPacket is a TCP super-packet of size bytes from e.src to e.dst, as
// Linux's tun hands it out with TSO on: a virtio-net header asking for
// segments of 1400 bytes and the checksum to be completed.
func superPacket(e ends, size int) []byte {
	pkt := packet('s', 1, size, e)
	ihl := ipHeaderLen(e.src)
	gso := uint8(tun.GSOTCPv4)
	if e.src.Is4() {
		pkt[9] = 6 // TCP
		binary.BigEndian.PutUint16(pkt[10:], 0)
	} else {
		pkt[6] = 6
		gso = tun.GSOTCPv6
	}
	pkt[ihl+12] = 5 << 4 // TCP data offset
	return withVnet(tun.VnetHdr{Flags: 1, GSOType: gso, HdrLen: uint16(ihl + 20), GSOSize: 1400,
		CsumStart: uint16(ihl), CsumOffset: 16}, pkt)
}

// plainVnet is pkt behind a blank virtio-net header.
func plainVnet(pkt []byte) []byte { return withVnet(tun.VnetHdr{}, pkt) }

func offloadOpeners(client, server tun.Offload) (*opener, *opener) {
	co, so := newOpener("client0"), newOpener("server0")
	co.dev.Offload, so.dev.Offload = client, server
	so.guard = &GuardConfig{} // as a server's device is guarded
	return co, so
}

// TestOffloadAgreed: when both devices have offloads, both sides enable
// what both have, and super-packets cross unchanged, header and all, both
// ways, IPv4 and IPv6. The server's anti-spoofing filter checks a
// super-packet as it checks a plain one.
func TestOffloadAgreed(t *testing.T) {
	checkLeaks(t)
	co, so := offloadOpeners(allOffloads, tun.OffloadCSUM|tun.OffloadTSO4|tun.OffloadTSO6)
	l := startLiveOn(t, ClientConfig{Addrs: pfx("10.9.0.2/24", "fd09::2/64"), PeerAddrs: pfx("10.9.0.1/24", "fd09::1/64")},
		ServerConfig{}, co, so)
	defer l.stop()
	want := tun.OffloadCSUM | tun.OffloadTSO4 | tun.OffloadTSO6
	if co.dev.Enabled() != want || so.dev.Enabled() != want {
		t.Fatalf("enabled offloads: client %v, server %v; want %v on both", co.dev.Enabled(), so.dev.Enabled(), want)
	}
	up6 := endsOf("fd09::2", "fd09::1")
	spoofed := superPacket(endsOf("192.0.2.66", "10.9.0.1"), 30000)
	pkts := [][]byte{superPacket(clientUp, 60000), plainVnet(packet('u', 2, 100, clientUp)), spoofed,
		superPacket(up6, 40000), plainVnet(packet('u', 3, 1400, up6))}
	through(t, "up", co.dev, so.dev, pkts, [][]byte{pkts[0], pkts[1], pkts[3], pkts[4]})
	if d := l.sstats.Dropped.Load(); !eventuallyTrue(5*time.Second, func() bool { return l.sstats.Dropped.Load() == 1 }) {
		t.Errorf("server dropped %d packets, want the spoofed super-packet", d)
	}
	down := [][]byte{superPacket(clientUp.reversed(), 65000), plainVnet(packet('d', 1, 60, clientUp.reversed()))}
	through(t, "down", so.dev, co.dev, down, down)
	// (Counted once the device took them: wait for the count.)
	if !eventuallyTrue(5*time.Second, func() bool { return l.cstats.BytesIn.Load() == 65000+60 }) {
		t.Errorf("client counted %d bytes in, want the packets' own %d, headers not included", l.cstats.BytesIn.Load(), 65000+60)
	}
}

// TestOffloadMixed: a client whose device has offloads and a server whose
// device has none (or that said --no-offload) agree on none. The client
// enables none, sends plain packets without their header, never a
// super-packet (dropped and counted if one is read anyway), and gets the
// server's packets behind a blank header.
func TestOffloadMixed(t *testing.T) {
	checkLeaks(t)
	co, so := offloadOpeners(allOffloads, 0)
	l := startLiveOn(t, ClientConfig{Addrs: pfx("10.9.0.2/24"), PeerAddrs: pfx("10.9.0.1/24")}, ServerConfig{}, co, so)
	defer l.stop()
	if co.dev.Enabled() != 0 {
		t.Fatalf("client enabled %v with a server that has no offloads", co.dev.Enabled())
	}
	plain := packet('u', 1, 500, clientUp)
	co.dev.Inbound <- superPacket(clientUp, 20000)
	co.dev.Inbound <- plainVnet(plain)
	expectPacket(t, "up", so.dev.Outbound, plain)
	if d := l.cstats.DroppedOut.Load(); d != 1 {
		t.Errorf("client dropped %d packets to the peer, want the super-packet", d)
	}
	back := packet('d', 1, 700, clientUp.reversed())
	so.dev.Inbound <- back
	expectPacket(t, "down", co.dev.Outbound, plainVnet(back))
}

// expectPacket fails unless the next packet on c is want.
func expectPacket(t *testing.T, what string, c <-chan []byte, want []byte) {
	t.Helper()
	select {
	case got := <-c:
		if !bytes.Equal(got, want) {
			t.Errorf("%s: got %d bytes % x..., want %d bytes % x...", what, len(got), got[:min(len(got), 16)], len(want), want[:min(len(want), 16)])
		}
	case <-time.After(5 * time.Second):
		t.Fatalf("%s: no packet within 5 s", what)
	}
}

// offloadServer starts Serve over a socketpair with a fake device that has
// every offload, and returns the device's opener, the server's counters,
// the client's end and Serve's result.
func offloadServer(t *testing.T) (*opener, *Stats, net.Conn, <-chan error) {
	so := newOpener("server0")
	so.dev.Offload = allOffloads
	stats := new(Stats)
	so.stats, so.guard = stats, &GuardConfig{} // as a server's device is guarded
	cc, sc := socketPair(t)
	srvDone := goErr(func() error {
		return Serve(t.Context(), sc, ServerConfig{Open: so.Open, Logger: testLogger(t)})
	})
	return so, stats, cc, srvDone
}

// TestOldPeerNeverGetsOffloads: a client whose Hello offers no offloads
// (an older sshvpn) gets only Data frames within MaxPayload, even from a
// server whose device hands out super-packets.
func TestOldPeerNeverGetsOffloads(t *testing.T) {
	checkLeaks(t)
	so, stats, cc, srvDone := offloadServer(t)
	r, w := rawClient(t, cc)
	defer func() {
		w.WriteFrame(framing.TypeClose, nil)
		w.Flush()
		if err := wait(t, "Serve", srvDone, 5*time.Second); err != nil {
			t.Errorf("Serve: %v", err)
		}
	}()
	if so.dev.Enabled() != 0 {
		t.Errorf("server enabled %v for a client that offered none", so.dev.Enabled())
	}
	last := packet('d', 9, 80, clientUp.reversed())
	for _, p := range [][]byte{superPacket(clientUp.reversed(), 60000), plainVnet(packet('d', 1, 1400, clientUp.reversed())), plainVnet(last)} {
		so.dev.Inbound <- p
	}
	for {
		typ, p, err := r.ReadFrame()
		if err != nil {
			t.Fatal(err)
		}
		if typ != framing.TypeData || len(p) > framing.MaxPayload {
			t.Fatalf("an old client got a %v frame of %d bytes", typ, len(p))
		}
		if bytes.Equal(p, last) {
			break
		}
	}
	if d := stats.DroppedOut.Load(); d != 1 {
		t.Errorf("server dropped %d packets to the client, want the super-packet", d)
	}
}

// TestOffloadBadHeaders: offload frames whose virtio-net header fails the
// check are dropped and counted, never written to the device; the tunnel
// goes on.
func TestOffloadBadHeaders(t *testing.T) {
	checkLeaks(t)
	so, stats, cc, srvDone := offloadServer(t)
	r, w := framing.NewReader(cc), framing.NewWriter(cc)
	w.WritePreamble()
	w.WriteHello(&framing.Hello{Role: "client", Mode: "tun", Addrs: pfx("10.9.0.2/24"), PeerAddrs: pfx("10.9.0.1/24"),
		Offloads: []string{"csum", "tso4"}, MaxFrame: framing.MaxOffloadPayload})
	w.Flush()
	if _, err := r.ReadPreamble(); err != nil {
		t.Fatal(err)
	}
	typ, p, err := r.ReadFrame()
	if typ != framing.TypeHello || err != nil {
		t.Fatalf("server answered %v, %v", typ, err)
	}
	h, _ := framing.ParseHello(p)
	if h.MaxFrame != framing.MaxOffloadPayload || tun.ParseOffloads(h.Offloads) != allOffloads {
		t.Errorf("server offered %v up to %d bytes", h.Offloads, h.MaxFrame)
	}
	if so.dev.Enabled() != tun.OffloadCSUM|tun.OffloadTSO4 {
		t.Errorf("server enabled %v, want csum,tso4", so.dev.Enabled())
	}
	w.AllowOffload(framing.MaxOffloadPayload)
	good := superPacket(clientUp, 20000)
	v6 := superPacket(endsOf("fd09::2", "fd09::1"), 3000) // tso6 was not agreed
	badFlags := bytes.Clone(good)
	badFlags[0] = 0x80
	sizeZero := bytes.Clone(good)
	sizeZero[4], sizeZero[5] = 0, 0
	csumOut := bytes.Clone(good)
	binary.LittleEndian.PutUint16(csumOut[6:], 19990)
	for _, f := range [][]byte{badFlags, sizeZero, csumOut, v6, good} {
		if err := w.WriteFrame(framing.TypeOffload, f); err != nil {
			t.Fatal(err)
		}
	}
	w.Flush()
	select {
	case got := <-so.dev.Outbound:
		if !bytes.Equal(got, good) {
			t.Errorf("the device got a %d-byte packet, not the good one", len(got))
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the good super-packet did not arrive")
	}
	if m := stats.Malformed.Load(); m != 4 {
		t.Errorf("%d malformed frames counted, want 4", m)
	}
	w.WriteFrame(framing.TypeClose, nil)
	w.Flush()
	if err := wait(t, "Serve", srvDone, 5*time.Second); err != nil {
		t.Errorf("Serve: %v", err)
	}
}

func TestAgree(t *testing.T) {
	hello := func(o tun.Offload, max int) *framing.Hello {
		return &framing.Hello{Offloads: append(o.Names(), "future"), MaxFrame: max}
	}
	tests := []struct {
		own  tun.Offload
		mode tun.Mode
		peer *framing.Hello
		want tun.Offload
	}{
		{allOffloads, tun.ModeTUN, hello(allOffloads, framing.MaxOffloadPayload), allOffloads},
		{allOffloads, tun.ModeTUN, hello(tun.OffloadCSUM|tun.OffloadTSO4, framing.MaxOffloadPayload), tun.OffloadCSUM | tun.OffloadTSO4},
		{allOffloads, tun.ModeTUN, hello(tun.OffloadTSO4|tun.OffloadTSO6, framing.MaxOffloadPayload), 0}, // no csum
		{allOffloads, tun.ModeTUN, hello(allOffloads, framing.MaxPayload), 0},                            // frames too small
		{allOffloads, tun.ModeTUN, &framing.Hello{}, 0},                                                  // an older peer
		{allOffloads, tun.ModeTAP, hello(allOffloads, framing.MaxOffloadPayload), 0},
		{0, tun.ModeTUN, hello(allOffloads, framing.MaxOffloadPayload), 0},
	}
	for i, tt := range tests {
		if got := agree(tt.own, tt.mode, tt.peer); got != tt.want {
			t.Errorf("%d: agree(%v, %v, %v) = %v, want %v", i, tt.own, tt.mode, tt.peer.Offloads, got, tt.want)
		}
	}
	if framing.VnetHdrLen != tun.VnetHdrLen {
		t.Errorf("framing and tun disagree on the virtio-net header's size")
	}
}

// TestNoForwardingWarning: a client that routes networks into the tunnel
// is warned when the server says it does not forward that family.
func TestNoForwardingWarning(t *testing.T) {
	v4, v6 := pfx("198.18.0.1/30"), pfx("198.18.0.1/30", "2001:2::1/126")
	off := map[string]bool{"ipv4": false, "ipv6": false}
	tests := []struct {
		cfg     Routed
		addrs   []netip.Prefix
		forward map[string]bool
		want    string // substring; "" for no warning
	}{
		{Routed{DefaultRoute: true}, v4, off, "does not forward ipv4 packets, so what --default-route"},
		{Routed{DefaultRoute: true}, v6, off, "ipv4 and ipv6"},
		{Routed{DefaultRoute: true}, v6, map[string]bool{"ipv4": true, "ipv6": false}, "forward ipv6 packets"},
		{Routed{DefaultRoute: true}, v6, map[string]bool{"ipv4": true, "ipv6": true}, ""},
		{Routed{DefaultRoute: true}, v4, nil, ""}, // an older server: unknown
		{Routed{Routes: pfx("198.51.100.0/24")}, v6, map[string]bool{"ipv4": false, "ipv6": true}, "--route"},
		{Routed{Routes: pfx("2001:db8::/64")}, v6, map[string]bool{"ipv4": false, "ipv6": true}, ""},
		{Routed{}, v6, off, ""},
	}
	for i, tt := range tests {
		got := noForwarding(tt.cfg, tt.addrs, tt.forward)
		if (got == "") != (tt.want == "") || !strings.Contains(got, tt.want) {
			t.Errorf("%d: %q, want %q", i, got, tt.want)
		}
	}
	if got := noForwarding(Routed{DefaultRoute: true}, v4, off); !strings.Contains(got, "--nat") {
		t.Errorf("the warning does not name the fix: %q", got)
	}
}
