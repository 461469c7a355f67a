package tun

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"unsafe"

	"github.com/songgao/water"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

type device struct {
	f          *os.File
	cfg        Config // what it was opened with, for OpenQueue
	vnet       bool   // with a virtio-net header
	qmu        sync.Mutex
	detached   bool // out of its multi-queue device's set (SetQueue)
	rc         syscall.RawConn
	offloads   Offload // accepted by the kernel; 0 without a virtio-net header
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
	exists := false
	if cfg.Name != "" {
		if l, err := netlink.LinkByName(cfg.Name); err == nil {
			if _, ok := l.(*netlink.Tuntap); !ok {
				return nil, fmt.Errorf("tun: %s exists and is not a tun/tap device (its type is %s); choose another --dev", cfg.Name, l.Type())
			}
			exists = true
		}
	}
	if cfg.Offload && cfg.Mode != ModeTAP && littleEndian() {
		d, err := openFd(cfg, true)
		if err == nil && d.probe() {
			d.persistent = exists
			return d, nil
		}
		if err == nil {
			d.Close() // the kernel has no offloads for tun: open plainly
		}
	}
	if exists || cfg.MultiQueue {
		d, err := openFd(cfg, false)
		if err != nil {
			return nil, err
		}
		if !exists {
			return d, nil // a new multi-queue device (water makes no such)
		}
		d.persistent = true
		// Offloads belong to the device, not to the open file: what an
		// earlier run (or another program) enabled on this persistent
		// device would hand this plain reader super-packets.
		d.setOffload(0)
		return d, nil
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
	f, ok := ifce.ReadWriteCloser.(*os.File)
	if !ok {
		ifce.Close()
		return nil, errors.New("tun: the device is not a file")
	}
	return newDevice(f, ifce.Name())
}

func newDevice(f *os.File, name string) (*device, error) {
	rc, err := f.SyscallConn()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("tun: %w", err)
	}
	d := &device{f: f, rc: rc, name: name, mtu: DefaultMTU}
	if l, err := netlink.LinkByName(name); err == nil {
		d.mtu, d.index = l.Attrs().MTU, l.Attrs().Index
	}
	return d, nil
}

// TUNSETOFFLOAD flags, from linux/if_tun.h.
const (
	tunFCSUM   = 0x01
	tunFTSO4   = 0x02
	tunFTSO6   = 0x04
	tunFTSOECN = 0x08
	tunFUSO4   = 0x20
	tunFUSO6   = 0x40
)

// probe finds which offloads the kernel accepts, and leaves them all off
// until SetOffload. It reports whether checksum offload, on which the
// others depend, is among them.
func (d *device) probe() bool {
	// A previous owner of a persistent device (QEMU, say) may have
	// changed the header's size.
	size := VnetHdrLen
	var errno syscall.Errno
	d.rc.Control(func(fd uintptr) {
		_, _, errno = unix.Syscall(unix.SYS_IOCTL, fd, unix.TUNSETVNETHDRSZ, uintptr(unsafe.Pointer(&size)))
	})
	if errno != 0 {
		return false
	}
	for _, o := range []Offload{OffloadCSUM | OffloadTSO4 | OffloadTSO6 | OffloadUSO4 | OffloadUSO6, OffloadCSUM | OffloadTSO4 | OffloadTSO6, OffloadCSUM} {
		if d.setOffload(o) == nil {
			d.offloads = o
			break
		}
	}
	return d.offloads != 0 && d.setOffload(0) == nil
}

func (d *device) setOffload(o Offload) error {
	var flags uintptr
	for _, f := range []struct {
		o    Offload
		flag uintptr
	}{{OffloadCSUM, tunFCSUM}, {OffloadTSO4, tunFTSO4 | tunFTSOECN}, {OffloadTSO6, tunFTSO6 | tunFTSOECN}, {OffloadUSO4, tunFUSO4}, {OffloadUSO6, tunFUSO6}} {
		if o&f.o != 0 {
			flags |= f.flag
		}
	}
	var errno syscall.Errno
	err := d.rc.Control(func(fd uintptr) {
		_, _, errno = unix.Syscall(unix.SYS_IOCTL, fd, unix.TUNSETOFFLOAD, flags)
	})
	if err != nil {
		return err
	}
	if errno != 0 {
		return errno
	}
	return nil
}

// SetOffload enables the offloads in o, a subset of Offloads.
func (d *device) SetOffload(o Offload) error {
	if o&^d.offloads != 0 {
		return fmt.Errorf("tun: %s: offloads %v are not among those the kernel accepted (%v)", d.name, o, d.offloads)
	}
	if d.offloads == 0 {
		return nil
	}
	if err := d.setOffload(o.Usable()); err != nil {
		return fmt.Errorf("tun: %s: setting offloads %v: %w", d.name, o, err)
	}
	return nil
}

func (d *device) Offloads() Offload { return d.offloads }

func littleEndian() bool {
	x := uint16(1)
	return *(*byte)(unsafe.Pointer(&x)) == 1
}

// openFd opens a device with its own TUNSETIFF: to attach to an existing
// device without touching its persistence or ownership (water's path would
// clear persistence, and needs CAP_NET_ADMIN to do so), and for the
// virtio-net header, which water does not ask for.
func openFd(cfg Config, vnet bool) (*device, error) {
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
	if vnet {
		req.flags |= unix.IFF_VNET_HDR
	}
	if cfg.MultiQueue {
		req.flags |= unix.IFF_MULTI_QUEUE
	}
	if _, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), unix.TUNSETIFF, uintptr(unsafe.Pointer(&req))); errno != 0 {
		unix.Close(fd)
		if errno == unix.EPERM && Exists(cfg.Name) {
			return nil, fmt.Errorf("tun: device %s exists but this user (uid %d) may not attach to it: "+
				"the admin must create it for this user (ip tuntap add dev %s mode %s user $USER), or run sshvpn as root or with CAP_NET_ADMIN",
				cfg.Name, os.Getuid(), cfg.Name, modeOr(cfg.Mode))
		}
		return nil, openError(cfg.Name, errno)
	}
	d, err := newDevice(os.NewFile(uintptr(fd), "/dev/net/tun"), unix.ByteSliceToString(req.name[:]))
	if err != nil {
		return nil, err
	}
	d.cfg, d.vnet = cfg, vnet
	d.cfg.Name = d.name
	return d, nil
}

// SetQueue takes this queue out of its multi-queue device's set
// (attached false: the kernel sends the device's packets through the
// other queues) or puts it back, keeping the file open (TUNSETQUEUE).
func (d *device) SetQueue(attached bool) error {
	d.qmu.Lock()
	defer d.qmu.Unlock()
	if !d.cfg.MultiQueue {
		return fmt.Errorf("tun: %s is not multi-queue", d.name)
	}
	if d.detached == !attached {
		return nil // the kernel refuses to do it twice
	}
	var req struct {
		name  [unix.IFNAMSIZ]byte
		flags uint16
		_     [22]byte
	}
	req.flags = unix.IFF_DETACH_QUEUE
	if attached {
		req.flags = unix.IFF_ATTACH_QUEUE
	}
	var errno syscall.Errno
	err := d.rc.Control(func(fd uintptr) {
		_, _, errno = unix.Syscall(unix.SYS_IOCTL, fd, unix.TUNSETQUEUE, uintptr(unsafe.Pointer(&req)))
	})
	if err == nil && errno != 0 {
		err = errno
	}
	if err != nil {
		return fmt.Errorf("tun: %s: setting a queue attached=%v: %w", d.name, attached, err)
	}
	d.detached = !attached
	return nil
}

// OwnedBy reports whether name is a tun or tap device whose owner is
// uid (ip tuntap add ... user USER), as sysfs says.
func OwnedBy(name string, uid int) bool {
	if CheckName(name) != nil || name == "" {
		return false
	}
	b, err := os.ReadFile("/sys/class/net/" + name + "/owner")
	if err != nil {
		return false
	}
	owner, err := strconv.Atoi(strings.TrimSpace(string(b)))
	return err == nil && owner == uid
}

// OpenQueue opens another queue of d, a device opened with
// Config.MultiQueue: the same device, with the same header and offloads,
// as its own file.
func OpenQueue(d Device) (Device, error) {
	first, ok := d.(*device)
	if !ok || !first.cfg.MultiQueue {
		return nil, fmt.Errorf("tun: %s was not opened multi-queue", d.Name())
	}
	q, err := openFd(first.cfg, first.vnet)
	if err != nil {
		return nil, err
	}
	if q.index != first.index {
		q.Close()
		return nil, fmt.Errorf("tun: %s is another device now", first.name)
	}
	q.offloads, q.persistent = first.offloads, first.persistent
	return q, nil
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

// Read reads one packet into bufs[0][offset:], waiting for it.
func (d *device) Read(bufs [][]byte, sizes []int, offset int) (int, error) {
	n, err := d.f.Read(bufs[0][offset:])
	if err != nil {
		return 0, err
	}
	sizes[0] = n
	return 1, nil
}

// TryRead reads one packet if one is queued.
func (d *device) TryRead(buf []byte) (int, error) {
	var n int
	var rerr error
	err := d.rc.Read(func(fd uintptr) bool {
		n, rerr = unix.Read(int(fd), buf)
		return true // never wait
	})
	switch {
	case err != nil:
		return 0, err
	case rerr == unix.EAGAIN:
		return 0, nil
	case rerr != nil:
		return 0, &os.PathError{Op: "read", Path: d.name, Err: rerr}
	}
	return n, nil
}

// Write writes the packets one by one.
func (d *device) Write(bufs [][]byte, offset int) (int, error) {
	for i, b := range bufs {
		if _, err := d.f.Write(b[offset:]); err != nil {
			return i, err
		}
	}
	return len(bufs), nil
}

func (d *device) BatchSize() int   { return 1 }
func (d *device) Name() string     { return d.name }
func (d *device) Index() int       { return d.index }
func (d *device) Persistent() bool { return d.persistent }

// Close closes the device; a persistent one gets its offloads turned off
// first, as they outlive the file.
func (d *device) Close() error {
	if d.persistent && d.offloads != 0 {
		d.setOffload(0)
	}
	return d.f.Close()
}

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
