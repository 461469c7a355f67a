package tun

import (
	"encoding/binary"
	"errors"
	"testing"
)

// tcp4 is a TCP/IPv4 packet of n bytes behind a virtio-net header as Linux
// hands out a TSO super-packet.
func tcp4(n int) []byte {
	b := make([]byte, VnetHdrLen+n)
	VnetHdr{Flags: vnetNeedsCsum, GSOType: GSOTCPv4, HdrLen: 40, GSOSize: 1448, CsumStart: 20, CsumOffset: 16}.Encode(b)
	p := b[VnetHdrLen:]
	p[0], p[9] = 0x45, 6
	binary.BigEndian.PutUint16(p[2:], uint16(n))
	p[20+12] = 5 << 4 // TCP data offset: a 20-byte header
	return b
}

func udp6(n int) []byte {
	b := make([]byte, VnetHdrLen+n)
	VnetHdr{Flags: vnetNeedsCsum, GSOType: GSOUDPL4, HdrLen: 48, GSOSize: 1200, CsumStart: 40, CsumOffset: 6}.Encode(b)
	p := b[VnetHdrLen:]
	p[0], p[6] = 0x60, 17
	binary.BigEndian.PutUint16(p[4:], uint16(n-40))
	return b
}

func edit(b []byte, f func(h *VnetHdr, pkt []byte)) []byte {
	c := append([]byte(nil), b...)
	h, _ := ParseVnetHdr(c)
	f(&h, c[VnetHdrLen:])
	h.Encode(c)
	return c
}

func TestCheckVnet(t *testing.T) {
	all := OffloadCSUM | OffloadTSO4 | OffloadTSO6 | OffloadUSO4 | OffloadUSO6
	plain := make([]byte, VnetHdrLen+60)
	plain[VnetHdrLen] = 0x45
	tests := []struct {
		name   string
		b      []byte
		agreed Offload
		ok     bool
	}{
		{"tso4", tcp4(60000), all, true},
		{"uso6", udp6(30000), all, true},
		{"plain", plain, 0, true},
		{"data valid", edit(plain, func(h *VnetHdr, _ []byte) { h.Flags = vnetDataValid }), 0, true},
		{"ECN", edit(tcp4(3000), func(h *VnetHdr, _ []byte) { h.GSOType |= GSOECN }), all, true},
		{"hdr_len as Linux's linear part", edit(tcp4(3000), func(h *VnetHdr, _ []byte) { h.HdrLen = 3000 }), all, true},
		{"short", plain[:VnetHdrLen-1], all, false},
		{"header only", plain[:VnetHdrLen], all, false},
		{"not IP", edit(plain, func(_ *VnetHdr, p []byte) { p[0] = 0x55 }), all, false},
		{"unknown flag", edit(plain, func(h *VnetHdr, _ []byte) { h.Flags = 4 }), all, false},
		{"tso4 not agreed", tcp4(3000), OffloadCSUM | OffloadTSO6, false},
		{"csum not agreed", edit(plain, func(h *VnetHdr, _ []byte) { h.Flags, h.CsumStart, h.CsumOffset = 1, 20, 16 }), 0, false},
		{"tso4 on IPv6", edit(udp6(3000), func(h *VnetHdr, _ []byte) { h.GSOType = GSOTCPv4 }), all, false},
		{"tso6 on IPv4", edit(tcp4(3000), func(h *VnetHdr, _ []byte) { h.GSOType = GSOTCPv6 }), all, false},
		{"tso4 on UDP", edit(tcp4(3000), func(_ *VnetHdr, p []byte) { p[9] = 17 }), all, false},
		{"UFO", edit(tcp4(3000), func(h *VnetHdr, _ []byte) { h.GSOType = GSOUDP }), all, false},
		{"unknown GSO type", edit(tcp4(3000), func(h *VnetHdr, _ []byte) { h.GSOType = 9 }), all, false},
		{"ECN on UDP", edit(udp6(3000), func(h *VnetHdr, _ []byte) { h.GSOType |= GSOECN }), all, false},
		{"gso without csum", edit(tcp4(3000), func(h *VnetHdr, _ []byte) { h.Flags = 0 }), all, false},
		{"gso_size 0", edit(tcp4(3000), func(h *VnetHdr, _ []byte) { h.GSOSize = 0 }), all, false},
		{"too many segments", edit(tcp4(60000), func(h *VnetHdr, _ []byte) { h.GSOSize = 8 }), all, false},
		{"gso_size without gso", edit(plain, func(h *VnetHdr, _ []byte) { h.GSOSize = 1000 }), all, false},
		{"hdr_len beyond", edit(tcp4(3000), func(h *VnetHdr, _ []byte) { h.HdrLen = 3001 }), all, false},
		{"csum beyond", edit(tcp4(3000), func(h *VnetHdr, _ []byte) { h.CsumStart = 2990 }), all, false},
		{"csum inside the IP header", edit(tcp4(3000), func(h *VnetHdr, _ []byte) { h.CsumStart = 4 }), all, false},
		{"truncated IPv4 header", edit(plain[:VnetHdrLen+10], func(*VnetHdr, []byte) {}), all, false},
		{"csum_start past the TCP header", edit(tcp4(3000), func(h *VnetHdr, _ []byte) { h.CsumStart, h.CsumOffset = 1000, 0 }), all, false},
		{"TCP checksum offset for UDP", edit(udp6(3000), func(h *VnetHdr, _ []byte) { h.CsumOffset = 16 }), all, false},
		{"uso6 on TCP", edit(udp6(3000), func(_ *VnetHdr, p []byte) { p[6] = 6 }), all, false},
		{"IPv4 length not the packet's", edit(tcp4(3000), func(_ *VnetHdr, p []byte) { p[2], p[3] = 0, 100 }), all, false},
		{"IPv6 extension header", edit(udp6(3000), func(_ *VnetHdr, p []byte) { p[6] = 0 }), all, false},
		{"small MSS", edit(tcp4(65000), func(h *VnetHdr, _ []byte) { h.GSOSize = 48 }), all, true},
		// What the kernel refuses, or no Linux sender makes.
		{"GSO_BY_FRAGS", edit(tcp4(3000), func(h *VnetHdr, _ []byte) { h.GSOSize = 0xFFFF }), all, false},
		{"GSO_BY_FRAGS on UDP", edit(udp6(3000), func(h *VnetHdr, _ []byte) { h.GSOSize = 0xFFFF }), all, false},
		{"gso_size 0xFFFE", edit(tcp4(3000), func(h *VnetHdr, _ []byte) { h.GSOSize = 0xFFFE }), all, true},
		{"uso6 of 128 segments", edit(udp6(40+8+128*100), func(h *VnetHdr, _ []byte) { h.GSOSize = 100 }), all, true},
		{"uso6 of 129 segments", edit(udp6(40+8+128*100+1), func(h *VnetHdr, _ []byte) { h.GSOSize = 100 }), all, false},
		{"uso6 gso_size 1", edit(udp6(40+8+200), func(h *VnetHdr, _ []byte) { h.GSOSize = 1 }), all, false},
		{"uso6 gso_size 1, 128 bytes", edit(udp6(40+8+128), func(h *VnetHdr, _ []byte) { h.GSOSize = 1 }), all, true},
		{"TCP gso_size 1", edit(tcp4(1000), func(h *VnetHdr, _ []byte) { h.GSOSize = 1 }), all, false},
		{"TCP gso_size 7", edit(tcp4(1000), func(h *VnetHdr, _ []byte) { h.GSOSize = 7 }), all, false},
		{"TCP gso_size 8", edit(tcp4(1000), func(h *VnetHdr, _ []byte) { h.GSOSize = 8 }), all, true},
		{"TCP header cut short", edit(tcp4(20+19), func(h *VnetHdr, _ []byte) { h.HdrLen = 39 }), all, false},
		{"TCP header only", tcp4(20 + 20), all, true},
		{"TCP data offset below 20", edit(tcp4(3000), func(_ *VnetHdr, p []byte) { p[20+12] = 4 << 4 }), all, false},
		{"TCP options beyond the packet", edit(tcp4(20+40), func(_ *VnetHdr, p []byte) { p[20+12] = 15 << 4 }), all, false},
		{"TCP options", edit(tcp4(20+60+1448*2), func(_ *VnetHdr, p []byte) { p[20+12] = 15 << 4 }), all, true},
	}
	for _, tt := range tests {
		_, err := CheckVnet(tt.b, tt.agreed)
		if (err == nil) != tt.ok {
			t.Errorf("%s: %v, want ok=%v", tt.name, err, tt.ok)
		}
		if err != nil && !errors.Is(err, ErrBadVnetHdr) {
			t.Errorf("%s: %v does not wrap ErrBadVnetHdr", tt.name, err)
		}
	}
}

// TestWire: a super-packet counts as its segments, each with its own copy
// of the IP and transport headers; anything else as itself.
func TestWire(t *testing.T) {
	for _, tt := range []struct {
		name           string
		b              []byte
		packets, bytes int
	}{
		// 40 segments of 1448 bytes behind 20 bytes of IPv4 and 20 of TCP.
		{"tso4", tcp4(40 + 40*1448), 40, 40 * (40 + 1448)},
		{"tso4, a short last segment", tcp4(40 + 39*1448 + 1), 40, 40*40 + 39*1448 + 1},
		{"tso4 with options", edit(tcp4(20+32+3*1448), func(_ *VnetHdr, p []byte) { p[20+12] = 8 << 4 }), 3, 3 * (52 + 1448)},
		{"ECN", edit(tcp4(40+2*1448), func(h *VnetHdr, _ []byte) { h.GSOType |= GSOECN }), 2, 2 * (40 + 1448)},
		// 25 segments of 1200 bytes behind 40 bytes of IPv6 and 8 of UDP.
		{"uso6", udp6(48 + 25*1200), 25, 25 * (48 + 1200)},
		{"one segment's worth", tcp4(40 + 1448), 1, 40 + 1448},
		{"plain", edit(tcp4(3000), func(h *VnetHdr, _ []byte) { *h = VnetHdr{} }), 1, 3000},
		{"checksum only", edit(tcp4(3000), func(h *VnetHdr, _ []byte) { h.GSOType, h.GSOSize = GSONone, 0 }), 1, 3000},
		{"transport header cut short", tcp4(3000)[:VnetHdrLen+30], 1, 30},
		{"gso_size 0", edit(tcp4(3000), func(h *VnetHdr, _ []byte) { h.GSOSize = 0 }), 1, 3000},
	} {
		h, _ := ParseVnetHdr(tt.b)
		pkt := tt.b[VnetHdrLen:]
		if n, size := h.Wire(pkt); n != tt.packets || size != tt.bytes {
			t.Errorf("%s: Wire = %d packets, %d bytes; want %d, %d", tt.name, n, size, tt.packets, tt.bytes)
		}
	}
}

func TestOffloadNames(t *testing.T) {
	all := OffloadCSUM | OffloadTSO4 | OffloadTSO6 | OffloadUSO4 | OffloadUSO6
	if got := all.String(); got != "csum,tso4,tso6,uso4,uso6" {
		t.Errorf("String = %q", got)
	}
	if got := ParseOffloads(append(all.Names(), "gro", "")); got != all {
		t.Errorf("ParseOffloads round trip = %v", got)
	}
	if Offload(0).String() != "none" || (OffloadTSO4|OffloadTSO6).Usable() != 0 {
		t.Error("none and Usable")
	}
}

// FuzzCheckVnet: the validator never panics, and what it accepts holds
// what the kernel will rely on.
func FuzzCheckVnet(f *testing.F) {
	f.Add(tcp4(3000)[:200], uint8(0xff))
	f.Add(udp6(3000)[:200], uint8(0x1f))
	f.Add(make([]byte, 30), uint8(0))
	// What the kernel refuses, or no Linux sender makes, and their
	// neighbours it takes.
	f.Add(edit(tcp4(3000), func(h *VnetHdr, _ []byte) { h.GSOSize = 0xFFFF }), uint8(0x1f))
	f.Add(edit(udp6(3000), func(h *VnetHdr, _ []byte) { h.GSOSize = 0xFFFF }), uint8(0x1f))
	f.Add(edit(udp6(40+8+128*100+1), func(h *VnetHdr, _ []byte) { h.GSOSize = 100 }), uint8(0x1f))
	f.Add(edit(udp6(40+8+128), func(h *VnetHdr, _ []byte) { h.GSOSize = 1 }), uint8(0x1f))
	f.Add(edit(tcp4(1000), func(h *VnetHdr, _ []byte) { h.GSOSize = 1 }), uint8(0x1f))
	f.Add(edit(tcp4(1000), func(h *VnetHdr, _ []byte) { h.GSOSize = 8 }), uint8(0x1f))
	f.Add(edit(tcp4(20+19), func(h *VnetHdr, _ []byte) { h.HdrLen = 39 }), uint8(0x1f))
	f.Add(edit(tcp4(3000), func(_ *VnetHdr, p []byte) { p[20+12] = 4 << 4 }), uint8(0x1f))
	f.Add(edit(tcp4(20+60+1448*2), func(_ *VnetHdr, p []byte) { p[20+12] = 15 << 4 }), uint8(0x1f))
	f.Fuzz(func(t *testing.T, b []byte, agreed uint8) {
		got, err := CheckVnet(b, Offload(agreed))
		if err != nil {
			return
		}
		h, ok := ParseVnetHdr(b)
		if !ok || len(b) <= VnetHdrLen {
			t.Fatal("accepted without a packet")
		}
		if got != h {
			t.Fatalf("CheckVnet returned %+v for %+v", got, h)
		}
		pkt := b[VnetHdrLen:]
		if h.Flags&^(vnetNeedsCsum|vnetDataValid) != 0 {
			t.Fatalf("accepted flags %#x", h.Flags)
		}
		if h.Flags&vnetNeedsCsum != 0 && int(h.CsumStart)+int(h.CsumOffset)+2 > len(pkt) {
			t.Fatal("accepted a checksum outside the packet")
		}
		if h.GSOType != GSONone {
			if h.GSOSize == 0 || h.GSOSize == gsoByFrags || int(h.HdrLen) > len(pkt) || Offload(agreed)&OffloadCSUM == 0 {
				t.Fatalf("accepted GSO %+v on %d bytes with %v", h, len(pkt), Offload(agreed))
			}
			checkKernelRules(t, h, pkt)
		}
		checkWire(t, h, pkt)
	})
}

// checkWire fails t unless Wire counts the packet pkt behind h, which
// CheckVnet accepted, as the kernel would segment it: one packet of its
// length unless it is a super-packet of more than one segment, whose
// segments each carry the headers and at most GSOSize bytes of payload.
func checkWire(t *testing.T, h VnetHdr, pkt []byte) {
	t.Helper()
	n, size := h.Wire(pkt)
	if n == 1 {
		if size != len(pkt) {
			t.Fatalf("%+v on %d bytes: one packet of %d bytes", h, len(pkt), size)
		}
		return
	}
	if h.GSOType == GSONone || n < 1 || n > 128 && h.GSOType == GSOUDPL4 {
		t.Fatalf("%+v on %d bytes: %d packets", h, len(pkt), n)
	}
	hdrs := (size - len(pkt)) / (n - 1)
	if hdrs*(n-1) != size-len(pkt) || hdrs < int(h.CsumStart)+8 || hdrs > len(pkt) {
		t.Fatalf("%+v on %d bytes: %d packets of %d bytes, %d of headers each", h, len(pkt), n, size, hdrs)
	}
	if payload, gso := len(pkt)-hdrs, int(h.GSOSize); payload <= (n-1)*gso || payload > n*gso {
		t.Fatalf("%+v on %d bytes: %d bytes of payload in %d segments", h, len(pkt), payload, n)
	}
}

// checkKernelRules fails t unless the super-packet pkt behind h, which
// CheckVnet accepted, keeps the rules of virtio_net_hdr_to_skb and the
// segmentation code: the whole transport header in the packet, at most
// UDP_MAX_SEGMENTS UDP segments, and TCP segments of TCP_MIN_GSO_SIZE
// or more. It reads the fields itself rather than trust transportLen.
func checkKernelRules(t *testing.T, h VnetHdr, pkt []byte) {
	t.Helper()
	start, size := int(h.CsumStart), int(h.GSOSize)
	if h.GSOType == GSOUDPL4 {
		if start+8 > len(pkt) || len(pkt)-start-8 > size*128 {
			t.Fatalf("accepted USO %+v on %d bytes: more than 128 segments", h, len(pkt))
		}
		return
	}
	if start+20 > len(pkt) || size < 8 {
		t.Fatalf("accepted TCP GSO %+v on %d bytes", h, len(pkt))
	}
	if doff := int(pkt[start+12]>>4) * 4; doff < 20 || start+doff > len(pkt) {
		t.Fatalf("accepted TCP GSO %+v on %d bytes with a %d-byte TCP header", h, len(pkt), doff)
	}
}

func TestNeeds(t *testing.T) {
	for _, tt := range []struct {
		h    VnetHdr
		v6   bool
		want Offload
	}{
		{VnetHdr{}, false, 0},
		{VnetHdr{Flags: vnetDataValid}, false, 0},
		{VnetHdr{Flags: vnetNeedsCsum}, false, OffloadCSUM},
		{VnetHdr{Flags: vnetNeedsCsum, GSOType: GSOTCPv4 | GSOECN}, false, OffloadCSUM | OffloadTSO4},
		{VnetHdr{Flags: vnetNeedsCsum, GSOType: GSOTCPv6}, true, OffloadCSUM | OffloadTSO6},
		{VnetHdr{Flags: vnetNeedsCsum, GSOType: GSOUDPL4}, true, OffloadCSUM | OffloadUSO6},
		{VnetHdr{Flags: vnetNeedsCsum, GSOType: GSOUDPL4}, false, OffloadCSUM | OffloadUSO4},
		{VnetHdr{GSOType: GSOUDP}, false, ^Offload(0)},
	} {
		if got := tt.h.Needs(tt.v6); got != tt.want {
			t.Errorf("%+v: Needs = %v, want %v", tt.h, got, tt.want)
		}
	}
}
