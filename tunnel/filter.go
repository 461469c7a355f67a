package tunnel

import (
	"net/netip"
)

// addrFilter admits IP packets whose address (source or destination, by
// which) falls in one of its prefixes. The server uses two: packets from the
// client must come from the client's tunnel addresses or an --allow-source
// network, and packets to the client must be addressed to the same.
type addrFilter struct {
	allowed []netip.Prefix
	dst     bool // check the destination rather than the source
}

// Link-scope IPv6 traffic the kernels exchange on any point-to-point link
// (router solicitations, MLD): admitted because no router forwards it off the
// link, so it can reach nothing but the peer's own stack.
var (
	linkLocal6     = netip.MustParsePrefix("fe80::/10")
	linkMulticast6 = netip.MustParsePrefix("ff02::/16")
)

// newAddrFilter admits the hosts of addrs (each address alone, not its
// subnet), every address inside nets, and IPv6 link-local sources (and, for
// destinations, link-local and link-scope multicast).
func newAddrFilter(addrs, nets []netip.Prefix, dst bool) *addrFilter {
	f := &addrFilter{dst: dst}
	f.allowed = append(f.allowed, linkLocal6)
	if dst {
		f.allowed = append(f.allowed, linkMulticast6)
	}
	for _, a := range addrs {
		f.allowed = append(f.allowed, netip.PrefixFrom(a.Addr(), a.Addr().BitLen()))
	}
	for _, n := range nets {
		f.allowed = append(f.allowed, n.Masked())
	}
	return f
}

// accept reports whether pkt, an IPv4 or IPv6 packet, may pass. Anything
// else (too short, another version) is refused.
func (f *addrFilter) accept(pkt []byte) bool {
	a, ok := packetAddr(pkt, f.dst)
	if !ok {
		return false
	}
	for _, p := range f.allowed {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// packetAddr returns the source (or destination) address of an IP packet.
func packetAddr(pkt []byte, dst bool) (netip.Addr, bool) {
	if len(pkt) < 1 {
		return netip.Addr{}, false
	}
	switch pkt[0] >> 4 {
	case 4:
		if len(pkt) < 20 {
			return netip.Addr{}, false
		}
		off := 12
		if dst {
			off = 16
		}
		return netip.AddrFrom4([4]byte(pkt[off : off+4])), true
	case 6:
		if len(pkt) < 40 {
			return netip.Addr{}, false
		}
		off := 8
		if dst {
			off = 24
		}
		return netip.AddrFrom16([16]byte(pkt[off : off+16])), true
	}
	return netip.Addr{}, false
}
