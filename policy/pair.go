package policy

import (
	"fmt"
	"net/netip"
)

// CompletePair fills in the side that was not given: the partner (see
// Partner) of each address of the other side. With both sides given, or
// neither, it returns them as they are.
func CompletePair(addrs, peers []netip.Prefix) ([]netip.Prefix, []netip.Prefix, error) {
	var err error
	switch {
	case len(addrs) > 0 && len(peers) == 0:
		if peers, err = partners(addrs); err != nil {
			err = fmt.Errorf("--addr without --peer-addr: %w", err)
		}
	case len(peers) > 0 && len(addrs) == 0:
		if addrs, err = partners(peers); err != nil {
			err = fmt.Errorf("--peer-addr without --addr: %w", err)
		}
	}
	return addrs, peers, err
}

func partners(ps []netip.Prefix) ([]netip.Prefix, error) {
	out := make([]netip.Prefix, 0, len(ps))
	for _, p := range ps {
		q, err := Partner(p)
		if err != nil {
			return nil, err
		}
		out = append(out, q)
	}
	return out, nil
}

// Partner returns the other host address of a point-to-point subnet: the
// next address in p, or the previous one when p's address is the last
// usable. It fails for a host route (/32, /128), which has no room.
func Partner(p netip.Prefix) (netip.Prefix, error) {
	a := p.Addr()
	if !p.IsValid() {
		return netip.Prefix{}, fmt.Errorf("invalid prefix %v", p)
	}
	if p.Bits() == a.BitLen() {
		return netip.Prefix{}, fmt.Errorf("%v has no room for the other end; give both --addr and --peer-addr", p)
	}
	if p.Bits() == a.BitLen()-1 { // /31, /127: both addresses are hosts
		b := a.As16()
		b[15] ^= 1
		q := netip.AddrFrom16(b)
		if a.Is4() {
			q = q.Unmap()
		}
		return netip.PrefixFrom(q, p.Bits()), nil
	}
	network := p.Masked().Addr()
	usable := func(x netip.Addr) bool {
		if !x.IsValid() || !p.Contains(x) || x == network {
			return false
		}
		return !a.Is4() || p.Contains(x.Next()) // the last IPv4 address is broadcast
	}
	if n := a.Next(); usable(n) {
		return netip.PrefixFrom(n, p.Bits()), nil
	}
	if n := a.Prev(); usable(n) {
		return netip.PrefixFrom(n, p.Bits()), nil
	}
	return netip.Prefix{}, fmt.Errorf("%v has no room for the other end; give --peer-addr", p)
}

// CheckPair refuses a tunnel whose two ends share an address: each side's
// packets to the other would stay on its own host.
func CheckPair(addrs, peers []netip.Prefix) error {
	for _, a := range addrs {
		for _, p := range peers {
			if a.Addr() == p.Addr() {
				return fmt.Errorf("both ends of the tunnel would have the address %v; give each end its own (--addr and --peer-addr differ)", a.Addr())
			}
		}
	}
	return nil
}

// Overlapping returns the first of nets that overlaps p (each taken as the
// network it is in), and whether there is one.
func Overlapping(p netip.Prefix, nets []netip.Prefix) (netip.Prefix, bool) {
	for _, n := range nets {
		if p.Masked().Overlaps(n.Masked()) {
			return n, true
		}
	}
	return netip.Prefix{}, false
}

// Covered reports whether network r lies inside one of nets.
func Covered(r netip.Prefix, nets []netip.Prefix) bool {
	for _, n := range nets {
		if n.Bits() <= r.Bits() && n.Contains(r.Addr()) {
			return true
		}
	}
	return false
}
