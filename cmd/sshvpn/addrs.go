package main

import (
	"fmt"
	"net/netip"
)

// Default tunnel addresses, used when neither --addr nor --peer-addr is given:
// a benchmark-range /30 and a unique-local /64 ("ssh vpn" in hex).
var (
	defaultAddrs = []netip.Prefix{netip.MustParsePrefix("198.18.0.1/30"), netip.MustParsePrefix("fd73:7368:7670::1/64")}
	defaultPeers = []netip.Prefix{netip.MustParsePrefix("198.18.0.2/30"), netip.MustParsePrefix("fd73:7368:7670::2/64")}
)

// proposal completes the client's proposal: the defaults when nothing was
// given, and the partner address in the same subnet for each address whose
// other end was not given.
func proposal(addrs, peers []netip.Prefix) ([]netip.Prefix, []netip.Prefix, error) {
	if len(addrs) == 0 && len(peers) == 0 {
		return defaultAddrs, defaultPeers, nil
	}
	return completePair(addrs, peers)
}

// completePair fills in the side that was not given: the partner of each
// address of the other side.
func completePair(addrs, peers []netip.Prefix) ([]netip.Prefix, []netip.Prefix, error) {
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
		q, err := partner(p)
		if err != nil {
			return nil, err
		}
		out = append(out, q)
	}
	return out, nil
}

// partner returns the other host address of a point-to-point subnet: the
// next address in p, or the previous one when p's address is the last
// usable. It fails for a host route (/32, /128), which has no room.
func partner(p netip.Prefix) (netip.Prefix, error) {
	a := p.Addr()
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
