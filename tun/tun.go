// Package tun is sshvpn's seam to the kernel's virtual network devices. A
// Device moves packets (TUN) or Ethernet frames (TAP) in batches, in the
// shape of golang.zx2c4.com/wireguard/tun: each packet sits at an offset in
// its buffer, so that a caller can put a frame header in front of it in
// place, and a backend may move many packets per call.
//
// The Linux implementation opens /dev/net/tun through songgao/water, or
// itself where it needs flags water does not ask for, and moves one packet
// per call (BatchSize 1); TryRead lets a caller take what is queued
// without waiting. With Config.Offload, packets carry a virtio_net_hdr and
// can be GSO super-packets of up to 64 KiB (see Offload and CheckVnet). Other systems get
// ErrUnsupported. Package tuntest has an in-memory Device for tests. The
// addresses and routes of an interface are package router's business.
package tun

import (
	"errors"
	"fmt"
	"strings"
)

// Device is one open TUN or TAP device.
type Device interface {
	// Read reads up to len(bufs) packets, at least one, and returns how
	// many it read. Packet i is copied to bufs[i][offset:] and its length
	// stored in sizes[i]. For a packet longer than its buffer the Linux
	// kernel copies what fits and reports the packet's full length, more
	// than len(bufs[i])-offset: callers must check.
	Read(bufs [][]byte, sizes []int, offset int) (int, error)
	// TryRead reads one packet into buf like Read, but without waiting:
	// when no packet is queued it returns 0 and no error at once.
	TryRead(buf []byte) (int, error)
	// Write writes each bufs[i][offset:] as one packet and returns how
	// many it wrote.
	Write(bufs [][]byte, offset int) (int, error)
	// BatchSize is how many packets one Read may return: the length bufs
	// and sizes should have.
	BatchSize() int
	// Name is the interface name, such as "tun0".
	Name() string
	// MTU is the interface MTU as last configured or read.
	MTU() int
	// Index is the interface index, which tells this device from a later
	// one that took its name; 0 when unknown.
	Index() int
	// Persistent reports whether the device is an admin's persistent one
	// that Open attached to: it outlives the process, with whatever
	// addresses and routes were put on it, unless they are removed.
	Persistent() bool
	// Offloads are the offloads the kernel accepted for a device opened
	// with Config.Offload, none of them enabled until SetOffload. When it
	// is not 0, every packet Read returns and Write takes begins with a
	// virtio_net_hdr (VnetHdrLen bytes); when 0, packets are plain.
	Offloads() Offload
	// SetOffload enables the offloads in o (a subset of Offloads) for
	// the packets Read returns; 0 turns them all off. Packets written may
	// use any of Offloads.
	SetOffload(o Offload) error
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
	// Offload asks for a virtio-net header in front of each packet, so
	// that segmentation and checksum offloads can be enabled (see
	// Offload). It is granted in tun mode on little-endian machines whose
	// kernel has the checksum offload for tun; Device.Offloads tells.
	Offload bool
	// MultiQueue makes a device that takes several queues
	// (IFF_MULTI_QUEUE): Open returns its first, and OpenQueue adds
	// more, each its own file. The kernel spreads the packets it sends
	// out over the queues by their flow's hash, so each flow leaves
	// through one queue, and re-spreads when a queue closes. An existing
	// device must have been made multi-queue too.
	MultiQueue bool
}

// A Queue is a device opened as one queue of a multi-queue device
// (Config.MultiQueue, OpenQueue): SetQueue(false) takes it out of the
// device's set of queues without closing it, so that the kernel sends
// every flow through the others, and SetQueue(true) puts it back.
type Queue interface {
	SetQueue(attached bool) error
}

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

// ErrUnsupported is returned on systems without an implementation.
var ErrUnsupported = errors.New("tun: TUN/TAP devices are supported on Linux only")

// DefaultMTU is the MTU used when nobody asks for another.
const DefaultMTU = 1500

// Overhead is how many bytes beyond the MTU a read buffer needs: the
// Ethernet header with one VLAN tag in TAP mode.
const Overhead = 18
