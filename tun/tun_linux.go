package tun

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/netip"
	"syscall"

	"github.com/songgao/water"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

type device struct {
	ifce *water.Interface
	name string
	mtu  int
}

// Open creates a TUN or TAP device. It is non-persistent: it disappears,
// with its addresses and routes, when closed or when the process exits.
func Open(cfg Config) (Device, error) {
	wc := water.Config{DeviceType: water.TUN}
	if cfg.Mode == ModeTAP {
		wc.DeviceType = water.TAP
	}
	wc.Name = cfg.Name
	ifce, err := water.New(wc)
	if err != nil {
		return nil, openError(cfg.Name, err)
	}
	d := &device{ifce: ifce, name: ifce.Name(), mtu: DefaultMTU}
	if l, err := netlink.LinkByName(d.name); err == nil {
		d.mtu = l.Attrs().MTU
	}
	return d, nil
}

// openError turns the errors of opening /dev/net/tun into advice.
func openError(name string, err error) error {
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("tun: /dev/net/tun does not exist: load the tun module (modprobe tun) or, in a container, pass the device in (--device /dev/net/tun): %w", err)
	case errors.Is(err, fs.ErrPermission) || errors.Is(err, syscall.EPERM):
		return fmt.Errorf("tun: no permission to create a device (%w): run as root, give the binary CAP_NET_ADMIN "+
			"(setcap cap_net_admin+ep $(command -v sshvpn)), or ask the admin for a device created for your user "+
			"(ip tuntap add dev NAME mode tun user $USER) and pass --dev NAME", err)
	case errors.Is(err, syscall.EBUSY):
		return fmt.Errorf("tun: device %q is busy: another process holds it open: %w", name, err)
	case errors.Is(err, syscall.EINVAL) && name != "":
		return fmt.Errorf("tun: cannot open %q: it exists as another kind of device (tun vs tap) or the name is invalid: %w", name, err)
	}
	return fmt.Errorf("tun: opening device: %w", err)
}

func (d *device) Read(p []byte) (int, error)  { return d.ifce.Read(p) }
func (d *device) Write(p []byte) (int, error) { return d.ifce.Write(p) }
func (d *device) Name() string                { return d.name }

// MTU reads the interface's MTU, which Configure or the admin may have set
// since Open.
func (d *device) MTU() int {
	if l, err := netlink.LinkByName(d.name); err == nil {
		return l.Attrs().MTU
	}
	return d.mtu
}
func (d *device) Close() error { return d.ifce.Close() }

// Configure sets the MTU of interface name, adds addrs and brings the link up.
// An address the interface already has is left as it is.
func Configure(name string, s Setup) error {
	l, err := netlink.LinkByName(name)
	if err != nil {
		return fmt.Errorf("tun: interface %q: %w", name, err)
	}
	if s.MTU > 0 && l.Attrs().MTU != s.MTU {
		if err := netlink.LinkSetMTU(l, s.MTU); err != nil {
			return fmt.Errorf("tun: setting MTU %d on %s: %w", s.MTU, name, err)
		}
	}
	for _, a := range s.Addrs {
		na := &netlink.Addr{IPNet: prefixNet(a)}
		if a.Addr().Is6() {
			na.Flags = unix.IFA_F_NODAD // usable at once: the tunnel has no duplicates to detect
		}
		if err := netlink.AddrAdd(l, na); err != nil && !errors.Is(err, syscall.EEXIST) {
			return fmt.Errorf("tun: adding address %v to %s: %w", a, name, err)
		}
	}
	if err := netlink.LinkSetUp(l); err != nil {
		return fmt.Errorf("tun: bringing %s up: %w", name, err)
	}
	return nil
}

func prefixNet(p netip.Prefix) *net.IPNet {
	return &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}
}
