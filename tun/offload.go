package tun

import (
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"strings"
)

// Offload is a set of the segmentation and checksum offloads a device opened
// with a virtio-net header (Config.Offload) exchanges with the kernel. With
// any of them enabled, a Read may return a packet whose transport checksum
// is still to be completed (CSUM) or a GSO super-packet of up to 64 KiB that
// the kernel segments when it leaves the machine (TSO4, TSO6 for TCP, USO4,
// USO6 for UDP), described by the virtio_net_hdr in front of it. Writing
// such a packet is the same in reverse.
type Offload uint8

// Offloads, in the order of their names in the handshake.
const (
	OffloadCSUM Offload = 1 << iota
	OffloadTSO4
	OffloadTSO6
	OffloadUSO4
	OffloadUSO6
)

var offloadNames = []string{"csum", "tso4", "tso6", "uso4", "uso6"}

// String lists the offloads' names separated by commas, or "none".
// LogValue logs the offloads by their names ("csum,tso4"), as String
// does, in every log format.
func (o Offload) LogValue() slog.Value { return slog.StringValue(o.String()) }

func (o Offload) String() string {
	if o == 0 {
		return "none"
	}
	return strings.Join(o.Names(), ",")
}

// Names lists the names of the offloads in o: csum, tso4, tso6, uso4, uso6.
func (o Offload) Names() []string {
	var out []string
	for i, n := range offloadNames {
		if o&(1<<i) != 0 {
			out = append(out, n)
		}
	}
	return out
}

// ParseOffloads is Names in reverse. Names it does not know (a later
// version's) are ignored: the handshake agrees on what both sides know.
func ParseOffloads(names []string) Offload {
	var o Offload
	for _, n := range names {
		for i, k := range offloadNames {
			if n == k {
				o |= 1 << i
			}
		}
	}
	return o
}

// Usable is o without what cannot work alone: segmentation needs the
// checksum offload, so without CSUM nothing remains; and Linux enables UDP
// segmentation for both IP versions or neither.
func (o Offload) Usable() Offload {
	if o&OffloadCSUM == 0 {
		return 0
	}
	if o&(OffloadUSO4|OffloadUSO6) != OffloadUSO4|OffloadUSO6 {
		o &^= OffloadUSO4 | OffloadUSO6
	}
	return o
}

// VnetHdrLen is the size of the virtio_net_hdr in front of every packet of
// a device opened with Config.Offload.
const VnetHdrLen = 10

// virtio_net_hdr flags and GSO types, from linux/virtio_net.h.
const (
	vnetNeedsCsum = 1 // the transport checksum is to be completed
	vnetDataValid = 2 // the checksum was verified

	GSONone  = 0
	GSOTCPv4 = 1
	GSOUDP   = 3 // UFO, which Linux no longer produces; refused
	GSOTCPv6 = 4
	GSOUDPL4 = 5
	GSOECN   = 0x80 // TCP with ECN's CWR: the segments keep it
)

// VnetHdr is a decoded virtio_net_hdr. Linux's tun device uses the host's
// byte order unless told otherwise; sshvpn offers offloads only on
// little-endian machines, so on the wire it is little endian.
type VnetHdr struct {
	Flags      uint8
	GSOType    uint8
	HdrLen     uint16 // length of the headers copied in front of each segment
	GSOSize    uint16 // payload bytes per segment
	CsumStart  uint16 // where checksumming starts
	CsumOffset uint16 // where, after CsumStart, the checksum goes
}

// ParseVnetHdr decodes the header at the start of b.
func ParseVnetHdr(b []byte) (VnetHdr, bool) {
	if len(b) < VnetHdrLen {
		return VnetHdr{}, false
	}
	return VnetHdr{
		Flags:      b[0],
		GSOType:    b[1],
		HdrLen:     binary.LittleEndian.Uint16(b[2:]),
		GSOSize:    binary.LittleEndian.Uint16(b[4:]),
		CsumStart:  binary.LittleEndian.Uint16(b[6:]),
		CsumOffset: binary.LittleEndian.Uint16(b[8:]),
	}, true
}

// Encode writes h to the start of b, which must hold VnetHdrLen bytes.
func (h VnetHdr) Encode(b []byte) {
	b[0], b[1] = h.Flags, h.GSOType
	binary.LittleEndian.PutUint16(b[2:], h.HdrLen)
	binary.LittleEndian.PutUint16(b[4:], h.GSOSize)
	binary.LittleEndian.PutUint16(b[6:], h.CsumStart)
	binary.LittleEndian.PutUint16(b[8:], h.CsumOffset)
}

// Plain reports whether the header asks nothing of the receiver: no
// segmentation and no checksum to complete. Such a packet is an ordinary
// one, and can travel without its header.
func (h VnetHdr) Plain() bool {
	return h.GSOType == GSONone && h.Flags&vnetNeedsCsum == 0
}

// Needs is the offloads the receiver of the packet behind h must have
// agreed to: CSUM for a checksum to complete, TSO4, TSO6, USO4 or USO6
// (by v6, the packet's IP version) for a super-packet; every bit for a
// GSO type Linux does not produce. It is the sender's cheap test;
// CheckVnet is the receiver's full one.
func (h VnetHdr) Needs(v6 bool) Offload {
	var o Offload
	if h.Flags&vnetNeedsCsum != 0 {
		o |= OffloadCSUM
	}
	switch h.GSOType &^ GSOECN {
	case GSONone:
	case GSOTCPv4:
		o |= OffloadTSO4
	case GSOTCPv6:
		o |= OffloadTSO6
	case GSOUDPL4:
		if v6 {
			o |= OffloadUSO6
		} else {
			o |= OffloadUSO4
		}
	default:
		o = ^Offload(0)
	}
	return o
}

// maxSegments caps how many segments one TCP super-packet may turn into:
// 64 KiB at the smallest MSS Linux accepts from a peer (tcp_min_snd_mss,
// 48). It is sshvpn's bound, stricter than the kernel's own.
const maxSegments = 65536/48 + 1

// The kernel's limits on a super-packet that CheckVnet mirrors, beyond
// its header's shape: what virtio_net_hdr_to_skb (include/linux/virtio_net.h)
// refuses in the tun device's write, and what no Linux sender makes.
const (
	// gsoByFrags is GSO_BY_FRAGS (include/linux/netdevice.h), a segment
	// size that means "where the fragments end": virtio_net_hdr_to_skb
	// refuses it ("Kernel has a special handling for GSO_BY_FRAGS").
	gsoByFrags = 0xFFFF
	// udpMaxSegments is UDP_MAX_SEGMENTS (include/linux/udp.h):
	// virtio_net_hdr_to_skb refuses a USO super-packet whose payload,
	// after the UDP header, exceeds gso_size * UDP_MAX_SEGMENTS. It is
	// 128 since Linux 6.9 (commit 1382e3b6a350, "net: change maximum
	// number of UDP segments to 128"); it was 64 before.
	udpMaxSegments = 128
	// tcpMinGSOSize is TCP_MIN_GSO_SIZE (include/net/tcp.h): the
	// smallest segment payload Linux's TCP sends, TCP_MIN_SND_MSS (48,
	// the floor of tcp_min_snd_mss, which __tcp_mtu_to_mss applies)
	// less MAX_TCP_OPTION_SPACE (40). The tun device's write takes a
	// smaller one (Linux 6.18 takes gso_size 1, and forwarding the
	// super-packet cuts its 3000 bytes of payload into 3000 segments
	// of 41 bytes), so this mirrors the sender: a TCP super-packet
	// below it comes from no Linux stack, only from a peer multiplying
	// packets.
	tcpMinGSOSize = 8
)

// ErrBadVnetHdr is wrapped by CheckVnet's errors.
var ErrBadVnetHdr = errors.New("tun: bad virtio-net header")

// CheckVnet validates b, a virtio_net_hdr followed by an IP packet, before
// it is handed to the kernel, against the offloads agreed with the peer:
// only known flags; a GSO type the agreement includes and that matches the
// packet's IP version and protocol; for a super-packet the IP length equal
// to the packet's, the checksum in the transport header, the whole
// transport header and the header length within the packet, and a segment
// size the kernel takes (see gsoByFrags, udpMaxSegments, tcpMinGSOSize)
// making a sane number of segments; and a checksum position inside the
// packet. It is at least as strict as the kernel's own check, so that what
// the peer sends is refused here, counted, rather than by the device. It
// reads nothing past b and never panics. It returns the decoded header.
func CheckVnet(b []byte, agreed Offload) (VnetHdr, error) {
	h, ok := ParseVnetHdr(b)
	if !ok {
		return h, fmt.Errorf("%w: %d bytes, shorter than the header", ErrBadVnetHdr, len(b))
	}
	return h, checkVnet(h, b[VnetHdrLen:], agreed)
}

// checkVnet is CheckVnet on the header h, decoded, and the packet behind it.
func checkVnet(h VnetHdr, pkt []byte, agreed Offload) error {
	if len(pkt) < 1 {
		return fmt.Errorf("%w: no packet after it", ErrBadVnetHdr)
	}
	if h.Flags&^(vnetNeedsCsum|vnetDataValid) != 0 {
		return fmt.Errorf("%w: unknown flags %#x", ErrBadVnetHdr, h.Flags)
	}
	version := pkt[0] >> 4
	ipHdr := 0
	switch version {
	case 4:
		if len(pkt) < 20 {
			return fmt.Errorf("%w: IPv4 packet of %d bytes", ErrBadVnetHdr, len(pkt))
		}
		ipHdr = int(pkt[0]&0x0f) * 4
	case 6:
		ipHdr = 40
	default:
		return fmt.Errorf("%w: not an IP packet (version %d)", ErrBadVnetHdr, version)
	}
	if len(pkt) < ipHdr || ipHdr < 20 {
		return fmt.Errorf("%w: truncated IP header", ErrBadVnetHdr)
	}
	if h.Flags&vnetNeedsCsum != 0 {
		if agreed&OffloadCSUM == 0 {
			return fmt.Errorf("%w: checksum offload was not agreed", ErrBadVnetHdr)
		}
		start, end := int(h.CsumStart), int(h.CsumStart)+int(h.CsumOffset)+2
		if start < ipHdr || end > len(pkt) {
			return fmt.Errorf("%w: checksum at %d+%d outside the %d-byte packet", ErrBadVnetHdr, h.CsumStart, h.CsumOffset, len(pkt))
		}
	}
	gso := h.GSOType &^ GSOECN
	if h.GSOType&GSOECN != 0 && gso != GSOTCPv4 && gso != GSOTCPv6 {
		return fmt.Errorf("%w: ECN on GSO type %d", ErrBadVnetHdr, gso)
	}
	var need Offload
	proto := byte(0)
	switch gso {
	case GSONone:
		if h.GSOSize != 0 {
			return fmt.Errorf("%w: segment size %d without segmentation", ErrBadVnetHdr, h.GSOSize)
		}
		return nil
	case GSOTCPv4:
		need, proto = OffloadTSO4, 6
	case GSOTCPv6:
		need, proto = OffloadTSO6, 6
	case GSOUDPL4:
		need, proto = OffloadUSO4, 17
		if version == 6 {
			need = OffloadUSO6
		}
	default:
		return fmt.Errorf("%w: unknown GSO type %d", ErrBadVnetHdr, h.GSOType)
	}
	if agreed&need == 0 {
		return fmt.Errorf("%w: %v was not agreed", ErrBadVnetHdr, need)
	}
	if (need == OffloadTSO4 || need == OffloadUSO4) != (version == 4) {
		return fmt.Errorf("%w: GSO type %d on an IPv%d packet", ErrBadVnetHdr, gso, version)
	}
	// The transport header follows the IP header directly (Linux's tun
	// hands out no super-packets with IPv6 extension headers), the
	// checksum is where that protocol keeps it, and the IP length is the
	// packet's: what recent kernels check in virtio_net_hdr_to_skb, and
	// older ones did not.
	next, iplen := pkt[9], int(binary.BigEndian.Uint16(pkt[2:]))
	if version == 6 {
		next, iplen = pkt[6], 40+int(binary.BigEndian.Uint16(pkt[4:]))
	}
	if next != proto {
		return fmt.Errorf("%w: GSO type %d on IP protocol %d", ErrBadVnetHdr, gso, next)
	}
	if iplen != len(pkt) {
		return fmt.Errorf("%w: IP length %d for a %d-byte super-packet", ErrBadVnetHdr, iplen, len(pkt))
	}
	wantOffset := uint16(16) // TCP
	if proto == 17 {
		wantOffset = 6 // UDP
	}
	if int(h.CsumStart) != ipHdr || h.CsumOffset != wantOffset {
		return fmt.Errorf("%w: checksum at %d+%d, not in the transport header at %d", ErrBadVnetHdr, h.CsumStart, h.CsumOffset, ipHdr)
	}
	if h.Flags&vnetNeedsCsum == 0 {
		return fmt.Errorf("%w: a super-packet without checksum offload", ErrBadVnetHdr)
	}
	// HdrLen is only a hint of how much to keep linear (Linux sends the
	// length of the skb's linear part, which may be all of it), so it
	// is bounded by the packet, and the segments are counted from where
	// the transport header ends.
	if int(h.HdrLen) > len(pkt) {
		return fmt.Errorf("%w: header length %d beyond the %d-byte packet", ErrBadVnetHdr, h.HdrLen, len(pkt))
	}
	thlen := transportLen(pkt, ipHdr, proto == 6)
	if thlen == 0 {
		return fmt.Errorf("%w: no whole transport header in the %d-byte super-packet", ErrBadVnetHdr, len(pkt))
	}
	return checkSegments(proto, int(h.GSOSize), len(pkt)-ipHdr-thlen)
}

// Wire returns what pkt, the packet behind h, becomes on the wire: how
// many packets, and how many bytes they come to. A TCP or UDP super-packet
// of P bytes of payload behind H bytes of IP and transport headers leaves
// as ceil(P/GSOSize) segments, each with its own copy of the H bytes, as
// the kernel segments it; any other packet is itself. It trusts h as
// CheckVnet passes it or the kernel writes it (the transport header at
// CsumStart), and reads of pkt only a TCP header's data offset; a
// super-packet whose transport header does not fit counts as one packet.
func (h VnetHdr) Wire(pkt []byte) (packets, bytes int) {
	size := int(h.GSOSize)
	var tcp bool
	switch h.GSOType &^ GSOECN {
	case GSOTCPv4, GSOTCPv6:
		tcp = true
	case GSOUDPL4:
	default:
		return 1, len(pkt)
	}
	thlen := transportLen(pkt, int(h.CsumStart), tcp)
	hdrs := int(h.CsumStart) + thlen
	payload := len(pkt) - hdrs
	if thlen == 0 || size == 0 || payload <= size { // not really GSO, says the kernel
		return 1, len(pkt)
	}
	n := (payload + size - 1) / size
	return n, len(pkt) + (n-1)*hdrs
}

// checkSegments checks a super-packet's segment size against its payload
// (what follows the transport header) as the kernel does.
func checkSegments(proto byte, size, payload int) error {
	switch {
	case size == 0: // virtio_net_hdr_to_skb: a GSO type needs a gso_size
		return fmt.Errorf("%w: segment size 0", ErrBadVnetHdr)
	case size == gsoByFrags:
		return fmt.Errorf("%w: segment size %#x (GSO_BY_FRAGS)", ErrBadVnetHdr, size)
	case proto == 17 && payload > size*udpMaxSegments:
		return fmt.Errorf("%w: %d bytes of UDP payload in segments of %d, more than %d segments", ErrBadVnetHdr, payload, size, udpMaxSegments)
	case proto == 6 && size < tcpMinGSOSize:
		return fmt.Errorf("%w: TCP segment size %d, below Linux's smallest (%d)", ErrBadVnetHdr, size, tcpMinGSOSize)
	case proto == 6 && (payload+size-1)/size > maxSegments:
		return fmt.Errorf("%w: segment size %d for %d bytes of payload", ErrBadVnetHdr, size, payload)
	}
	return nil
}

// transportLen is the length of the transport header at off in pkt: a
// TCP header's by its data offset, or a UDP header's; 0 when it does not
// fit in pkt, or a TCP data offset is below the header's 20 bytes. The
// kernel needs the whole header: virtio_net_hdr_to_skb pulls csum_start
// plus the fixed header (struct tcphdr, struct udphdr), and
// tcp_gso_segment drops a packet whose data offset is below that or
// beyond the packet.
func transportLen(pkt []byte, off int, tcp bool) int {
	n := 8
	if tcp {
		if off+20 > len(pkt) {
			return 0
		}
		if n = int(pkt[off+12]>>4) * 4; n < 20 {
			return 0
		}
	}
	if off+n > len(pkt) {
		return 0
	}
	return n
}
