package main

import (
	"net/netip"

	"github.com/sshvpn/sshvpn/policy"
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
	addrs, peers, err := policy.CompletePair(addrs, peers)
	if err != nil {
		return nil, nil, err
	}
	return addrs, peers, policy.CheckPair(addrs, peers)
}
