package tun

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/netip"
	"os"
	"slices"
	"syscall"
	"unsafe"

	"github.com/songgao/water"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

type device struct {
	rw         io.ReadWriteCloser
	name       string
	mtu        int
	index      int  // interface index: a later device may reuse the name
	persistent bool // attached to an admin's device, which outlives us
}

// Open opens a TUN or TAP device.
//
// When cfg.Name names an existing persistent device (one an admin made with
// "ip tuntap add dev NAME mode tun user USER"), Open attaches to it and
// leaves its persistence alone, so it outlives the session; attaching needs
// no privilege when the device belongs to the caller's user or group.
// Otherwise Open creates a non-persistent device, which needs CAP_NET_ADMIN
// and disappears, with its addresses and routes, when closed or when the
// process exits.
func Open(cfg Config) (Device, error) {
	if err := CheckName(cfg.Name); err != nil {
		return nil, err
	}
	if cfg.Name != "" {
		if l, err := netlink.LinkByName(cfg.Name); err == nil {
			if _, ok := l.(*netlink.Tuntap); !ok {
				return nil, fmt.Errorf("tun: %s exists and is not a tun/tap device (its type is %s); choose another --dev", cfg.Name, l.Type())
			}
			return attach(cfg)
		}
	}
	wc := water.Config{DeviceType: water.TUN}
	if cfg.Mode == ModeTAP {
		wc.DeviceType = water.TAP
	}
	wc.Name = cfg.Name
	ifce, err := water.New(wc)
	if err != nil {
		return nil, openError(cfg.Name, err)
	}
	// water opens /dev/net/tun without O_CLOEXEC: ssh, hooks and anything
	// they leave running would inherit the device and keep it alive after
	// sshvpn exits.
	if f, ok := ifce.ReadWriteCloser.(*os.File); ok {
		if rc, err := f.SyscallConn(); err == nil {
			rc.Control(func(fd uintptr) { unix.CloseOnExec(int(fd)) })
		}
	}
	return newDevice(ifce, ifce.Name()), nil
}

func newDevice(rw io.ReadWriteCloser, name string) *device {
	d := &device{rw: rw, name: name, mtu: DefaultMTU}
	if l, err := netlink.LinkByName(name); err == nil {
		d.mtu, d.index = l.Attrs().MTU, l.Attrs().Index
	}
	return d
}

// attach opens an existing device by name without touching its persistence
// or ownership (water's path would clear persistence, and needs
// CAP_NET_ADMIN to do so).
func attach(cfg Config) (Device, error) {
	fd, err := unix.Open("/dev/net/tun", unix.O_RDWR|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, openError(cfg.Name, err)
	}
	var req struct {
		name  [unix.IFNAMSIZ]byte
		flags uint16
		_     [22]byte
	}
	copy(req.name[:], cfg.Name)
	req.flags = unix.IFF_TUN | unix.IFF_NO_PI
	if cfg.Mode == ModeTAP {
		req.flags = unix.IFF_TAP | unix.IFF_NO_PI
	}
	if _, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), unix.TUNSETIFF, uintptr(unsafe.Pointer(&req))); errno != 0 {
		unix.Close(fd)
		if errno == unix.EPERM {
			return nil, fmt.Errorf("tun: device %s exists but this user (uid %d) may not attach to it: "+
				"the admin must create it for this user (ip tuntap add dev %s mode %s user $USER), or run sshvpn as root or with CAP_NET_ADMIN",
				cfg.Name, os.Getuid(), cfg.Name, modeOr(cfg.Mode))
		}
		return nil, openError(cfg.Name, errno)
	}
	d := newDevice(os.NewFile(uintptr(fd), "/dev/net/tun"), cfg.Name)
	d.persistent = true
	return d, nil
}

func modeOr(m Mode) Mode {
	if m == "" {
		return ModeTUN
	}
	return m
}

// openError turns the errors of opening /dev/net/tun into advice.
func openError(name string, err error) error {
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("tun: /dev/net/tun does not exist: load the tun module (modprobe tun) or, in a container, pass the device in (--device /dev/net/tun): %w", err)
	case errors.Is(err, fs.ErrPermission) || errors.Is(err, syscall.EPERM):
		return fmt.Errorf("tun: no permission to create a device (%w): run as root, give the binary CAP_NET_ADMIN "+
			"(setcap cap_net_admin+ep $(command -v sshvpn)), or ask the admin for a device created for your user "+
			"(ip tuntap add dev NAME mode tun user $USER) and pass --dev NAME; /dev/net/tun itself must be "+
			"readable and writable by you (mode 0666 is the usual)", err)
	case errors.Is(err, syscall.EBUSY):
		return fmt.Errorf("tun: device %q is busy: another process holds it open: %w", name, err)
	case errors.Is(err, syscall.EINVAL) && name != "":
		return fmt.Errorf("tun: cannot open %q: it exists as another kind of device (tun vs tap, or other flags) or the name is invalid: %w", name, err)
	}
	return fmt.Errorf("tun: opening device: %w", err)
}

func (d *device) Read(p []byte) (int, error)  { return d.rw.Read(p) }
func (d *device) Write(p []byte) (int, error) { return d.rw.Write(p) }
func (d *device) Name() string                { return d.name }
func (d *device) Close() error                { return d.rw.Close() }

// MTU reads the interface's MTU, which Configure or the admin may have set
// since Open.
func (d *device) MTU() int {
	if l, err := netlink.LinkByName(d.name); err == nil {
		return l.Attrs().MTU
	}
	return d.mtu
}

// Configure brings interface name to s: MTU, addresses, link up. It changes
// only what differs, so on a device an admin prepared it needs no privilege;
// a change it may not make is an error naming the command the admin can run
// instead. It returns the addresses it added, which a persistent device keeps
// until DelAddrs removes them.
func Configure(name string, s Setup) (added []netip.Prefix, err error) {
	l, err := netlink.LinkByName(name)
	if err != nil {
		return nil, fmt.Errorf("tun: interface %q: %w", name, err)
	}
	if s.MTU > 0 && l.Attrs().MTU != s.MTU {
		if err := netlink.LinkSetMTU(l, s.MTU); err != nil {
			return nil, permError(err, fmt.Sprintf("ip link set dev %s mtu %d", name, s.MTU), fmt.Errorf("tun: setting MTU %d on %s: %w", s.MTU, name, err))
		}
	}
	have, err := retryDump(func() ([]netlink.Addr, error) { return netlink.AddrList(l, netlink.FAMILY_ALL) })
	if err != nil {
		return nil, fmt.Errorf("tun: listing addresses of %s: %w", name, err)
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
			return added, permError(err, fmt.Sprintf("ip addr add %v dev %s", a, name), fmt.Errorf("tun: adding address %v to %s: %w", a, name, err))
		}
		added = append(added, a)
	}
	if l.Attrs().Flags&net.FlagUp == 0 {
		if err := netlink.LinkSetUp(l); err != nil {
			return added, permError(err, fmt.Sprintf("ip link set dev %s up", name), fmt.Errorf("tun: bringing %s up: %w", name, err))
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
			return fmt.Errorf("tun: removing address %v from %s: %w", a, name, err)
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
			return fmt.Errorf("tun: route %v: %w", r, fs.ErrExist)
		}
		return permError(err, "ip route add "+r.String(), fmt.Errorf("tun: adding route %v: %w", r, err))
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
		return fmt.Errorf("tun: removing route %v: %w", r, err)
	}
	return nil
}

func (r Route) netlink() (*netlink.Route, error) {
	nr := &netlink.Route{Dst: prefixNet(r.Dst.Masked()), Protocol: RouteProtocol}
	if r.Dev != "" {
		l, err := netlink.LinkByName(r.Dev)
		if err != nil {
			return nil, fmt.Errorf("tun: interface %q: %w", r.Dev, err)
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
		return nil, fmt.Errorf("tun: listing interfaces: %w", err)
	}
	names := make(map[int]string, len(links))
	for _, l := range links {
		names[l.Attrs().Index] = l.Attrs().Name
	}
	addrs, err := retryDump(func() ([]netlink.Addr, error) { return netlink.AddrList(nil, netlink.FAMILY_ALL) })
	if err != nil {
		return nil, fmt.Errorf("tun: listing addresses: %w", err)
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

// Routes lists the routes of the main table whose protocol is proto (such
// as RouteProtocol), both families.
func Routes(proto int) ([]Route, error) {
	rs, err := retryDump(func() ([]netlink.Route, error) {
		return netlink.RouteListFiltered(netlink.FAMILY_ALL, &netlink.Route{Protocol: netlink.RouteProtocol(proto), Table: unix.RT_TABLE_MAIN},
			netlink.RT_FILTER_PROTOCOL|netlink.RT_FILTER_TABLE)
	})
	if err != nil {
		return nil, fmt.Errorf("tun: listing routes: %w", err)
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
// their devices at once); after a few tries it takes the last, possibly
// incomplete, answer rather than fail.
func retryDump[T any](dump func() ([]T, error)) ([]T, error) {
	var out []T
	var err error
	for range 10 {
		if out, err = dump(); !errors.Is(err, netlink.ErrDumpInterrupted) {
			return out, err
		}
	}
	return out, nil
}

// RouteTo returns the route the kernel uses now to reach dst: its gateway (if
// any) and device, with Dst set to dst's host prefix.
func RouteTo(dst netip.Addr) (Route, error) {
	rs, err := netlink.RouteGet(dst.AsSlice())
	if err != nil || len(rs) == 0 {
		return Route{}, fmt.Errorf("tun: no route to %v: %v", dst, err)
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
		return fmt.Errorf("tun: interface %q: %w", name, err)
	}
	if err := netlink.LinkSetHardwareAddr(l, mac); err != nil {
		return permError(err, fmt.Sprintf("ip link set dev %s address %v", name, mac), fmt.Errorf("tun: setting MAC %v on %s: %w", mac, name, err))
	}
	return nil
}

// SetBridge makes interface name a port of the existing bridge br.
func SetBridge(name, br string) error {
	l, err := netlink.LinkByName(name)
	if err != nil {
		return fmt.Errorf("tun: interface %q: %w", name, err)
	}
	b, err := netlink.LinkByName(br)
	if err != nil {
		return fmt.Errorf("tun: bridge %q does not exist; create it first (ip link add %s type bridge): %w", br, br, err)
	}
	if _, ok := b.(*netlink.Bridge); !ok {
		return fmt.Errorf("tun: %s is not a bridge (its type is %s)", br, b.Type())
	}
	if err := netlink.LinkSetMaster(l, b); err != nil {
		return permError(err, fmt.Sprintf("ip link set dev %s master %s", name, br), fmt.Errorf("tun: adding %s to bridge %s: %w", name, br, err))
	}
	return nil
}

// Exists reports whether an interface called name exists.
func Exists(name string) bool {
	_, err := netlink.LinkByName(name)
	return err == nil
}

// Persistent reports whether d is an admin's persistent device that Open
// attached to: it keeps the addresses and routes a session adds unless the
// session removes them.
func Persistent(d Device) bool {
	dd, ok := d.(*device)
	return ok && dd.persistent
}

// Same reports whether interface name is still device d, and not a device
// created since under the same name.
func Same(d Device, name string) bool {
	dd, ok := d.(*device)
	if !ok {
		return false
	}
	l, err := netlink.LinkByName(name)
	return err == nil && l.Attrs().Index == dd.index
}

// IsTun reports whether interface name is a tun or tap device.
func IsTun(name string) bool {
	l, err := netlink.LinkByName(name)
	if err != nil {
		return false
	}
	_, ok := l.(*netlink.Tuntap)
	return ok
}
