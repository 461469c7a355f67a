package router

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/netip"
	"slices"
	"syscall"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// Configure brings interface name to s: MTU, addresses, link up. It changes
// only what differs, so on a device an admin prepared it needs no privilege;
// a change it may not make is an error naming the command the admin can run
// instead. It returns the addresses it added, which a persistent device keeps
// until DelAddrs removes them.
func Configure(name string, s Setup) (added []netip.Prefix, err error) {
	l, err := netlink.LinkByName(name)
	if err != nil {
		return nil, fmt.Errorf("router: interface %q: %w", name, err)
	}
	if s.MTU > 0 && l.Attrs().MTU != s.MTU {
		if err := netlink.LinkSetMTU(l, s.MTU); err != nil {
			return nil, permError(err, fmt.Sprintf("ip link set dev %s mtu %d", name, s.MTU), fmt.Errorf("router: setting MTU %d on %s: %w", s.MTU, name, err))
		}
	}
	have, err := retryDump(func() ([]netlink.Addr, error) { return netlink.AddrList(l, netlink.FAMILY_ALL) })
	if err != nil {
		return nil, fmt.Errorf("router: listing addresses of %s: %w", name, err)
	}
	for _, a := range s.Addrs {
		na := &netlink.Addr{IPNet: prefixNet(a)}
		if a.Addr().Is6() {
			na.Flags = unix.IFA_F_NODAD // usable at once: a tunnel has no duplicates to detect
		}
		if slices.ContainsFunc(have, func(h netlink.Addr) bool { return h.IPNet.String() == na.IPNet.String() }) {
			continue
		}
		if err := netlink.AddrAdd(l, na); errors.Is(err, syscall.EEXIST) {
			continue // someone else's
		} else if err != nil {
			return added, permError(err, fmt.Sprintf("ip addr add %v dev %s", a, name), fmt.Errorf("router: adding address %v to %s: %w", a, name, err))
		}
		added = append(added, a)
	}
	if l.Attrs().Flags&net.FlagUp == 0 {
		if err := netlink.LinkSetUp(l); err != nil {
			return added, permError(err, fmt.Sprintf("ip link set dev %s up", name), fmt.Errorf("router: bringing %s up: %w", name, err))
		}
	}
	return added, nil
}

// DelAddrs removes addresses from interface name; a device or address that
// is already gone is not an error.
func DelAddrs(name string, addrs []netip.Prefix) error {
	l, err := netlink.LinkByName(name)
	if err != nil {
		return nil
	}
	for _, a := range addrs {
		if err := netlink.AddrDel(l, &netlink.Addr{IPNet: prefixNet(a)}); err != nil && !errors.Is(err, syscall.EADDRNOTAVAIL) {
			return fmt.Errorf("router: removing address %v from %s: %w", a, name, err)
		}
	}
	return nil
}

// permError adds to a failed change the command an admin can run instead.
func permError(err error, adminCmd string, full error) error {
	if errors.Is(err, syscall.EPERM) || errors.Is(err, syscall.EACCES) {
		return fmt.Errorf("%w: this process may not change the interface; have the admin prepare it (%s) or give sshvpn CAP_NET_ADMIN", full, adminCmd)
	}
	return full
}

func prefixNet(p netip.Prefix) *net.IPNet {
	return &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}
}

// AddRoute adds r to the main routing table. If the table already has a
// route to r.Dst, it is left alone and the error wraps fs.ErrExist, so that
// callers know not to remove what they did not add.
func AddRoute(r Route) error {
	nr, err := r.netlink()
	if err != nil {
		return err
	}
	if err := netlink.RouteAdd(nr); err != nil {
		if errors.Is(err, syscall.EEXIST) {
			return fmt.Errorf("router: route %v: %w", r, fs.ErrExist)
		}
		return permError(err, "ip route add "+r.String(), fmt.Errorf("router: adding route %v: %w", r, err))
	}
	return nil
}

// DelRoute removes r if sshvpn added it (its protocol is RouteProtocol); a
// route that is already gone (as when its device went away) is not an error.
func DelRoute(r Route) error {
	nr, err := r.netlink()
	if err != nil {
		return nil // the device, and its routes, are gone
	}
	if err := netlink.RouteDel(nr); err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("router: removing route %v: %w", r, err)
	}
	return nil
}

func (r Route) netlink() (*netlink.Route, error) {
	nr := &netlink.Route{Dst: prefixNet(r.Dst.Masked()), Protocol: RouteProtocol}
	if r.Unreachable {
		nr.Type = unix.RTN_UNREACHABLE
	}
	if r.Dev != "" {
		l, err := netlink.LinkByName(r.Dev)
		if err != nil {
			return nil, fmt.Errorf("router: interface %q: %w", r.Dev, err)
		}
		nr.LinkIndex = l.Attrs().Index
	}
	if r.Gw.IsValid() {
		nr.Gw = r.Gw.AsSlice()
	}
	return nr, nil
}

// Nets lists the addresses of every interface, with their prefix lengths:
// the addresses this machine has and the networks it is connected to.
func Nets() ([]Net, error) {
	links, err := retryDump(netlink.LinkList)
	if err != nil {
		return nil, fmt.Errorf("router: listing interfaces: %w", err)
	}
	names := make(map[int]string, len(links))
	for _, l := range links {
		names[l.Attrs().Index] = l.Attrs().Name
	}
	addrs, err := retryDump(func() ([]netlink.Addr, error) { return netlink.AddrList(nil, netlink.FAMILY_ALL) })
	if err != nil {
		return nil, fmt.Errorf("router: listing addresses: %w", err)
	}
	var out []Net
	for _, a := range addrs {
		ip, ok := netip.AddrFromSlice(a.IP)
		if !ok || a.IPNet == nil {
			continue
		}
		bits, _ := a.Mask.Size()
		out = append(out, Net{Prefix: netip.PrefixFrom(ip.Unmap(), bits), Dev: names[a.LinkIndex]})
	}
	return out, nil
}

// ListRoutes lists the routes of the main table whose protocol is proto (such
// as RouteProtocol), both families.
func ListRoutes(proto int) ([]Route, error) {
	rs, err := retryDump(func() ([]netlink.Route, error) {
		return netlink.RouteListFiltered(netlink.FAMILY_ALL, &netlink.Route{Protocol: netlink.RouteProtocol(proto), Table: unix.RT_TABLE_MAIN},
			netlink.RT_FILTER_PROTOCOL|netlink.RT_FILTER_TABLE)
	})
	if err != nil {
		return nil, fmt.Errorf("router: listing routes: %w", err)
	}
	var out []Route
	for _, nr := range rs {
		if nr.Dst == nil {
			continue
		}
		ip, ok := netip.AddrFromSlice(nr.Dst.IP)
		if !ok {
			continue
		}
		bits, _ := nr.Dst.Mask.Size()
		r := Route{Dst: netip.PrefixFrom(ip.Unmap(), bits)}
		if nr.Type == unix.RTN_UNREACHABLE {
			// No device: the kernel shows IPv6's on lo, IPv4's on none.
			r.Unreachable = true
			out = append(out, r)
			continue
		}
		if gw, ok := netip.AddrFromSlice(nr.Gw); ok && nr.Gw != nil {
			r.Gw = gw.Unmap()
		}
		if l, err := netlink.LinkByIndex(nr.LinkIndex); err == nil {
			r.Dev = l.Attrs().Name
		}
		out = append(out, r)
	}
	return out, nil
}

// retryDump runs a netlink dump again while the kernel reports it
// interrupted (the table changed meanwhile, as when many sessions set up
// their devices at once). An answer that stays incomplete is an error: the
// checks built on it must not pass on part of the picture.
func retryDump[T any](dump func() ([]T, error)) ([]T, error) {
	var out []T
	var err error
	for range 20 {
		if out, err = dump(); !errors.Is(err, netlink.ErrDumpInterrupted) {
			return out, err
		}
	}
	return nil, fmt.Errorf("router: the kernel's tables kept changing while being read: %w", err)
}

// RouteTo returns the route the kernel uses now to reach dst: its gateway (if
// any) and device, with Dst set to dst's host prefix.
func RouteTo(dst netip.Addr) (Route, error) {
	rs, err := netlink.RouteGet(dst.AsSlice())
	if err != nil || len(rs) == 0 {
		return Route{}, fmt.Errorf("router: no route to %v: %v", dst, err)
	}
	r := Route{Dst: netip.PrefixFrom(dst, dst.BitLen())}
	if gw, ok := netip.AddrFromSlice(rs[0].Gw); ok && rs[0].Gw != nil {
		r.Gw = gw.Unmap()
	}
	if l, err := netlink.LinkByIndex(rs[0].LinkIndex); err == nil {
		r.Dev = l.Attrs().Name
	}
	return r, nil
}

// SetMAC sets the hardware address of a TAP interface; it must be down or
// the driver must allow the change.
func SetMAC(name string, mac net.HardwareAddr) error {
	l, err := netlink.LinkByName(name)
	if err != nil {
		return fmt.Errorf("router: interface %q: %w", name, err)
	}
	if err := netlink.LinkSetHardwareAddr(l, mac); err != nil {
		return permError(err, fmt.Sprintf("ip link set dev %s address %v", name, mac), fmt.Errorf("router: setting MAC %v on %s: %w", mac, name, err))
	}
	return nil
}

// SetBridge makes interface name a port of the existing bridge br.
func SetBridge(name, br string) error {
	l, err := netlink.LinkByName(name)
	if err != nil {
		return fmt.Errorf("router: interface %q: %w", name, err)
	}
	b, err := netlink.LinkByName(br)
	if err != nil {
		return fmt.Errorf("router: bridge %q does not exist; create it first (ip link add %s type bridge): %w", br, br, err)
	}
	if _, ok := b.(*netlink.Bridge); !ok {
		return fmt.Errorf("router: %s is not a bridge (its type is %s)", br, b.Type())
	}
	if err := netlink.LinkSetMaster(l, b); err != nil {
		return permError(err, fmt.Sprintf("ip link set dev %s master %s", name, br), fmt.Errorf("router: adding %s to bridge %s: %w", name, br, err))
	}
	return nil
}
