// Package tun is sshvpn's seam to the kernel's virtual network devices: a
// Device reads and writes one packet (TUN) or Ethernet frame (TAP) at a time,
// and Configure gives an interface its addresses, MTU and link state.
//
// The Linux implementation opens /dev/net/tun through songgao/water and
// configures interfaces over netlink. Other systems get ErrUnsupported.
// Package tuntest has an in-memory Device for tests.
package tun

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
)

// Device is one open TUN or TAP device.
type Device interface {
	// Read reads one packet into p and returns its length. For a packet
	// larger than p the Linux kernel copies what fits and returns the
	// packet's full length, more than len(p): callers must check.
	Read(p []byte) (int, error)
	// Write writes one packet.
	Write(p []byte) (int, error)
	// Name is the interface name, such as "tun0".
	Name() string
	// MTU is the interface MTU as last configured or read.
	MTU() int
	// Close releases the device and unblocks a pending Read, which then
	// returns an error. A non-persistent device disappears with its
	// addresses and routes.
	Close() error
}

// Mode says whether a device carries IP packets or Ethernet frames.
type Mode string

// Modes.
const (
	ModeTUN Mode = "tun"
	ModeTAP Mode = "tap"
)

// Config says which device to open.
type Config struct {
	Name string // requested interface name; empty lets the kernel choose
	Mode Mode   // ModeTUN when empty
}

// Setup is what Configure applies to an interface.
type Setup struct {
	MTU   int            // 0 leaves the MTU alone
	Addrs []netip.Prefix // addresses to add, IPv4 and IPv6
}

// Route is a route in the main table: to Dst, through Dev, via Gw if set.
// AddRoute marks the routes it adds with RouteProtocol, so that sshvpn can
// tell its own routes (and a killed session's leftovers) from everyone
// else's.
type Route struct {
	Dst netip.Prefix
	Gw  netip.Addr
	Dev string
}

// RouteProtocol is the routing protocol number ("proto" in ip route) that
// marks the routes sshvpn adds: "ip route show proto 115" lists them.
const RouteProtocol = 115

// Net is an address an interface has, with its prefix length: the address
// and the network it is connected to.
type Net struct {
	Prefix netip.Prefix
	Dev    string
}

func (n Net) String() string { return n.Prefix.String() + " on " + n.Dev }

// MaxNameLen is the longest interface name Linux accepts (IFNAMSIZ - 1).
const MaxNameLen = 15

// CheckName reports whether name can name an interface: at most MaxNameLen
// bytes, not "." or "..", and without '/', ':' or white space. The empty
// name (let the kernel choose) is valid. A pattern such as "vpn%d" is
// checked with its number expanded by the caller.
func CheckName(name string) error {
	switch {
	case name == "":
		return nil
	case len(name) > MaxNameLen:
		return fmt.Errorf("tun: interface name %q is %d bytes long; Linux allows at most %d", name, len(name), MaxNameLen)
	case name == "." || name == "..":
		return fmt.Errorf("tun: %q is not a valid interface name", name)
	case strings.ContainsAny(name, "/: \t\n\r\v\f"):
		return fmt.Errorf("tun: interface name %q may not contain '/', ':' or white space", name)
	}
	for _, r := range name {
		if r < 0x21 || r == 0x7f {
			return fmt.Errorf("tun: interface name %q contains a control character", name)
		}
	}
	return nil
}

func (r Route) String() string {
	s := r.Dst.Masked().String()
	if r.Gw.IsValid() {
		s += " via " + r.Gw.String()
	}
	if r.Dev != "" {
		s += " dev " + r.Dev
	}
	return s
}

// ErrUnsupported is returned on systems without an implementation.
var ErrUnsupported = errors.New("tun: TUN/TAP devices are supported on Linux only")

// DefaultMTU is the MTU used when nobody asks for another.
const DefaultMTU = 1500

// Overhead is how many bytes beyond the MTU a read buffer needs: the
// Ethernet header with one VLAN tag in TAP mode.
const Overhead = 18
