package tun

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
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

// Read reads one packet into bufs[0][offset:].
func (d *device) Read(bufs [][]byte, sizes []int, offset int) (int, error) {
	n, err := d.rw.Read(bufs[0][offset:])
	if err != nil {
		return 0, err
	}
	sizes[0] = n
	return 1, nil
}

// Write writes the packets one by one.
func (d *device) Write(bufs [][]byte, offset int) (int, error) {
	for i, b := range bufs {
		if _, err := d.rw.Write(b[offset:]); err != nil {
			return i, err
		}
	}
	return len(bufs), nil
}

func (d *device) BatchSize() int   { return 1 }
func (d *device) Name() string     { return d.name }
func (d *device) Index() int       { return d.index }
func (d *device) Persistent() bool { return d.persistent }
func (d *device) Close() error     { return d.rw.Close() }

// MTU reads the interface's MTU, which Configure or the admin may have set
// since Open.
func (d *device) MTU() int {
	if l, err := netlink.LinkByName(d.name); err == nil {
		return l.Attrs().MTU
	}
	return d.mtu
}

// Exists reports whether an interface called name exists.
func Exists(name string) bool {
	_, err := netlink.LinkByName(name)
	return err == nil
}

// Same reports whether interface name is still device d, and not a device
// created since under the same name.
func Same(d Device, name string) bool {
	l, err := netlink.LinkByName(name)
	return err == nil && d.Index() != 0 && l.Attrs().Index == d.Index()
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
